"""The partitioned index's export half: seeded k-means into capped partitions, their layout, and
how many partitions a request probes. (The served search over them: tests/serving/test_probe.py.)"""

import math

import numpy as np
import pytest

from serving import partitions as partitions_module
from serving.partitions import CAPACITY, build_partitions, default_partitions, probes_for


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, dim: int = 8, blobs: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(blobs, dim))
    return _unit(centers[rng.integers(0, blobs, n)] + 0.3 * rng.normal(size=(n, dim)))


def _assert_consistent(parts, vectors: np.ndarray) -> None:
    """Every item in exactly one partition, the offsets bounding non-empty partitions, the
    vectors reordered with their rows, catalog order within a partition, and `places`
    pointing back at each row's slot."""
    n = len(vectors)
    assert sorted(parts.rows.tolist()) == list(range(n))  # each item exactly once
    assert parts.offsets[0] == 0 and parts.offsets[-1] == n
    assert (parts.sizes > 0).all() and len(parts.offsets) == parts.count + 1
    assert parts.rows.dtype == parts.offsets.dtype == np.int32
    np.testing.assert_array_equal(parts.vectors, vectors[parts.rows])
    for members in np.split(parts.rows, parts.offsets[1:-1]):
        assert (np.diff(members) > 0).all()
    places = parts.places()
    partition, position = places // parts.width, places % parts.width
    np.testing.assert_array_equal(parts.rows[parts.offsets[partition] + position], np.arange(n))
    np.testing.assert_allclose(np.linalg.norm(parts.centroids, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 7, 50, 1000, 5000])
def test_every_item_lands_in_exactly_one_partition(n):
    vectors = _clustered(n)
    parts = build_partitions(vectors)
    _assert_consistent(parts, vectors)
    assert parts.count <= default_partitions(n)
    assert parts.width <= math.ceil(CAPACITY * n / default_partitions(n))


def test_the_same_seed_gives_the_same_partitions_and_another_seed_others():
    vectors = _clustered(3000)
    first, again = build_partitions(vectors, seed=3), build_partitions(vectors, seed=3)
    for name in ("centroids", "vectors", "rows", "offsets"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    other = build_partitions(vectors, seed=4)
    assert not np.array_equal(first.centroids, other.centroids)


def test_neighbours_share_a_partition_and_the_centroid_is_their_mean():
    """Three tight pairs far apart, three partitions: each pair is one partition, whose
    centroid is the pair's normalized mean."""
    base = np.eye(3, dtype=np.float32)
    vectors = _unit(np.concatenate([base, base + 0.01 * np.array([0, 1, 1], np.float32)]))
    parts = build_partitions(vectors, partitions=3)
    members = np.split(parts.rows, parts.offsets[1:-1])
    assert sorted(m.tolist() for m in members) == [[0, 3], [1, 4], [2, 5]]
    for centroid, rows in zip(parts.centroids, members, strict=True):
        np.testing.assert_allclose(centroid, _unit(vectors[rows].sum(0, keepdims=True))[0])


def test_a_clump_of_equal_vectors_is_spread_over_partitions_of_capped_size():
    """A quarter of the catalog is one vector (as cold items without text can be): plain
    k-means puts it in one partition, which every probe would then pay for; capped, it fills
    several partitions, none above `CAPACITY` × the mean."""
    vectors = _clustered(2000)
    vectors[:500] = vectors[0]
    parts = build_partitions(vectors, partitions=40)
    _assert_consistent(parts, vectors)
    assert parts.width <= math.ceil(CAPACITY * 2000 / 40)
    clump = np.isin(parts.rows, np.arange(500))
    holding = np.unique(np.searchsorted(parts.offsets, np.flatnonzero(clump), side="right") - 1)
    assert len(holding) >= 500 / parts.width


def test_items_past_their_nearest_choices_still_find_room(monkeypatch):
    """With one choice per item before the wider search, most of a clump goes there."""
    monkeypatch.setattr(partitions_module, "_CHOICES", 1)
    vectors = _clustered(600)
    vectors[:300] = vectors[0]
    _assert_consistent(build_partitions(vectors, partitions=10), vectors)


def test_zero_vectors_and_more_partitions_than_items_are_handled():
    vectors = np.zeros((5, 4), np.float32)
    vectors[0, 0] = 1.0
    parts = build_partitions(vectors, partitions=50)
    assert sorted(parts.rows.tolist()) == [0, 1, 2, 3, 4] and parts.count <= 5


def test_default_partitions_are_about_the_square_root():
    assert [default_partitions(n) for n in (1, 2, 50, 1_000_000)] == [1, 1, 7, 1000]


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match=r"partitions must be at least 1 \(got 0\)"):
        build_partitions(np.ones((3, 2), np.float32), partitions=0)
    with pytest.raises(ValueError, match=r"got shape \(0, 2\)"):
        build_partitions(np.ones((0, 2), np.float32))


def test_probes_rise_until_any_probed_partitions_hold_what_a_request_needs():
    sizes = np.array([5, 1, 9, 2, 3])  # smallest first: 1, 2, 3, 5, 9 → sums 1, 3, 6, 11, 20
    assert probes_for(sizes, asked=1, needed=1) == 1
    assert probes_for(sizes, asked=1, needed=6) == 3  # 1 + 2 + 3
    assert probes_for(sizes, asked=1, needed=7) == 4
    assert probes_for(sizes, asked=4, needed=2) == 4  # asked for more than needed
    assert probes_for(sizes, asked=9, needed=2) == 5  # at most all
    assert probes_for(sizes, asked=1, needed=21) == 5
