"""`recsys evaluate`: baselines on hand-made cases, and the metrics files of a real run."""

import json
import os
import pathlib

import pytest

from models import evaluate, train
from models.eval_data import read_events
from pipeline.core import schema
from pipeline.core.errors import DataError
from tests.models.conftest import small_config


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    """One trained model for this module's evaluations (each only reads it)."""
    import shutil

    source, checkpoint = prepared
    work = tmp_path_factory.mktemp("evaluate") / "work"
    for step in ("preprocess", "embeddings"):
        shutil.copytree(source / step, work / step)
    train.train(small_config(work, f"text.checkpoint={checkpoint}", "train.epochs=1"))
    return work, checkpoint


def test_evaluate_writes_metrics_report_and_plots(trained):
    work, checkpoint = trained
    config = small_config(work, f"text.checkpoint={checkpoint}", "train.epochs=1")
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
        "user_recall@50",
        "user_ndcg@10",
        "user_hit_rate@10",
    ):
        assert key in saved and saved[key] == pytest.approx(out[key])
    assert set(saved["baselines"]) == set(evaluate.BASELINES)
    for values in saved["baselines"].values():
        assert 0 <= values["recall@100"] <= 1.0 and "cold_start_recall@50" in values
    assert saved["eval_events"] > 0 and saved["baselines_skipped"] == {}
    for name in ("report.md", "metrics_by_k.png", "compare.png"):
        assert os.path.getsize(os.path.join(folder, name)) > 0


def test_evaluate_needs_a_trained_model(tmp_path, workspace):
    work, checkpoint = workspace
    config = small_config(work, f"text.checkpoint={checkpoint}", f"work_dir={tmp_path}")
    with pytest.raises(DataError):
        evaluate.evaluate(config)


def test_exclusion_leaves_the_seen_items_out_of_every_system(trained):
    """With `evaluate.exclude_seen`, no system recommends an item the user had an event on
    before the query, and a query whose own item was seen before counts as a miss."""
    work, checkpoint = trained
    config = small_config(
        work, f"text.checkpoint={checkpoint}", "train.epochs=1", "evaluate.exclude_seen=true"
    )
    space = train.load_feature_space(config)
    queries, _ = evaluate.eval_queries(config, space)
    assert sum(len(x) for x in queries.exclusions) > 0
    scorers, skipped = evaluate.baseline_scorers(
        config.evaluate,
        space,
        read_events(schema.pre_eval_patterns(config.step_dir("preprocess")), space.catalog_ids),
        queries,
    )
    assert skipped == {}
    from models.ranking import rank_queries

    for name, scorer in scorers.items():
        ranking = rank_queries(scorer, queries.events.items, queries.exclusions, 0, 10)
        for q, seen in enumerate(queries.exclusions):
            assert not set(ranking.topk[q].tolist()) & set(seen.tolist()), name
            if queries.events.items[q] in set(seen.tolist()):
                assert ranking.ranks[q] == len(space.catalog_ids) + 1
    out = evaluate.evaluate(config)
    assert out["exclude_seen"] and out["excluded_per_query"] > 0
    report = (pathlib.Path(config.step_dir(evaluate.STEP)) / "report.md").read_text()
    assert "excluded from every ranking" in report and "model / best baseline" in report


def test_ease_is_skipped_above_its_catalog_limit_and_the_report_says_so(trained):
    work, checkpoint = trained
    config = small_config(
        work, f"text.checkpoint={checkpoint}", "train.epochs=1", "evaluate.ease_max_items=10"
    )
    out = evaluate.evaluate(config)
    assert set(out["baselines"]) == {"most_popular", "cooccurrence", "content"}
    assert "ease_max_items" in out["baselines_skipped"]["ease"]
    report = (pathlib.Path(config.step_dir(evaluate.STEP)) / "report.md").read_text()
    assert "baseline ease not run" in report


def test_tuning_on_the_validation_slice_never_reads_the_eval_split(trained, tmp_path):
    """`evaluate.split=validation` ranks the validation events with a model that never trained
    on them; it works with the eval split gone, and refuses a model refit on validation."""
    import shutil

    work, checkpoint = trained
    copy = tmp_path / "work"
    for step in ("preprocess", "embeddings"):
        shutil.copytree(work / step, copy / step)
    shutil.rmtree(copy / "preprocess" / "eval")  # nothing of the eval split is there to read
    settings = [f"text.checkpoint={checkpoint}", "evaluate.split=validation", "train.epochs=2"]
    refit = small_config(copy, *settings, "train.early_stopping_patience=1")
    train.train(refit)
    with pytest.raises(DataError, match=r"train\.refit=false"):
        evaluate.evaluate(refit)
    config = small_config(copy, *settings, "train.early_stopping_patience=1", "train.refit=false")
    train.train(config)
    out = evaluate.evaluate(config)
    assert out["split"] == "validation" and set(out["baselines"]) == set(evaluate.BASELINES)
    counts = json.loads((copy / "preprocess" / "manifest.json").read_text())["counts"]
    assert out["eval_events"] == counts["validation"]
    assert (copy / "evaluation-validation" / "metrics.json").exists()
    assert not (copy / "evaluation").exists()  # the gate's metrics are left alone
