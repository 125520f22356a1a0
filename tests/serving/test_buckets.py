"""The compiled shapes: the batch sizes the warmup compiles are the ones the batch is padded to."""

import pytest
import tensorflow as tf

from serving.buckets import MIN_BUCKET, batch_buckets, pad_batch, pad_candidates


@pytest.mark.parametrize(
    ("limit", "sizes"),
    [(1, [1]), (2, [1, 2]), (5, [1, 2, 4, 8]), (8, [1, 2, 4, 8]), (9, [1, 2, 4, 8, 16])],
)
def test_batch_buckets_go_to_the_first_power_of_two_at_least_the_limit(limit, sizes):
    assert batch_buckets(limit) == sizes


def test_every_padded_batch_is_a_bucket_and_its_extra_rows_are_zeros():
    buckets = batch_buckets(32)
    for batch in range(33):
        k = tf.range(1, batch + 1)
        history = tf.ones([batch, 3], tf.int64)
        padded_k, padded_history = pad_batch([k, history], tf.constant(batch))
        rows = padded_k.shape[0]
        assert rows in buckets, (batch, rows)  # a batch of no rows: one row of nothing
        assert padded_history.shape == [rows, 3]
        assert padded_k.numpy()[batch:].tolist() == [0] * (rows - batch)  # k = 0: asks nothing


@pytest.mark.parametrize(("n", "width"), [(0, MIN_BUCKET), (3, 16), (16, 16), (17, 32)])
def test_candidates_are_padded_to_a_power_of_two_of_at_least_min_bucket(n, width):
    rows = tf.reshape(tf.range(2 * n), [2, n])
    (padded,) = pad_candidates([rows], tf.constant(n))
    assert padded.shape == [2, width]
    assert padded.numpy()[:, n:].sum() == 0
