"""`kill -9` during each step: of the step's process alone (as the OOM killer does), then of its
whole process group (as a scheduler's hard timeout does). After each kill no process of the run
is left, the work directory's lock is free and no half-written result is visible; a rerun then
succeeds and leaves no staging folder and no previous result moved aside.

Each step runs as `recsys <step>` in a session of its own, and is killed once it is demonstrably
at work in that run: a staging folder of its own exists (with its Beam workers, for
preprocess), or its model has backed up an epoch. The steps run in pipeline order on one work
directory (tiny data, a tiny BERT, a model of a few epochs): each step's rerun makes the next
step's input, so the tests build on each other's state, in file order.
"""

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from pipeline.core.beam_worker import leftover_workers
from pipeline.core.lock import LOCK_FILE
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out

_RECSYS = os.path.join(os.path.dirname(sys.executable), "recsys")
_MODEL = "recommender"  # serving.model_name
# The steps' own folders, each with a file that a complete result holds.
_RESULTS = {
    "preprocess": "manifest.json",
    "embeddings": "manifest.json",
    os.path.join("model", "trained"): "manifest.json",
    "evaluation": "metrics.json",
}
# Staging folders, results moved aside, files being written (`manifest.temp_path_beside`).
_LEFTOVER = re.compile(r"\.tmp-|\.old-|^\..*\.tmp$")


@pytest.fixture(scope="module")
def chain(prepared, tmp_path_factory):
    """A config file and its (empty) work directory, which the tests fill step by step."""
    work, checkpoint = prepared
    root = tmp_path_factory.mktemp("faults")
    settings = {
        "work_dir": str(root / "work"),
        "data": {"path": str(work / "sample_data"), "items": {"extra_text_fields": ["brand"]}},
        # Worker processes for preprocess: they must die with a run killed alone.
        "beam": {"direct_num_workers": 2, "direct_running_mode": "multi_processing"},
        "text": {"checkpoint": str(checkpoint), "max_length": 16, "direct_num_workers": 1},
        "model": {"embedding_dim": 8, "deep_layers": [8]},
        # Epochs enough for two kills while it trains; the reruns resume from the backup.
        "train": {
            "batch_size": 64,
            "shuffle_buffer": 1000,
            "epochs": 12,
            "early_stopping_patience": 0,
        },
        # Without XLA the export's warmup compiles nothing: a third of its time.
        "serving": {"num_candidates": 30, "max_k": 20, "default_k": 5, "xla": False},
        # A model trained for seconds on 40 users need not beat the baselines here.
        "gate": {"min_ratio_to_baseline": {}},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path, root / "work"


def _new(paths, since):
    """Whether one of `paths` was made or changed at or after `since` (a time.time())."""
    for path in paths:
        try:
            if os.stat(path).st_mtime >= since:
                return True
        except FileNotFoundError:
            continue
    return False


def _staging(folder, prefix):
    """The staging folders in `folder` whose names start with `prefix`."""
    if not os.path.isdir(folder):
        return []
    return [
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.startswith(prefix) and ".tmp-" in name
    ]


# When a step's run, started at `since`, is demonstrably at work in the work directory:


def _preprocessing(work, since):
    return _new(_staging(work, "preprocess."), since) and bool(leftover_workers(str(work)))


def _embedding(work, since):
    return _new(_staging(work, "embeddings."), since)


def _training(work, since):
    """An epoch backed up: `checkpoint` names the newest complete backup, written after it."""
    backups = os.walk(work / "model" / "backup")
    return _new([os.path.join(folder, "checkpoint") for folder, _, _ in backups], since)


def _evaluating(work, since):
    return b"evaluate:" in _stderr(work)


def _saving_the_export(work, since):
    return _new(_staging(work / "export" / _MODEL, ".tmp-"), since)


def _exporting(work, since):
    return b"export: version" in _stderr(work)


def _pushing(work, since):
    return _new(_staging(work / "serving" / "models" / _MODEL, ".tmp-push-"), since)


# step: when to kill its process alone, when to kill its group
_AT_WORK = {
    "preprocess": (_preprocessing, _preprocessing),
    "embed-items": (_embedding, _embedding),
    "train": (_training, _training),
    "evaluate": (_evaluating, _evaluating),
    # The SavedModel's staging folder comes after half a minute of tracing: once is enough.
    "export": (_saving_the_export, _exporting),
    "push": (_pushing, _pushing),
}


def _pad_newest_export(work):
    """Makes the newest export as large as a real model (64 MiB more), so that its copy into
    the model base lasts long enough for a kill to land in it, not only its few milliseconds."""
    folder = work / "export" / _MODEL
    newest = max((n for n in os.listdir(folder) if n.isdigit()), key=int)
    with open(folder / newest / "padding.bin", "wb") as f:
        f.write(bytes(64 << 20))


# step: what to do before its runs
_BEFORE = {"push": _pad_newest_export}


def _stderr(work):
    path = work.parent / "stderr.txt"
    return path.read_bytes() if path.exists() else b""


def _start(config, work, step):
    with open(work.parent / "stderr.txt", "wb") as err:
        return subprocess.Popen(
            [_RECSYS, step, "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=REPO_ROOT,
            start_new_session=True,  # its own process group, as a scheduler starts a task
        )


def _wait_until(at_work, process, work, since, timeout=180):
    deadline = time.monotonic() + timeout
    while not at_work(work, since):
        tail = _stderr(work).decode()[-3000:]
        assert process.poll() is None, f"the step ended before it was killed:\n{tail}"
        assert time.monotonic() < deadline, f"the step did not get to work:\n{tail}"
        time.sleep(0.002)  # a push's staging folder lives for a fraction of a second


def _processes_of(root):
    """Process ids whose command line mentions `root` (this process aside)."""
    needle = os.fsencode(str(root))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _assert_free(work):
    """No process of the run is left (its Beam workers get a few seconds to follow it), and
    the lock is free."""
    deadline = time.monotonic() + 5
    while _processes_of(work.parent) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_of(work.parent) == []
    fd = os.open(work / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
    finally:
        os.close(fd)


def _assert_nothing_half_visible(work):
    """Every result a reader can see is complete: a step folder has its manifest (or is missing
    while its previous content is moved aside, which the next run restores), and every
    exported or served version has its manifest and SavedModel."""
    for folder, marker in _RESULTS.items():
        path = work / folder
        if path.exists():
            json.loads((path / marker).read_text())
        elif path.parent.exists():
            moved = [n for n in os.listdir(path.parent) if n.startswith(f"{path.name}.old-")]
            assert len(moved) <= 1, moved
    for base in (work / "export" / _MODEL, work / "serving" / "models" / _MODEL):
        for name in os.listdir(base) if base.exists() else []:
            if name.isdigit():
                json.loads((base / name / "manifest.json").read_text())
                assert (base / name / "saved_model.pb").exists()


def _leftovers(work):
    return sorted(
        os.path.relpath(os.path.join(folder, name), work)
        for folder, dirs, files in os.walk(work)
        for name in dirs + files
        if _LEFTOVER.search(name)
    )


@pytest.mark.parametrize("step", list(_AT_WORK))
def test_a_step_killed_alone_then_with_its_group_leaves_nothing_and_reruns(chain, step):
    config, work = chain
    if step in _BEFORE:
        _BEFORE[step](work)
    # the process alone, then its whole group
    for kill, at_work in zip((os.kill, os.killpg), _AT_WORK[step], strict=True):
        started = time.time()
        process = _start(config, work, step)
        try:
            _wait_until(at_work, process, work, started)
            kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
        _assert_free(work)
        _assert_nothing_half_visible(work)

    rerun = subprocess.run(
        [_RECSYS, step, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _assert_free(work)
    _assert_nothing_half_visible(work)
    assert _leftovers(work) == []
