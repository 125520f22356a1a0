"""`rank_queries`: full-catalog ranks with exclusions and random ties, against a sort."""

import numpy as np
import pytest

from models.ranking import rank_queries


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("queries,items", [(7, 40), (600, 30)])
def test_ranks_and_top_k_agree_with_a_sort_when_scores_are_distinct(seed, queries, items):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(queries, items))
    truth = rng.integers(0, items, size=queries)
    exclusions = [rng.choice(items, size=rng.integers(0, 5), replace=False) for _ in truth]
    ranking = rank_queries(lambda rows: scores[rows], truth, exclusions, seed, 10)
    for q in range(queries):
        kept = [j for j in np.argsort(-scores[q]) if j not in set(exclusions[q])]
        expected = kept.index(truth[q]) + 1 if truth[q] in kept else items + 1
        assert ranking.ranks[q] == expected
        np.testing.assert_array_equal(ranking.topk[q], kept[:10])


def test_no_exclusions_ranks_every_item():
    scores = np.array([[0.1, 0.9, 0.5]])
    ranking = rank_queries(lambda rows: scores[rows], np.array([0]), None, 0, 3)
    assert ranking.ranks.tolist() == [3]
    assert ranking.topk.tolist() == [[1, 2, 0]]


def test_an_excluded_true_item_is_a_miss():
    scores = np.array([[0.1, 0.9, 0.5]])
    ranking = rank_queries(lambda rows: scores[rows], np.array([1]), [np.array([1])], 0, 2)
    assert ranking.ranks.tolist() == [4]  # catalog + 1: beyond every cutoff
    assert ranking.topk.tolist() == [[2, 0]]


def test_ties_are_broken_uniformly_at_random():
    """A constant scorer over 10 items puts the true item at each rank 1..10 equally often,
    not at rank 1 (ties counted in its favour) or 10."""
    n, queries = 10, 20_000
    scores = np.zeros((queries, n))
    ranking = rank_queries(lambda rows: scores[rows], np.zeros(queries, np.int64), None, 3, 5)
    counts = np.bincount(ranking.ranks, minlength=n + 1)[1:]
    assert counts.min() > 0.08 * queries and counts.max() < 0.12 * queries
    assert ranking.ranks.mean() == pytest.approx((n + 1) / 2, abs=0.1)
    again = rank_queries(lambda rows: scores[rows], np.zeros(queries, np.int64), None, 3, 5)
    np.testing.assert_array_equal(ranking.ranks, again.ranks)  # seeded


def test_ties_count_only_items_with_the_same_score():
    # true item 0 ties with item 2; item 1 is better: rank 2 or 3, never 1
    scores = np.tile([0.5, 0.9, 0.5, 0.1], (400, 1))
    ranking = rank_queries(lambda rows: scores[rows], np.zeros(400, np.int64), None, 1, 2)
    assert set(ranking.ranks.tolist()) == {2, 3}


def test_batches_hold_a_bounded_number_of_scores_and_change_no_answer(monkeypatch):
    """A large catalog streams: no batch past the first query holds more than the budget of
    scores, and ranks, ties and top-k are those of the default batches."""
    rng = np.random.default_rng(0)
    queries, items = 50, 300
    scores = rng.integers(0, 5, size=(queries, items)).astype(float)  # many ties
    truth = rng.integers(0, items, size=queries)
    exclusions = [rng.choice(items, size=3, replace=False) for _ in truth]
    before = rank_queries(lambda rows: scores[rows], truth, exclusions, 7, 10)
    monkeypatch.setattr("models.ranking._SCORES_PER_BATCH", 1000)
    sizes = []

    def score(rows):
        sizes.append(len(rows))
        return scores[rows]

    after = rank_queries(score, truth, exclusions, 7, 10)
    assert sum(sizes) == queries and max(sizes) * items <= 1000
    np.testing.assert_array_equal(after.ranks, before.ranks)
    np.testing.assert_array_equal(after.topk, before.topk)
