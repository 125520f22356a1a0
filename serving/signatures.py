"""The serving contract: every signature's inputs and outputs, by name, dtype and shape.

The exported module (`serving/module.py`), the clients (`serving/client.py`) and the warmup
requests (`serving/warmup.py`) all take the signatures from here.

TF Serving requires every input on every request, so clients fill the defaults below. Every
input has the batch as its first dimension, which keeps the REST row format ("instances")
usable: one instance per request row. Neither TF Serving nor a loaded SavedModel holds a request
to these shapes, so the graph checks them: an input of another rank (a bare id per instance where
`history_item_ids` takes a list) or another number of rows fails with INVALID_ARGUMENT naming
it. A batch of no rows gets an answer of no rows from every signature.

* `serving_default` (recommend): retrieval over the whole catalog → ranking of the top
  candidates → MMR rerank to `k`. `item_ids` are padded with "" (score 0) where a row asks
  for fewer items than another row of the same batch.
* `retrieve`: the top `k` of the catalog by query-candidate cosine.
* `rank`: the ranking head's score for each (request, item) pair; "" pads.
* `mmr`: the diversity reranker alone, for candidates from anywhere: "" pads a row's ids.
  `relevance` must be finite wherever MMR reads it, i.e. at each id that is not "" and not a
  repeat of an earlier id in its row (NaN or ±inf there: INVALID_ARGUMENT naming `relevance`);
  a pad's relevance is ignored, whatever it is.
* `similar_items`: the `k` catalog items closest to each item (the item itself excluded).

`mmr_lambda` is MMR's λ in [0, 1]: the next item maximizes λ·relevance − (1 − λ)·(largest
cosine with an item already chosen); 1 keeps the relevance order, lower values diversify.
recommend's `relevance` output is each item's likelihood relative to the request's best
candidate, in (0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["DEFAULTS", "SIGNATURES", "Signature", "input_specs", "numpy_dtype"]


@dataclass(frozen=True)
class Signature:
    """One signature: its inputs (in call order) and output names."""

    name: str
    inputs: tuple[tf.TensorSpec, ...]
    outputs: dict[str, tf.DType]


def _spec(name: str, dtype: tf.DType, rank: int) -> tf.TensorSpec:
    return tf.TensorSpec([None] * rank, dtype, name=name)


_USER = _spec("user_id", tf.string, 1)
_HISTORY = _spec("history_item_ids", tf.string, 2)
_QUERY = _spec("query", tf.string, 1)
_TIMESTAMP = _spec("timestamp", tf.int64, 1)
_K = _spec("k", tf.int32, 1)
_LAMBDA = _spec("mmr_lambda", tf.float32, 1)
_EXCLUDE = _spec("exclude_seen", tf.bool, 1)

SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in (
        Signature(
            "serving_default",
            (_USER, _HISTORY, _QUERY, _TIMESTAMP, _K, _LAMBDA, _EXCLUDE),
            {
                "item_ids": tf.string,
                "scores": tf.float32,
                "relevance": tf.float32,
                "explanation_item_ids": tf.string,
                "explanation_scores": tf.float32,
            },
        ),
        Signature(
            "retrieve",
            (_USER, _HISTORY, _QUERY, _TIMESTAMP, _K, _EXCLUDE),
            {"item_ids": tf.string, "scores": tf.float32},
        ),
        Signature(
            "rank",
            (_USER, _HISTORY, _QUERY, _TIMESTAMP, _spec("item_ids", tf.string, 2)),
            {"scores": tf.float32},
        ),
        Signature(
            "mmr",
            (_spec("item_ids", tf.string, 2), _spec("relevance", tf.float32, 2), _K, _LAMBDA),
            {"item_ids": tf.string, "scores": tf.float32, "relevance": tf.float32},
        ),
        Signature(
            "similar_items",
            (_spec("item_ids", tf.string, 1), _K),
            {"item_ids": tf.string, "scores": tf.float32},
        ),
    )
}

# What a client sends for an input the caller left out. An empty history is [""]: TF Serving's
# batching cannot pad a zero-width tensor. `timestamp` 0 means "now" (the
# server's clock); `k` and `mmr_lambda` defaults come from the export's serving config.
DEFAULTS: dict[str, object] = {
    "history_item_ids": [""],
    "query": "",
    "timestamp": 0,
    "k": 10,
    "mmr_lambda": 0.9,
    "exclude_seen": True,
}


def input_specs(signature: str) -> tuple[tf.TensorSpec, ...]:
    """The TensorSpecs of a signature's inputs, in call order."""
    return SIGNATURES[signature].inputs


def numpy_dtype(spec: tf.TensorSpec) -> np.dtype:
    """The NumPy dtype a client builds for an input (bytes objects for strings)."""
    return np.dtype(object) if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
