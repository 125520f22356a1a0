"""The work directory lock: a second run is refused while the first lives, and a killed holder
leaves nothing behind."""

import signal
import subprocess
import sys

import pytest

from pipeline.core.lock import LOCK_FILE, WorkDirLocked, work_dir_lock
from tests.conftest import REPO_ROOT

_HOLD = """
import sys, time
from pipeline.core.lock import work_dir_lock
with work_dir_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(work_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(work_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_is_refused_and_told_who_holds_the_lock(tmp_path):
    holder = _hold(tmp_path)
    try:
        with pytest.raises(WorkDirLocked, match=f"pid {holder.pid}"), work_dir_lock(str(tmp_path)):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = _hold(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; the lock does not
    first = work_dir_lock(str(tmp_path))
    with first, pytest.raises(WorkDirLocked), work_dir_lock(str(tmp_path)):
        pass  # the second acquisition fails even within one process
    with work_dir_lock(str(tmp_path)) as path:  # released at the end of the block
        assert path.endswith(LOCK_FILE)
