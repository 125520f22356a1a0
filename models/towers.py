"""The two towers: an item encoder shared by candidates and history, and the query tower.

Item representation = id embedding (trained ids; every other id shares an out-of-vocabulary row)
+ mean category embedding + a trainable projection of the BERT text embedding (only for items
that have text). An item never seen in training therefore still gets a meaningful vector from
its text and categories.

Query representation = user id embedding (OOV for unknown users) + the pooled history (mean, or
attention with the user as the query) + the most recent item + an optional free-text query +
time-of-day and day-of-week features, through a dense layer. The free-text query arrives as a
text-encoder embedding (the same BERT space as item text) and goes through the item encoder's
text projection, so a typed query and an item description land in the same place; an all-zero
embedding means "no query".
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from models.features import FeatureSpace
from models.sequence import SequenceEncoder
from pipeline.core.config import HISTORY_POOLINGS

__all__ = ["ItemEncoder", "QueryTower", "dense_history"]


def _constant_weight(layer: tf.keras.layers.Layer, name: str, value: np.ndarray) -> tf.Variable:
    """A non-trainable table stored as a variable (kept out of the graph's constants)."""
    return layer.add_weight(
        name=name,
        shape=value.shape,
        dtype=tf.as_dtype(value.dtype),
        initializer=tf.keras.initializers.Constant(value),
        trainable=False,
    )


class ItemEncoder(tf.keras.layers.Layer):
    """Item ids (string, any shape `[...]`) → item vectors `[..., dim]`.

    Args:
      space: Vocabularies and item tables.
      dim: Output size.
      use_text: Add the projected text embedding.
    """

    def __init__(self, space: FeatureSpace, dim: int, use_text: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.use_text = use_text and space.text_dim > 0
        # Catalog row 0 is "unknown item"; catalog item i is row i + 1.
        self.catalog_lookup = tf.keras.layers.StringLookup(
            vocabulary=space.catalog_ids, num_oov_indices=1, mask_token=None
        )
        self.id_lookup = tf.keras.layers.StringLookup(
            vocabulary=space.trained_item_ids or ["[no trained items]"],
            num_oov_indices=space.num_oov_buckets,
            mask_token=None,
        )
        self.id_embedding = tf.keras.layers.Embedding(self.id_lookup.vocabulary_size(), dim)
        width = max((len(c) for c in space.item_categories), default=0) or 1
        table = np.zeros((len(space.catalog_ids) + 1, width), np.int32)  # 0 pads
        for row, cats in enumerate(space.item_categories, start=1):
            table[row, : len(cats)] = np.asarray(cats, np.int32) + 1
        self._category_table_value = table
        self.category_embedding = tf.keras.layers.Embedding(len(space.categories) + 1, dim)
        if self.use_text:
            text = np.concatenate(
                [np.zeros((1, space.text_dim), np.float32), space.text_embeddings]
            )
            has = np.concatenate([[0.0], space.has_text]).astype(np.float32)
            self._text_values = (text, has)
            self.text_projection = tf.keras.layers.Dense(dim, name="text_projection")

    def build(self, input_shape):
        self.category_table = _constant_weight(self, "category_table", self._category_table_value)
        if self.use_text:
            self.text_table = _constant_weight(self, "text_table", self._text_values[0])
            self.has_text_table = _constant_weight(self, "has_text_table", self._text_values[1])
        super().build(input_shape)

    def catalog_rows(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Row of each id in the item tables (0 for ids outside the catalog)."""
        return self.catalog_lookup(item_ids)

    def call(self, item_ids: tf.Tensor) -> tf.Tensor:
        rows = self.catalog_rows(item_ids)
        vector = self.id_embedding(self.id_lookup(item_ids))
        categories = tf.gather(self.category_table, rows)
        present = tf.cast(categories > 0, vector.dtype)[..., tf.newaxis]
        category_sum = tf.reduce_sum(self.category_embedding(categories) * present, axis=-2)
        vector += category_sum / tf.maximum(tf.reduce_sum(present, axis=-2), 1.0)
        if self.use_text:
            vector += tf.cond(
                tf.size(rows) > tf.shape(self.text_table)[0],
                lambda: tf.gather(self._projected_table(), rows),
                lambda: self._projected_rows(rows),
            )
        return vector

    def _projected_rows(self, rows: tf.Tensor) -> tf.Tensor:
        text = tf.gather(self.text_table, rows)
        return self.text_projection(text) * tf.gather(self.has_text_table, rows)[..., tf.newaxis]

    def _projected_table(self) -> tf.Tensor:
        # When a batch holds more item occurrences (candidates and histories) than the catalog
        # has items, projecting the whole table once and gathering `dim`-wide rows is cheaper
        # than gathering and projecting text-wide rows; the result is the same.
        return self.text_projection(self.text_table) * self.has_text_table[:, tf.newaxis]


def time_features(timestamps: tf.Tensor) -> tf.Tensor:
    """Epoch seconds `[batch]` → `[batch, 4]`: hour of day and day of week on the unit circle."""
    seconds = tf.cast(timestamps, tf.float64)
    day = tf.math.floormod(seconds, 86400.0) / 86400.0
    week = tf.math.floormod(seconds / 86400.0 + 3.0, 7.0) / 7.0  # 1970-01-01 was a Thursday
    angles = 2.0 * math.pi * tf.stack([day, week], axis=-1)
    return tf.cast(tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1), tf.float32)


class QueryTower(tf.keras.layers.Layer):
    """Query features → query vectors `[batch, dim]`.

    Inputs: a dict with `user_id` (string `[batch]`), `history_item_ids` (ragged string
    `[batch, None]`, or dense `[batch, n]` with a bool `history_mask` `[batch, n]` that keeps
    the history's items, in order), `timestamp` (int64 `[batch]`) and, optionally,
    `query_text_embedding` (float32 `[batch, text_dim]`, zero rows for requests without a
    query; absent = no queries).

    Args:
      space: Vocabularies.
      items: The item encoder, shared with the candidate tower.
      dim: Output size.
      history_pooling: `mean`, `attention` (the user embedding attends over the history) or
        `self_attention` (a SASRec-style encoder of the latest `history_length` items).
      use_time: Add time-of-day and day-of-week features.
      history_length: Items the self-attention encoder reads (the latest ones).
      history_blocks, history_heads, history_dropout: The self-attention encoder's shape.
    """

    def __init__(
        self,
        space: FeatureSpace,
        items: ItemEncoder,
        dim: int,
        history_pooling: str = "mean",
        use_time: bool = True,
        history_length: int = 20,
        history_blocks: int = 2,
        history_heads: int = 1,
        history_dropout: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if history_pooling not in HISTORY_POOLINGS:
            raise ValueError(
                f"history_pooling must be one of {HISTORY_POOLINGS} (got {history_pooling!r})"
            )
        self.items = items
        self.history_pooling = history_pooling
        self.use_time = use_time
        self.user_lookup = tf.keras.layers.StringLookup(
            vocabulary=space.user_ids or ["[no trained users]"],
            num_oov_indices=space.num_oov_buckets,
            mask_token=None,
        )
        # Users live in the item space, so attention can compare them with history items.
        self.user_embedding = tf.keras.layers.Embedding(
            self.user_lookup.vocabulary_size(), items.dim
        )
        self.time_projection = tf.keras.layers.Dense(dim, name="time_projection")
        if history_pooling == "self_attention":
            self.sequence = SequenceEncoder(
                history_length, history_blocks, history_heads, history_dropout, name="sequence"
            )
        self.output_layer = tf.keras.layers.Dense(dim, name="query_output")

    def pool_history(
        self, user: tf.Tensor, vectors: tf.Tensor, mask: tf.Tensor, training=None
    ) -> tf.Tensor:
        """`[batch, dim]` summary of the history's item vectors `[batch, n, dim]` (zero where
        `mask` `[batch, n]` is 0); zeros for an empty history."""
        if self.history_pooling == "self_attention":
            return self.sequence(vectors, mask, training=training)
        if self.history_pooling == "mean":
            return tf.reduce_sum(vectors, axis=1) / tf.maximum(
                tf.reduce_sum(mask, axis=1, keepdims=True), 1.0
            )
        scale = 1.0 / math.sqrt(float(user.shape[-1]))
        logits = tf.einsum("bd,bld->bl", user, vectors) * scale
        logits += (1.0 - mask) * -1e9
        weights = tf.nn.softmax(logits, axis=-1) * mask  # all-zero for an empty history
        return tf.einsum("bl,bld->bd", weights, vectors)

    @staticmethod
    def last_item(vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """`[batch, dim]` vector of the most recent history item, the last one `mask` keeps
        (zeros for an empty history): the strongest signal of a session's current intent."""
        width = tf.shape(mask)[1]
        positions = tf.where(mask > 0, tf.range(width)[tf.newaxis, :], -1)
        last = tf.reduce_max(positions, axis=1)  # INT_MIN for a zero-width history
        # One zero row more: an empty history (and a zero-width one) takes it.
        padded = tf.pad(vectors, [[0, 0], [0, 1], [0, 0]])
        return tf.gather(padded, tf.where(last >= 0, last, width), batch_dims=1)

    def query_text(self, embedding: tf.Tensor | None, user: tf.Tensor) -> tf.Tensor:
        """`[batch, dim]` projection of the free-text query embedding; zeros without a query."""
        if embedding is None:
            return tf.zeros_like(user)
        present = tf.cast(tf.reduce_any(embedding != 0.0, axis=-1), user.dtype)[:, tf.newaxis]
        return self.items.text_projection(embedding) * present

    def call(self, features: dict[str, tf.Tensor], item_vectors=None, training=None) -> tf.Tensor:
        """`item_vectors`: ids → item-encoder vectors, for callers that hold them precomputed
        (the serving module's catalog table); the item encoder by default."""
        ids, mask = dense_history(features)
        return self.encode(
            self.user_lookup(features["user_id"]),
            (item_vectors or self.items)(ids),
            mask,
            features.get("query_text_embedding"),
            features.get("timestamp"),
            training=training,
        )

    def encode(
        self,
        user_rows: tf.Tensor,
        history_vectors: tf.Tensor,
        history_mask: tf.Tensor,
        query_text_embedding: tf.Tensor | None,
        timestamps: tf.Tensor | None,
        training=None,
    ) -> tf.Tensor:
        """The tower after its string lookups: user vocabulary rows `[batch]`, history item
        vectors `[batch, n, dim]` with their mask `[batch, n]`, the query text embedding (or
        None) and epoch seconds `[batch]` → query vectors `[batch, dim]`.

        Numbers only, so a caller can compile it (the serving module's XLA core)."""
        user = self.user_embedding(user_rows)
        mask = tf.cast(history_mask, user.dtype)
        vectors = history_vectors * mask[..., tf.newaxis]
        parts = [
            user,
            self.pool_history(user, vectors, mask, training=training),
            self.last_item(vectors, mask),
        ]
        if self.items.use_text:
            parts.append(self.query_text(query_text_embedding, user))
        if self.use_time:
            parts.append(self.time_projection(time_features(timestamps)))
        return self.output_layer(tf.concat(parts, axis=-1))


def dense_history(features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """Dense history ids `[batch, n]` and the mask of the items in them.

    A dense history with its mask goes through as it is: the serving graph builds one without
    ragged ops, which cost more per request than the pooling itself. A dense one without a mask
    is "" padded at the end."""
    history = features["history_item_ids"]
    if "history_mask" in features:
        return history, features["history_mask"]
    if not isinstance(history, tf.RaggedTensor):
        history = tf.RaggedTensor.from_tensor(history, padding="")
    ids = history.to_tensor(default_value="")
    return ids, tf.sequence_mask(history.row_lengths(), tf.shape(ids)[1])
