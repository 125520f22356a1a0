"""What every Beam step shares: the runner a job runs on, a step's staged, published folder, the
errors its workers raise, and what a failed step keeps."""

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time

import apache_beam as beam
import pytest
from apache_beam.runners.portability import prism_runner
from apache_beam.runners.portability.fn_api_runner import fn_runner

from pipeline.core.beam_step import (
    failed_dir,
    new_pipeline,
    pipeline_options,
    run_step,
    write_lines,
)
from pipeline.core.beam_worker import leftover_workers
from pipeline.core.config import load_config
from pipeline.core.errors import DataError, NoSpaceLeft
from pipeline.core.staging import sweep_staging


@pytest.fixture
def no_prism(monkeypatch):
    """Records every attempt to run a job on Prism or to download its binary."""
    attempts = []

    def refuse(name):
        def record(*args, **kwargs):
            attempts.append(name)
            raise RuntimeError(f"{name} was called")

        return record

    monkeypatch.setattr(
        prism_runner.PrismRunner, "run_pipeline", refuse("PrismRunner.run_pipeline")
    )
    monkeypatch.setattr(prism_runner, "urlopen", refuse("urlopen"))
    return attempts


@pytest.fixture
def unrun_pipelines_tempdir(tmp_path, monkeypatch):
    """A pipeline makes a temporary folder when built and deletes it when run: the ones these
    tests build and never run make theirs under the test's own folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def _pids(config, step, options):
    """Runs a step whose job writes the process ids its elements were handled in."""

    def build(p, out_dir):
        pids = (
            p
            | beam.Create(range(40))
            | beam.Reshuffle()
            | beam.Map(lambda _: os.getpid())
            | beam.Distinct()
            | beam.Map(str)
            | beam.combiners.ToList()
        )
        write_lines(pids, os.path.join(out_dir, "pids.txt"), "Pids")

    def finish(out_dir):
        with open(os.path.join(out_dir, "pids.txt")) as f:
            return {"pids": sorted(int(line) for line in f.read().split())}

    return run_step(config, step, options, build, finish)


def test_a_direct_runner_step_never_tries_prism_or_a_download(tmp_path, no_prism):
    config = load_config(None, [f"work_dir={tmp_path}", "beam.direct_running_mode=in_memory"])
    options = pipeline_options(config, direct_num_workers=1)

    manifest = _pids(config, "probe", options)

    assert manifest == {"pids": [os.getpid()]}
    assert no_prism == []
    with open(tmp_path / "probe" / "pids.txt") as f:
        assert f.read().split() == [str(os.getpid())]


def test_the_configured_running_mode_and_workers_are_honoured(tmp_path, no_prism):
    config = load_config(None, [f"work_dir={tmp_path}"])
    options = pipeline_options(config, direct_num_workers=2, direct_running_mode="multi_processing")

    manifest = _pids(config, "probe", options)

    assert os.getpid() not in manifest["pids"]
    assert 1 <= len(manifest["pids"]) <= 2
    assert no_prism == []


@pytest.mark.parametrize("name", ["DirectRunner", "direct", "SwitchingDirectRunner"])
def test_every_name_of_the_direct_runner_runs_on_the_fn_api_runner(name, unrun_pipelines_tempdir):
    options = pipeline_options(load_config(None, []), [f"--runner={name}"])

    assert isinstance(new_pipeline(options).runner, fn_runner.FnApiRunner)


def test_other_runners_are_left_to_beam(unrun_pipelines_tempdir):
    config = load_config(None, [])
    for name in ("BundleBasedDirectRunner", "PrismRunner"):
        options = pipeline_options(config, [f"--runner={name}"])
        assert type(new_pipeline(options).runner).__name__ == name


class _Unknown(Exception):
    """An exception type a worker raises that takes more than a message to build."""

    def __init__(self, message, code):
        super().__init__(f"{message} (code {code})")


def _fail_on_three(error):
    """A step whose worker raises `error()` (built there: it need not pickle) on one element."""

    def build(p, out_dir):
        def check(x):
            if x == 3:
                raise error()
            return x

        _ = p | beam.Create(range(5)) | beam.Reshuffle() | beam.Map(check)

    return build


def _no_finish(out_dir):
    raise AssertionError("finish runs only after a job that succeeded")


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_a_data_error_in_a_worker_reaches_the_caller_with_its_one_line_message(tmp_path, mode):
    config = load_config(None, [f"work_dir={tmp_path}"])
    options = pipeline_options(config, direct_num_workers=1, direct_running_mode=mode)
    message = "/data/events.jsonl.gz: compressed file ends before the end-of-stream marker"

    with pytest.raises(DataError) as info:
        run_step(config, "probe", options, _fail_on_three(lambda: DataError(message)), _no_finish)

    assert str(info.value) == message  # no traceback, no "[while running ...]"
    assert sorted(os.listdir(tmp_path)) == ["logs"]  # the staging folder is gone


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_a_full_disk_in_a_worker_fails_the_step_naming_its_folder(tmp_path, mode):
    config = load_config(None, [f"work_dir={tmp_path}"])
    options = pipeline_options(config, direct_num_workers=1, direct_running_mode=mode)
    full = _fail_on_three(lambda: OSError(errno.ENOSPC, "No space left on device"))

    with pytest.raises(NoSpaceLeft) as info:
        run_step(config, "probe", options, full, _no_finish)

    assert str(info.value) == f"no space left on {tmp_path / 'probe'}"
    assert sorted(os.listdir(tmp_path)) == ["logs"]


def test_other_worker_errors_keep_their_type_and_message_across_processes(tmp_path):
    config = load_config(None, [f"work_dir={tmp_path}"])
    options = pipeline_options(config, direct_num_workers=1, direct_running_mode="multi_processing")

    with pytest.raises(ValueError) as info:
        run_step(
            config, "probe", options, _fail_on_three(lambda: ValueError("bad value 3")), _no_finish
        )
    assert str(info.value) == "bad value 3 [while running 'Map(check)']"

    with pytest.raises(RuntimeError) as info:
        run_step(config, "probe", options, _fail_on_three(lambda: _Unknown("odd", 7)), _no_finish)
    assert str(info.value) == (f"{__name__}._Unknown: odd (code 7) [while running 'Map(check)']")


def test_a_failed_step_keeps_what_it_was_told_to_and_a_successful_one_removes_it(tmp_path):
    config = load_config(None, [f"work_dir={tmp_path}", "beam.direct_running_mode=in_memory"])
    options = pipeline_options(config, direct_num_workers=1)
    failed = tmp_path / "probe-failed"

    def build(p, out_dir):
        _ = p | beam.Create([1])

    def finish_failing(out_dir):
        os.makedirs(os.path.join(out_dir, "dead"))
        with open(os.path.join(out_dir, "dead", "letters.jsonl"), "w") as f:
            f.write('{"reason": "unknown_item"}\n')
        open(os.path.join(out_dir, "dead", "empty.jsonl"), "w").close()  # explains nothing
        open(os.path.join(out_dir, "other.txt"), "w").close()
        raise DataError("kept nothing")

    for _ in range(2):  # a second failure replaces what the first one kept
        with pytest.raises(DataError, match="kept nothing"):
            run_step(config, "probe", options, build, finish_failing, keep_on_failure=("dead/*",))
        assert failed_dir(config, "probe") == str(failed)
        assert sorted(os.listdir(tmp_path)) == ["logs", "probe-failed"]
        assert os.listdir(failed / "dead") == ["letters.jsonl"]
        assert (failed / "dead" / "letters.jsonl").read_text() == '{"reason": "unknown_item"}\n'
        assert sweep_staging(config) == []  # not the staging folder of a killed run

    def finish(out_dir):
        os.makedirs(out_dir)
        return {"ok": True}

    assert run_step(config, "probe", options, build, finish, ("dead/*",)) == {"ok": True}
    assert sorted(os.listdir(tmp_path)) == ["logs", "probe"]


# A job, run in its own process for `work_dir`, whose two workers stay busy without letting go
# of the GIL (a backtracking regex, 2**40 steps), as native code can: Beam's own worker then never
# notices its run is gone and outlives it, a child of pid 1.
_BUSY_JOB = """
import re
import sys

import apache_beam as beam

from pipeline.core.beam_step import new_pipeline, pipeline_options
from pipeline.core.config import load_config

config = load_config(None, [f"work_dir={sys.argv[1]}"])
options = pipeline_options(config, direct_num_workers=2, direct_running_mode="multi_processing")
p = new_pipeline(options, config.work_dir)
busy = beam.Map(lambda _: re.match("(a+)+$", "a" * 40 + "b"))
_ = p | beam.Create(range(4)) | beam.Reshuffle() | busy
p.run().wait_until_finish()
"""


def _wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return predicate()


def test_the_workers_die_with_a_run_killed_outright(tmp_path):
    work = tmp_path / "work"
    run = subprocess.Popen(
        [sys.executable, "-c", _BUSY_JOB, str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: leftover_workers(str(work)), 30), "no worker started"
        workers = leftover_workers(str(work))
        assert all(_parent(pid) == run.pid for pid in workers)

        os.kill(run.pid, signal.SIGKILL)  # the run alone, as the OOM killer does
        run.wait()

        assert _wait_for(lambda: not leftover_workers(str(work)), 5), leftover_workers(str(work))
    finally:
        run.kill()
        for pid in leftover_workers(str(work)):
            os.kill(pid, signal.SIGKILL)


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_the_sweep_kills_the_workers_left_by_a_run_of_its_work_dir_only(tmp_path):
    # Stand-ins for workers that outlived their run: `python -m pipeline.core.beam_worker` resolves
    # to a module that only sleeps, in a folder that comes first on their module path.
    fake = tmp_path / "fake" / "pipeline"
    (fake / "core").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "core" / "beam_worker.py").write_text("import time\ntime.sleep(60)\n")
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    procs = {
        folder: subprocess.Popen(
            [sys.executable, "-m", "pipeline.core.beam_worker", "1", str(folder)], cwd=fake.parent
        )
        for folder in (work, other)
    }
    try:
        assert _wait_for(lambda: len(leftover_workers(str(work))) == 1, 10)

        sweep_staging(load_config(None, [f"work_dir={work}"]))

        assert procs[work].wait(timeout=5) == -signal.SIGKILL
        assert procs[other].poll() is None
        assert leftover_workers(str(other)) == [procs[other].pid]
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
