"""A SASRec-style self-attention encoder of a user's recent items.

The history's item vectors get a learned embedding of their position counted from the most
recent item (0 = the latest), go through a few pre-norm Transformer blocks (self-attention over
the kept items, then a position-wise feed-forward layer, each with dropout and a residual), and
the output at the most recent item is the history's summary (Kang & McAuley, ICDM 2018; trained
with a softmax over the whole catalog, Klenitskiy & Vasilev, RecSys 2023).

Only the latest `length` items are read, in training and at serving alike: a request that sends
200 history ids is summarized from the same window the model learned on. The attention is not
causal: only the latest position's output is used, so no position needs hiding from the ones
before it, and every position may read the whole window.

Core TensorFlow ops only (einsum, softmax, layer norm), so the serving graph keeps to the op set
stock TF Serving runs, with or without XLA.
"""

from __future__ import annotations

import tensorflow as tf

from models.attention import Attention

__all__ = ["SequenceEncoder", "positions_from_end"]


def positions_from_end(mask: tf.Tensor) -> tf.Tensor:
    """Each kept item's position counted from the latest kept one (0 = latest), -1 where
    `mask` `[batch, n]` (0/1 floats) drops the item. Items are in time order, latest last;
    a mask with holes (serving drops repeated ids) counts kept items only."""
    from_end = tf.cumsum(mask, axis=1, reverse=True) - 1.0
    return tf.cast(tf.where(mask > 0, from_end, -1.0), tf.int32)


class SequenceEncoder(tf.keras.layers.Layer):
    """History item vectors `[batch, n, dim]` and their mask `[batch, n]` → `[batch, dim]`.

    Args:
      length: Most recent items read (the position embedding's size).
      blocks: Transformer blocks.
      heads: Attention heads (must divide the vectors' size).
      dropout: Dropout rate on the inputs and after attention and feed-forward, in training.
    """

    def __init__(self, length: int, blocks: int = 2, heads: int = 1, dropout: float = 0.2, **kw):
        super().__init__(**kw)
        self.length = length
        self.blocks = blocks
        self.heads = heads
        self.rate = dropout

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.position = self.add_weight(
            name="position",
            shape=(self.length, dim),
            initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self.dropout = tf.keras.layers.Dropout(self.rate)
        self.attention_norm, self.attention, self.ffn_norm, self.ffn = [], [], [], []
        for i in range(self.blocks):
            self.attention_norm.append(tf.keras.layers.LayerNormalization(name=f"attn_norm_{i}"))
            self.attention.append(Attention(self.heads, self.rate, name=f"attention_{i}"))
            self.ffn_norm.append(tf.keras.layers.LayerNormalization(name=f"ffn_norm_{i}"))
            self.ffn.append(
                tf.keras.Sequential(
                    [
                        tf.keras.layers.Dense(dim, activation="relu"),
                        tf.keras.layers.Dropout(self.rate),
                        tf.keras.layers.Dense(dim),
                    ],
                    name=f"ffn_{i}",
                )
            )
        self.output_norm = tf.keras.layers.LayerNormalization(name="output_norm")
        super().build(input_shape)

    def call(self, vectors: tf.Tensor, mask: tf.Tensor, training=None) -> tf.Tensor:
        """`mask`: 0/1 floats; an empty history gives zeros."""
        x, keep = self.window(vectors, mask)
        # Slot j holds the item `length - 1 - j` back from the latest: its position embedding.
        x += tf.reverse(self.position, axis=[0])
        keep_f = tf.cast(keep, x.dtype)[..., tf.newaxis]
        x = self.dropout(x, training=training) * keep_f
        pairs = keep[:, tf.newaxis, :] & keep[:, :, tf.newaxis]
        last = len(self.attention) - 1
        for i, (norm, attention, ffn_norm, ffn) in enumerate(
            zip(self.attention_norm, self.attention, self.ffn_norm, self.ffn, strict=True)
        ):
            h = norm(x)
            # Only the latest position's output is read: the last block computes it alone (one
            # query row instead of one per position; the same numbers).
            latest_only = i == last
            if latest_only:
                x, mask = x[:, -1:], keep[:, tf.newaxis]
            else:
                mask = pairs
            x += self.dropout(attention(h, mask, latest_only, training=training), training=training)
            x += self.dropout(ffn(ffn_norm(x), training=training), training=training)
            if i < last:
                x *= keep_f
        has_history = tf.cast(keep[:, -1:], x.dtype)  # the latest kept item fills the last slot
        return self.output_norm(x)[:, 0, :] * has_history

    def window(self, vectors: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The latest `length` kept items `[batch, length, dim]`, oldest first and the latest
        in the last slot, and which slots hold one `[batch, length]` (a short history leaves
        the first slots empty, zeros).

        The blocks then run over `length` slots whatever the history's width: a serving
        request padded to `serving.max_history` (200) pays for the 20 items it reads, not for
        200 positions of masked attention."""
        # One dropped column more, so that a zero-width history has a column to point at.
        vectors = tf.pad(vectors, [[0, 0], [0, 1], [0, 0]])
        from_end = positions_from_end(tf.pad(mask, [[0, 0], [0, 1]]))  # [batch, n + 1]
        slot = self.length - 1 - from_end  # dropped items (-1) land past the window
        holds = tf.equal(slot[:, tf.newaxis, :], tf.range(self.length)[tf.newaxis, :, tf.newaxis])
        keep = tf.reduce_any(holds, axis=2)  # [batch, length]
        # The column of each slot's item; an empty slot's (argmax 0) is zeroed below.
        columns = tf.argmax(tf.cast(holds, tf.int32), axis=2, output_type=tf.int32)
        window = tf.gather(vectors, columns, batch_dims=1)
        return window * tf.cast(keep, vectors.dtype)[..., tf.newaxis], keep
