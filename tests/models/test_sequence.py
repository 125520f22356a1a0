"""The self-attention history encoder: what it reads of a history, and what it ignores."""

import numpy as np
import pytest
import tensorflow as tf

from models.sequence import SequenceEncoder, positions_from_end


def test_positions_count_kept_items_back_from_the_latest():
    mask = tf.constant([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    assert positions_from_end(mask).numpy().tolist() == [
        [2, 1, 0, -1],
        [2, -1, 1, 0],
        [-1, -1, -1, -1],
    ]


def _encoder(length=3, seed=0):
    tf.keras.utils.set_random_seed(seed)
    encoder = SequenceEncoder(length, blocks=2, heads=2, dropout=0.5)
    encoder(tf.zeros([1, 1, 8]), tf.ones([1, 1]))
    return encoder


def test_padding_holes_and_items_past_the_window_change_nothing():
    """A history is read as its latest `length` kept items: pads after it, dropped entries
    inside it (the serving mask's repeated ids) and older items do not move the output."""
    encoder = _encoder(length=3)
    rng = np.random.default_rng(1)
    items = tf.constant(rng.normal(size=(1, 5, 8)), tf.float32)
    latest_three = encoder(items[:, 2:], tf.ones([1, 3])).numpy()
    # The same three latest items after two older ones, then two pads.
    longer = tf.concat([items, tf.zeros([1, 2, 8])], axis=1)
    mask = tf.constant([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(encoder(longer, mask).numpy(), latest_three, atol=1e-5)
    # A dropped entry between kept ones: the window slides past it.
    holed = tf.concat([items[:, :3], tf.ones([1, 1, 8]) * 9.0, items[:, 3:]], axis=1)
    mask = tf.constant([[1.0, 1.0, 1.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(encoder(holed, mask).numpy(), latest_three, atol=1e-5)


def test_order_matters_and_an_empty_history_gives_zeros():
    encoder = _encoder()
    rng = np.random.default_rng(2)
    items = tf.constant(rng.normal(size=(1, 3, 8)), tf.float32)
    forward = encoder(items, tf.ones([1, 3])).numpy()
    backward = encoder(items[:, ::-1], tf.ones([1, 3])).numpy()
    assert not np.allclose(forward, backward, atol=1e-3)
    empty = encoder(items, tf.zeros([1, 3])).numpy()
    np.testing.assert_array_equal(empty, 0.0)
    assert encoder(tf.zeros([2, 0, 8]), tf.zeros([2, 0])).numpy().shape == (2, 8)


def test_dropout_only_in_training():
    encoder = _encoder()
    items = tf.constant(np.random.default_rng(3).normal(size=(4, 3, 8)), tf.float32)
    mask = tf.ones([4, 3])
    inference = [encoder(items, mask).numpy() for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    assert not np.allclose(encoder(items, mask, training=True).numpy(), inference[0])


def test_heads_must_divide_the_size():
    with pytest.raises(ValueError, match="history_heads"):
        SequenceEncoder(3, heads=3)(tf.zeros([1, 2, 8]), tf.ones([1, 2]))


def test_the_last_block_computes_the_latest_position_as_the_full_block_would():
    """The reference runs every block over every position, then reads the latest kept one."""
    encoder = _encoder(length=4)
    rng = np.random.default_rng(4)
    vectors = tf.constant(rng.normal(size=(2, 5, 8)), tf.float32)
    mask = tf.constant([[1.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0, 1.0]])
    from_end = positions_from_end(mask)
    keep = (from_end >= 0) & (from_end < 4)
    keep_f = tf.cast(keep, tf.float32)[..., tf.newaxis]
    x = (vectors + tf.gather(encoder.position, tf.maximum(from_end, 0))) * keep_f
    pairs = keep[:, tf.newaxis, :] & keep[:, :, tf.newaxis]
    for i in range(encoder.blocks):
        h = encoder.attention_norm[i](x)
        x += encoder.attention[i](h, pairs)
        x += encoder.ffn[i](encoder.ffn_norm[i](x))
        x *= keep_f
    full = encoder.output_norm(x).numpy()
    latest = [full[0, 3], full[1, 4]]
    np.testing.assert_allclose(encoder(vectors, mask).numpy(), latest, atol=1e-5)
