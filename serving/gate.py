"""The validation gate: may a candidate model replace the one being served?

A candidate passes when every absolute minimum holds (`min_metrics`, e.g. `recall@50: 0.3`), no
metric falls further below the served model's value than allowed (`max_regression`, relative,
e.g. `ndcg@10: 0.05` allows a 5% drop), and it is at least as good as the best baseline of its
own evaluation by the ratios in `min_ratio_to_baseline` (`recall@50: 1.0`: no baseline beats
it), since a model that loses to EASE or co-occurrence on the same queries is not worth serving.
The served model's metrics come from its version's manifest; the first run has no served model
to compare with, so the regression checks are skipped. Every metric is "higher is better"
except those listed in `LOWER_IS_BETTER` (RMSE), whose direction is reversed.

The result lists every check with the values, the limit and by how much it failed, so a refused
run can say exactly why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from models import compare
from models.compare import best_baseline
from pipeline.core.errors import RecsysError

__all__ = [
    "LOWER_IS_BETTER",
    "Check",
    "GateFailed",
    "GateResult",
    "evaluate_gate",
]

# The evaluation's (`models.compare`) and the drift checks' (`serving.drift`).
LOWER_IS_BETTER = compare.LOWER_IS_BETTER | {
    "rejected_share",
    "empty_text_share",
    "popularity_shift",
}


@dataclass(frozen=True)
class Check:
    """One comparison: `metric` of the candidate against `limit`."""

    metric: str
    kind: str  # "minimum", "regression" or "baseline"
    value: float | None
    limit: float
    passed: bool
    detail: str = ""  # "baseline": the ratio and the best baseline, e.g. "1× ease"

    def describe(self) -> str:
        better = "at most" if self.metric in LOWER_IS_BETTER else "at least"
        verdict = "ok" if self.passed else "FAILED"
        kind = f"{self.kind}: {self.detail}" if self.detail else self.kind
        if self.metric == "schema":
            return f"schema {'unchanged' if self.passed else 'changed'} ({kind}): {verdict}"
        if self.value is None:
            return f"{self.metric}: missing from the candidate's metrics ({kind}) FAILED"
        gap = "" if self.passed else f", short by {abs(self.value - self.limit):.4g}"
        return (
            f"{self.metric} = {self.value:.4g}, needs {better} {self.limit:.4g} ({kind}){gap}: "
            f"{verdict}"
        )


@dataclass
class GateResult:
    checks: list[Check] = field(default_factory=list)
    baseline: Mapping[str, float] | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def report(self) -> str:
        head = "gate passed" if self.passed else "gate FAILED: the model is not pushed"
        base = (
            "no served model to compare with"
            if self.baseline is None
            else "against the served model"
        )
        return "\n".join([f"{head} ({base})", *(f"  {c.describe()}" for c in self.checks)])


class GateFailed(RecsysError):
    """The candidate failed the validation gate; the message is the gate's report."""

    def __init__(self, result: GateResult):
        super().__init__(result.report())
        self.result = result


def _meets(metric: str, value: float, limit: float) -> bool:
    return value <= limit if metric in LOWER_IS_BETTER else value >= limit


def evaluate_gate(
    candidate: Mapping[str, float],
    min_metrics: Mapping[str, float],
    max_regression: Mapping[str, float],
    baseline: Mapping[str, float] | None = None,
    min_ratio_to_baseline: Mapping[str, float] | None = None,
) -> GateResult:
    """Checks a candidate's metrics.

    Args:
      candidate: The candidate's flat metrics (`metrics.json`), with the baselines of the same
        evaluation under `baselines.<name>.<metric>`.
      min_metrics: Metric → absolute limit (a maximum for lower-is-better metrics).
      max_regression: Metric → largest allowed relative change for the worse, against `baseline`.
      baseline: The served model's metrics, or None on the first run.
      min_ratio_to_baseline: Metric → least ratio of the candidate's value to the best
        baseline's (for lower-is-better metrics, the most).
    """
    result = GateResult(baseline=baseline)
    for metric, ratio in (min_ratio_to_baseline or {}).items():
        best = best_baseline(candidate, metric)
        value = candidate.get(metric)
        if best is None:  # an evaluation without baselines cannot show the model beats them
            detail = "no baseline in the candidate's evaluation"
            result.checks.append(Check(metric, "baseline", None, 0.0, False, detail))
            continue
        name, best_value = best
        limit = float(ratio) * best_value
        ok = value is not None and _meets(metric, float(value), limit)
        detail = f"{float(ratio):g}× {name}, the best baseline"
        result.checks.append(Check(metric, "baseline", value, limit, ok, detail))
    for metric, limit in min_metrics.items():
        value = candidate.get(metric)
        ok = value is not None and _meets(metric, float(value), float(limit))
        result.checks.append(Check(metric, "minimum", value, float(limit), ok))
    if baseline is not None:
        for metric, allowed in max_regression.items():
            if metric not in baseline:
                continue  # the served model predates this metric: nothing to regress from
            base = float(baseline[metric])
            sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
            limit = base * (1.0 + sign * float(allowed))
            value = candidate.get(metric)
            ok = value is not None and _meets(metric, float(value), limit)
            result.checks.append(Check(metric, "regression", value, limit, ok))
    return result
