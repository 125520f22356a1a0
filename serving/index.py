"""The catalog index: every array the serving graph looks catalog items up in, built at export.

Retrieval in the served graph scores the candidate vector of every catalog item (cold items
included, through their text and categories): by brute force, or, over a large catalog
(`serving.index`), through k-means partitions of those vectors (`serving/partitions.py`),
which are computed here too. Those vectors, and the other per-item tables the signatures read
(the item encoder's vectors for histories, the similarity vectors MMR and the explanations
compare), are computed here once, by calling the trained model over the catalog in batches and
finishing in NumPy. Nothing here is part of a served graph: `build_index` returns arrays, and
the serving module (`serving/module.py`) stores them as variables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from models.query_blend import text_index
from models.recommender import Recommender
from pipeline.core.config import ServingConfig
from pipeline.core.progress import say
from serving.partitions import Partitions, build_partitions

__all__ = ["CatalogIndex", "build_index", "principal_directions"]


@dataclass(frozen=True)
class CatalogIndex:
    """The per-item arrays of a catalog, in the model's catalog order (`catalog` rows).

    Attributes:
      ids: "" and then every catalog item id (`catalog + 1`): row r + 1 is catalog row r, and
        row 0, "", the id of no item (a -1 row).
      item_vectors: `[catalog + 1, dim]` the item encoder's vector of each of `ids`, what the
        query tower reads a history through; row 0: what it gives an id outside the catalog.
      index: `[catalog, dim]` the unit candidate vectors, retrieval's and `similar_items`'.
      text_index: `[catalog, text_dim]` unit text embeddings, for a query's cosine to each
        item's text (`models/query_blend.py`), or None where no query is encoded.
      unknown_similarity: `[similarity_dim]` the similarity vector of an id outside the
        catalog in an `mmr` request.
      catalog_table: `[catalog + 1, similarity_dim + dim]` row r + 1: catalog row r's
        similarity vector, then its candidate vector (what the ranking head takes). One table,
        so that each retrieved candidate costs one fetch of a row from a table far larger than
        the caches, not one per table. Row 0 is for ids outside the catalog and padding: zeros,
        similar to nothing.
      similarity_dim: The width of the similarity vectors, `catalog_table`'s first columns.
      partitions: `index`'s rows grouped by k-means, for a partitioned search
        (`serving.index`), or None for an exact one.
    """

    ids: list[str]
    item_vectors: np.ndarray
    index: np.ndarray
    text_index: np.ndarray | None
    unknown_similarity: np.ndarray
    catalog_table: np.ndarray
    similarity_dim: int
    partitions: Partitions | None = None

    @property
    def catalog_size(self) -> int:
        return len(self.ids) - 1


def build_index(
    model: Recommender,
    catalog_ids: list[str],
    text_embeddings: np.ndarray | None,
    config: ServingConfig,
    text_queries: bool,
) -> CatalogIndex:
    """The catalog index of a trained model.

    Args:
      model: The trained recommender (weights loaded).
      catalog_ids: Every catalog item, in the model's catalog order.
      text_embeddings: `[catalog, text_dim]` text embeddings (zero rows without text), used by
        MMR and the explanations when `config.mmr_embedding` is `text`; like the candidate
        vectors, projected to `config.similarity_dim` directions (`principal_directions`).
      config: Serving settings (`mmr_embedding`, `similarity_dim`, the `index` settings).
      text_queries: Whether the module encodes free-text queries (a `text_index` only then).
    """
    has_text = text_embeddings is not None and text_embeddings.size > 0
    items = _batched(model.items, ["", *catalog_ids])
    vectors = _batched(model.candidate_vector, catalog_ids)
    normalized = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = normalized
    # An id outside the catalog, in the `mmr` signature: the model still embeds it (its
    # out-of-vocabulary id); it has no text, so with text similarity it is like nothing.
    unknown = model.candidate_embedding(tf.constant([""])).numpy()[0]
    if config.mmr_embedding == "text" and has_text:
        similarity = _unit_rows(text_embeddings)
        unknown = np.zeros(similarity.shape[1], np.float32)
    basis = principal_directions(similarity, config.similarity_dim)
    similarity = _unit_rows(similarity @ basis)
    unknown = _unit_rows((unknown @ basis)[np.newaxis])[0]
    table = np.concatenate([similarity, vectors], axis=1)
    table = np.concatenate([np.zeros((1, table.shape[1])), table])
    partitions = None
    if config.index_kind(len(catalog_ids)) == "partitioned":
        say(f"export: k-means partitions of the {len(catalog_ids):,} candidate vectors")
        partitions = build_partitions(normalized, config.index_partitions)
    return CatalogIndex(
        ids=["", *catalog_ids],
        item_vectors=items,
        index=normalized,
        text_index=text_index(text_embeddings) if text_queries and has_text else None,
        unknown_similarity=unknown,
        catalog_table=table.astype(np.float32),
        similarity_dim=similarity.shape[1],
        partitions=partitions,
    )


def principal_directions(vectors: np.ndarray, dim: int) -> np.ndarray:
    """`[width, min(width, dim)]`: the orthonormal directions that keep most of the rows' dot
    products (the top eigenvectors of VᵀV, not centered: cosines, not variances, are kept).

    MMR's cost per request grows with the similarity's width; projecting, for example, 384-d
    text embeddings onto 64 such directions keeps most of what makes two items alike."""
    width = vectors.shape[1]
    if width <= dim:
        return np.eye(width, dtype=np.float32)
    moments = vectors.astype(np.float64).T @ vectors.astype(np.float64)
    _, eigenvectors = np.linalg.eigh(moments)  # ascending eigenvalues
    return eigenvectors[:, ::-1][:, :dim].astype(np.float32)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def _batched(fn, ids: list[str], size: int = 4096) -> np.ndarray:
    """`fn` of `ids` as one float32 array, called on `size` ids at a time."""
    parts = [fn(tf.constant(ids[i : i + size])).numpy() for i in range(0, len(ids), size)]
    return np.concatenate(parts).astype(np.float32)
