"""The `preprocess` section: the Beam job that splits, validates and vocabularizes the events."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.config.checks import Problems
from pipeline.core.timestamps import TimestampError, parse_timestamp

__all__ = [
    "SPLIT_METHODS",
    "PreprocessConfig",
    "SplitConfig",
    "ValidationConfig",
    "VocabConfig",
    "validate",
]

SPLIT_METHODS = ("temporal", "leave_last_out", "random")


@dataclass
class SplitConfig:
    """How events are divided into train and eval.

    Attributes:
      method: `temporal` (a global time cutoff; the default), `leave_last_out` (each user's
        last event is eval) or `random` (a seeded hash of the event).
      eval_fraction: Share of events in eval, for `temporal` (the cutoff is that quantile of
        event times) and for `random` without `eval_count`.
      cutoff: `temporal` only: an explicit cutoff (epoch seconds or ISO-8601); events at or
        after it are eval. Overrides `eval_fraction`.
      eval_count: `random` only: the exact number of eval events (the TFRS tutorials use
        20,000 of MovieLens 100K's 100,000 ratings).
      seed: Seed of the `random` split, of the validation share of a `random` split and of
        the cold-item draw.
      validation_fraction: The validation slice carved from the train events, which model
        selection (early stopping, best-epoch restore) reads instead of the eval split:
        `temporal`, the latest `validation_fraction` of train events by time;
        `leave_last_out`, each user's second-to-last event; `random`, a seeded share of train
        events. 0 trains without a validation slice (no early stopping).
      cold_item_fraction: The item cold-start protocol: a seeded share of catalog items whose
        every event goes to eval and none to train, so the model meets them only through their
        text and categories. 0 (default) turns it off.
    """

    method: str = "temporal"
    eval_fraction: float = 0.1
    cutoff: str | None = None
    eval_count: int | None = None
    seed: int = 42
    validation_fraction: float = 0.1
    cold_item_fraction: float = 0.0


@dataclass
class VocabConfig:
    """Vocabularies of users, items and categories.

    Attributes:
      min_count: Users with fewer kept events are left out of the user vocabulary (they map to
        the out-of-vocabulary bucket).
      item_min_count: Catalog items with fewer kept events are left out of the item vocabulary.
        0 keeps every catalog item, cold ones included.
      category_min_count: Categories on fewer items are left out.
      num_oov_buckets: Out-of-vocabulary buckets the model reserves for unknown ids.
    """

    min_count: int = 1
    item_min_count: int = 0
    category_min_count: int = 1
    num_oov_buckets: int = 1


@dataclass
class ValidationConfig:
    """Limits that send a record to the dead letters.

    Attributes:
      max_id_bytes: Longest user or item id, in UTF-8 bytes.
      max_field_bytes: Longest value of any other field, in UTF-8 bytes.
      max_record_bytes: Longest raw record (line or row).
    """

    max_id_bytes: int = 256
    max_field_bytes: int = 65536
    max_record_bytes: int = 1 << 20


@dataclass
class PreprocessConfig:
    """The Beam preprocessing job.

    Attributes:
      history_length: H, the number of most recent earlier items kept as each event's history.
      split: See `SplitConfig`.
      vocab: See `VocabConfig`.
      validation: See `ValidationConfig`.
      event_type_weights: Sample weight per event type when the data carries no weight field.
      user_shards: Number of groups users are hashed into for history building; more shards
        mean smaller groups per worker.
      output_shards: Files per TFRecord output; 0 lets the runner decide.
      chunk_size: Raw records handed to a worker at a time.
    """

    history_length: int = 20
    split: SplitConfig = field(default_factory=SplitConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    event_type_weights: dict[str, float] = field(default_factory=dict)
    user_shards: int = 64
    output_shards: int = 0
    chunk_size: int = 2000


def validate(preprocess: PreprocessConfig, problems: Problems) -> None:
    """Records each semantic error of the `preprocess` section."""
    problems.check(
        preprocess.history_length >= 1,
        "preprocess.history_length",
        preprocess.history_length,
        "must be at least 1",
    )
    _validate_split(preprocess.split, problems)
    vocab = preprocess.vocab
    problems.check(
        vocab.min_count >= 1, "preprocess.vocab.min_count", vocab.min_count, "must be at least 1"
    )
    problems.check(
        vocab.item_min_count >= 0,
        "preprocess.vocab.item_min_count",
        vocab.item_min_count,
        "must be at least 0",
    )
    problems.check(
        vocab.category_min_count >= 1,
        "preprocess.vocab.category_min_count",
        vocab.category_min_count,
        "must be at least 1",
    )
    problems.check(
        vocab.num_oov_buckets >= 1,
        "preprocess.vocab.num_oov_buckets",
        vocab.num_oov_buckets,
        "must be at least 1",
    )
    for name in ("max_id_bytes", "max_field_bytes", "max_record_bytes"):
        value = getattr(preprocess.validation, name)
        problems.check(value >= 1, f"preprocess.validation.{name}", value, "must be at least 1")
    for event_type, weight in preprocess.event_type_weights.items():
        problems.check(
            weight >= 0,
            f"preprocess.event_type_weights.{event_type}",
            weight,
            "must not be negative",
        )
    problems.check(
        preprocess.user_shards >= 1,
        "preprocess.user_shards",
        preprocess.user_shards,
        "must be at least 1",
    )
    problems.check(
        preprocess.output_shards >= 0,
        "preprocess.output_shards",
        preprocess.output_shards,
        "must be at least 0",
    )
    problems.check(
        preprocess.chunk_size >= 1,
        "preprocess.chunk_size",
        preprocess.chunk_size,
        "must be at least 1",
    )


def _validate_split(split: SplitConfig, problems: Problems) -> None:
    problems.choice("preprocess.split.method", split.method, SPLIT_METHODS)
    problems.check(
        0 < split.eval_fraction < 1,
        "preprocess.split.eval_fraction",
        split.eval_fraction,
        "must be in (0, 1)",
    )
    if split.cutoff is not None:
        problems.check(
            split.method == "temporal",
            "preprocess.split.cutoff",
            split.cutoff,
            "is only used by the temporal split",
        )
        problems.check(
            _is_timestamp(split.cutoff),
            "preprocess.split.cutoff",
            split.cutoff,
            "must be epoch seconds or an ISO-8601 time",
        )
    problems.check(
        0 <= split.validation_fraction < 1,
        "preprocess.split.validation_fraction",
        split.validation_fraction,
        "must be in [0, 1)",
    )
    problems.check(
        0 <= split.cold_item_fraction < 1,
        "preprocess.split.cold_item_fraction",
        split.cold_item_fraction,
        "must be in [0, 1)",
    )
    if split.eval_count is not None:
        problems.check(
            split.method == "random",
            "preprocess.split.eval_count",
            split.eval_count,
            "is only used by the random split",
        )
        problems.check(
            split.eval_count >= 1,
            "preprocess.split.eval_count",
            split.eval_count,
            "must be at least 1",
        )


def _is_timestamp(value: str) -> bool:
    try:
        parse_timestamp(value, "auto")
    except TimestampError:
        return False
    return True
