"""Maximal marginal relevance (MMR) reranking, in the graph and batched over requests.

MMR trades relevance for diversity one pick at a time. With λ in [0, 1], each step picks the
unpicked candidate i with the largest

    objective(i) = λ·rel(i) − (1 − λ)·max_{j picked} cos(i, j),

where the max-cosine term is 0 before the first pick. λ = 1 keeps the relevance order; λ = 0
picks, after the first item, the item least similar to everything picked so far.

Conventions (`mmr_select`):

* Embeddings are unit length, so cosine is the dot product.
* Relevance is min-max normalized to [0, 1] over each row's valid candidates; a row whose valid
  relevances are all equal normalizes to all 0. Padding (``valid`` False) is never picked and
  its relevance is ignored; its embeddings must be finite (zeros do).
* Ties go to the lowest position, as with `np.argmax`; so λ = 1 gives exactly the stable
  relevance order.
* A row picks min(k, its number of valid candidates, max_k) items. Columns past its picks hold
  position -1 and score 0: a row with fewer valid candidates than k gets all of its valid
  candidates, then -1s.
* A pick's score is its objective at the moment it was picked.

Implementation. The work is O(k·N·d) per row, with no N×N similarity matrix, and at serving
sizes TensorFlow's per-op overhead, not arithmetic, sets the latency; so each pick is a handful
of ops on one [B, N] state, the objective itself:

* Since 1 − λ ≥ 0 and float rounding is monotonic, λ·rel − (1 − λ)·max_j cos(i, j) equals
  min_j (λ·rel − (1 − λ)·cos(i, j)) exactly: a pick takes the minimum with the objectives against
  the newest pick alone (one matrix-vector product).
* A picked candidate's objective is overwritten with a mark, −2^100·(steps + U − t) at step t
  (U below), far below every real objective (unit vectors keep those in [−1, 1]): it is never
  picked again, and one `top_k` after the loop reads the picks back in order. Padding sits at
  −2^98, below real objectives and above marks, so a row that runs out of valid candidates
  picks padding, which the output masks.
* The loop body makes U = `_UNROLL` picks, which divides the loop's bookkeeping ops per pick by
  U. The up to U − 1 picks past the last step are ignored: they come after the ones read back,
  and a row with every candidate marked can only re-mark its latest pick, later still.
* One row (the common serving request) takes a plain matrix-vector product: batched matmul
  kernels cost several times more per call at this size.
* Scores are recomputed after the loop from the picks alone, with a steps×steps Gram matrix.

Only core ops: the stock TF Serving binary serves it, without XLA.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

__all__ = ["mmr_select"]

_UNROLL = 4  # picks per loop iteration
_MARK_STEP = 2.0**100  # marks are multiples of this, exact for fewer than 2^24 picks
_PADDING = -(2.0**98)  # padding's objective: below real objectives, above every mark

# best = choose(objective); sim = similarity(best) with shape [B, N].
_Chooser = Callable[[tf.Tensor], tf.Tensor]
_Similarity = Callable[[tf.Tensor], tf.Tensor]


def mmr_select(
    embeddings: tf.Tensor,
    relevance: tf.Tensor,
    valid: tf.Tensor,
    k: tf.Tensor,
    lam: tf.Tensor,
    max_k: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Greedy MMR selection for a batch of requests.

    Args:
      embeddings: float32 [B, N, d], unit-length candidate embeddings.
      relevance: float32 [B, N], raw relevance (normalized here per row).
      valid: bool [B, N], False for padding.
      k: int32 [B], items wanted per row.
      lam: float32 [B], λ per row in [0, 1].
      max_k: int32 scalar, the number of output columns (callers pass ``reduce_max(k)``).

    Returns:
      positions: int32 [B, max_k], indices into N in pick order, -1 past a row's picks.
      scores: float32 [B, max_k], each pick's objective when picked, 0 past a row's picks.
    """
    embeddings = tf.convert_to_tensor(embeddings, tf.float32)
    valid = tf.convert_to_tensor(valid, tf.bool)
    max_k = tf.maximum(tf.convert_to_tensor(max_k, tf.int32), 0)
    gain, cost = _gain_and_cost(relevance, valid, lam)
    n_valid = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    picks = tf.minimum(tf.minimum(tf.maximum(k, 0), n_valid), max_k)
    steps = tf.maximum(tf.reduce_max(picks), 0)  # the max of no rows is INT_MIN
    objective = tf.where(valid, gain, _PADDING)

    def select(single_row: bool) -> tuple[tf.Tensor, tf.Tensor]:
        choose, similarity = _one_row(embeddings) if single_row else _rows(embeddings)
        positions = _pick_order(_greedy(choose, similarity, gain, cost, objective, steps), steps)
        gram = _gram(embeddings, positions, single_row)
        return positions, _pick_scores(gram, gain, cost, positions)

    one_row = tf.equal(tf.shape(gain)[0], 1)
    positions, scores = tf.cond(one_row, lambda: select(True), lambda: select(False))
    return _pad(positions, scores, picks, max_k, steps)


def _gain_and_cost(
    relevance: tf.Tensor, valid: tf.Tensor, lam: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """λ·rel [B, N] with rel min-max normalized over the valid entries, and 1 − λ [B, 1]."""
    relevance = tf.convert_to_tensor(relevance, tf.float32)
    low = tf.reduce_min(tf.where(valid, relevance, float("inf")), axis=1, keepdims=True)
    high = tf.reduce_max(tf.where(valid, relevance, float("-inf")), axis=1, keepdims=True)
    rel = tf.where(valid, tf.math.divide_no_nan(relevance - low, high - low), 0.0)
    lam = tf.convert_to_tensor(lam, tf.float32)[:, tf.newaxis]
    return lam * rel, 1.0 - lam


def _one_row(embeddings: tf.Tensor) -> tuple[_Chooser, _Similarity]:
    """Pick and similarity for B = 1: best is [1], plain matrix-vector products."""
    table = embeddings[0]  # [N, d]

    def choose(objective: tf.Tensor) -> tf.Tensor:
        # Ties to the lowest position: Eigen's argmax reducer (the tests hold it to that).
        return tf.math.argmax(objective, axis=1, output_type=tf.int32)

    def similarity(best: tf.Tensor) -> tf.Tensor:
        return tf.matmul(tf.gather(table, best), table, transpose_b=True)

    return choose, similarity


def _rows(embeddings: tf.Tensor) -> tuple[_Chooser, _Similarity]:
    """Pick and similarity for any B: best is [B, 1], batched products."""

    def choose(objective: tf.Tensor) -> tf.Tensor:
        return tf.math.top_k(objective, 1).indices  # ties to the lowest position

    def similarity(best: tf.Tensor) -> tf.Tensor:
        picked = tf.gather(embeddings, best, batch_dims=1)  # [B, 1, d]
        return tf.squeeze(tf.matmul(picked, embeddings, transpose_b=True), axis=1)

    return choose, similarity


def _greedy(
    choose: _Chooser,
    similarity: _Similarity,
    gain: tf.Tensor,
    cost: tf.Tensor,
    objective: tf.Tensor,
    steps: tf.Tensor,
) -> tf.Tensor:
    """Makes at least `steps` greedy picks; returns the objective with the picks marked."""
    positions = tf.range(tf.shape(objective)[1])[tf.newaxis, :]

    def pick(mark: tf.Tensor, objective: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        best = choose(objective)
        objective = tf.minimum(objective, gain - cost * similarity(best))
        mark = mark + _MARK_STEP
        return mark, tf.where(tf.equal(positions, best), mark, objective)

    def body(mark: tf.Tensor, objective: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        for _ in range(_UNROLL):
            mark, objective = pick(mark, objective)
        return mark, objective

    # Marks run up from −_MARK_STEP·(steps + U − 1); the loop stops once `steps` picks are made.
    first = -_MARK_STEP * tf.cast(steps + _UNROLL, tf.float32)
    _, objective = tf.while_loop(
        lambda mark, _: mark < -_MARK_STEP * _UNROLL,
        body,
        (first, objective),
        parallel_iterations=1,
    )
    return objective


def _pick_order(objective: tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
    """Positions [B, steps] of the first `steps` picks, in order (earliest = lowest mark)."""
    return tf.math.top_k(-objective, steps).indices


def _gram(embeddings: tf.Tensor, positions: tf.Tensor, single_row: bool) -> tf.Tensor:
    """Cosines between the picks of each row: [B, steps, steps]."""
    if single_row:
        picked = tf.gather(embeddings[0], positions[0])  # [steps, d]
        return tf.matmul(picked, picked, transpose_b=True)[tf.newaxis]
    picked = tf.gather(embeddings, positions, batch_dims=1)  # [B, steps, d]
    return tf.matmul(picked, picked, transpose_b=True)


def _pick_scores(
    gram: tf.Tensor, gain: tf.Tensor, cost: tf.Tensor, positions: tf.Tensor
) -> tf.Tensor:
    """Each pick's objective against the picks before it: [B, steps]."""
    order = tf.range(tf.shape(positions)[1])
    earlier = order[tf.newaxis, :] < order[:, tf.newaxis]  # [t, s]: s picked before t
    max_sim = tf.reduce_max(tf.where(earlier, gram, float("-inf")), axis=2)
    max_sim = tf.where(order > 0, max_sim, 0.0)  # nothing is picked before the first pick
    return tf.gather(gain, positions, batch_dims=1) - cost * max_sim


def _pad(
    positions: tf.Tensor, scores: tf.Tensor, picks: tf.Tensor, max_k: tf.Tensor, steps: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Widens to max_k columns: -1 and 0 past each row's picks."""
    width = [[0, 0], [0, max_k - steps]]
    live = tf.range(max_k)[tf.newaxis, :] < picks[:, tf.newaxis]
    positions = tf.where(live, tf.pad(positions, width), -1)
    scores = tf.where(live, tf.pad(scores, width), 0.0)
    return positions, scores
