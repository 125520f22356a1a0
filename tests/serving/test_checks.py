"""The request checks alone, run eagerly: a passing check is silent, a failing one is an
INVALID_ARGUMENT that names the argument (each signature's: tests/serving/test_module.py)."""

import pytest
import tensorflow as tf

from serving.checks import check_batch, check_range, checked_ranks


def test_check_range_passes_inside_and_names_the_argument_outside():
    check_range(tf.constant([1, 3]), 1, 3, "k")
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be in") as e:
        check_range(tf.constant([1, 4]), 1, 3, "k")
    assert "got " in e.value.message


def test_check_batch_names_the_input_with_too_few_rows():
    check_batch("k", tf.constant([1, 2]), tf.constant(2))
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must have one row per request"):
        check_batch("k", tf.constant([1]), tf.constant(2))


def test_checked_ranks_names_the_input_of_another_rank():
    k, lam = tf.constant([3]), tf.constant([0.5])
    ids, relevance = tf.constant([["a", "b"]]), tf.constant([[0.2, 0.1]])
    assert len(checked_ranks("mmr", ids, relevance, k, lam)) == 4
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"k must be \[batch\], rank 1"):
        checked_ranks("mmr", ids, relevance, tf.constant([[3]]), lam)
