"""`recsys evaluate`: baselines on hand-made cases, and the metrics files of a real run."""

import json
import os
from collections import Counter

import numpy as np
import pytest

from models import evaluate, train
from models.evaluate import EvalSet, rank_by_cooccurrence, rank_by_popularity
from models.features import FeatureSpace
from pipeline.errors import DataError
from tests.models.conftest import small_config


def _space():
    return FeatureSpace(
        user_ids=["u"],
        trained_item_ids=["a", "b", "c"],
        categories=["x"],
        catalog_ids=["a", "b", "c", "d"],
        item_categories=[[0], [0], [0], [0]],
        text_embeddings=np.zeros((4, 0), np.float32),
        has_text=np.zeros(4, np.float32),
        train_counts=np.array([1, 9, 5, 0]),
    )


def _eval_set(truth, histories):
    n = len(truth)
    return EvalSet(
        np.array(["u"] * n),
        np.array(truth),
        [np.array(h) for h in histories],
        np.ones(n, np.float32),
    )


def test_most_popular_ranks_by_train_counts():
    ranking = rank_by_popularity(_space(), _eval_set([1, 0, 3], [[], [], []]))
    # popularity order: b (9), c (5), a (1), d (0)
    assert ranking.ranks.tolist() == [1, 3, 4]
    assert ranking.topk[0, :4].tolist() == [1, 2, 0, 3]


def test_cooccurrence_follows_the_history_and_falls_back_to_popularity():
    follows = {0: Counter({3: 2, 2: 1})}  # after "a": "d" twice, "c" once
    ranking = rank_by_cooccurrence(_space(), _eval_set([3, 3], [[0], []]), follows)
    assert ranking.ranks.tolist() == [1, 4]  # with history "a", "d" is first; without, last
    assert ranking.topk[0, :2].tolist() == [3, 2]


def test_evaluate_writes_metrics_report_and_plots(workspace):
    work, checkpoint = workspace
    config = small_config(work, f"text.checkpoint={checkpoint}", "train.epochs=1")
    train.train(config)
    out = evaluate.evaluate(config)
    folder = config.step_dir(evaluate.STEP)
    with open(os.path.join(folder, "metrics.json")) as f:
        saved = json.load(f)
    for key in (
        "recall@50",
        "ndcg@10",
        "top_100_accuracy",
        "rmse",
        "cold_start_recall@50",
        "ild@10",
        "mrr",
        "coverage@10",
        "novelty@10",
        "long_tail_share@10",
    ):
        assert key in saved and saved[key] == pytest.approx(out[key])
    assert set(saved["baselines"]) == {"most_popular", "cooccurrence"}
    assert saved["baselines"]["most_popular"]["recall@100"] <= 1.0
    assert saved["eval_events"] > 0
    for name in ("report.md", "metrics_by_k.png", "compare.png"):
        assert os.path.getsize(os.path.join(folder, name)) > 0


def test_evaluate_needs_a_trained_model(tmp_path, workspace):
    work, checkpoint = workspace
    config = small_config(work, f"text.checkpoint={checkpoint}", f"work_dir={tmp_path}")
    with pytest.raises(DataError):
        evaluate.evaluate(config)
