"""The `train` section: fitting the model on the preprocessed TFRecords."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.config.checks import Problems

__all__ = ["STRATEGIES", "TrainConfig", "validate"]

STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclass
class TrainConfig:
    """Training from the preprocess TFRecords.

    Attributes:
      epochs: Most passes over the training events; 0 publishes the initialized model
        (a floor to test the validation gate against).
      batch_size: Events per step (also the in-batch negatives of retrieval).
      learning_rate: Adam's learning rate.
      shuffle_buffer: Events shuffled together; 0 keeps file order.
      early_stopping_patience: Epochs without a lower validation loss before stopping (on the
        validation slice of train, `preprocess.split.validation_fraction`; never the eval
        split); 0 disables early stopping and the selection.
      refit: After choosing the epoch count on the validation slice, fit a fresh model on
        train + validation for that many epochs (the served model then learns from every event
        before the eval split, as the baselines do; training takes up to twice as long).
        Off, the model chosen on validation is published as it is.
      seed: Seed of initialization and shuffling.
      deterministic: Turn on TensorFlow op determinism (slower; identical reruns).
      strategy: `default` (one device), `mirrored` (all local GPUs) or `multi_worker`
        (every worker of the TF_CONFIG cluster runs `recsys train`; README, "Training on a
        cluster").
    """

    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float = 0.003
    shuffle_buffer: int = 100_000
    early_stopping_patience: int = 2
    refit: bool = True
    seed: int = 42
    deterministic: bool = False
    strategy: str = "default"


def validate(train: TrainConfig, problems: Problems) -> None:
    """Records each semantic error of the `train` section."""
    problems.check(train.epochs >= 0, "train.epochs", train.epochs, "must be at least 0")
    problems.check(
        train.batch_size >= 1, "train.batch_size", train.batch_size, "must be at least 1"
    )
    problems.check(
        train.learning_rate > 0, "train.learning_rate", train.learning_rate, "must be positive"
    )
    for name in ("shuffle_buffer", "early_stopping_patience"):
        value = getattr(train, name)
        problems.check(value >= 0, f"train.{name}", value, "must be at least 0")
    problems.choice("train.strategy", train.strategy, STRATEGIES)
