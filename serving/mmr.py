"""Maximal marginal relevance (MMR) reranking, in the graph and batched over requests.

MMR trades relevance for diversity one pick at a time. With λ in [0, 1], each step picks the
unpicked candidate i with the largest

    objective(i) = λ·rel(i) − (1 − λ)·max_{j picked} cos(i, j),

where the max-cosine term is 0 before the first pick. λ = 1 keeps the relevance order; λ = 0
picks, after the first item, the item least similar to everything picked so far.

Conventions (`mmr_select`):

* Embeddings are unit length, so cosine is the dot product.
* Relevance is min-max normalized to [0, 1] over each row's valid candidates; a row whose valid
  relevances are all equal normalizes to all 0. Any finite relevances work, however far apart
  (±3e38 included); a valid candidate's must be finite (NaN or ±inf leave the picks undefined:
  the `mmr` signature refuses such a request, naming `relevance`). Padding (``valid`` False)
  is never picked and its relevance, finite or not, is ignored; its embeddings must be finite
  (zeros do).
* Ties go to the lowest position, as with `np.argmax`; so λ = 1 gives exactly the stable
  relevance order.
* A row picks min(k, its number of valid candidates, max_k) items (none for k ≤ 0). Columns
  past its picks hold position -1 and score 0: a row with fewer valid candidates than k gets
  all of its valid candidates, then -1s.
* A pick's score is its objective at the moment it was picked.

Implementation. At serving sizes TensorFlow's per-op overhead, not arithmetic, sets the latency,
so each pick is as few ops as possible on one [B, N] state, the objective itself:

* Since 1 − λ ≥ 0 and float rounding is monotonic, λ·rel − (1 − λ)·max_j cos(i, j) equals
  min_j (λ·rel − (1 − λ)·cos(i, j)) exactly: a pick takes the minimum with the objectives
  against the newest pick alone.
* One row with few candidates (recommend's N = 200) computes those objectives against every
  candidate up front, an [N, N] table from one matrix product: a pick is then three ops, an
  argmax, a row gather and a minimum. The table's diagonal is a mark far below every real
  objective (unit vectors keep those in [−1, 2]), so a picked candidate is never picked
  again. The table costs O(N²·d), so past `_TABLE_MAX_CANDIDATES` one row takes a plain
  matrix-vector product per pick (O(k·N·d)) and marks the pick with a one-hot term; a batch
  of rows does the same with batched products, which share the per-op overhead.
* Padding sits at −2^98, below real objectives and above the mark, so a row that runs out of
  valid candidates picks padding, which the output masks.
* The first pick (no similarity term yet) comes before the loop, whose body makes
  U = `_UNROLL` picks and appends them to the picks so far: that divides the loop's own ops
  per pick by U. The up to U − 1 picks past the last step are dropped.
* Scores are recomputed after the loop from the picks alone: read from the table, or from a
  steps×steps Gram matrix of the picks.

Only core ops: the stock TF Serving binary serves it, without XLA (`serving/mmr_compiled.py`
makes the same picks in a form XLA compiles).
"""

from __future__ import annotations

import abc

import tensorflow as tf

__all__ = ["MARK", "PADDING", "gain_and_cost", "mmr_select"]

_UNROLL = 10  # picks per loop iteration: 1 + 10·j picks cover the usual k = 10, 20, 50 (± 1)
MARK = -(2.0**100)  # a picked candidate's objective: below padding and every real objective
PADDING = -(2.0**98)  # padding's objective: below real objectives, above the mark
# One row with at most this many candidates takes `_Table`: its N×N product costs less than
# k matrix-vector products' overhead at recommend's N = 200, more at the `mmr` benchmark's 500.
_TABLE_MAX_CANDIDATES = 256


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
      relevance: float32 [B, N], raw relevance (normalized here per row); finite where valid.
      valid: bool [B, N], False for padding.
      k: int32 [B], items wanted per row.
      lam: float32 [B], λ per row in [0, 1] (outside it the picks are not MMR's).
      max_k: int32 scalar, the number of output columns (callers pass ``reduce_max(k)``).

    Returns:
      positions: int32 [B, max_k], indices into N in pick order, -1 past a row's picks.
      scores: float32 [B, max_k], each pick's objective when picked, 0 past a row's picks.
    """
    embeddings = tf.convert_to_tensor(embeddings, tf.float32)
    valid = tf.convert_to_tensor(valid, tf.bool)
    max_k = tf.maximum(tf.convert_to_tensor(max_k, tf.int32), 0)
    gain, cost = gain_and_cost(relevance, valid, lam)
    n_valid = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    k = tf.convert_to_tensor(k, tf.int32)
    picks = tf.minimum(tf.minimum(k, n_valid), max_k)  # k < 0 picks nothing, as k = 0 does
    steps = tf.maximum(tf.reduce_max(picks), 0)  # the max of no rows is INT_MIN

    def select(path: _Path) -> tuple[tf.Tensor, tf.Tensor]:
        positions = _greedy(path, tf.where(valid, gain, PADDING), valid, steps)
        return positions, path.scores(positions, gain, cost, steps)

    def select_none() -> tuple[tf.Tensor, tf.Tensor]:
        empty = tf.zeros([tf.shape(gain)[0], 0])
        return tf.cast(empty, tf.int32), empty

    rows, candidates = tf.unstack(tf.shape(gain))
    branch = tf.where(
        tf.equal(steps, 0),
        0,
        tf.where(rows > 1, 3, tf.where(candidates > _TABLE_MAX_CANDIDATES, 2, 1)),
    )
    positions, scores = tf.switch_case(
        branch,
        [
            select_none,
            lambda: select(_Table(embeddings, gain, cost)),
            lambda: select(_OneRow(embeddings, gain, cost)),
            lambda: select(_Rows(embeddings, gain, cost)),
        ],
    )
    return _pad(positions, scores, picks, max_k, steps)


def gain_and_cost(
    relevance: tf.Tensor, valid: tf.Tensor, lam: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """λ·rel [B, N] with rel min-max normalized over the valid entries, and 1 − λ [B, 1]."""
    relevance = tf.convert_to_tensor(relevance, tf.float32)
    low = tf.reduce_min(tf.where(valid, relevance, float("inf")), axis=1, keepdims=True)
    high = tf.reduce_max(tf.where(valid, relevance, float("-inf")), axis=1, keepdims=True)
    # Halves: a difference of two float32 values can overflow (3e38 − (−3e38)), a difference
    # of their halves cannot, and the quotient is the same (halving is exact above the
    # subnormal range).
    rel = tf.math.divide_no_nan(relevance * 0.5 - low * 0.5, high * 0.5 - low * 0.5)
    rel = tf.where(valid, rel, 0.0)
    lam = tf.convert_to_tensor(lam, tf.float32)[:, tf.newaxis]
    return lam * rel, 1.0 - lam


class _Path(abc.ABC):
    """A pick's ops and the picks' scores, for one batch shape and size."""

    def choose(self, objective: tf.Tensor) -> tf.Tensor:
        """Each row's best position: [B]. Eigen's argmax reducer keeps the lowest position on
        ties (the tests hold it to that)."""
        return tf.math.argmax(objective, axis=1, output_type=tf.int32)

    @abc.abstractmethod
    def update(self, objective: tf.Tensor, best: tf.Tensor) -> tf.Tensor:
        """min(objective, λ·rel − (1 − λ)·cos(·, best)), with `best` set to `MARK`."""

    @abc.abstractmethod
    def scores(
        self, positions: tf.Tensor, gain: tf.Tensor, cost: tf.Tensor, steps: tf.Tensor
    ) -> tf.Tensor:
        """Each pick's objective against the picks before it: [B, steps]."""


class _Products(_Path):
    """A path that computes cosines with products: scores from the picks' Gram matrix."""

    @abc.abstractmethod
    def gram(self, positions: tf.Tensor) -> tf.Tensor:
        """Cosines between each row's picks: [B, steps, steps]."""

    def scores(
        self, positions: tf.Tensor, gain: tf.Tensor, cost: tf.Tensor, steps: tf.Tensor
    ) -> tf.Tensor:
        return _pick_scores(self.gram(positions), gain, cost, positions, steps)


class _Table(_Path):
    """B = 1 and few candidates (recommend's N): the objectives against every candidate,
    computed up front; a pick is an argmax, a row gather and a minimum."""

    def __init__(self, embeddings: tf.Tensor, gain: tf.Tensor, cost: tf.Tensor) -> None:
        table = embeddings[0]  # [N, d]
        sim = tf.matmul(table, table, transpose_b=True)  # [N, N], a plain matmul
        # Row j: every candidate's objective against pick j alone; j itself gets the mark.
        after = gain - cost[0, 0] * sim
        self.after = tf.linalg.set_diag(after, tf.fill(tf.shape(gain)[1:], MARK))

    def update(self, objective: tf.Tensor, best: tf.Tensor) -> tf.Tensor:
        return tf.minimum(objective, tf.gather(self.after, best))

    def scores(
        self, positions: tf.Tensor, gain: tf.Tensor, cost: tf.Tensor, steps: tf.Tensor
    ) -> tf.Tensor:
        # From the table: [s, t] is pick t's objective against pick s alone; no product.
        picks = positions[0]
        against = tf.gather(tf.gather(self.after, picks), picks, axis=1)
        order = tf.range(steps)
        earlier = order[:, tf.newaxis] < order[tf.newaxis, :]  # [s, t]: s picked before t
        against = tf.reduce_min(tf.where(earlier, against, float("inf")), axis=0)
        return tf.where(order > 0, against, tf.gather(gain[0], picks))[tf.newaxis]


class _OneRow(_Products):
    """B = 1: plain matrix-vector products, best is [1]."""

    def __init__(self, embeddings: tf.Tensor, gain: tf.Tensor, cost: tf.Tensor) -> None:
        self.table = embeddings[0]  # [N, d]
        self.depth = tf.shape(self.table)[0]
        self.gain = gain  # [1, N]
        self.cost = cost[0, 0]  # a scalar: no broadcasting in the loop

    def update(self, objective: tf.Tensor, best: tf.Tensor) -> tf.Tensor:
        sim = tf.matmul(tf.gather(self.table, best), self.table, transpose_b=True)  # [1, N]
        marked = tf.one_hot(best, self.depth, on_value=MARK, off_value=0.0)
        return tf.minimum(objective, self.gain - self.cost * sim + marked)

    def gram(self, positions: tf.Tensor) -> tf.Tensor:
        picked = tf.gather(self.table, positions[0])  # [steps, d]
        return tf.matmul(picked, picked, transpose_b=True)[tf.newaxis]


class _Rows(_Products):
    """Any B: batched products; a pick's terms are [B, 1, N]."""

    def __init__(self, embeddings: tf.Tensor, gain: tf.Tensor, cost: tf.Tensor) -> None:
        self.embeddings = embeddings
        self.depth = tf.shape(gain)[1]
        self.gain = gain[:, tf.newaxis, :]
        self.cost = tf.broadcast_to(cost[:, :, tf.newaxis], tf.shape(self.gain))

    def update(self, objective: tf.Tensor, best: tf.Tensor) -> tf.Tensor:
        best = best[:, tf.newaxis]
        picked = tf.gather(self.embeddings, best, batch_dims=1)  # [B, 1, d]
        sim = _batch_matmul_t(picked, self.embeddings)  # [B, 1, N]
        marked = tf.one_hot(best, self.depth, on_value=MARK, off_value=0.0)
        return tf.minimum(objective, tf.squeeze(self.gain - self.cost * sim + marked, axis=1))

    def gram(self, positions: tf.Tensor) -> tf.Tensor:
        picked = tf.gather(self.embeddings, positions, batch_dims=1)  # [B, steps, d]
        return _batch_matmul_t(picked, picked)


def _batch_matmul_t(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """x·yᵀ over a batch.

    BatchMatMulV3 rather than `tf.matmul`'s V2: oneDNN builds take V2 over, and at these sizes
    it then costs about twice as much per call.
    """
    return tf.raw_ops.BatchMatMulV3(x=x, y=y, adj_y=True, Tout=tf.float32)


def _greedy(path: _Path, start: tf.Tensor, valid: tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
    """The first `steps` (≥ 1) picks, in order: int32 [B, steps].

    `start` is the first pick's objective (padding at `PADDING`). The first pick has no
    similarity term, so its update starts from +inf (padding: `PADDING`), not from `start`.
    """
    first = path.choose(start)
    objective = path.update(tf.where(valid, float("inf"), PADDING), first)

    def body(objective: tf.Tensor, chosen: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        picks = []
        for _ in range(_UNROLL):
            best = path.choose(objective)
            objective = path.update(objective, best)
            picks.append(best)
        return objective, tf.concat([chosen, tf.stack(picks, axis=1)], axis=1)

    _, chosen = tf.while_loop(
        lambda _, chosen: tf.shape(chosen)[1] < steps,
        body,
        (objective, first[:, tf.newaxis]),
        shape_invariants=(objective.shape, tf.TensorShape([None, None])),
        parallel_iterations=1,
    )
    return chosen[:, :steps]


def _pick_scores(
    gram: tf.Tensor, gain: tf.Tensor, cost: tf.Tensor, positions: tf.Tensor, steps: tf.Tensor
) -> tf.Tensor:
    """Each pick's objective against the picks before it: [B, steps]."""
    order = tf.range(steps)
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
