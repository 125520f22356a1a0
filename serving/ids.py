"""Id lists as the server hands them over: "first occurrence of each id, "" ignored".

TF Serving's server-side batching pads a shorter row of a 2-D string input with the first
element of that request's tensor (not ""), so every id list the serving module takes (a
history, an `mmr` row of candidates) is read as the first occurrence of each id, "" ignored:
padding then changes nothing. The one cost: a history that returns to an item counts it once,
at its first position.

The comparison is of int64 hashes of the ids, so that the part that takes numbers
(`first_hashes`) can run inside a compiled (XLA) function, which cannot take strings.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["first_hashes", "first_occurrences", "id_hashes"]

_PAIRWISE_MAX = 256  # `first_occurrences` compares every pair of ids up to this many per row


def first_occurrences(ids: tf.Tensor, max_length: int) -> tf.Tensor:
    """`[batch, n]` bool: True where an id is not "" and did not appear earlier in its row.

    `max_length` is the longest row a request may send. Up to `_PAIRWISE_MAX` ids, every pair
    of id hashes is compared (n² integer comparisons, a handful of graph nodes: a history).
    Past that, n² costs more than the reranking itself (an `mmr` request's 500 ids), so a
    stable sort of each row's hashes puts the copies of an id side by side, earliest first,
    and a first occurrence is an entry whose sorted neighbour before it differs: O(n log n)."""
    return first_hashes(id_hashes(ids), ids != "", max_length)


def id_hashes(ids: tf.Tensor) -> tf.Tensor:
    """int64 hashes of string ids, the keys `first_hashes` compares."""
    return tf.strings.to_hash_bucket_fast(ids, 2**62)


def first_hashes(hashes: tf.Tensor, present: tf.Tensor, max_length: int) -> tf.Tensor:
    """`first_occurrences` from the ids' hashes `[batch, n]` and where an id is not "" (numbers
    only: a compiled function can take it)."""
    if max_length <= _PAIRWISE_MAX:
        positions = tf.range(tf.shape(hashes)[1])
        earlier = positions[tf.newaxis, :] < positions[:, tf.newaxis]  # [i, j]: j before i
        same = hashes[:, :, tf.newaxis] == hashes[:, tf.newaxis, :]
        return present & ~tf.reduce_any(same & earlier, axis=2)
    order = tf.argsort(hashes, axis=1, stable=True)
    ordered = tf.gather(hashes, order, batch_dims=1)
    new = tf.concat(
        [tf.ones_like(ordered[:, :1], tf.bool), ordered[:, 1:] != ordered[:, :-1]], axis=1
    )
    first = tf.gather(new, tf.argsort(order, axis=1, stable=True), batch_dims=1)
    return present & first
