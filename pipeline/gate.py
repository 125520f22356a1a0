"""The validation gate: may a candidate model replace the one being served?

A candidate passes when every absolute minimum holds (`min_metrics`, e.g. `recall@50: 0.3`) and
no metric falls further below the served model's value than allowed (`max_regression`, relative,
e.g. `ndcg@10: 0.05` allows a 5% drop). The served model's metrics come from its version's
manifest; the first run has no baseline, so only the minimums apply. Every metric is "higher is
better" except those listed in `LOWER_IS_BETTER` (RMSE), whose direction is reversed.

The result lists every check with the values, the limit and by how much it failed, so a refused
run can say exactly why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.errors import RecsysError

__all__ = ["LOWER_IS_BETTER", "Check", "GateFailed", "GateResult", "evaluate_gate"]

LOWER_IS_BETTER = frozenset({"rmse"})


@dataclass(frozen=True)
class Check:
    """One comparison: `metric` of the candidate against `limit`."""

    metric: str
    kind: str  # "minimum" or "regression"
    value: float | None
    limit: float
    passed: bool

    def describe(self) -> str:
        better = "at most" if self.metric in LOWER_IS_BETTER else "at least"
        verdict = "ok" if self.passed else "FAILED"
        if self.value is None:
            return f"{self.metric}: missing from the candidate's metrics ({self.kind}) FAILED"
        gap = "" if self.passed else f", short by {abs(self.value - self.limit):.4g}"
        return (
            f"{self.metric} = {self.value:.4g}, needs {better} {self.limit:.4g} "
            f"({self.kind}){gap}: {verdict}"
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
) -> GateResult:
    """Checks a candidate's metrics.

    Args:
      candidate: The candidate's flat metrics (`metrics.json`).
      min_metrics: Metric → absolute limit (a maximum for lower-is-better metrics).
      max_regression: Metric → largest allowed relative change for the worse, against `baseline`.
      baseline: The served model's metrics, or None on the first run.
    """
    result = GateResult(baseline=baseline)
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
