"""Beam's SDK worker for `multi_processing` DirectRunner jobs, made to die with the run.

The FnApiRunner starts each worker as a subprocess of the run (`sdk_worker_main`) and stops it
when the job ends; a run killed outright (`kill -9`, the OOM killer, `timeout`) stops none, and
its workers would go on, children of pid 1. So the steps start their workers through this
module (`beam_step.new_pipeline`): on Linux it asks the kernel to send the worker SIGKILL when
its parent dies (`prctl(PR_SET_PDEATHSIG)`), then runs Beam's worker. Its command line carries
the run's work directory, by which the next writer, holding the work directory's lock, finds and
kills any worker that still outlived its run (`kill_leftover_workers`, from
`staging.sweep_staging`): a process is killed only if its command line is this module's with
that work directory.

    python -m pipeline.core.beam_worker <parent pid> <work_dir>
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import sys

from pipeline.core.progress import say

__all__ = ["kill_leftover_workers", "kill_own_workers", "leftover_workers", "worker_command"]

_MODULE = "pipeline.core.beam_worker"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def worker_command(work_dir: str) -> str:
    """The shell command that starts one worker of a job run by this process for `work_dir`.

    `exec`: the shell Beam runs the command in becomes the worker, so the worker's parent is
    this process, whose death the worker follows.
    """
    return (
        f"exec {shlex.quote(sys.executable)} -m {_MODULE} {os.getpid()} "
        f"{shlex.quote(os.path.realpath(work_dir))}"
    )


def leftover_workers(work_dir: str, parent: int | None = None) -> list[int]:
    """Process ids of the workers started for `work_dir` by any run (by the run in process
    `parent` when given), read from /proc."""
    module, folder = [b"-m", _MODULE.encode()], os.fsencode(os.path.realpath(work_dir))
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        ours = parent is None or args[3:4] == [str(parent).encode()]
        if len(args) >= 5 and args[1:3] == module and args[4] == folder and ours:
            pids.append(int(entry))
    return pids


def kill_leftover_workers(work_dir: str) -> list[int]:
    """Kills the workers of `work_dir` that outlived a killed run; returns their process ids.

    Call it only while holding the work directory's lock: then no live run has workers there.
    """
    killed = []
    for pid in leftover_workers(work_dir):
        say(f"killing process {pid}: a Beam worker of a run that was killed")
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def kill_own_workers(work_dir: str) -> None:
    """Kills the workers that this process started for `work_dir`: a job that is given up on
    (`abort.abortable`) ends only once they have, as Beam's cleanup waits for each to exit,
    also for one that never got its stop (it had not yet connected to the runner)."""
    for pid in leftover_workers(work_dir, parent=os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (Linux); exits at once if it already has."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The signal follows the thread that started this process, which waits on it until it ends.
    if os.getppid() != parent:  # the parent died before prctl: no signal will come
        sys.exit(1)


if __name__ == "__main__":
    _die_with_parent(int(sys.argv[1]))
    # Imported here, not above: the sweep imports this module and need not load Beam's worker.
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
