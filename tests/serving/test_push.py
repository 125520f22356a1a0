"""push and rollback: the gate blocks a degraded export and leaves the served versions alone;
a blessed one becomes the next served version with the deployment files; rollback restores
the previous one."""

import json
import os
import shutil

import pytest

from pipeline.core.errors import DataError
from pipeline.core.manifest import read_json
from pipeline.orchestrate.cli import main
from serving.push import (
    GateFailed,
    blessing_path,
    push,
    push_blessed,
    rollback_served,
    served_dir,
)
from serving.versions import versions
from tests.models.conftest import small_config


@pytest.fixture
def staged(exported, tmp_path):
    """A work directory whose export base holds copies of the fixture's export, with the
    metrics each test gives them."""
    _, path = exported
    config = small_config(tmp_path / "work", "gate.min_metrics={recall@50: 0.2}")
    base = os.path.join(config.serving.export_path(config.work_dir), "recommender")

    def add_export(version, metrics, profile_changes=None):
        target = os.path.join(base, str(version))
        shutil.copytree(path, target)
        with open(os.path.join(target, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        if metrics is not None and "baselines" not in metrics:  # weak baselines: beaten
            metrics = {**metrics, "baselines": {"ease": {"recall@50": 0.05, "ndcg@10": 0.01}}}
        manifest["metrics"] = metrics
        if profile_changes:
            manifest["data_profile"] = {**manifest["data_profile"], **profile_changes}
        with open(os.path.join(target, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f)

    return config, add_export


def test_the_gate_blocks_a_degraded_export_and_rollback_restores(staged, capsys, tmp_path):
    config, add_export = staged
    add_export(1, {"recall@50": 0.6, "ndcg@10": 0.3})
    first = push(config)
    assert first["version"] == 1 and versions(served_dir(config)) == [1]
    base = config.serving.base_path(config.work_dir)
    for name in ("models.config", "batching.config", "monitoring.config", "docker-compose.yml"):
        assert os.path.exists(os.path.join(base, name))

    add_export(2, {"recall@50": 0.4, "ndcg@10": 0.3})  # recall@50 down by a third
    with pytest.raises(GateFailed, match=r"recall@50 = 0\.4.*regression.*FAILED"):
        push(config)
    assert versions(served_dir(config)) == [1]

    add_export(3, {"recall@50": 0.61, "ndcg@10": 0.31})
    assert push(config)["version"] == 2
    assert rollback_served(config) == (2, 1)
    assert versions(served_dir(config)) == [1]


def test_the_cli_reports_a_failed_gate_and_exits_3(staged, capsys, tmp_path):
    config, add_export = staged
    add_export(1, {"recall@50": 0.1, "ndcg@10": 0.3})  # below the absolute minimum 0.2
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert main(["push", "--config", str(path)]) == 3
    captured = capsys.readouterr()
    assert "gate FAILED" in captured.err and not os.path.exists(served_dir(config))
    assert "recall@50 = 0.1, needs at least 0.2 (minimum), short by 0.1: FAILED" in captured.out
    assert main(["rollback", "--config", str(path)]) == 2
    assert "previous version" in capsys.readouterr().err


def test_a_model_that_loses_to_a_baseline_is_not_pushed(staged, capsys, tmp_path):
    config, add_export = staged
    baselines = {
        "most_popular": {"recall@50": 0.3, "ndcg@10": 0.1},
        "ease": {"recall@50": 0.5, "ndcg@10": 0.2},
    }
    add_export(1, {"recall@50": 0.45, "ndcg@10": 0.25, "baselines": baselines})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert main(["push", "--config", str(path)]) == 3
    out = capsys.readouterr().out
    assert not os.path.exists(served_dir(config))
    assert (
        "recall@50 = 0.45, needs at least 0.5 (baseline: 1× ease, the best baseline), "
        "short by 0.05: FAILED"
    ) in out
    assert "ndcg@10 = 0.25, needs at least 0.2 (baseline: 1× ease, the best baseline): ok" in out


def test_the_drift_check_blocks_a_run_whose_events_were_cut_by_half(staged, capsys, tmp_path):
    config, add_export = staged
    metrics = {"recall@50": 0.6, "ndcg@10": 0.3}
    add_export(1, metrics)
    assert push(config)["version"] == 1
    served = read_json(os.path.join(served_dir(config), "1", "manifest.json"))["data_profile"]
    assert served["events"] > 0

    add_export(2, metrics, {"events": served["events"] // 2})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert main(["push", "--config", str(path)]) == 3
    out = capsys.readouterr().out
    assert f"events = {served['events'] // 2}, needs at least" in out and "drift" in out
    assert versions(served_dir(config)) == [1]

    add_export(3, {"recall@50": 0.61, "ndcg@10": 0.3})  # a retrain on unchanged data
    assert push(config)["version"] == 2
    report = read_json(blessing_path(config))["report"]
    assert "popularity_shift = 0, needs at most 0.05" in report and "schema unchanged" in report


def test_push_without_an_export_or_metrics_says_what_to_run(staged, tmp_path):
    config, add_export = staged
    with pytest.raises(DataError, match="recsys export"):
        push(config)
    add_export(1, None)
    with pytest.raises(DataError, match="recsys evaluate"):
        push(config)


def test_push_blessed_takes_the_verdict_of_validate_and_refuses_a_stale_one(staged, tmp_path):
    config, add_export = staged
    add_export(1, {"recall@50": 0.6, "ndcg@10": 0.3})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert main(["validate", "--config", str(path)]) == 0
    with open(blessing_path(config), encoding="utf-8") as f:
        blessing = json.load(f)
    assert blessing["passed"] and blessing["candidate"].endswith(os.path.join("recommender", "1"))

    add_export(2, {"recall@50": 0.6, "ndcg@10": 0.3})  # newer than what was validated
    with pytest.raises(DataError, match="no longer the newest export"):
        push_blessed(config)
    assert main(["validate", "--config", str(path)]) == 0
    assert main(["push", "--blessed", "--config", str(path)]) == 0
    assert versions(served_dir(config)) == [1]

    with pytest.raises(DataError, match="served version changed since validation"):
        push_blessed(config)  # validated against no served version; now there is one
    assert main(["validate", "--config", str(path)]) == 0  # the served one against itself
    assert push_blessed(config)["new_version"] is False  # already served: not copied twice
    assert versions(served_dir(config)) == [1]
    add_export(3, {"recall@50": 0.1, "ndcg@10": 0.3})  # regression: the verdict is a failure
    assert main(["validate", "--config", str(path)]) == 3
    with pytest.raises(DataError, match="failed the validation gate"):
        push_blessed(config)
    assert versions(served_dir(config)) == [1]
