"""A plain NumPy MMR reranker: the oracle that the graph rerankers (`serving.mmr.mmr_select`,
`serving.mmr_compiled.mmr_select_static`) are tested against, and the baseline that
`benchmarks/serving_bench.py` times them against. It is not used in serving itself.

One request row at a time, in float32, written to follow the formula rather than to be fast:

* relevance is min-max normalized over the row's valid candidates (all equal → all 0);
* each step picks the available candidate with the largest λ·rel − (1 − λ)·maxsim, where
  maxsim is its largest cosine (dot product) with an item already picked, 0 before the
  first pick; `np.argmax` breaks ties toward the lowest position;
* a row picks min(k, number of valid candidates) items; the rest of its columns hold
  position -1 and score 0.

The arithmetic is the formula's, in float32, so that exact inputs (dot products that are exact
in float32) give the same ties, and so the same picks, as the graph version.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mmr_reference", "normalize_relevance"]


def mmr_reference(
    embeddings: np.ndarray,
    relevance: np.ndarray,
    valid: np.ndarray,
    k: np.ndarray,
    lam: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """MMR selection for a batch of requests, one row at a time.

    Args:
      embeddings: [B, N, d] unit-length candidate embeddings.
      relevance: [B, N] raw relevance scores.
      valid: [B, N] bool, False for padding.
      k: [B] number of items wanted per row.
      lam: [B] λ per row, in [0, 1].

    Returns:
      positions: int32 [B, max(k)], indices into N, -1 past a row's picks.
      scores: float32 [B, max(k)], each pick's objective when it was picked, 0 past a row's picks.
    """
    embeddings = np.asarray(embeddings, np.float32)
    relevance = np.asarray(relevance, np.float32)
    valid = np.asarray(valid, bool)
    k = np.asarray(k, np.int64)
    lam = np.asarray(lam, np.float32)
    width = max(int(k.max()), 0) if k.size else 0
    positions = np.full((len(k), width), -1, np.int32)
    scores = np.zeros((len(k), width), np.float32)
    for row in range(len(k)):
        picked, picked_scores = _mmr_row(
            embeddings[row], relevance[row], valid[row], int(k[row]), lam[row]
        )
        positions[row, : len(picked)] = picked
        scores[row, : len(picked)] = picked_scores
    return positions, scores


def normalize_relevance(relevance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Min-max over the valid entries to [0, 1]; 0 where invalid or where all valid are equal."""
    out = np.zeros_like(relevance, dtype=np.float32)
    if not valid.any():
        return out
    low = relevance[valid].min()
    span = relevance[valid].max() - low
    if span > 0:
        out[valid] = (relevance[valid] - low) / span
    return out


def _mmr_row(
    embeddings: np.ndarray, relevance: np.ndarray, valid: np.ndarray, k: int, lam: np.float32
) -> tuple[list[int], list[np.float32]]:
    rel = normalize_relevance(relevance, valid)
    available = valid.copy()
    max_sim = np.zeros(len(rel), np.float32)  # the max-sim term is 0 before the first pick
    picked: list[int] = []
    picked_scores: list[np.float32] = []
    for _ in range(min(k, int(valid.sum()))):
        objective = lam * rel - (np.float32(1) - lam) * max_sim
        objective = np.where(available, objective, np.float32(-np.inf))
        best = int(np.argmax(objective))
        picked.append(best)
        picked_scores.append(objective[best])
        available[best] = False
        sim = embeddings @ embeddings[best]
        max_sim = sim if len(picked) == 1 else np.maximum(max_sim, sim)
    return picked, picked_scores
