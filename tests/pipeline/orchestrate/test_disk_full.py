"""A preprocess run whose disk fills up fails at once with the reason, and leaves the work
directory free: its lock released, no staging folder, no Beam worker.

The disk fills for real on a small tmpfs, mounted in a user and mount namespace of the test's
own (`unshare`, which needs no root); where namespaces are not allowed, the same run goes to
`/dev/full` instead: each file that the run opens for writing under the work directory, its log
among them, is `/dev/full`, whose writes fail with ENOSPC in the kernel, in the run's process
and in its Beam worker processes alike. Either way the data and the log are on the full disk,
as they are when `work_dir` (and so `work_dir/logs`) is on one file system.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from pipeline.sample_data import generate, write_sample_data
from tests.conftest import REPO_ROOT
from tests.models.conftest import small_config

# Seconds the run may take; the reported run went on for more than 600 s.
_LIMIT = 60

# Runs `recsys preprocess` (in the namespace, after mounting the tmpfs when asked to), then
# checks what it left, and prints one JSON object.
_RUN = """
import fcntl, json, os, subprocess, sys, time

from pipeline.core.beam_worker import leftover_workers
from pipeline.core.lock import LOCK_FILE

config, work, limit, tmpfs = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
if tmpfs:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tmpfs], check=True)
started = time.monotonic()
run = subprocess.Popen(
    [sys.executable, "-m", "pipeline.cli", "preprocess", "--config", config],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
)
try:
    out, err = run.communicate(timeout=limit)
    status = run.returncode
except subprocess.TimeoutExpired:
    os.killpg(run.pid, 9)
    out, err = run.communicate()
    status = None
seconds = time.monotonic() - started
deadline = time.monotonic() + 5  # time for the kernel to end the workers of a killed run
while leftover_workers(work) and time.monotonic() < deadline:
    time.sleep(0.1)
fd = os.open(os.path.join(work, LOCK_FILE), os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lock_free = True
except BlockingIOError:
    lock_free = False
print(json.dumps({
    "status": status, "stderr": err, "seconds": seconds, "lock_free": lock_free,
    "workers": leftover_workers(work), "left": sorted(os.listdir(work)),
}))
"""

# Loaded by every Python process of the run (through PYTHONPATH): a file opened for writing
# under FULL_DISK is created, and its writes go to /dev/full.
_SITECUSTOMIZE = """
import builtins, io, os

_ROOT = os.environ["FULL_DISK"] + os.sep
_open = io.open


def _full_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+"):
        if os.path.realpath(file).startswith(_ROOT):
            _open(file, mode, *args, **kwargs).close()
            return _open("/dev/full", mode.replace("x", "w"), *args, **kwargs)
    return _open(file, mode, *args, **kwargs)


builtins.open = io.open = _full_open
"""


def _can_mount_tmpfs(folder):
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
    )
    return probe.returncode == 0


def _log_names(step, seconds):
    """The names the step's log may get in the next `seconds` (beam_step.run_step's)."""
    now = time.time()
    return {
        f"{step}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now + s))}.log"
        for s in range(-1, seconds + 1)
    }


@pytest.mark.parametrize("disk", ["tmpfs", "dev_full"])
def test_a_preprocess_that_fills_its_disk_fails_at_once_and_frees_the_work_dir(tmp_path, disk):
    data = tmp_path / "data"
    write_sample_data(generate(small_config(tmp_path / "unused").sample_data), str(data))
    mount = tmp_path / "disk"
    mount.mkdir()
    work = mount / "work"
    settings = {
        "work_dir": str(work),
        "data": {"path": str(data), "items": {"extra_text_fields": ["brand"]}},
        # Worker processes: an error they hit must reach the run.
        "beam": {"direct_num_workers": 2, "direct_running_mode": "multi_processing"},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    command = [sys.executable, "-c", _RUN, str(config), str(work), str(_LIMIT)]
    env = dict(os.environ)
    if disk == "tmpfs":
        if not _can_mount_tmpfs(mount):
            pytest.skip("no user and mount namespace here to mount a tmpfs in")
        command = ["unshare", "-Urm", *command, str(mount)]
    else:
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        path = [str(tmp_path / "site"), *filter(None, [env.get("PYTHONPATH")])]
        env.update(FULL_DISK=str(work), PYTHONPATH=os.pathsep.join(path))
        (work / "logs").mkdir(parents=True)
        for name in _log_names("preprocess", 2 * _LIMIT):
            (work / "logs" / name).symlink_to("/dev/full")
        command.append("")

    result = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=3 * _LIMIT
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] is not None, f"still running after {_LIMIT} s: {report['stderr']}"
    assert report["seconds"] < _LIMIT
    assert report["status"] == 2, report["stderr"]
    last = report["stderr"].strip().splitlines()[-1]
    assert last.startswith(f"recsys preprocess: error: no space left on {work}"), last
    assert report["lock_free"]
    assert report["workers"] == []
    assert not [name for name in report["left"] if ".tmp-" in name], report["left"]
