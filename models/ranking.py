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
# Scores held per batch, at most: at 1M catalog items a batch is 16 queries (a 134 MB float64
# block), where 512 queries would need 4 GB.
_SCORES_PER_BATCH = 1 << 24


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

    The queries go in batches of at most `_SCORES_PER_BATCH` scores (and 512 queries), so a
    catalog of millions of items streams through in small blocks; the answers do not depend
    on the batches (the tie-breaking draws come in query order either way).
    """
    rng = np.random.default_rng(seed)
    ranks, tops = [], []
    start, batch = 0, 1  # one query first: the catalog's size sets the batches after it
    while start < len(truth):
        rows = np.arange(start, min(start + batch, len(truth)))
        scores = np.array(score(rows), dtype=np.float64)
        n = scores.shape[1]
        start, batch = rows[-1] + 1, max(1, min(_BATCH, _SCORES_PER_BATCH // max(n, 1)))
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
