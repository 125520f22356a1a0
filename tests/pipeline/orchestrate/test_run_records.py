"""`recsys run`'s records of a failure: one that cannot be written (its disk is full) does not
take the place of the error the run failed with."""

import errno
import json

import pytest

from pipeline.core.config import load_config
from pipeline.core.errors import DataError
from pipeline.orchestrate import run as run_module


def test_a_failure_that_cannot_be_recorded_ends_the_run_with_its_own_error(
    tmp_path, monkeypatch, capsys
):
    config = load_config(None, [f"work_dir={tmp_path}"])
    write = run_module.write_json_atomic

    def full_for_failures(path, value):
        if value.get("status") == "failed":
            raise OSError(errno.ENOSPC, "No space left on device")
        write(path, value)

    def execute(name):
        raise DataError("the step's own error")

    monkeypatch.setattr(run_module, "write_json_atomic", full_for_failures)
    with pytest.raises(DataError, match="the step's own error"):
        run_module.run(config, execute, ["preprocess"])

    record = json.loads((tmp_path / "runs" / "preprocess.json").read_text())
    assert record["status"] == "running"  # as a killed run leaves it: the next run reruns it
    err = capsys.readouterr().err
    assert f"could not record the failure in {tmp_path / 'runs' / 'preprocess.json'}" in err
    assert f"could not record the failure in {tmp_path / 'runs' / 'run.json'}" in err
