"""Comparing systems on one metric of an evaluation: which direction is better, and which
baseline is best.

`recsys evaluate` reports the model beside its baselines (`baselines.<name>.<metric>` in
`metrics.json`); its report, the command line and the validation gate (`serving.gate`) all need
the best of them on a metric, and so which way the metric points. Every metric is "higher is
better" except those in `LOWER_IS_BETTER`.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["LOWER_IS_BETTER", "best_baseline"]

LOWER_IS_BETTER = frozenset({"rmse"})
"""The evaluation's metrics for which a lower value is better."""


def best_baseline(candidate: Mapping, metric: str) -> tuple[str, float] | None:
    """The best baseline on `metric` of an evaluation's output (`metrics.json`, or an export's
    metrics): `(name, value)`, or None when no baseline has the metric."""
    values = {
        name: float(m[metric])
        for name, m in (candidate.get("baselines") or {}).items()
        if isinstance(m, Mapping) and metric in m
    }
    if not values:
        return None
    pick = (min if metric in LOWER_IS_BETTER else max)(values, key=values.get)
    return pick, values[pick]
