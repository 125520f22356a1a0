"""Where the preprocess job's transforms send bad records: the `dead` output, with counts.

Every transform routes a record it cannot use to its `dead` output as a dead letter (the raw
record, the reason, the field, the source file and line) and reports what it read, kept and
rejected in its `counts` output, so the job can prove that records read = kept + rejected. The
rejections are Beam counters too (namespace `recsys.preprocess`), per input and reason.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipeline.preprocess import reasons
from pipeline.preprocess.formats import raw_text
from pipeline.preprocess.reasons import RecordError
from pipeline.preprocess.records import dead_letter

__all__ = ["COUNTS", "DEAD", "NAMESPACE", "Rejections", "to_json_line"]

NAMESPACE = "recsys.preprocess"
DEAD, COUNTS = "dead", "counts"


class Rejections:
    """Counts rejections per reason in Beam metrics and in the job's own counts."""

    def __init__(self, input_name: str):
        self._input = input_name
        self._counters = {
            reason: Metrics.counter(NAMESPACE, f"{input_name}_rejected_{reason}")
            for reason in reasons.ALL
        }

    def reject(
        self, counts: Counter, source: str, line: int, error: RecordError, raw: Any
    ) -> pvalue.TaggedOutput:
        counts[f"rejected.{error.reason}"] += 1
        self._counters[error.reason].inc()
        return pvalue.TaggedOutput(
            DEAD, dead_letter(self._input, source, line, error, raw_text(raw))
        )


def to_json_line(value: Any) -> str:
    """One JSON line, UTF-8 text kept readable."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
