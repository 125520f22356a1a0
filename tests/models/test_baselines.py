"""The evaluation baselines against NumPy references and tiny cases computed by hand."""

import numpy as np
import pytest

from models import baselines as b


def _interactions(seed, users=30, items=12, density=0.3):
    rng = np.random.default_rng(seed)
    x = (rng.random((users, items)) < density).astype(np.float64)
    u, i = np.nonzero(x)
    return x, u, i


@pytest.mark.parametrize("seed", range(4))
def test_gram_matrix_is_xtx_of_the_binary_matrix(seed, monkeypatch):
    x, u, i = _interactions(seed)
    monkeypatch.setattr(b, "_CHUNK", 5 * x.shape[1])  # several user blocks
    repeated_u, repeated_i = np.concatenate([u, u[:7]]), np.concatenate([i, i[:7]])
    np.testing.assert_allclose(b.gram_matrix(repeated_u, repeated_i, x.shape[1]), x.T @ x)


@pytest.mark.parametrize("seed,l2", [(0, 1.0), (1, 10.0), (2, 500.0)])
def test_ease_is_the_constrained_least_squares_solution(seed, l2):
    """Each column of B solves min ||X_j − X b||² + λ||b||² with b_j = 0: the ridge regression
    of item j on the other items, which the closed form must reproduce."""
    x, u, i = _interactions(seed)
    weights = b.ease_weights(b.gram_matrix(u, i, x.shape[1]), l2)
    n = x.shape[1]
    for j in range(n):
        others = [c for c in range(n) if c != j]
        xo = x[:, others]
        ridge = np.linalg.solve(xo.T @ xo + l2 * np.eye(n - 1), xo.T @ x[:, j])
        np.testing.assert_allclose(weights[others, j], ridge, atol=1e-9)
        assert weights[j, j] == 0.0


def test_ease_scores_are_the_history_row_sums():
    x, u, i = _interactions(5)
    gram = b.gram_matrix(u, i, x.shape[1])
    weights = b.ease_weights(gram, 3.0)
    scores = b.ease_scorer(gram, 3.0)([np.array([1, 4]), np.array([], np.int64)])
    np.testing.assert_allclose(scores[0], weights[1] + weights[4])
    np.testing.assert_allclose(scores[1], 0.0)


def test_item_knn_sums_user_cosines_of_the_history():
    x, u, i = _interactions(6)
    scores = b.item_knn_scorer(b.gram_matrix(u, i, x.shape[1]))([np.array([0, 3])])[0]
    for j in range(x.shape[1]):
        expected = 0.0
        for h in (0, 3):
            if h != j and x[:, h].any() and x[:, j].any():
                expected += x[:, h] @ x[:, j] / np.linalg.norm(x[:, h]) / np.linalg.norm(x[:, j])
        assert scores[j] == pytest.approx(expected)


def test_item_knn_by_hand():
    # users: {a, b}, {a, b}, {a, c}: cos(a, b) = 2 / (√3·√2), cos(a, c) = 1 / √3, cos(b, c) = 0
    users, items = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 0, 2])
    scores = b.item_knn_scorer(b.gram_matrix(users, items, 3))([np.array([0])])[0]
    np.testing.assert_allclose(scores, [0.0, 2 / np.sqrt(6), 1 / np.sqrt(3)])


def test_cooccurrence_follows_the_history_and_falls_back_to_popularity():
    # train events: d after a (twice), c after a (once, "a" twice in that history: counts once)
    follows = b.follow_counts(
        history_items=np.array([0, 0, 0, 0]),
        event_rows=np.array([0, 1, 2, 2]),
        event_items=np.array([3, 3, 2]),
        n_items=4,
    )
    counts = np.array([1, 9, 5, 0])
    scores = b.cooccurrence_scorer(follows, counts)([np.array([0, 0]), np.array([], np.int64)])
    assert np.argsort(-scores[0])[:2].tolist() == [3, 2]  # 2 + tiebreak, 1 + tiebreak
    assert scores[0, 3] == pytest.approx(2 + 0 / 10)
    assert np.argsort(-scores[1]).tolist() == [1, 2, 0, 3]  # popularity: b, c, a, d


def test_popularity_gives_everyone_the_train_counts():
    scores = b.popularity_scorer(np.array([1, 9, 5, 0]))([np.array([2]), np.array([0, 1])])
    np.testing.assert_array_equal(scores, [[1, 9, 5, 0], [1, 9, 5, 0]])


def test_content_ranks_by_cosine_to_the_mean_history_text_and_textless_items_last():
    text = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    has_text = np.array([1.0, 1.0, 1.0, 0.0])
    scores = b.content_scorer(text, has_text)([np.array([0, 3]), np.array([0, 1])])
    # history {a, d}: d has no text, the mean is a's unit vector (1, 0)
    np.testing.assert_allclose(scores[0], [1.0, 0.0, 1 / np.sqrt(2), b.NO_TEXT])
    # history {a, b}: mean of (1, 0) and (0, 1) → (1, 1)/√2
    np.testing.assert_allclose(scores[1][:3], [1 / np.sqrt(2), 1 / np.sqrt(2), 1.0])
    assert scores[1][3] == b.NO_TEXT


def test_history_row_sums_match_the_dense_product_over_many_queries():
    rng = np.random.default_rng(9)
    weights = rng.normal(size=(15, 15))
    histories = [rng.integers(0, 15, size=rng.integers(0, 6)) for _ in range(100)]  # some empty
    expected = b._history_matrix(histories, 15) @ weights
    np.testing.assert_allclose(b._row_sum_scorer(weights)(histories), expected)
