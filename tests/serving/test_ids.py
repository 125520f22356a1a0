"""Id lists as TF Serving pads them: the first occurrence of each id, "" ignored, by both ways
(pairwise comparison for short rows, sorting for long ones)."""

import numpy as np
import pytest
import tensorflow as tf

from serving.ids import first_occurrences


@pytest.mark.parametrize("max_length", [4, 1000])  # pairwise comparison, then sorting
def test_first_occurrences_ignore_padding_and_repeats(max_length):
    ids = tf.constant([["a", "b", "a", "a"], ["", "c", "c", ""], ["d", "e", "f", "g"]])
    assert first_occurrences(ids, max_length).numpy().tolist() == [
        [True, True, False, False],
        [False, True, False, False],
        [True, True, True, True],
    ]


@pytest.mark.parametrize("width", [0, 1, 37])
def test_first_occurrences_ways_agree(width):
    rng = np.random.default_rng(width)
    ids = tf.constant(rng.choice(["", "a", "b", "c", "d", "e"], size=(3, width)), tf.string)
    pairwise = first_occurrences(ids, 8).numpy()
    sorting = first_occurrences(ids, 1000).numpy()
    np.testing.assert_array_equal(pairwise, sorting)
    for row, flags in zip(ids.numpy(), pairwise, strict=True):
        seen = set()
        for item, flag in zip(row, flags, strict=True):
            assert flag == (item != b"" and item not in seen)
            seen.add(item)
