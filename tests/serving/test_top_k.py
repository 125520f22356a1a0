"""The blocked top-k against `tf.math.top_k`: the same values, indices and order, ties included,
by the executor and compiled with XLA."""

import numpy as np
import pytest
import tensorflow as tf

from serving import top_k
from serving.core import NEG  # what retrieval writes over excluded items
from serving.top_k import block_width, blocked_top_k


def _both(scores: np.ndarray, count: int, block: int):
    """(blocked, plain) results, each as NumPy (values, indices), for both runtimes."""
    scores = tf.constant(scores, tf.float32)
    plain = tf.math.top_k(scores, k=count)
    expected = (plain.values.numpy(), plain.indices.numpy())
    results = []
    for jit in (False, True):
        run = tf.function(lambda s: blocked_top_k(s, count, block), jit_compile=jit)
        values, indices = run(scores)
        results.append((values.numpy(), indices.numpy()))
    return results, expected


def _assert_same(scores, count, block):
    results, (values, indices) = _both(scores, count, block)
    for got_values, got_indices in results:
        np.testing.assert_array_equal(got_indices, indices)
        np.testing.assert_array_equal(got_values, values)


@pytest.mark.parametrize("n, count, block", [(1000, 10, 10), (1003, 10, 10), (997, 20, 7)])
def test_matches_top_k_on_distinct_scores(n, count, block):
    rng = np.random.default_rng(n + block)
    _assert_same(rng.normal(size=(3, n)), count, block)


@pytest.mark.parametrize("levels", [1, 2, 5])
@pytest.mark.parametrize("n, block", [(600, 8), (605, 8)])
def test_ties_keep_the_lowest_index_first(levels, n, block):
    """Scores from a few values: most of the top is ties, across and within blocks."""
    rng = np.random.default_rng(levels)
    scores = rng.integers(0, levels, size=(2, n)).astype(np.float32)
    _assert_same(scores, 40, block)


def test_ties_across_blocks_ranked_apart_by_their_maxima():
    """Blocks of 4: the 3s sit in blocks whose maxima are 3, 5, 9 and 3, so the kept blocks
    come out of the first top-k in another order than their indices. The top 4 is 9, 5 and the
    two 3s of the lowest indices (1 and 5), not the 3 next to the 9."""
    scores = np.zeros((1, 40), np.float32)
    scores[0, [1, 4, 5, 8, 9, 13]] = [3, 5, 3, 9, 3, 3]
    _assert_same(scores, 4, 4)
    assert tf.math.top_k(scores, k=4).indices.numpy().tolist() == [[8, 4, 1, 5]]


def test_excluded_items_come_last_and_only_when_needed():
    """A row with most scores written over by retrieval's exclusion value: the excluded ones
    fill the top only after every other score, lowest index first."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(2, 500)).astype(np.float32)
    scores[0, 20:] = NEG  # 20 left: the top 30 ends with 10 excluded items
    scores[1, ::3] = NEG
    _assert_same(scores, 30, 6)


def test_the_last_short_block_pads_with_nothing_the_top_returns():
    """n = 101 in blocks of 10: the last block has one score; its nine missing members are
    never returned, even where that one score is the best or the scores are all equal."""
    scores = np.zeros((2, 101), np.float32)
    scores[0, 100] = 5.0
    _assert_same(scores, 11, 10)


def test_block_width_balances_the_two_top_ks_and_skips_small_catalogs():
    assert block_width(100_000, 200) == 22  # 4,546 block maxima, then 4,400 members
    assert block_width(50_000, 200) is None  # a plain top-k costs less
    assert block_width(100_000, 0) is None


def test_block_width_never_leaves_fewer_blocks_than_the_count(monkeypatch):
    monkeypatch.setattr(top_k, "_MIN_SCORES_PER_PICK", 1)
    for items in range(1, 200):
        for count in (1, 5, 30):
            width = block_width(items, count)
            assert width is None or -(-items // width) >= count


def test_more_picks_than_blocks_is_an_error():
    with pytest.raises(ValueError, match="count"):
        blocked_top_k(tf.zeros([1, 100]), 30, 10)
