"""The partitioned (IVF) index, export half: k-means over the candidate vectors, and the layout
that the served graph searches (`serving/probe.py`).

Brute-force retrieval reads every catalog vector for every request: at a million items and more
that is most of a request's time. A partitioned index cuts the catalog into about √N groups of
neighbours, each with a centroid; a request scores the centroids, then only the members of its
closest few partitions. Everything here runs once, at export, in NumPy: the served graph gets
plain arrays and needs nothing the stock TF Serving binary lacks.

Two choices make the served search cheap and compilable:

* Static shapes. XLA compiles one program per input shape, so the graph takes the same number
  of slots, `width`, from every probed partition: the largest partition's size, the rest of its
  slots masked. Plain k-means leaves some partitions many times the mean (a clump of equal
  vectors, such as cold items without text, lands in one), and every probe would pay for the
  largest; so a partition holds at most `CAPACITY` × the mean, and an item whose nearest
  partition is full goes to its nearest one with room.
* Spherical k-means. The candidate vectors are unit, retrieval ranks by cosine, so items join
  the centroid of largest cosine and a centroid is its members' normalized mean.

The centroids are fitted (k-means++ seeds, then Lloyd's iterations) on a seeded sample of at
most `SAMPLE_PER_PARTITION` items per partition (FAISS's practice: centroids settle from a few
dozen members each), then every item is assigned once, in batches, so no `[N, partitions]`
matrix is ever held whole: a 1M-item catalog fits in a few hundred MB beside its vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CAPACITY",
    "Partitions",
    "build_partitions",
    "default_partitions",
    "probes_for",
]

CAPACITY = 1.5  # largest partition / mean partition: the padding every probe scores
SAMPLE_PER_PARTITION = 64  # k-means fits on at most this many items per centroid
ITERATIONS = 20  # Lloyd iterations on the sample, fewer where no assignment changes
SEED = 0  # the export's k-means seed: the same vectors give the same partitions
_CHOICES = 8  # nearest partitions each item may fall back to before a wider search
_BATCH_SCORES = 1 << 22  # items × centroids scored at once (16 MB of float32)


@dataclass(frozen=True)
class Partitions:
    """The catalog's candidate vectors grouped by partition.

    Attributes:
      centroids: `[partitions, dim]` each partition's normalized member mean.
      vectors: `[catalog, dim]` the candidate vectors reordered by partition; within a
        partition, in catalog order (so the search can break ties by catalog row).
      rows: `[catalog]` int32, the catalog row of each of `vectors`.
      offsets: `[partitions + 1]` int32: partition p is `vectors[offsets[p]:offsets[p + 1]]`.
        No partition is empty.
    """

    centroids: np.ndarray
    vectors: np.ndarray
    rows: np.ndarray
    offsets: np.ndarray

    @property
    def count(self) -> int:
        return len(self.centroids)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def width(self) -> int:
        """The slots a probed partition takes in the served graph: the largest size."""
        return int(self.sizes.max())

    def places(self) -> np.ndarray:
        """`[catalog]` int32: catalog row r's partition × `width` + its position in it, which
        is where the search finds r among a probed partition's slots (to exclude it)."""
        partition = np.repeat(np.arange(self.count), self.sizes)
        position = np.arange(len(self.rows)) - self.offsets[partition]
        places = np.empty(len(self.rows), np.int64)
        places[self.rows] = partition * self.width + position
        return places.astype(np.int32)


def default_partitions(items: int) -> int:
    """About √N partitions: the centroids and one partition's members then cost alike."""
    return max(1, round(math.sqrt(items)))


def build_partitions(
    vectors: np.ndarray, partitions: int | None = None, seed: int = SEED
) -> Partitions:
    """Partitions of unit vectors `[N, dim]` (N ≥ 1) by seeded spherical k-means.

    Args:
      vectors: The catalog's unit candidate vectors, in catalog order (zero rows are allowed).
      partitions: How many (None: `default_partitions`); at most N, and fewer where k-means
        leaves some empty.
      seed: The sample and the initial centroids are drawn from it: the same seed and vectors
        give the same partitions.
    """
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    if vectors.ndim != 2 or n == 0:
        raise ValueError(f"vectors must be [items ≥ 1, dim] (got shape {vectors.shape})")
    count = default_partitions(n) if partitions is None else partitions
    if count < 1:
        raise ValueError(f"partitions must be at least 1 (got {count})")
    count = min(count, n)
    rng = np.random.default_rng(seed)
    centroids = _fit(vectors, count, rng)
    assignment = _assign_capped(vectors, centroids, math.ceil(CAPACITY * n / count))
    used, assignment = np.unique(assignment, return_inverse=True)  # empty ones dropped
    order = np.argsort(assignment, kind="stable")  # by partition, catalog order within
    sizes = np.bincount(assignment, minlength=len(used))
    return Partitions(
        centroids=_means(vectors, assignment, len(used)),
        vectors=vectors[order],
        rows=order.astype(np.int32),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32),
    )


def probes_for(sizes: np.ndarray, asked: int, needed: int) -> int:
    """The partitions a request probes: `asked`, raised to the fewest whose smallest sizes add
    up to `needed`, and at most all of them.

    With `needed` = the most items a request takes plus the most it may exclude, any probed
    partitions then hold that many items: a request whose history fills a probed partition
    still gets as many items as exact retrieval gives it (other ones, possibly)."""
    smallest = np.cumsum(np.sort(sizes))
    least = int(np.searchsorted(smallest, needed)) + 1
    return int(min(len(sizes), max(asked, least)))


def _fit(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`[count, dim]` centroids from Lloyd's iterations on a sample, from k-means++ seeds; a
    centroid left without members restarts at the item its own centroid fits worst, so no
    partition is wasted while a clump is split."""
    n = len(vectors)
    size = min(n, SAMPLE_PER_PARTITION * count)
    sample = vectors if size == n else vectors[np.sort(rng.choice(n, size, replace=False))]
    centroids = _seeds(sample, count, rng)
    assignment = None
    for _ in range(ITERATIONS):
        nearest, cosines = _nearest(sample, centroids, 1)
        if assignment is not None and np.array_equal(nearest[:, 0], assignment):
            break
        assignment = nearest[:, 0]
        centroids = _means(sample, assignment, count)
        empty = np.flatnonzero(np.bincount(assignment, minlength=count) == 0)
        worst = np.argsort(cosines[:, 0], kind="stable")[: len(empty)]
        centroids[empty[: len(worst)]] = sample[worst]
    return centroids


def _seeds(sample: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++: each seed an item drawn with probability ∝ its squared distance to the
    nearest seed so far (2 − 2 cos for unit vectors), so seeds start spread over the data
    rather than several in one dense region. One pass over the sample per seed: about a
    second for 1,000 seeds of a 64,000-item sample."""
    seeds = np.empty((count, sample.shape[1]), np.float32)
    seeds[0] = sample[rng.integers(len(sample))]
    nearest = np.maximum(2.0 - 2.0 * (sample @ seeds[0]).astype(np.float64), 0.0)
    for i in range(1, count):
        cumulative = np.cumsum(nearest)
        if cumulative[-1] > 0:
            pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        else:  # every item sits on a seed already
            pick = int(rng.integers(len(sample)))
        seeds[i] = sample[min(pick, len(sample) - 1)]
        nearest = np.minimum(nearest, np.maximum(2.0 - 2.0 * (sample @ seeds[i]), 0.0))
    return seeds


def _means(vectors: np.ndarray, assignment: np.ndarray, count: int) -> np.ndarray:
    """`[count, dim]` float32: each partition's normalized member sum (zeros where empty)."""
    sums = np.stack(
        [np.bincount(assignment, weights=column, minlength=count) for column in vectors.T],
        axis=1,
    )
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.where(norms > 0, sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def _nearest(
    vectors: np.ndarray, centroids: np.ndarray, count: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's `count` closest centroids by cosine, best first (ties: the lower
    centroid), among the `allowed` ones: `[N, count]` indices and cosines, in batches."""
    rows = max(1, _BATCH_SCORES // len(centroids))
    indices = np.empty((len(vectors), count), np.int64)
    cosines = np.empty((len(vectors), count), np.float32)
    for start in range(0, len(vectors), rows):
        scores = vectors[start : start + rows] @ centroids.T
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        if count == 1:
            best = np.argmax(scores, axis=1)[:, np.newaxis]
        else:
            best = np.argpartition(-scores, count - 1, axis=1)[:, :count]
            best.sort(axis=1)  # equal cosines: the lower centroid first, below
            ranked = np.argsort(-np.take_along_axis(scores, best, 1), axis=1, kind="stable")
            best = np.take_along_axis(best, ranked, 1)
        indices[start : start + rows] = best
        cosines[start : start + rows] = np.take_along_axis(scores, best, 1)
    return indices, cosines


def _assign_capped(vectors: np.ndarray, centroids: np.ndarray, capacity: int) -> np.ndarray:
    """`[N]` each item's partition: the nearest one with room, where a partition takes at most
    `capacity` items, those of largest cosine first.

    In rounds: each unplaced item proposes its next choice, and a partition accepts the best
    proposals it has room for. After `_CHOICES` rounds (one scoring pass), the few left
    propose their nearest partition that still has room; every such round places at least
    one item, and `capacity` × partitions ≥ N leaves room for all."""
    assignment = np.full(len(vectors), -1, np.int64)
    room = np.full(len(centroids), capacity, np.int64)
    choices, cosines = _nearest(vectors, centroids, min(_CHOICES, len(centroids)))
    for rank in range(choices.shape[1]):
        unplaced = np.flatnonzero(assignment < 0)
        if len(unplaced) == 0:
            return assignment
        _accept(unplaced, choices[unplaced, rank], cosines[unplaced, rank], room, assignment)
    while (unplaced := np.flatnonzero(assignment < 0)).size:
        best, cosine = _nearest(vectors[unplaced], centroids, 1, allowed=room > 0)
        _accept(unplaced, best[:, 0], cosine[:, 0], room, assignment)
    return assignment


def _accept(
    items: np.ndarray,
    wanted: np.ndarray,
    cosines: np.ndarray,
    room: np.ndarray,
    assignment: np.ndarray,
) -> None:
    """Places `items` in the partitions they propose (`wanted`), each partition taking as many
    as it has `room` for, by cosine (ties: the lower catalog row); updates both in place."""
    order = np.lexsort((items, -cosines, wanted))  # by partition, then best proposal first
    partition = wanted[order]
    rank = np.arange(len(order)) - np.searchsorted(partition, partition)  # within partition
    taken = rank < room[partition]
    assignment[items[order[taken]]] = partition[taken]
    room -= np.bincount(partition[taken], minlength=len(room))
