"""Offline metrics on tiny cases computed by hand (the arithmetic is in the comments)."""

import math

import numpy as np
import pytest

from models import metrics as m


def test_ranking_metrics_by_hand():
    ranks = np.array([1, 3, 12, 60])
    assert m.recall_at_k(ranks, 10) == 0.5  # ranks 1 and 3
    assert m.recall_at_k(ranks, 100) == 1.0
    # NDCG@10: (1/log2(2) + 1/log2(4) + 0 + 0) / 4 = (1 + 0.5) / 4
    assert m.ndcg_at_k(ranks, 10) == pytest.approx(0.375)
    # MRR: (1 + 1/3 + 1/12 + 1/60) / 4
    assert m.mrr(ranks) == pytest.approx((1 + 1 / 3 + 1 / 12 + 1 / 60) / 4)
    assert m.recall_at_k(np.array([]), 10) == 0.0


def test_user_hit_rate_counts_users_not_events():
    ranks = np.array([1, 50, 50, 2])
    users = np.array(["a", "a", "b", "c"])
    assert m.user_hit_rate_at_k(ranks, users, 10) == pytest.approx(2 / 3)  # a and c hit, b not


def test_coverage_novelty_and_long_tail():
    topk = np.array([[0, 1], [0, 2]])
    assert m.catalog_coverage(topk, 5) == pytest.approx(3 / 5)
    probability = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])
    # -log2: 1, 1, 2, 3 → mean of [1, 2, 1, 3] = 1.75
    assert m.novelty(topk, probability) == pytest.approx(1.75)
    counts = np.array([100, 50, 10, 5, 1])  # head = top 20% = item 0
    assert m.long_tail_share(topk, counts) == pytest.approx(0.5)


def test_embedding_ild_by_hand():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    has = np.array([1.0, 1.0, 1.0, 0.0])
    # list (0, 1): cosine 0 → distance 1. list (0, 2): cosine 1/√2 → 1 - 0.7071.
    # list (2, 3): item 3 has no vector → one item left, skipped.
    got = m.embedding_ild(np.array([[0, 1], [0, 2], [2, 3]]), vectors, has)
    assert got == pytest.approx((1 + 1 - 1 / math.sqrt(2)) / 2)


def test_category_ild_by_hand():
    categories = [[0], [0, 1], [2], []]
    # (0, 1): Jaccard 1/2 → 0.5; (0, 2): 0 → 1; (1, 2): 0 → 1; mean over 3 pairs = 2.5/3
    assert m.category_ild(np.array([[0, 1, 2]]), categories) == pytest.approx(2.5 / 3)
    # two items without categories are not different from each other
    assert m.category_ild(np.array([[3, 3]]), categories) == 0.0


def test_rmse_matches_numpy():
    labels, predictions = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0])
    assert m.rmse(labels, predictions) == pytest.approx(math.sqrt((0.25 + 0 + 1) / 3))


def test_user_averages_count_each_user_once():
    # user a: ranks 1, 50, 50, 50 (recall@10 1/4); user b: rank 3 (1) → event mean 2/5, user
    # mean (1/4 + 1) / 2
    ranks = np.array([1, 50, 50, 50, 3])
    users = np.array(["a", "a", "a", "a", "b"])
    assert m.recall_at_k(ranks, 10) == pytest.approx(2 / 5)
    assert m.user_mean(m.hits_at_k(ranks, 10), users) == pytest.approx((0.25 + 1) / 2)
    # NDCG@10: a (1 + 0 + 0 + 0) / 4, b 1/log2(4) = 0.5
    assert m.user_mean(m.gains_at_k(ranks, 10), users) == pytest.approx((0.25 + 0.5) / 2)
    assert m.user_mean(np.array([]), np.array([])) == 0.0
