"""The `gate` section: the limits a candidate version must meet before `recsys push` serves it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.config.checks import Problems

__all__ = ["GateConfig", "validate"]


@dataclass
class GateConfig:
    """The validation gate `recsys push` applies before a version is served.

    Attributes:
      min_metrics: Metric (a flat key of `metrics.json`) → absolute minimum (a maximum for
        `rmse`).
      max_regression: Metric → largest allowed relative drop against the served version's
        metrics (its manifest); 0.05 allows 5% worse. The first push has no baseline.
      min_ratio_to_baseline: Metric → the least ratio of the model's value to the best
        baseline's of the same evaluation (1.0: at least as good as every baseline).
      check_drift: Compare the candidate's data with the served model's run (`serving/drift.py`):
        schema, volume, rejected share, items without text, item popularity.
      max_volume_drop: Largest allowed drop of kept events or users, as a share (0.3: 30%).
      max_rejected_share_increase: Largest allowed rise of the rejected share of read events.
      max_empty_text_increase: Largest allowed rise of the share of items without a description.
      max_popularity_shift: Largest allowed L-infinity distance of item shares of kept events.
    """

    min_metrics: dict[str, float] = field(default_factory=dict)
    max_regression: dict[str, float] = field(
        default_factory=lambda: {"recall@50": 0.05, "ndcg@10": 0.05}
    )
    min_ratio_to_baseline: dict[str, float] = field(
        default_factory=lambda: {"recall@50": 1.0, "ndcg@10": 1.0}
    )
    check_drift: bool = True
    max_volume_drop: float = 0.3
    max_rejected_share_increase: float = 0.05
    max_empty_text_increase: float = 0.05
    max_popularity_shift: float = 0.05

    def drift_limits(self) -> dict[str, float]:
        """The limits `serving.drift.drift_checks` takes."""
        names = (
            "max_volume_drop",
            "max_rejected_share_increase",
            "max_empty_text_increase",
            "max_popularity_shift",
        )
        return {name: float(getattr(self, name)) for name in names}


def validate(gate: GateConfig, problems: Problems) -> None:
    """Records each semantic error of the `gate` section."""
    for name, value in gate.max_regression.items():
        problems.check(0 <= value < 1, f"gate.max_regression.{name}", value, "must be in [0, 1)")
    for name, value in gate.drift_limits().items():
        problems.check(0 <= value <= 1, f"gate.{name}", value, "must be in [0, 1]")
    for name, value in gate.min_ratio_to_baseline.items():
        problems.check(
            value >= 0, f"gate.min_ratio_to_baseline.{name}", value, "must be at least 0"
        )
