"""The serving graph's request checks: Assert ops that fail a bad request with INVALID_ARGUMENT.

Neither a loaded SavedModel nor TF Serving holds a request to a signature's shapes or limits,
so the graph checks them itself, before anything reads the input: otherwise a bad value fails
deep in the graph with a message that names an op (strided_slice, ConcatV2, LessEqual), or
gives a wrong answer. Every message here names the argument, the limit and the value it got;
the signatures' callers (clients, tests) match on that text, so it is part of the contract.

Each function builds ops and returns them; the caller makes what reads the inputs depend on
them (`tf.control_dependencies`). The serving module (`serving/module.py`) holds the limits.
"""

from __future__ import annotations

import tensorflow as tf

from pipeline.core.config import ServingConfig
from serving.signatures import input_specs

__all__ = [
    "check_batch",
    "check_range",
    "checked_ranks",
    "mmr_checks",
    "query_checks",
    "require",
]


def require(ok: tf.Tensor, data: list, name: str, summarize: int = 3) -> tf.Operation:
    """Fails the request with `data` as the message unless `ok`.

    The Assert op itself: `tf.debugging.Assert` wraps one with float data in a cond, which
    costs a request about ten more graph nodes per check, whether it passes or not."""
    data = [tf.convert_to_tensor(x) for x in data]
    return tf.raw_ops.Assert(condition=ok, data=data, summarize=summarize, name=name)


def check_range(value: tf.Tensor, low, high, name: str) -> tf.Operation:
    """Fails the request unless every `low ≤ value ≤ high`."""
    low = tf.cast(low, value.dtype)
    high = tf.cast(high, value.dtype)
    ok = tf.reduce_all((value >= low) & (value <= high))
    message = [f"{name} must be in [", low, ", ", high, "]; got ", value]
    return require(ok, message, "check_" + name.replace(" ", "_"), summarize=10)


def check_batch(name: str, tensor: tf.Tensor, batch: tf.Tensor) -> tf.Operation:
    """Fails the request unless `tensor` has `batch` rows (one per request of the batch)."""
    rows = tf.shape(tensor)[0]
    message = [f"{name} must have one row per request (", batch, " rows); got ", rows]
    return require(tf.equal(rows, batch), message, f"{name}_rows")


def checked_ranks(signature: str, *inputs: tf.Tensor) -> list[tf.Tensor]:
    """A signature's inputs, as identities that run after a check of each one's rank.

    Neither a loaded signature nor TF Serving holds a request to the signature's shapes (the
    REST row format turns a bare id per instance into a 1-D `history_item_ids`), and a value of
    another rank would fail deep in the graph, naming an op (strided_slice, ConcatV2) instead
    of the input. The rank is counted from the shape's values: Rank, or Size of the shape,
    would be folded by Grappler to the signature's static rank, and pass anything."""
    checks = []
    for value, spec in zip(inputs, input_specs(signature), strict=True):
        dims = tf.shape(value)
        rank = tf.reduce_sum(tf.sign(dims + 1))  # 1 per dimension, at run time
        layout = "[batch, n]" if spec.shape.rank == 2 else "[batch]"
        message = [f"{spec.name} must be {layout}, rank {spec.shape.rank}; got shape ", dims]
        checks.append(require(tf.equal(rank, spec.shape.rank), message, f"{spec.name}_rank"))
    with tf.control_dependencies(checks):
        return [tf.identity(value) for value in inputs]


def query_checks(
    user_id: tf.Tensor,
    history_item_ids: tf.Tensor,
    query: tf.Tensor,
    timestamp: tf.Tensor,
    config: ServingConfig,
    text_queries: bool,
) -> list[tf.Operation]:
    """The checks of the query part of a request (recommend, retrieve, rank): one row per
    request, the history and query lengths within `config`'s limits, and, without a text
    encoder (`text_queries` False), empty queries: nothing could read one, so it is refused,
    not ignored."""
    batch = tf.shape(user_id)[0]
    checks = [
        check_batch("history_item_ids", history_item_ids, batch),
        check_batch("query", query, batch),
        check_batch("timestamp", timestamp, batch),
        check_range(
            tf.shape(history_item_ids)[1],
            0,
            config.max_history,
            "history length of history_item_ids",
        ),
        check_range(tf.strings.length(query), 0, config.max_query_bytes, "query length"),
    ]
    if not text_queries:
        empty = tf.strings.length(tf.strings.strip(query)) == 0
        message = ["query must be empty: this model has no text encoder (exported without text)"]
        checks.append(require(tf.reduce_all(empty), message, "check_query_without_encoder"))
    return checks


def mmr_checks(
    item_ids: tf.Tensor,
    relevance: tf.Tensor,
    valid: tf.Tensor,
    k: tf.Tensor,
    mmr_lambda: tf.Tensor,
    batch: tf.Tensor,
    config: ServingConfig,
) -> list[tf.Operation]:
    """The checks of an `mmr` request; `valid`: where an id is read (its first occurrence in
    its row, not ""), `batch`: the number of rows of `item_ids`.

    The checks that read two inputs together run after the checks of those inputs' shapes:
    run before the check of k's rows, k ≤ the distinct ids of each row failed in LessEqual
    instead of naming k whenever k had another number of rows (a race)."""
    count = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    same_shape = require(
        tf.reduce_all(tf.shape(relevance) == tf.shape(item_ids)),
        [
            "relevance must have the shape of item_ids ",
            tf.shape(item_ids),
            "; got ",
            tf.shape(relevance),
        ],
        "relevance_shape",
    )
    with tf.control_dependencies([same_shape]):
        # Where MMR reads it: not "" pads or repeats, whose relevance is ignored. NaN or
        # ±inf there would give NaN or infinite scores, or no pick at all.
        finite = tf.reduce_all(tf.math.is_finite(relevance) | ~valid)
    k_rows = check_batch("k", k, batch)
    with tf.control_dependencies([k_rows]):  # k against the rows' counts
        enough = tf.reduce_all(k <= count)
    return [
        check_batch("relevance", relevance, batch),
        k_rows,
        check_batch("mmr_lambda", mmr_lambda, batch),
        same_shape,
        require(
            finite,
            [
                "relevance must be finite at each item id that is neither empty nor a repeat; got ",
                relevance,
            ],
            "relevance_finite",
            summarize=10,
        ),
        check_range(tf.shape(item_ids)[1], 0, config.max_candidates, "item_ids length"),
        check_range(k, 1, config.max_k, "k"),
        require(
            enough,
            [
                "k must not exceed the number of distinct item_ids per row (",
                count,
                "); got ",
                k,
            ],
            "k_candidates",
            summarize=10,
        ),
        check_range(mmr_lambda, 0.0, 1.0, "mmr_lambda"),
    ]
