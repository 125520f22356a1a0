"""`recsys run` end to end on a tiny config: a second run skips every step, a config change
reruns only the steps that read it, a run killed in the middle of training resumes there, the
gate blocks a model trained for zero steps and leaves the served version alone, and a second
run on a busy work_dir is refused.

The tests share one work directory and build on each other's state, in file order.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from pipeline.core import schema
from pipeline.core.config import load_config
from pipeline.core.lock import work_dir_lock
from pipeline.core.steps import STEPS
from pipeline.orchestrate.cli import main
from pipeline.orchestrate.run import record_path
from serving.client import ServingError
from serving.push import served_dir
from serving.recommend import connect, recommend
from serving.versions import versions

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out


@pytest.fixture(scope="module")
def first_run(prepared, tmp_path_factory):
    """A config file and the work directory of one complete run (version 1 pushed)."""
    _, checkpoint = prepared
    root = tmp_path_factory.mktemp("run")
    settings = {
        "work_dir": str(root / "work"),
        "sample_data": {"n_users": 40, "n_items": 60},
        "data": {"items": {"extra_text_fields": ["brand"]}},
        "beam": {"direct_num_workers": 1, "direct_running_mode": "in_memory"},
        # Without the text feature: the export is half as long (tests/serving covers text).
        "model": {"embedding_dim": 8, "deep_layers": [8], "use_text": False},
        "train": {"batch_size": 64, "shuffle_buffer": 1000, "epochs": 3},
        "text": {"checkpoint": str(checkpoint), "max_length": 16},
        "run": {"sample_data": True},
        # Without XLA the export's warmup compiles nothing (tests/serving covers XLA).
        "serving": {"xla": False},
        # A 40-user model trained for seconds is not meant to beat the baselines: this module
        # tests the run's mechanics; the gate's baseline check has tests of its own.
        "gate": {"min_ratio_to_baseline": {}},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    assert main(["run", "--config", str(path)]) == 0
    return str(path), load_config(str(path))


def _statuses(config):
    out = {}
    for step in STEPS:
        with open(record_path(config, step), encoding="utf-8") as f:
            out[step] = json.load(f)["status"]
    return out


def _tree_digest(folder):
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_the_first_run_pushes_and_a_second_run_skips_every_step(first_run, capsys):
    path, config = first_run
    assert versions(served_dir(config)) == [1]
    capsys.readouterr()
    assert main(["run", "--config", path]) == 0
    out = capsys.readouterr().out
    assert _statuses(config) == dict.fromkeys(STEPS, "skipped")
    assert "0 step(s) run, 8 skipped" in out
    assert versions(served_dir(config)) == [1]
    for line in ("Newest export:", "Served:", "Report:", "Serve it:", "docker compose up"):
        assert line in out


def test_without_text_nothing_is_encoded_and_the_served_model_refuses_a_query(first_run, capsys):
    path, config = first_run
    with open(schema.output_pattern(config.step_dir("embeddings"), "manifest")) as f:
        embeddings = json.load(f)
    assert embeddings["skipped"] is True and embeddings["counts"]["encoded"] == 0
    served = os.path.join(served_dir(config), str(versions(served_dir(config))[-1]))
    with open(os.path.join(served, "manifest.json"), encoding="utf-8") as f:
        assert json.load(f)["text_queries"] is False
    capsys.readouterr()
    assert main(["recommend", "--config", path, "--user", "u", "--query", "a warm coat"]) == 2
    assert capsys.readouterr().err.strip() == (
        "recsys recommend: error: this model has no text encoder (model.use_text was off): "
        "--query cannot be used"
    )
    # A server has no manifest to go by: the model itself refuses, naming the query.
    backend = connect(config)
    backend.text_queries = None
    with pytest.raises(ServingError, match="INVALID_ARGUMENT: query must be empty: this model"):
        recommend(backend, config, "u", query="a warm coat")
    assert recommend(backend, config, "u", query=" ")  # blank is no query


def test_a_gate_change_reruns_only_validate_and_push(first_run):
    path, config = first_run
    assert main(["run", "--config", path, "--set", "gate.min_metrics={ndcg@10: 0.01}"]) == 0
    ran = {step for step, status in _statuses(config).items() if status == "succeeded"}
    assert ran == {"validate", "push"}
    assert versions(served_dir(config)) == [1]  # the same export is not pushed twice


def test_two_runs_on_one_work_dir_are_refused(first_run, capsys):
    path, config = first_run
    with work_dir_lock(config.work_dir):
        assert main(["run", "--config", path]) == 2
    assert "is in use by another run" in capsys.readouterr().err


def _wait_for(condition, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        assert process.poll() is None, "the run ended before the condition held"
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_run_killed_during_training_resumes_at_training(first_run):
    path, config = first_run
    longer = ["--set", "train.epochs=40", "--set", "train.early_stopping_patience=0"]
    longer += ["--set", "gate.max_regression={}"]  # pushed whatever 40 epochs give
    command = [os.path.join(os.path.dirname(sys.executable), "recsys"), "run", "--config", path]
    backup = os.path.join(config.step_dir("model"), "backup")

    def training_backed_up():
        with open(record_path(config, "train"), encoding="utf-8") as f:
            running = json.load(f)["status"] == "running"
        # `checkpoint` names the newest complete backup; it is written after the backup itself
        return running and any("checkpoint" in files for _, _, files in os.walk(backup))

    process = subprocess.Popen([*command, *longer], stdout=subprocess.DEVNULL)
    try:
        _wait_for(training_backed_up, process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert _statuses(config)["train"] == "running"  # what a killed step leaves

    assert main(["run", "--config", path, *longer]) == 0
    statuses = _statuses(config)
    assert [statuses[s] for s in ("sample-data", "preprocess", "embed-items")] == ["skipped"] * 3
    assert [statuses[s] for s in ("train", "evaluate", "export", "validate")] == ["succeeded"] * 4
    with open(os.path.join(config.step_dir("model"), "trained", "manifest.json")) as f:
        assert 0 < json.load(f)["epochs_run"] < 40  # resumed from the epoch backup


def test_the_gate_blocks_a_model_trained_for_zero_steps(first_run, capsys):
    path, config = first_run
    served = served_dir(config)
    before = versions(served)
    digest = _tree_digest(os.path.join(served, str(before[-1])))
    capsys.readouterr()
    assert main(["run", "--config", path, "--set", "train.epochs=0"]) == 3
    captured = capsys.readouterr()
    assert "gate FAILED" in captured.out and "ndcg@10" in captured.out
    assert "recsys run: error: gate FAILED" in captured.err
    assert versions(served) == before
    assert _tree_digest(os.path.join(served, str(before[-1]))) == digest
    statuses = _statuses(config)
    assert statuses["validate"] == "failed" and statuses["train"] == "succeeded"
