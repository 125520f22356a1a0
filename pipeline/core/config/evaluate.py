"""The `evaluate` section: `recsys evaluate`'s protocol and its EASE baseline."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.config.checks import Problems

__all__ = ["EvaluateConfig", "validate"]


@dataclass
class EvaluateConfig:
    """`recsys evaluate`: the model and the baselines on the eval split.

    Attributes:
      exclude_seen: Every system's ranking leaves out the items the user interacted with
        strictly before the event (all of them, not only the history window), as serving's
        `exclude_seen` does. Off keeps the TFRS tutorials' protocol.
      ease_lambda: L2 regularization of the EASE baseline (Steck, WWW 2019).
      ease_max_items: EASE inverts an items × items matrix: above this catalog size it is
        skipped, and the report says so.
      seed: Seed of the random tie-breaking of equal scores.
      split: `eval` (the final figures) or `validation`: tune on the validation slice of
        train, with a model trained without `train.refit`; the eval split is then not read,
        and the results go to `evaluation-validation/`.
    """

    exclude_seen: bool = False
    ease_lambda: float = 500.0
    ease_max_items: int = 30_000
    seed: int = 0
    split: str = "eval"


def validate(evaluate: EvaluateConfig, problems: Problems) -> None:
    """Records each semantic error of the `evaluate` section."""
    problems.check(
        evaluate.ease_lambda > 0, "evaluate.ease_lambda", evaluate.ease_lambda, "must be positive"
    )
    problems.choice("evaluate.split", evaluate.split, ("eval", "validation"))
    problems.check(
        evaluate.ease_max_items >= 0,
        "evaluate.ease_max_items",
        evaluate.ease_max_items,
        "must be at least 0",
    )
