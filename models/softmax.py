"""Retrieval losses with many negatives: a softmax over the whole catalog, or over a large pool
of sampled items with the logQ correction.

In-batch negatives (TFRS's `Retrieval` task) compare each positive with the batch's other
positives: a few thousand items, drawn by popularity, so the model learns to push down popular
items and hardly ever sees the long tail as a negative. On catalogs that fit, the full softmax
compares each positive with every trained item; it is the loss under which a sequential
recommender trains best (Klenitskiy & Vasilev, RecSys 2023). Past that size, one pool of sampled
items per step, shared by the whole batch, gives many negatives at a fixed cost; each logit is
corrected by the log of the expected number of times its item is drawn (Jean et al., 2015), so
the trained scores estimate the full softmax's.

Items without train events are never negatives: the loss would push their vectors, which come
from text and categories alone, below every trained item's, and a cold item would rank last
however well its text matches.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "batch_mean",
    "catalog_softmax_loss",
    "history_columns",
    "in_batch_softmax_loss",
    "sampled_softmax_loss",
    "sampling_log_probability",
]

_MASKED = -1e9


def batch_mean(losses: tf.Tensor) -> tf.Tensor:
    """The mean of per-example (weighted) losses `[batch]`, 0 for an empty batch: Keras's
    `SUM_OVER_BATCH_SIZE`, which Keras refuses inside a custom training step under a
    tf.distribute strategy. A worker's share of the last, partial batch of an evaluation can be
    empty under multi-worker training."""
    return tf.math.divide_no_nan(tf.reduce_sum(losses), tf.cast(tf.size(losses), losses.dtype))


def _mean_loss(logits: tf.Tensor, weight: tf.Tensor | None) -> tf.Tensor:
    """Cross-entropy with the positive in column 0, a weighted mean over the batch (the sum
    divided by the batch size, as the in-batch task reduces)."""
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.zeros(tf.shape(logits)[:1], tf.int32), logits=logits
    )
    if weight is not None:
        loss *= tf.cast(weight, loss.dtype)
    return batch_mean(loss)


def history_columns(history_rows: tf.Tensor, columns: tf.Tensor) -> tf.Tensor:
    """`[batch, n]` bool: whether column item `columns[j]` (catalog rows `[n]`) is in row i's
    history (catalog rows `[batch, h]`, 0 for padding and ids outside the catalog)."""
    same = tf.equal(history_rows[:, tf.newaxis, :], columns[tf.newaxis, :, tf.newaxis])
    return tf.reduce_any(same & (history_rows > 0)[:, tf.newaxis, :], axis=-1)


def in_batch_softmax_loss(
    query: tf.Tensor,
    candidate: tf.Tensor,
    rows: tf.Tensor | None,
    temperature: float,
    log_probability: tf.Tensor | None = None,
    excluded: tf.Tensor | None = None,
    weight: tf.Tensor | None = None,
) -> tf.Tensor:
    """Softmax of each row's positive against the batch's other positives.

    Args:
      query: Unit query vectors `[batch, dim]`.
      candidate: Unit vectors of each row's positive `[batch, dim]`.
      rows: The positives' catalog rows `[batch]`: another row's copy of a row's own item
        is no negative (an accidental hit); None counts such copies as negatives.
      temperature: Scores are cosines divided by it.
      log_probability: Log of each positive's share of train events `[batch]` (the logQ
        correction: popular items are drawn as negatives more often), or None.
      excluded: `[batch, batch]` bool, columns that are no negatives of a row besides
        accidental hits (e.g. items of the row's history, which serving excludes), or None.
      weight: Per-row weights `[batch]`.
    """
    logits = tf.matmul(query, candidate, transpose_b=True) / temperature
    if log_probability is not None:
        logits -= log_probability[tf.newaxis, :]
    diagonal = tf.eye(tf.shape(logits)[0], dtype=tf.bool)
    masked = tf.zeros_like(diagonal)
    if rows is not None:
        masked |= tf.equal(rows[:, tf.newaxis], rows[tf.newaxis, :])
    if excluded is not None:
        masked |= excluded
    logits = tf.where(masked & ~diagonal, _MASKED, logits)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.range(tf.shape(logits)[0]), logits=logits
    )
    if weight is not None:
        loss *= tf.cast(weight, loss.dtype)
    return batch_mean(loss)


def catalog_softmax_loss(
    query: tf.Tensor,
    table: tf.Tensor,
    targets: tf.Tensor,
    trained: tf.Tensor,
    temperature: float,
    weight: tf.Tensor | None = None,
    history_rows: tf.Tensor | None = None,
) -> tf.Tensor:
    """Softmax over the catalog.

    Args:
      query: Unit query vectors `[batch, dim]`.
      table: Unit candidate vectors of the catalog `[items, dim]`.
      targets: Each row's positive, a row of `table` `[batch]`.
      trained: Which catalog items have train events `[items]` (the others are no negatives).
      temperature: Scores are cosines divided by it.
      weight: Per-row weights `[batch]`.
      history_rows: Catalog rows + 1 of each row's history `[batch, h]` (0: padding), whose
        items are no negatives of that row; None keeps them.
    """
    logits = tf.matmul(query, table, transpose_b=True) / temperature
    targets = tf.cast(targets, tf.int32)
    positive = tf.gather(logits, targets, batch_dims=1)
    is_target = tf.one_hot(targets, tf.shape(table)[0], on_value=True, off_value=False)
    negative = trained[tf.newaxis, :] & ~is_target
    if history_rows is not None:
        history_rows = tf.cast(history_rows, tf.int32)
        seen = tf.where(history_rows > 0)
        indices = tf.stack([seen[:, 0], tf.cast(tf.gather_nd(history_rows, seen) - 1, tf.int64)], 1)
        in_history = tf.scatter_nd(
            indices, tf.ones(tf.shape(indices)[:1], tf.int32), tf.shape(logits, out_type=tf.int64)
        )
        negative &= in_history == 0
    negatives = tf.where(negative, logits, _MASKED)
    return _mean_loss(tf.concat([positive[:, tf.newaxis], negatives], axis=1), weight)


def sampling_log_probability(counts, power: float = 0.75) -> tf.Tensor:
    """Log of each item's probability of being drawn as a negative: its train-event count to
    `power` (below 1 draws the long tail more often than its share), normalized; -inf for items
    without events, which are never drawn."""
    weights = tf.pow(tf.cast(counts, tf.float32), power)
    return tf.math.log(weights / tf.reduce_sum(weights))


def sampled_softmax_loss(
    query: tf.Tensor,
    positive: tf.Tensor,
    targets: tf.Tensor,
    encode,
    log_probability: tf.Tensor,
    num_sampled: int,
    temperature: float,
    weight: tf.Tensor | None = None,
) -> tf.Tensor:
    """Softmax over the positive and one shared pool of sampled negatives, logQ-corrected.

    Args:
      query: Unit query vectors `[batch, dim]`.
      positive: Unit vectors of each row's positive `[batch, dim]`.
      targets: The positives' catalog rows `[batch]` (a drawn copy of one is no negative).
      encode: Catalog rows `[n]` → unit candidate vectors `[n, dim]`.
      log_probability: `sampling_log_probability` of the catalog `[items]`.
      num_sampled: Items drawn per step (with replacement).
      temperature: Scores are cosines divided by it.
      weight: Per-row weights `[batch]`.
    """
    sampled = tf.random.categorical(log_probability[tf.newaxis, :], num_sampled)[0]
    sampled = tf.cast(sampled, tf.int32)
    # The logQ correction: minus the log of the expected count of each item in the pool.
    # An item never drawn (no train events) can still be a positive: a floor keeps it finite.
    log_expected = tf.maximum(tf.math.log(float(num_sampled)) + log_probability, -30.0)
    sampled_logits = tf.matmul(query, encode(sampled), transpose_b=True) / temperature
    sampled_logits -= tf.gather(log_expected, sampled)[tf.newaxis, :]
    targets = tf.cast(targets, tf.int32)
    hit = tf.equal(targets[:, tf.newaxis], sampled[tf.newaxis, :])
    sampled_logits = tf.where(hit, _MASKED, sampled_logits)
    positive_logits = tf.reduce_sum(query * positive, axis=-1) / temperature
    positive_logits -= tf.gather(log_expected, targets)
    return _mean_loss(tf.concat([positive_logits[:, tf.newaxis], sampled_logits], axis=1), weight)
