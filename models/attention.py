"""Multi-head dot-product attention with one fused query/key/value product.

The self-attention history encoder (`models/sequence.py`) runs on every request of the serving
graph. There, over a 20-item window, each matrix product is small enough that its dispatch costs
about as much as its arithmetic: this layer makes one product of the keys, values and queries
where Keras's `MultiHeadAttention` makes three, and, when only the latest position's output is
wanted, projects the query of that one row alone. The numbers are those of standard attention
(Vaswani et al., 2017): softmax(q·kᵀ / √d_head) · v per head, then an output projection.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["Attention"]


class Attention(tf.keras.layers.Layer):
    """`[batch, n, dim]` inputs, a `[batch, queries, n]` boolean mask of which inputs each query
    may read → `[batch, queries, dim]`.

    Args:
      heads: Attention heads (must divide `dim`).
      dropout: Dropout rate on the attention weights, in training.
    """

    def __init__(self, heads: int = 1, dropout: float = 0.0, **kw):
        super().__init__(**kw)
        self.heads = heads
        self.rate = dropout

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if dim % self.heads:
            raise ValueError(f"model.history_heads={self.heads} must divide the size {dim}")
        self.dim = dim
        heads, width = self.heads, dim // self.heads
        # Initialized as Keras's `MultiHeadAttention` initializes its projections (Glorot over
        # `[dim, heads, head width]` kernels, `[heads, head width, dim]` for the output), so the
        # encoder starts where the one chosen on the validation slices did.
        self.qkv_kernel = self.add_weight(
            name="qkv_kernel",
            shape=(dim, 3 * dim),
            initializer=_glorot_blocks([(dim, heads, width)] * 3, (dim, 3 * dim)),
        )
        self.qkv_bias = self.add_weight(name="qkv_bias", shape=(3 * dim,), initializer="zeros")
        self.output_kernel = self.add_weight(
            name="output_kernel",
            shape=(dim, dim),
            initializer=_glorot_blocks([(heads, width, dim)], (dim, dim)),
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(dim,), initializer="zeros")
        self.dropout = tf.keras.layers.Dropout(self.rate)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, mask: tf.Tensor, latest_only=False, training=None):
        """`latest_only`: the last position is the only query (`mask` `[batch, 1, n]`)."""
        dim = self.dim
        if latest_only:
            query = inputs[:, -1:] @ self.qkv_kernel[:, :dim] + self.qkv_bias[:dim]
            keys_values = inputs @ self.qkv_kernel[:, dim:] + self.qkv_bias[dim:]
        else:
            projected = inputs @ self.qkv_kernel + self.qkv_bias
            query, keys_values = projected[..., :dim], projected[..., dim:]
        q, k, v = (self._split(t) for t in (query, keys_values[..., :dim], keys_values[..., dim:]))
        scores = tf.einsum("bqhd,bnhd->bhqn", q, k) * (dim // self.heads) ** -0.5
        scores = tf.where(mask[:, tf.newaxis], scores, -1e9)
        weights = self.dropout(tf.nn.softmax(scores, axis=-1), training=training)
        out = tf.einsum("bhqn,bnhd->bqhd", weights, v)
        out = tf.reshape(out, tf.concat([tf.shape(out)[:2], [dim]], axis=0))
        return out @ self.output_kernel + self.output_bias

    def _split(self, x: tf.Tensor) -> tf.Tensor:
        """`[batch, n, dim]` → `[batch, n, heads, dim / heads]`."""
        shape = tf.concat([tf.shape(x)[:2], [self.heads, self.dim // self.heads]], axis=0)
        return tf.reshape(x, shape)


def _glorot_blocks(shapes: list[tuple[int, ...]], shape: tuple[int, int]):
    """An initializer of a `shape` kernel: a Glorot-uniform draw for each of `shapes`, each
    reshaped to `[shape[0], -1]`, side by side."""

    def initialize(requested, dtype=None):
        del requested  # always `shape`
        # An initializer instance per block: one unseeded instance repeats its draw.
        draws = [tf.keras.initializers.GlorotUniform()(s, dtype=dtype) for s in shapes]
        blocks = [tf.reshape(d, [shape[0], -1]) for d in draws]
        return tf.concat(blocks, axis=1)

    return initialize
