"""Offline recommendation metrics on plain NumPy arrays.

Every function takes the ranked recommendations of a set of queries (`topk`: `[queries, K]`
catalog indices, best first) and, where needed, the true item of each query (`truth`:
`[queries]`) or its full-catalog rank (`ranks`: `[queries]`, 1 = best). With one relevant item
per query, Recall@K, HitRate@K of the query and TFRS's factorized top-K accuracy coincide; they
are reported under each name so numbers can be set beside published ones.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "catalog_coverage",
    "category_ild",
    "embedding_ild",
    "gains_at_k",
    "hits_at_k",
    "long_tail_share",
    "mrr",
    "ndcg_at_k",
    "novelty",
    "recall_at_k",
    "rmse",
    "user_hit_rate_at_k",
    "user_mean",
]


def hits_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per query, 1.0 where the true item ranks within the top k, else 0.0."""
    return (ranks <= k).astype(np.float64)


def gains_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per query, NDCG@k with one relevant item: 1 / log2(rank + 1) inside the top k, else 0."""
    return np.where(ranks <= k, 1.0 / np.log2(ranks.astype(np.float64) + 1.0), 0.0)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose true item ranks within the top k."""
    return float(np.mean(hits_at_k(ranks, k))) if len(ranks) else 0.0


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean NDCG@k over queries (see `gains_at_k`)."""
    return float(np.mean(gains_at_k(ranks, k))) if len(ranks) else 0.0


def user_mean(values: np.ndarray, users: np.ndarray) -> float:
    """The mean over users of each user's mean of a per-query value: every user counts once,
    however many eval events they have."""
    if not len(values):
        return 0.0
    _, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=values)
    return float(np.mean(sums / counts))


def mrr(ranks: np.ndarray) -> float:
    """Mean reciprocal rank over the full catalog."""
    return float(np.mean(1.0 / ranks)) if len(ranks) else 0.0


def user_hit_rate_at_k(ranks: np.ndarray, users: np.ndarray, k: int) -> float:
    """Share of users with at least one eval event whose item ranks within the top k."""
    if not len(ranks):
        return 0.0
    unique, inverse = np.unique(users, return_inverse=True)
    hits = np.zeros(len(unique), bool)
    np.logical_or.at(hits, inverse, ranks <= k)
    return float(hits.mean())


def catalog_coverage(topk: np.ndarray, catalog_size: int) -> float:
    """Share of the catalog that appears in at least one top-k list."""
    return len(np.unique(topk)) / catalog_size if catalog_size else 0.0


def embedding_ild(topk: np.ndarray, embeddings: np.ndarray, has_vector: np.ndarray) -> float:
    """Intra-list diversity: mean pairwise cosine distance (1 − cosine) within each list, over
    the items that have a vector (lists with fewer than two such items are skipped)."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    values = []
    for row in topk:
        items = row[has_vector[row] > 0]
        n = len(items)
        if n < 2:
            continue
        sims = unit[items] @ unit[items].T
        values.append(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))
    return float(np.mean(values)) if values else 0.0


def category_ild(topk: np.ndarray, item_categories: list[list[int]]) -> float:
    """Intra-list diversity by category: mean pairwise Jaccard distance of category sets."""
    values = []
    for row in topk:
        sets = [set(item_categories[i]) for i in row]
        n = len(sets)
        if n < 2:
            continue
        total = 0.0
        for a in range(n):
            for b in range(a + 1, n):
                union = sets[a] | sets[b]
                total += 1.0 - (len(sets[a] & sets[b]) / len(union) if union else 1.0)
        values.append(total / (n * (n - 1) / 2))
    return float(np.mean(values)) if values else 0.0


def novelty(topk: np.ndarray, probability: np.ndarray) -> float:
    """Mean self-information −log2 p(item) of recommended items, p the share of train events."""
    return float(np.mean(-np.log2(probability[topk]))) if topk.size else 0.0


def long_tail_share(topk: np.ndarray, train_counts: np.ndarray, head_share: float = 0.2) -> float:
    """Share of recommendations outside the head: the most popular `head_share` of the catalog
    by train events."""
    if not topk.size:
        return 0.0
    head_size = int(np.ceil(head_share * len(train_counts)))
    head = np.zeros(len(train_counts), bool)
    head[np.argsort(-train_counts, kind="stable")[:head_size]] = True
    return float(np.mean(~head[topk]))


def rmse(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.sqrt(np.mean((labels - predictions) ** 2))) if len(labels) else 0.0
