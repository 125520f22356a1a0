"""The many-negative retrieval losses against hand-computed softmaxes."""

import math

import numpy as np
import tensorflow as tf

from models.softmax import catalog_softmax_loss, sampled_softmax_loss, sampling_log_probability


def _cross_entropy(logits, target):
    logits = np.asarray(logits, np.float64)
    return -(logits[target] - np.log(np.exp(logits).sum()))


def test_catalog_softmax_by_hand_and_items_without_events_are_no_negatives():
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    table = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]])
    trained = tf.constant([True, True, True, False])  # item 3 has no train events
    loss = catalog_softmax_loss(query, table, tf.constant([0, 2]), trained, 0.5).numpy()
    cosines = np.array([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]]) / 0.5  # item 3 left out
    expected = np.mean([_cross_entropy(cosines[0], 0), _cross_entropy(cosines[1], 2)])
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # A positive without train events (a cold item) still counts as the positive.
    cold = catalog_softmax_loss(query[:1], table, tf.constant([3]), trained, 0.5).numpy()
    np.testing.assert_allclose(cold, _cross_entropy(np.array([0.8, 1.0, 0.0, 0.6]) / 0.5, 0))


def test_catalog_softmax_weights_rows():
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    table = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    args = (query, table, tf.constant([0, 0]), tf.constant([True, True]), 1.0)
    rows = [_cross_entropy([1.0, 0.0], 0), _cross_entropy([0.0, 1.0], 0)]
    weighted = catalog_softmax_loss(*args, weight=tf.constant([2.0, 0.0])).numpy()
    np.testing.assert_allclose(weighted, (2 * rows[0]) / 2, rtol=1e-5)


def test_sampling_probability_follows_counts_to_the_power():
    log_p = sampling_log_probability(tf.constant([4.0, 1.0, 0.0]), power=0.5).numpy()
    np.testing.assert_allclose(np.exp(log_p), [2 / 3, 1 / 3, 0.0], atol=1e-6)


def test_sampled_softmax_is_logq_corrected_and_drops_accidental_hits():
    """Two items drawn with probability 1/2 each, a pool of 4 draws. Every drawn copy of the
    positive is left out, every other draw counts with its logit minus log(4 · 1/2)."""
    tf.keras.utils.set_random_seed(0)
    table = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    query = tf.constant([[1.0, 0.0]])
    log_p = sampling_log_probability(tf.constant([1.0, 1.0]), power=1.0)
    drawn = []

    def encode(rows):
        drawn.append(rows.numpy())
        return tf.gather(table, rows)

    loss = sampled_softmax_loss(query, table[:1], tf.constant([0]), encode, log_p, 4, 1.0).numpy()
    correction = math.log(4 * 0.5)
    negatives = [0.0 - correction for row in drawn[0] if row != 0]
    expected = _cross_entropy([1.0 - correction, *negatives], 0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_a_large_pool_estimates_the_softmax_over_every_other_item():
    """Drawn uniformly with replacement, each item's copies in the pool, each corrected by the
    log of its expected count, add up to its own exp(logit): the pool's partition estimates
    the sum over every item but the positive (whose copies are no negatives)."""
    tf.keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    n, pool, temperature = 50, 50_000, 0.2
    table = tf.math.l2_normalize(tf.constant(rng.normal(size=(n, 8)), tf.float32), axis=1)
    query = tf.math.l2_normalize(tf.constant(rng.normal(size=(16, 8)), tf.float32), axis=1)
    targets = rng.integers(0, n, size=16)
    sampled = sampled_softmax_loss(
        query,
        tf.gather(table, targets),
        tf.constant(targets, tf.int32),
        lambda rows: tf.gather(table, rows),
        sampling_log_probability(tf.ones([n]), power=1.0),
        pool,
        temperature,
    ).numpy()
    logits = (query.numpy() @ table.numpy().T) / temperature
    correction = math.log(pool / n)
    expected = []
    for row, target in enumerate(targets):
        positive = logits[row, target] - correction
        others = np.delete(logits[row], target)
        expected.append(-positive + np.log(np.exp(positive) + np.exp(others).sum()))
    np.testing.assert_allclose(sampled, np.mean(expected), rtol=0.02)
