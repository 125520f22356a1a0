"""The export-time index arithmetic: the projection MMR's similarity vectors go through.
(`build_index` over a trained model runs in tests/serving/test_module.py and the export tests.)"""

import numpy as np

from serving.index import principal_directions


def test_principal_directions_keep_the_largest_direction():
    # VᵀV = diag(9, 1, 0): the first axis carries the most of the rows' dot products.
    vectors = np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    basis = principal_directions(vectors, 1)
    assert basis.shape == (3, 1)
    np.testing.assert_allclose(np.abs(basis[:, 0]), [1.0, 0.0, 0.0], atol=1e-6)


def test_principal_directions_are_orthonormal_and_keep_dot_products_in_their_span():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 12))  # rank 4 in 12 dimensions
    basis = principal_directions(vectors, 4)
    assert basis.shape == (12, 4) and basis.dtype == np.float32
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-5)
    projected = vectors @ basis
    np.testing.assert_allclose(projected @ projected.T, vectors @ vectors.T, rtol=1e-3, atol=1e-3)


def test_no_projection_where_the_vectors_are_no_wider_than_asked():
    vectors = np.ones((3, 5), np.float32)
    np.testing.assert_array_equal(principal_directions(vectors, 5), np.eye(5))
    np.testing.assert_array_equal(principal_directions(vectors, 64), np.eye(5))
