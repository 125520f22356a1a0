"""The many-negative retrieval losses against hand-computed softmaxes."""

import math

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from models.softmax import (
    catalog_softmax_loss,
    history_columns,
    in_batch_softmax_loss,
    sampled_softmax_loss,
    sampling_log_probability,
)


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


def _unit(rng, shape):
    x = rng.normal(size=shape).astype(np.float32)
    return tf.constant(x / np.linalg.norm(x, axis=-1, keepdims=True))


def test_in_batch_softmax_equals_the_tfrs_retrieval_task():
    rng = np.random.default_rng(0)
    query, candidate = _unit(rng, (6, 4)), _unit(rng, (6, 4))
    rows = tf.constant([3, 5, 3, 7, 8, 9], tf.int64)  # rows 0 and 2 share an item
    probability = tf.constant([0.3, 0.1, 0.3, 0.2, 0.05, 0.05])
    weight = tf.constant([1.0, 2.0, 0.5, 1.0, 0.0, 1.0])
    task = tfrs.tasks.Retrieval(
        loss=tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE
        ),
        temperature=0.2,
        remove_accidental_hits=True,
    )
    expected = task(
        query,
        candidate,
        sample_weight=weight,
        candidate_sampling_probability=probability,
        candidate_ids=tf.strings.as_string(rows),
        compute_metrics=False,
        compute_batch_metrics=False,
    )
    ours = in_batch_softmax_loss(
        query, candidate, rows, 0.2, tf.math.log(probability), None, weight
    )
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5)


def test_history_items_are_no_negatives_of_their_row_only():
    rng = np.random.default_rng(1)
    query, candidate = _unit(rng, (3, 4)), _unit(rng, (3, 4))
    rows = tf.constant([4, 5, 6], tf.int64)  # catalog rows + 1
    history = tf.constant([[5, 0], [0, 0], [4, 6]], tf.int64)  # row 2 has seen items 4 and 6
    excluded = history_columns(history, rows).numpy()
    assert excluded.tolist() == [[False, True, False], [False] * 3, [True, False, True]]
    loss = in_batch_softmax_loss(query, candidate, rows, 1.0, None, tf.constant(excluded))
    logits = (query.numpy() @ candidate.numpy().T).astype(np.float64)
    by_hand = [  # row 0 without column 1; row 1 with every column; row 2 keeps its positive
        _cross_entropy(logits[0, [0, 2]], 0),
        _cross_entropy(logits[1], 1),
        _cross_entropy(logits[2, [1, 2]], 1),
    ]
    np.testing.assert_allclose(loss.numpy(), np.mean(by_hand), rtol=1e-5)


def test_catalog_softmax_leaves_each_rows_history_out_of_its_negatives():
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    table = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    trained = tf.constant([True, True, True])
    history = tf.constant([[3, 0], [0, 0]])  # row 0 has seen catalog item 2 (row + 1 = 3)
    loss = catalog_softmax_loss(query, table, tf.constant([0, 1]), trained, 1.0, None, history)
    expected = np.mean([_cross_entropy([1.0, 0.0], 0), _cross_entropy([0.0, 1.0, 0.8], 1)])
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
