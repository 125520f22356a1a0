"""Fused attention: standard multi-head attention's numbers, and the latest row alone."""

import numpy as np
import pytest
import tensorflow as tf

from models.attention import Attention


def _reference(layer: Attention, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per head: softmax(q·kᵀ/√d) over the readable inputs, times v; then the output product."""
    dim, heads = layer.dim, layer.heads
    kernel, bias = layer.qkv_kernel.numpy(), layer.qkv_bias.numpy()
    q, k, v = np.split(x @ kernel + bias, 3, axis=-1)
    d = dim // heads
    out = np.zeros_like(q)
    for b in range(x.shape[0]):
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            scores = q[b, :, cols] @ k[b, :, cols].T / np.sqrt(d)
            scores = np.where(mask[b], scores, -np.inf)
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            out[b, :, cols] = weights @ v[b, :, cols]
    return out @ layer.output_kernel.numpy() + layer.output_bias.numpy()


@pytest.mark.parametrize("heads", [1, 2])
def test_matches_standard_attention_and_reads_only_what_the_mask_allows(heads):
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 8)).astype(np.float32)
    mask = rng.random((2, 5, 5)) < 0.6
    mask[:, :, 0] = True  # every query reads something
    layer = Attention(heads)
    got = layer(tf.constant(x), tf.constant(mask)).numpy()
    np.testing.assert_allclose(got, _reference(layer, x, mask), atol=1e-5)
    # An input that no query may read changes no other position's output.
    mask[:, :, 3] = False
    before = layer(tf.constant(x), tf.constant(mask)).numpy()
    x[:, 3] += 5.0
    after = layer(tf.constant(x), tf.constant(mask)).numpy()
    others = [0, 1, 2, 4]
    np.testing.assert_allclose(after[:, others], before[:, others], atol=1e-5)


def test_the_latest_row_alone_equals_the_full_products_last_row():
    tf.keras.utils.set_random_seed(1)
    x = tf.constant(np.random.default_rng(1).normal(size=(3, 6, 8)), tf.float32)
    mask = tf.constant(np.random.default_rng(2).random((3, 6, 6)) < 0.7) | tf.eye(6, dtype=tf.bool)
    layer = Attention(2)
    full = layer(x, mask).numpy()
    latest = layer(x, mask[:, -1:], latest_only=True).numpy()
    np.testing.assert_allclose(latest[:, 0], full[:, -1], atol=1e-5)


def test_heads_must_divide_the_size():
    with pytest.raises(ValueError, match="history_heads"):
        Attention(3)(tf.zeros([1, 2, 8]), tf.ones([1, 2, 2], tf.bool))
