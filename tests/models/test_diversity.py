"""The diversity sweep through the exported MMR (`recsys evaluate --diversity-sweep`)."""

import copy
import json
import os

import numpy as np
import yaml

from models.diversity import diversity_sweep, drop_seen, frontier_summary
from pipeline.orchestrate.cli import main


def _config_file(config, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
    return str(path)


def test_diversity_sweep_trades_ndcg_for_ild(exported):
    config = copy.deepcopy(exported[0])
    config.evaluate.exclude_seen = True  # the evaluation's protocol on the real sets
    out = diversity_sweep(config, lambdas=(1.0, 0.5, 0.0))
    assert out["exclude_seen"] and 0 < out["candidates_after_exclusion"] <= out["candidates"]
    by_lambda = {p["lambda"]: p for p in out["points"]}
    assert by_lambda[0.0]["ild@10"] > by_lambda[1.0]["ild@10"]
    assert (
        0 < out["random_lists"]["ild@10"] <= 2 and 0 < out["random_lists"]["category_ild@10"] <= 1
    )
    assert (
        by_lambda[1.0]["ndcg@10"] > 0 and by_lambda[1.0]["recall@10"] >= by_lambda[1.0]["ndcg@10"]
    )
    folder = config.step_dir("evaluation")
    assert os.path.getsize(os.path.join(folder, "diversity_frontier.png")) > 1000
    with open(os.path.join(folder, "diversity_sweep.json"), encoding="utf-8") as f:
        assert json.load(f)["summary"] == out["summary"]


def test_the_cli_prints_the_frontier_beside_random_lists(exported, tmp_path, capsys):
    config, _ = exported
    argv = ["evaluate", "--config", _config_file(config, tmp_path), "--diversity-sweep"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "random" in out and "diversity without relevance" in out
    assert "At λ = " in out and "diversity_frontier.png" in out


def test_the_sweep_drops_each_users_seen_items_before_mmr():
    ids = np.array([[b"a", b"b", b"c", b""], [b"d", b"e", b"", b""]], dtype=object)
    relevance = np.array([[1.0, 0.9, 0.8, 0.0], [1.0, 0.7, 0.0, 0.0]], np.float32)
    kept, kept_relevance = drop_seen(ids, relevance, [{b"b"}, {b"d", b"e"}])
    assert kept.tolist() == [[b"a", b"c"], [b"", b""]]
    np.testing.assert_allclose(kept_relevance, [[1.0, 0.8], [0.0, 0.0]])


def test_frontier_summary_picks_the_most_diverse_lambda_within_the_ndcg_budget():
    points = [
        {"lambda": 1.0, "ndcg@10": 0.50, "ild@10": 0.40},
        {"lambda": 0.8, "ndcg@10": 0.48, "ild@10": 0.50},  # -4%: allowed
        {"lambda": 0.6, "ndcg@10": 0.47, "ild@10": 0.60},  # -6%: not allowed
    ]
    best = frontier_summary(points)
    assert best["lambda"] == 0.8
    assert abs(best["ild_gain"] - 0.25) < 1e-9 and abs(best["ndcg_change"] + 0.04) < 1e-9
