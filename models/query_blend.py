"""Free-text queries: the model's score blended with the query's cosine to each item's text.

The query tower reads a typed query through the item encoder's 64-wide text projection, which
training fits to predict the next item from stand-in queries: good at "what this user is after
now", lossy about which item a sentence describes. The BERT space itself keeps that: the query's
cosine to an item's text embedding is what plain semantic search ranks by. So where a request
carries a query, the retrieval score is `(1 - w)` × the model's cosine + `w` × the text cosine
(`serving.query_weight` = w): a new user's query ranks by what it says, a known user's by both.
A request without a query keeps the model's score alone, and pays nothing for the blend.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["blend_query", "text_index"]


def text_index(text_embeddings: np.ndarray) -> np.ndarray:
    """`[catalog, text_dim]` unit rows of the items' text embeddings (zeros stay zeros: an
    item without text has cosine 0 with every query)."""
    norms = np.linalg.norm(text_embeddings, axis=1, keepdims=True)
    return (text_embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


def blend_query(
    model_cosines: tf.Tensor, query_embedding: tf.Tensor, index: tf.Tensor, weight: float
) -> tf.Tensor:
    """`[batch, catalog]` retrieval scores.

    Args:
      model_cosines: The model's query–candidate cosines `[batch, catalog]`.
      query_embedding: The queries' text embeddings `[batch, text_dim]` (zero rows: no query).
      index: `text_index` of the catalog `[catalog, text_dim]`.
      weight: The text cosine's share where a query is present.
    """
    present = tf.reduce_any(query_embedding != 0.0, axis=-1)

    def blended():
        unit = tf.math.l2_normalize(query_embedding, axis=-1)
        text = tf.matmul(unit, index, transpose_b=True)
        mixed = (1.0 - weight) * model_cosines + weight * text
        return tf.where(present[:, tf.newaxis], mixed, model_cosines)

    # Without a query in the batch the text matmul (text_dim wide, over the whole catalog) is
    # skipped: plain recommendation requests cost what they did.
    return tf.cond(tf.reduce_any(present), blended, lambda: model_cosines)
