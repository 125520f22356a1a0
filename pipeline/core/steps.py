"""The pipeline's steps, in order: the one list `recsys run`, the Airflow DAG and cron share.

Nothing here imports TensorFlow or Beam, so a scheduler can read it while parsing a DAG.
"""

from __future__ import annotations

__all__ = ["DEMO_ONLY", "STEPS", "steps_for"]

STEPS = (
    "sample-data",
    "preprocess",
    "embed-items",
    "train",
    "evaluate",
    "export",
    "validate",
    "push",
)
DEMO_ONLY = ("sample-data",)  # runs only when `run.sample_data` is on


def steps_for(sample_data: bool) -> tuple[str, ...]:
    """The steps a run performs, in order."""
    return STEPS if sample_data else tuple(s for s in STEPS if s not in DEMO_ONLY)
