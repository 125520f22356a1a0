"""The trained model as a plain SavedModel of its two towers and ranking head.

Signatures (dense inputs, as TF Serving passes them; histories are padded with ""):

* `query_embedding`: `user_id` string `[batch]`, `history_item_ids` string `[batch, length]`,
  `timestamp` int64 `[batch]` → `embeddings` float32 `[batch, dim]`;
* `candidate_embedding`: `item_id` string `[batch]` → `embeddings` float32 `[batch, dim]`;
* `rank`: the same query inputs plus `item_id` → `predictions` float32 `[batch]`.

The serving export (recommend, MMR, ...) builds on the same towers; this module is what the model
step guarantees: weights and graph that reload in a fresh process and compute the same numbers.
"""

from __future__ import annotations

import tensorflow as tf

from models.recommender import Recommender

__all__ = ["RecommenderModule", "save_recommender"]

_QUERY_SPECS = (
    tf.TensorSpec([None], tf.string, name="user_id"),
    tf.TensorSpec([None, None], tf.string, name="history_item_ids"),
    tf.TensorSpec([None], tf.int64, name="timestamp"),
)


class RecommenderModule(tf.Module):
    def __init__(self, model: Recommender):
        super().__init__()
        self.model = model

    def _features(self, user_id, history_item_ids, timestamp):
        history = tf.RaggedTensor.from_tensor(history_item_ids, padding="")
        return {"user_id": user_id, "history_item_ids": history, "timestamp": timestamp}

    @tf.function(input_signature=_QUERY_SPECS)
    def query_embedding(self, user_id, history_item_ids, timestamp):
        features = self._features(user_id, history_item_ids, timestamp)
        return {"embeddings": self.model.query_embedding(features)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="item_id")])
    def candidate_embedding(self, item_id):
        return {"embeddings": self.model.candidate_embedding(item_id)}

    @tf.function(input_signature=[*_QUERY_SPECS, tf.TensorSpec([None], tf.string, name="item_id")])
    def rank(self, user_id, history_item_ids, timestamp, item_id):
        query = self.model.query_vector(self._features(user_id, history_item_ids, timestamp))
        return {"predictions": self.model.rank(query, self.model.candidate_vector(item_id))}


def save_recommender(model: Recommender, path: str) -> None:
    """Writes the SavedModel with the three signatures above."""
    module = RecommenderModule(model)
    tf.saved_model.save(
        module,
        path,
        signatures={
            "query_embedding": module.query_embedding,
            "candidate_embedding": module.candidate_embedding,
            "rank": module.rank,
        },
    )
