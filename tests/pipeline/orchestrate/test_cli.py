"""The `recsys` command line: help, one-line failures, sample-data and preprocess summaries, the
work directory's lock in a multi-worker run."""

import errno
import gzip
import json
import subprocess
import sys

import pytest

from pipeline.core.lock import work_dir_lock
from pipeline.orchestrate import cli
from pipeline.orchestrate.cli import main
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("step", ["sample-data", "preprocess", "embed-items", "train", "evaluate"])
def test_every_step_has_help(step, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([step, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--set" in out


def test_a_missing_config_is_one_line_and_exit_2(capsys):
    assert main(["preprocess", "--config", "/nonexistent/c.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["recsys preprocess: error: config file not found: '/nonexistent/c.yaml'"]


@pytest.mark.parametrize("filename", [None, "/full/disk/file"])
def test_a_full_disk_is_one_line_naming_the_path_and_exit_2(
    filename, tmp_path, monkeypatch, capsys
):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(cli, "status_report", full)
    assert main(["status", "--set", f"work_dir={tmp_path}"]) == 2
    where = filename or tmp_path  # a write's error names no file: the work directory's disk
    assert capsys.readouterr().err.strip() == f"recsys status: error: no space left on {where}"


def test_a_bad_override_names_the_field_and_value(capsys):
    assert main(["sample-data", "--set", "sample_data.n_users=many"]) == 2
    err = capsys.readouterr().err
    assert "sample_data.n_users" in err and "'many'" in err


def test_unknown_flags_are_refused_outside_beam_steps():
    with pytest.raises(SystemExit) as exit_info:
        main(["sample-data", "--runner", "DataflowRunner"])
    assert exit_info.value.code == 2


def test_sample_data_then_preprocess_print_their_summaries(tmp_path, capfd):
    work = tmp_path / "work"
    common = [
        "--set", f"work_dir={work}",
        "--set", "sample_data.n_users=20",
        "--set", "sample_data.n_items=30",
        "--set", "beam.direct_num_workers=1",
        "--set", "beam.direct_running_mode=in_memory",
    ]  # fmt: skip
    assert main(["sample-data", *common]) == 0
    out = capfd.readouterr().out
    assert "events of 20 users and 30 items" in out
    assert (work / "sample_data" / "events.jsonl").is_file()

    assert main(["preprocess", *common, "--set", "data.items.extra_text_fields=[brand]"]) == 0
    captured = capfd.readouterr()
    manifest = json.loads((work / "preprocess" / "manifest.json").read_text())
    assert f"Events: read {manifest['counts']['read']:,}" in captured.out
    assert "rejected 0" in captured.out
    assert str(work / "preprocess" / "train") in captured.out
    assert "preprocess: Beam job on DirectRunner: done" in captured.err


def test_a_gzip_cut_short_is_one_line_naming_the_file_and_the_cause_and_exit_2(tmp_path, capfd):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "items.jsonl").write_text('{"item_id": "i1", "title": "Tent", "categories": []}\n')
    events = "".join(
        json.dumps({"user_id": f"u{n}", "item_id": "i1", "timestamp": 1000 + n}) + "\n"
        for n in range(2000)
    ).encode()
    packed = gzip.compress(events)
    (raw / "events.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    argv = [
        "preprocess",
        "--set", f"work_dir={tmp_path / 'work'}",
        "--set", f"data.path={raw}",
        "--set", "beam.direct_num_workers=1",
        "--set", "beam.direct_running_mode=multi_processing",  # the error crosses processes
    ]  # fmt: skip

    assert main(argv) == 2
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("recsys preprocess: error:")]
    assert errors == [
        f"recsys preprocess: error: {raw / 'events.jsonl.gz'}: "
        "compressed file ends before the end-of-stream marker"
    ]
    assert "Traceback" not in err


def test_the_console_script_sets_legacy_keras_and_runs():
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "preprocess", "--set", "data.format=xml"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "data.format must be one of jsonl, csv, parquet, movielens (got 'xml')" in result.stderr


@pytest.mark.parametrize("index", [0, 1])
def test_only_the_chief_of_a_multi_worker_run_takes_the_work_dir_lock(
    index, tmp_path, monkeypatch, capsys
):
    """Workers of one run share the work directory (on one machine too): with the lock held,
    as the chief holds it while it trains, worker 1 trains and worker 0, the chief, is
    refused."""
    trained = []
    monkeypatch.setitem(cli._HANDLERS, "train", lambda *args: trained.append(True))
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    argv = ["train", "--set", f"work_dir={tmp_path}", "--set", "train.strategy=multi_worker"]
    with work_dir_lock(str(tmp_path)):
        status = main(argv)
    if index == 0:
        assert status == 2 and "is in use by another run" in capsys.readouterr().err
        assert not trained
    else:
        assert status == 0 and trained
