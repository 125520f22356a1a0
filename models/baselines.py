"""The baselines every `recsys evaluate` ranks the same queries with, in plain NumPy.

A model is only worth serving if it beats what a practitioner would build first, so each
evaluation measures these beside it, on the same queries, with the same exclusions:

* `most_popular`: train events per item, the same list for everyone;
* `cooccurrence`: how often each item followed the query's history items in training;
* `item_knn`: cosine similarity of items over train users, summed over the history items;
* `ease`: EASE (Steck, WWW 2019), a closed-form linear item-item model: B = I − P·diagMat(1 /
  diag(P)) with P = (XᵀX + λI)⁻¹, scored as the sum of the history items' rows of B;
* `content`: cosine between each item's text embedding and the mean text embedding of the
  history (items without text rank last).

Each scorer maps a batch of histories (catalog indices) to a `[batch, catalog]` score matrix.
"Train" here is everything before the eval split (train and validation events): what a
deployed model learns from. `item_knn` and `ease` need the items × items Gram matrix; they are
built only up to a catalog size the caller chooses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "NO_TEXT",
    "Scorer",
    "content_scorer",
    "cooccurrence_scorer",
    "ease_scorer",
    "ease_weights",
    "follow_counts",
    "gram_matrix",
    "item_knn_scorer",
    "knn_similarity",
    "popularity_scorer",
]

Scorer = Callable[[Sequence[np.ndarray]], np.ndarray]
NO_TEXT = -2.0  # below any cosine: items without text rank after every item with text
_CHUNK = 1 << 24  # entries of a dense users × items block when building the Gram matrix
_GATHER = 32  # queries whose history rows are gathered at once


def _history_matrix(histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """`[batch, n_items]` float64: how often each item occurs in each history."""
    counts = np.zeros((len(histories), n_items))
    for row, history in enumerate(histories):
        np.add.at(counts[row], np.asarray(history, np.int64), 1.0)
    return counts


def gram_matrix(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """XᵀX `[n_items, n_items]` (float64) of the binary user × item matrix X of the pairs
    (users[i], items[i]); repeated pairs count once.

    Built from dense blocks of users, so memory stays near `_CHUNK` entries plus the result."""
    pairs = np.unique(np.stack([users.astype(np.int64), items.astype(np.int64)], axis=1), axis=0)
    gram = np.zeros((n_items, n_items))
    if not len(pairs):
        return gram
    user_ids, user_rows = np.unique(pairs[:, 0], return_inverse=True)
    per_block = max(1, _CHUNK // max(n_items, 1))
    for start in range(0, len(user_ids), per_block):
        chosen = (user_rows >= start) & (user_rows < start + per_block)
        block = np.zeros((min(per_block, len(user_ids) - start), n_items), np.float32)
        block[user_rows[chosen] - start, pairs[chosen, 1]] = 1.0
        gram += (block.T @ block).astype(np.float64)
    return gram


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """EASE's item-item weights B `[n, n]` (zero diagonal) from XᵀX and λ."""
    precision = np.linalg.inv(gram + l2 * np.eye(len(gram)))
    weights = -precision / np.diag(precision)[np.newaxis, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def knn_similarity(gram: np.ndarray) -> np.ndarray:
    """Item-item cosine similarity over users `[n, n]` from XᵀX, zero diagonal (an item is not
    its own neighbour); items without users are similar to nothing."""
    norms = np.sqrt(np.diag(gram))
    safe = np.where(norms > 0, norms, 1.0)
    similarity = gram / safe[:, np.newaxis] / safe[np.newaxis, :]
    np.fill_diagonal(similarity, 0.0)
    return similarity


def _row_sum_scorer(weights: np.ndarray) -> Scorer:
    """Scores as the sum of the history items' rows of `weights` (repeats count again).

    Rows are gathered and summed a few queries at a time: a history holds tens of items, so
    this is far cheaper than a dense `[queries, n] @ [n, n]` product."""

    def score(histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(histories), len(weights)))
        for start in range(0, len(histories), _GATHER):
            part = [np.asarray(h, np.int64) for h in histories[start : start + _GATHER]]
            lengths = np.array([len(h) for h in part])
            rows = np.flatnonzero(lengths)
            if not len(rows):
                continue
            gathered = weights[np.concatenate(part)]
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])[rows]
            out[start + rows] = np.add.reduceat(gathered, offsets, axis=0)
        return out

    return score


def popularity_scorer(train_counts: np.ndarray) -> Scorer:
    """Most popular: every query gets the train counts."""
    counts = train_counts.astype(np.float64)

    def score(histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.tile(counts, (len(histories), 1))

    return score


def follow_counts(
    history_items: np.ndarray, event_rows: np.ndarray, event_items: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How often each item followed each other item in training, as compressed sparse rows.

    Args:
      history_items: `[m]` catalog index of every history entry of every train event.
      event_rows: `[m]` the train event each entry belongs to.
      event_items: `[events]` catalog index of each train event's item.
      n_items: Catalog size.

    Returns:
      `(indptr [n_items + 1], columns, counts)`: row h lists the items j that train events had
      with h in their history, and how many such events (an item repeated in one history
      counts once)."""
    pairs = np.unique(np.stack([event_rows, history_items], axis=1), axis=0)
    keys = pairs[:, 1].astype(np.int64) * n_items + event_items[pairs[:, 0]]
    keys, counts = np.unique(keys, return_counts=True)
    rows, columns = np.divmod(keys, n_items)
    indptr = np.zeros(n_items + 1, np.int64)
    np.add.at(indptr, rows + 1, 1)
    return np.cumsum(indptr), columns, counts.astype(np.float64)


def cooccurrence_scorer(
    follows: tuple[np.ndarray, np.ndarray, np.ndarray], train_counts: np.ndarray
) -> Scorer:
    """Item co-occurrence: the sum over the query's distinct history items of how often each
    item followed them (`follow_counts`), ties broken by popularity (so an empty history falls
    back to most-popular). Sparse: no items × items matrix."""
    indptr, columns, counts = follows
    tiebreak = train_counts / (train_counts.max() + 1.0) if len(train_counts) else 0.0

    def score(histories: Sequence[np.ndarray]) -> np.ndarray:
        scores = np.tile(np.asarray(tiebreak, np.float64), (len(histories), 1))
        for row, history in enumerate(histories):
            for h in np.unique(np.asarray(history, np.int64)):
                span = slice(indptr[h], indptr[h + 1])
                scores[row, columns[span]] += counts[span]
        return scores

    return score


def item_knn_scorer(gram: np.ndarray) -> Scorer:
    """Item-kNN: the sum of the history items' cosine similarities to each item."""
    return _row_sum_scorer(knn_similarity(gram))


def ease_scorer(gram: np.ndarray, l2: float) -> Scorer:
    """EASE: the sum of the history items' rows of B."""
    return _row_sum_scorer(ease_weights(gram, l2))


def content_scorer(text_embeddings: np.ndarray, has_text: np.ndarray) -> Scorer:
    """Content only: cosine between each item's text embedding and the mean text embedding of
    the query's history items that have text; items without text score `NO_TEXT`."""
    norms = np.linalg.norm(text_embeddings, axis=1, keepdims=True)
    unit = np.where(norms > 0, text_embeddings / np.maximum(norms, 1e-12), 0.0)
    with_text = has_text > 0

    def score(histories: Sequence[np.ndarray]) -> np.ndarray:
        counts = _history_matrix(histories, len(unit)) * with_text[np.newaxis, :]
        totals = counts.sum(axis=1, keepdims=True)
        means = (counts @ unit) / np.maximum(totals, 1.0)
        lengths = np.linalg.norm(means, axis=1, keepdims=True)
        means = np.where(lengths > 0, means / np.maximum(lengths, 1e-12), 0.0)
        return np.where(with_text[np.newaxis, :], means @ unit.T, NO_TEXT)

    return score
