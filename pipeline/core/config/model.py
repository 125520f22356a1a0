"""The `model` section: the TFRS retrieval and ranking model's architecture and losses."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.config.checks import Problems

__all__ = ["HISTORY_POOLINGS", "RETRIEVAL_NEGATIVES", "ModelConfig", "validate"]

HISTORY_POOLINGS = ("mean", "attention", "self_attention")
RETRIEVAL_NEGATIVES = ("auto", "catalog", "sampled", "in_batch")


@dataclass
class ModelConfig:
    """The TFRS retrieval + ranking model.

    Attributes:
      embedding_dim: Size of item, user and query vectors.
      history_pooling: How the user's recent items become one vector: `mean` (the default),
        `attention` (the user embedding attends over them) or `self_attention` (a SASRec-style
        Transformer over the latest `preprocess.history_length` items, read at the latest one:
        the real-data configs use it; a training step of 1,024 ML-1M examples took 166 ms with
        it against 113 ms with `mean`).
      history_blocks: Transformer blocks of `self_attention`.
      history_heads: Attention heads of `self_attention` (must divide `embedding_dim`).
      history_dropout: Dropout rate inside `self_attention`, in training.
      retrieval_negatives: What the retrieval softmax compares each positive with: `catalog`
        (every trained item: exact, affordable up to about 10^5 items), `sampled`
        (`sampled_negatives` items drawn by popularity per step, shared by the batch, with the
        logQ correction), `in_batch` (the batch's other positives, with `logq_correction`) or
        `auto` (`catalog` up to `catalog_softmax_max_items` trained items, else `sampled`).
        `in_batch` is the default: on the validation slices of ML-1M and ML-100k it beat
        `catalog` with the self-attention encoder (recall@50 0.498 vs 0.486, 0.457 vs 0.446).
      catalog_softmax_max_items: The largest catalog `auto` trains with the full softmax.
      sampled_negatives: Negatives per step of `sampled`.
      use_text: Add the projected BERT text embedding to item vectors.
      use_time: Add time-of-day and day-of-week features to the query.
      query_text_rate: Share of training examples that get their target item's text embedding
        as a stand-in free-text query, so the query tower learns to use a typed query (needs
        `use_text`); 0 trains without queries.
      temperature: Softmax temperature of the retrieval loss (scores are divided by it).
      logq_correction: Subtract log(item popularity) from in-batch scores (sampling bias).
      remove_accidental_hits: Do not count a batch's other rows with the same item as negatives.
      history_negatives: Count the items of an example's own history among its negatives (in
        the `in_batch` and `catalog` softmaxes; `sampled` always does). Off (the default), the
        loss never pushes a user's recent items down: serving excludes them anyway
        (`exclude_seen`), and the query vector is free to sit near them, which is where the
        next item tends to be. Chosen on the validation slices: recall@50 / ndcg@10 0.5052 /
        0.1105 against 0.4978 / 0.1074 on ML-1M, and 0.4766 / 0.0885 and 0.4689 / 0.0879
        against 0.4631 / 0.0831 and 0.4635 / 0.0818 on ML-100K (two seeds).
      retrieval_weight: Weight of the retrieval loss; 0 trains ranking only.
      ranking_weight: Weight of the ranking loss; 0 trains retrieval only.
      ranking_head_only: The ranking loss trains the ranking head alone, on the towers'
        outputs with their gradients stopped: the towers learn from retrieval only (on the
        ML-100K validation slice the shared towers' ranking loss cost retrieval 2–4% of
        recall@50), and the head still learns to rank their candidates.
      ranking_negatives: In-batch negatives (label 0) per positive for the ranking loss; `null`
        (default) picks 1 for implicit feedback (every label equal) and 0 for ratings.
      cross_layers: DCN-v2 cross layers of the ranking head.
      cross_projection_dim: Rank of each cross layer's weight matrix (DCN-v2's low-rank
        cross: two thin matrices instead of a square one); `null` keeps it full rank. 32 by
        default: the head scores every retrieved candidate of a request, and at rank 32 each
        costs about half the multiply-adds (`benchmarks/serving_bench.py`: the ranking stage
        over 200 candidates 0.43 ms against 0.55 ms full rank), with ML-1M's validation slice
        no worse (seed 1: recall@50 0.511, ndcg@10 0.112) and MovieLens 100K's TFRS-protocol
        RMSE 0.908 (full rank 0.904).
      deep_layers: Dense layer sizes after the cross layers.
    """

    embedding_dim: int = 64
    history_pooling: str = "mean"
    history_blocks: int = 2
    history_heads: int = 1
    history_dropout: float = 0.2
    retrieval_negatives: str = "in_batch"
    catalog_softmax_max_items: int = 100_000
    sampled_negatives: int = 8192
    use_text: bool = True
    use_time: bool = True
    query_text_rate: float = 0.1
    temperature: float = 0.1
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    history_negatives: bool = False
    retrieval_weight: float = 1.0
    ranking_weight: float = 1.0
    ranking_head_only: bool = False
    ranking_negatives: int | None = None
    cross_layers: int = 2
    cross_projection_dim: int | None = 32
    deep_layers: list[int] = field(default_factory=lambda: [64, 32])


def validate(model: ModelConfig, problems: Problems) -> None:
    """Records each semantic error of the `model` section."""
    problems.check(
        model.embedding_dim >= 1, "model.embedding_dim", model.embedding_dim, "must be at least 1"
    )
    problems.choice("model.history_pooling", model.history_pooling, HISTORY_POOLINGS)
    problems.check(
        model.history_blocks >= 1,
        "model.history_blocks",
        model.history_blocks,
        "must be at least 1",
    )
    problems.check(
        model.history_heads >= 1 and model.embedding_dim % model.history_heads == 0,
        "model.history_heads",
        model.history_heads,
        f"must be at least 1 and divide model.embedding_dim ({model.embedding_dim})",
    )
    problems.check(
        0.0 <= model.history_dropout < 1.0,
        "model.history_dropout",
        model.history_dropout,
        "must be in [0, 1)",
    )
    problems.choice("model.retrieval_negatives", model.retrieval_negatives, RETRIEVAL_NEGATIVES)
    for name in ("catalog_softmax_max_items", "sampled_negatives"):
        value = getattr(model, name)
        problems.check(value >= 1, f"model.{name}", value, "must be at least 1")
    problems.check(
        model.temperature > 0, "model.temperature", model.temperature, "must be positive"
    )
    problems.check(
        0.0 <= model.query_text_rate < 1.0,
        "model.query_text_rate",
        model.query_text_rate,
        "must be in [0, 1)",
    )
    for name in ("retrieval_weight", "ranking_weight"):
        value = getattr(model, name)
        problems.check(value >= 0, f"model.{name}", value, "must not be negative")
    problems.check(
        model.retrieval_weight + model.ranking_weight > 0,
        "model.retrieval_weight",
        model.retrieval_weight,
        "and model.ranking_weight must not both be 0",
    )
    if model.ranking_negatives is not None:
        problems.check(
            model.ranking_negatives >= 0,
            "model.ranking_negatives",
            model.ranking_negatives,
            "must be at least 0",
        )
    problems.check(
        model.cross_layers >= 0, "model.cross_layers", model.cross_layers, "must be at least 0"
    )
    if model.cross_projection_dim is not None:
        problems.check(
            model.cross_projection_dim >= 1,
            "model.cross_projection_dim",
            model.cross_projection_dim,
            "must be at least 1 (or null: full rank)",
        )
    problems.check(
        all(n >= 1 for n in model.deep_layers),
        "model.deep_layers",
        model.deep_layers,
        "must hold positive sizes",
    )
