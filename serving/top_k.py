"""An exact top-k over a large catalog's scores, in two small top-ks instead of one large one.

XLA's top-k on the CPU costs about 3 ns per score, and retrieval's top-k over 100,000 scores
took about a third of the brute-force floor's time. Cut the scores into blocks of `block`
neighbours, keep the `count` blocks with the largest maxima, and take the top `count` of their
members: about n / block + count · block scores go through a top-k instead of n.

The result is exactly `tf.math.top_k(scores, count)`'s, values, indices and order, ties
included (largest first; between equal scores, the lowest index first). Say a score x of the
true top `count` lay in a block b that was not kept. The top-k over block maxima kept `count`
other blocks, each ranked before b: a larger maximum, or an equal maximum and a lower block
index. Each of those blocks' maximum is then either larger than x, or equal to x (b's maximum
is at least x) and at a lower index, since all of a lower block's indices are lower. So
`count` scores come before x, and x is not in the top `count`. The members of the kept blocks
are laid out in ascending index (blocks sorted, each in order), so the second top-k breaks
ties by index as the plain one does.

Only core ops that XLA compiles; the stock TF Serving binary runs them.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["NEG", "block_width", "blocked_top_k"]

NEG = -1e9  # the score of an excluded item: below every cosine, logit and relevance

# Below this many scores per item kept, the two top-ks' fixed costs (about 15 µs each, plus a
# sort of the kept blocks) are more than the one top-k they replace. Measured with XLA on a
# 2-core x86 machine: the plain top-k of 200 won at 50,000 scores, the blocked one at 100,000.
_MIN_SCORES_PER_PICK = 400


def block_width(items: int, count: int) -> int | None:
    """The block width for a top `count` of `items` scores, or None where one plain top-k costs
    less. √(items / count) balances the two top-ks' sizes (items / width against count · width)."""
    if count < 1 or items < _MIN_SCORES_PER_PICK * count:
        return None
    width = max(2, round(math.sqrt(items / count)))
    return width if -(-items // width) >= count else None


def blocked_top_k(scores: tf.Tensor, count: int, block: int) -> tuple[tf.Tensor, tf.Tensor]:
    """`tf.math.top_k(scores, count)` for float32 `[batch, n]` scores with a static n, as
    (values, indices): the top `count` blocks of `block` neighbouring scores by their maxima,
    then the top `count` of those blocks' members (see the module's docstring).

    Needs count ≤ the number of blocks, ⌈n / block⌉, and scores above -inf wherever fewer than
    `count` other scores exist (the last block's missing members are -inf)."""
    n = scores.shape[1]
    full = n // block
    if count > -(-n // block):
        raise ValueError(f"count ({count}) must not exceed the number of blocks of {n} scores")
    blocks = tf.reshape(scores[:, : full * block], [-1, full, block])
    maxima = tf.reduce_max(blocks, axis=2)
    if full * block < n:  # a shorter last block
        rest = tf.reduce_max(scores[:, full * block :], axis=1, keepdims=True)
        maxima = tf.concat([maxima, rest], axis=1)
    kept = tf.sort(tf.math.top_k(maxima, k=count).indices, axis=1)
    members = kept[:, :, tf.newaxis] * block + tf.range(block)
    members = tf.reshape(members, [-1, count * block])  # ascending indices
    values = tf.gather(scores, tf.minimum(members, n - 1), batch_dims=1)
    values = tf.where(members < n, values, float("-inf"))
    top = tf.math.top_k(values, k=count)
    return top.values, tf.gather(members, top.indices, batch_dims=1)
