"""The partitioned index's served search against a NumPy reference of it (centroids' top probes,
their members, exact top-k with exclusions) over a grid of sizes and probes, by the executor and
compiled with XLA; with every partition probed, against exact retrieval itself, ties included.
(The k-means behind it: tests/serving/test_partitions.py; in the exported model:
tests/serving/test_partitioned_export.py.)"""

import numpy as np
import pytest
import tensorflow as tf

from models.query_blend import blend_query, text_index
from serving.core import top_k_excluding
from serving.partitions import build_partitions
from serving.probe import PartitionedIndex, blend_candidates, top_by_row
from serving.top_k import NEG


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _search(index, query, count, rows, mask, jit):
    """The search as the executor runs it, or compiled with XLA (count static)."""
    run = tf.function(lambda q, r, m: index.search(q, count, r, m), jit_compile=jit)
    scores, found = run(tf.constant(query), tf.constant(rows, tf.int32), tf.constant(mask))
    return scores.numpy(), found.numpy()


def _reference(parts, probes, query, count, rows, mask):
    """Per request, the real items of the NumPy search: the `probes` centroids of largest dot
    product (ties: the lower partition), their members less the masked rows, by score and
    then catalog row, the first `count`."""
    answers = []
    for b, q in enumerate(query.astype(np.float64)):
        probed = np.argsort(-(parts.centroids @ q), kind="stable")[:probes]
        members = np.concatenate(
            [parts.rows[parts.offsets[p] : parts.offsets[p + 1]] for p in probed]
        )
        members = np.setdiff1d(members, rows[b][mask[b]])
        scores = parts.vectors[np.argsort(parts.rows)][members] @ q
        order = np.lexsort((members, -scores))[:count]
        answers.append((scores[order], members[order]))
    return answers


def _history(parts, probed_partition_rows, n_items, rng, batch, width=12):
    """Rows to exclude: most of a partition the requests probe (a partition the history nearly
    empties), others anywhere, -1s (ids outside the catalog) and unmasked ones."""
    rows = rng.integers(-1, n_items, size=(batch, width)).astype(np.int32)
    rows[:, : len(probed_partition_rows)] = probed_partition_rows[:width]
    mask = (rows >= 0) & (rng.random((batch, width)) < 0.85)
    return rows, mask


def _assert_matches(got, answers, count):
    scores, found = got
    for b, (want_scores, want_rows) in enumerate(answers):
        real = len(want_rows)
        np.testing.assert_array_equal(found[b, :real], want_rows)
        np.testing.assert_allclose(scores[b, :real], want_scores, rtol=1e-5, atol=1e-6)
        assert (scores[b, real:] == NEG).all() and real == min(count, real)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("n", [50, 1000, 5000])
def test_the_search_is_the_numpy_reference_over_sizes_and_probes(n, jit):
    rng = np.random.default_rng(n)
    vectors = _unit(rng.normal(size=(n, 16)))
    parts = build_partitions(vectors)
    query = rng.normal(size=(4, 16)).astype(np.float32)
    top = np.argmax(query[0] @ parts.centroids.T)  # request 0's first probe
    count = 5 if n == 50 else 20
    for probes in sorted({1, 2, parts.count // 2}):
        index = PartitionedIndex(parts, probes)
        first = parts.rows[parts.offsets[top] : parts.offsets[top + 1]]
        rows, mask = _history(parts, first[:-1], n, rng, len(query))
        got = _search(index, query, count, rows, mask, jit)
        _assert_matches(got, _reference(parts, probes, query, count, rows, mask), count)


@pytest.mark.parametrize("jit", [False, True])
def test_a_probed_partition_the_history_empties_leaves_the_rest_to_the_others(jit):
    """Two probes, the first partition wholly excluded: every item comes from the second; with
    one probe, nothing is left, and every slot is `NEG`."""
    rng = np.random.default_rng(1)
    vectors = _unit(rng.normal(size=(400, 8)))
    parts = build_partitions(vectors, partitions=20)
    query = parts.centroids[:1] * 3.0  # partition 0 first
    members = parts.rows[parts.offsets[0] : parts.offsets[1]]
    rows, mask = members[np.newaxis], np.ones((1, len(members)), bool)
    count = min(5, int(parts.sizes.min()))
    for probes, real in ((2, count), (1, 0)):
        got = _search(PartitionedIndex(parts, probes), query, count, rows, mask, jit)
        answers = _reference(parts, probes, query, count, rows, mask)
        assert len(answers[0][1]) == real
        _assert_matches(got, answers, count)
        assert not set(got[1][0, :real]) & set(members)


def _dyadic_catalog(rng, n: int, dim: int = 6) -> np.ndarray:
    """Vectors of quarters, some rows repeated: every dot product with a query of quarters is
    exact in float32, whichever kernel sums it, so equal items tie exactly in both searches."""
    vectors = rng.integers(-4, 5, size=(n, dim)) / 4.0
    copies = rng.integers(0, n, size=n // 4)
    vectors[rng.integers(0, n, size=n // 4)] = vectors[copies]
    vectors[np.abs(vectors).sum(axis=1) == 0, 0] = 1.0
    return vectors.astype(np.float32)


@pytest.mark.parametrize("jit", [False, True])
def test_probing_every_partition_is_exact_retrieval_ties_included(jit):
    rng = np.random.default_rng(7)
    n, count = 600, 25
    vectors = _dyadic_catalog(rng, n)
    parts = build_partitions(vectors, partitions=24)
    index = PartitionedIndex(parts, parts.count)
    query = rng.integers(-4, 5, size=(5, vectors.shape[1])).astype(np.float32) / 4.0
    rows = rng.integers(-1, n, size=(5, 30)).astype(np.int32)
    mask = (rows >= 0) & (rng.random(rows.shape) < 0.7)
    exact = top_k_excluding(tf.constant(query @ vectors.T), count, rows, tf.constant(mask))
    got_scores, got_rows = _search(index, query, count, rows, mask, jit)
    np.testing.assert_array_equal(got_rows, exact[1].numpy())
    np.testing.assert_array_equal(got_scores, exact[0].numpy())
    # The catalog has ties, some of them at the cut of `count`:
    full = query @ vectors.T
    assert any(len(np.unique(r)) < n for r in full)
    assert any((full[b] == got_scores[b, -1]).sum() > 1 for b in range(len(query)))


def test_a_dynamic_count_and_a_batch_of_no_rows():
    rng = np.random.default_rng(2)
    vectors = _unit(rng.normal(size=(300, 8)))
    parts = build_partitions(vectors)
    index = PartitionedIndex(parts, 3)
    query = rng.normal(size=(2, 8)).astype(np.float32)
    rows, mask = np.full((2, 1), -1, np.int32), np.zeros((2, 1), bool)
    scores, found = index.search(tf.constant(query), tf.constant(7), rows, mask)
    assert scores.shape == found.shape == (2, 7)
    _assert_matches((scores.numpy(), found.numpy()), _reference(parts, 3, query, 7, rows, mask), 7)
    empty = index.search(
        tf.zeros([0, 8]), tf.constant(0), tf.zeros([0, 3], tf.int32), tf.zeros([0, 3], tf.bool)
    )
    assert empty[0].shape == empty[1].shape == (0, 0)


def test_probes_are_at_least_one_and_at_most_every_partition():
    parts = build_partitions(_unit(np.random.default_rng(0).normal(size=(100, 4))))
    assert PartitionedIndex(parts, 10_000).probes == parts.count
    with pytest.raises(ValueError, match=r"probes must be at least 1 \(got 0\)"):
        PartitionedIndex(parts, 0)


def test_equal_scores_keep_the_lower_row_first():
    # Scores 3, 5, 3, 3 at rows 9, 4, 2, 7: the 5 (row 4), then of the three 3s rows 2 and 7,
    # though row 9 comes first in the columns.
    scores = tf.constant([[3.0, 5.0, 3.0, 3.0]])
    rows = tf.constant([[9, 4, 2, 7]])
    values, found = top_by_row(scores, rows, 3)
    assert values.numpy().tolist() == [[5.0, 3.0, 3.0]] and found.numpy().tolist() == [[4, 2, 7]]


def test_the_candidates_blend_is_the_catalogs_blend_at_their_rows():
    """Request 0 has a query, request 1 none (its scores unchanged); row -1 is padding."""
    rng = np.random.default_rng(4)
    texts = text_index(rng.normal(size=(30, 5)))
    model = tf.constant(rng.normal(size=(2, 30)), tf.float32)
    embedding = tf.constant(np.stack([rng.normal(size=5), np.zeros(5)]), tf.float32)
    rows = np.array([[3, 0, 29, -1], [5, 6, 7, -1]], np.int32)
    picked = tf.gather(model, np.maximum(rows, 0), batch_dims=1)
    got = blend_candidates(picked, tf.constant(rows), embedding, texts, 0.8).numpy()
    whole = blend_query(model, embedding, texts, 0.8).numpy()
    want = np.take_along_axis(whole, np.maximum(rows, 0), axis=1)
    np.testing.assert_allclose(got[:, :3], want[:, :3], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[1], picked.numpy()[1])
