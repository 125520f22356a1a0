"""Full-catalog ranking of eval queries, as serving ranks: seen items excluded, ties at random.

The model and every baseline go through `rank_queries`, so they are compared on exactly the same
queries, with the same exclusions and the same tie rule:

* **Exclusion.** A query may list catalog items to leave out (the items its user interacted
  with before the event, when `evaluate.exclude_seen` is on). They cannot be recommended, so
  they are not ranked; if the true item is among them the query is a miss at every cutoff.
* **Ties at random.** The true item's rank among items of equal score is drawn uniformly (a
  seeded generator), as a list sorted with random tie-breaking would place it. Counting ties
  in the item's favour would hand a constant scorer (most-popular over zero-count items, a
  model that learned nothing) a perfect score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Ranking", "rank_queries"]

_BATCH = 512


@dataclass
class Ranking:
    """One system's answers to the eval queries.

    Attributes:
      ranks: `[queries]` rank of each true item among the items not excluded (1 = best);
        `catalog + 1` where the true item itself was excluded.
      topk: `[queries, K]` best catalog indices per query, excluded items left out.
    """

    ranks: np.ndarray
    topk: np.ndarray


def rank_queries(
    score: Callable[[np.ndarray], np.ndarray],
    truth: np.ndarray,
    exclusions: Sequence[np.ndarray] | None,
    seed: int,
    k: int,
    progress: Callable[[int], None] | None = None,
) -> Ranking:
    """Ranks every query's true item over the catalog.

    Args:
      score: Query positions `[b]` → scores `[b, catalog]` (higher is better).
      truth: `[queries]` catalog index of each query's true item.
      exclusions: Per query, catalog indices to leave out; None excludes nothing.
      seed: Seed of the tie-breaking.
      k: Length of the `topk` lists.
      progress: Called with the number of queries done after each batch.
    """
    rng = np.random.default_rng(seed)
    ranks, tops = [], []
    for start in range(0, len(truth), _BATCH):
        rows = np.arange(start, min(start + _BATCH, len(truth)))
        scores = np.array(score(rows), dtype=np.float64)
        n = scores.shape[1]
        excluded = np.zeros(scores.shape, bool)
        if exclusions is not None:
            for r, q in enumerate(rows):
                excluded[r, exclusions[q]] = True
        target = truth[rows]
        true_scores = scores[np.arange(len(rows)), target]
        scores[excluded] = -np.inf
        better = (scores > true_scores[:, np.newaxis]).sum(axis=1)
        equal = (scores == true_scores[:, np.newaxis]).sum(axis=1) - 1  # others tied with it
        rank = 1 + better + np.floor(rng.random(len(rows)) * (equal + 1)).astype(np.int64)
        rank[excluded[np.arange(len(rows)), target]] = n + 1
        ranks.append(rank)
        tops.append(_top(scores, min(k, n)))
        if progress is not None:
            progress(int(rows[-1]) + 1)
    if not ranks:
        return Ranking(np.zeros(0, np.int64), np.zeros((0, k), np.int64))
    return Ranking(np.concatenate(ranks), np.concatenate(tops))


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """The best `k` catalog indices per row, best first (excluded items at -inf come last)."""
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)
