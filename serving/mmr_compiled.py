"""MMR for XLA: the picks `mmr_select` makes, written for a compiler instead of the executor.

`serving/mmr.py` is shaped by TensorFlow's executor, where every op costs a few microseconds
whatever its size: picks unrolled ten to a loop iteration, a precomputed objective table, a
growing concatenation of picks and a `switch_case` over batch shapes. XLA compiles a function
into one program for each input shape, so none of that pays, and some of it cannot compile (a
loop state whose shape grows). Here, one loop iteration is one pick:

* the best remaining candidate of each row (an argmax; ties go to the lowest position, as
  `mmr_select` and `np.argmax` do) and its objective, written into column `t` of outputs
  that are `width` wide from the start;
* the cosines of every candidate with that pick, one batched matrix-vector product (O(N·d)
  per pick, O(k·N·d) in all), folded into the running objective with a minimum: λ·rel −
  (1 − λ)·max_j cos(i, j) equals min_j (λ·rel − (1 − λ)·cos(i, j)) exactly, since rounding
  is monotonic; the pick itself gets a mark below every objective, so it is never picked
  again.

The conventions (relevance normalization, padding, λ, how many picks a row gets, scores) are
`mmr_select`'s, and the tests hold both to the same NumPy reference. The one difference is the
output width: a compiled function's outputs have static shapes, so it is `width` (≥ every
row's picks), not max(k); callers slice.

Only core ops, and no op XLA cannot compile: a caller wraps it in
`tf.function(jit_compile=True)`, which the stock TF Serving binary runs when started with
`--xla_cpu_compilation_enabled=true`.
"""

from __future__ import annotations

import tensorflow as tf

from serving.mmr import MARK, PADDING, gain_and_cost

__all__ = ["mmr_select_static"]


def mmr_select_static(
    embeddings: tf.Tensor,
    relevance: tf.Tensor,
    valid: tf.Tensor,
    k: tf.Tensor,
    lam: tf.Tensor,
    width: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Greedy MMR selection for a batch of requests, with outputs `width` columns wide.

    Args:
      embeddings: float32 [B, N, d], unit-length candidate embeddings.
      relevance: float32 [B, N], raw relevance (min-max normalized here per row); finite
        where valid.
      valid: bool [B, N], False for padding.
      k: int32 [B], items wanted per row.
      lam: float32 [B], λ per row in [0, 1].
      width: The number of output columns, a Python int; a row picks at most this many.

    Returns:
      positions: int32 [B, width], indices into N in pick order, -1 past a row's picks.
      scores: float32 [B, width], each pick's objective when picked, 0 past a row's picks.
    """
    # One padding column more: an argmax over no candidates (N = 0) does not compile.
    embeddings = tf.pad(tf.convert_to_tensor(embeddings, tf.float32), [[0, 0], [0, 1], [0, 0]])
    valid = tf.pad(tf.convert_to_tensor(valid, tf.bool), [[0, 0], [0, 1]])
    relevance = tf.pad(tf.convert_to_tensor(relevance, tf.float32), [[0, 0], [0, 1]])
    gain, cost = gain_and_cost(relevance, valid, lam)
    n_valid = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    picks = tf.clip_by_value(tf.minimum(tf.convert_to_tensor(k, tf.int32), n_valid), 0, width)
    steps = tf.reduce_max(tf.concat([picks, [0]], axis=0))  # 0 for a batch of no rows
    candidates = tf.range(tf.shape(gain)[1])[tf.newaxis, :]

    def pick(objective, t, positions, scores):
        """The best of `objective` per row, written into column `t` of the outputs."""
        best = tf.argmax(objective, axis=1, output_type=tf.int32)
        positions = positions.write(t, best)
        return best, scores.write(t, tf.gather(objective, best, batch_dims=1)), positions

    def body(t, bound, best, positions, scores):
        """Folds the last pick's cosines into the bound, then picks again."""
        picked = tf.gather(embeddings, best, batch_dims=1)  # [B, d]
        cosines = tf.einsum("bnd,bd->bn", embeddings, picked)
        against = tf.where(tf.equal(candidates, best[:, tf.newaxis]), MARK, gain - cost * cosines)
        bound = tf.minimum(bound, against)
        best, scores, positions = pick(bound, t, positions, scores)
        return t + 1, bound, best, positions, scores

    # Column by column (a dynamic update in place, compiled); every row takes the first pick,
    # which has no similarity term, before the loop.
    outputs = [
        tf.TensorArray(dtype, size=width, element_shape=[None]) for dtype in (tf.int32, tf.float32)
    ]
    best, scores, positions = pick(tf.where(valid, gain, PADDING), 0, *outputs)
    _, _, _, positions, scores = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(1), tf.where(valid, float("inf"), PADDING), best, positions, scores),
    )
    positions, scores = (tf.transpose(x.stack()) for x in (positions, scores))
    columns = tf.range(width)[tf.newaxis, :]
    live = columns < picks[:, tf.newaxis]
    return tf.where(live, positions, -1), tf.where(live, scores, 0.0)
