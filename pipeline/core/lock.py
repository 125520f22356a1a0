"""One pipeline run per work directory: an exclusive lock that a crash cannot leave behind.

The lock is `fcntl.flock` on `<work_dir>/.recsys.lock`. The operating system drops it when its
holder exits for any reason (a crash or `kill -9` included), so a stale lock never blocks the
next run, and there is no expiry to guess. The file records who holds it (pid, host, command,
start time), so the refusal can say which run is in the way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator

from pipeline.core.errors import RecsysError

__all__ = ["LOCK_FILE", "WorkDirLocked", "work_dir_lock"]

LOCK_FILE = ".recsys.lock"


class WorkDirLocked(RecsysError):
    """Another run holds the work directory."""


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return "another process"
    return (
        f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')} "
        f"({info.get('command')})"
    )


@contextlib.contextmanager
def work_dir_lock(work_dir: str) -> Iterator[str]:
    """Holds the work directory's lock for the `with` block.

    Raises:
      WorkDirLocked: another live process holds it; the message names that process.
    """
    os.makedirs(work_dir, exist_ok=True)
    path = os.path.join(work_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkDirLocked(
                f"{work_dir!r} is in use by another run: {_holder(path)}; wait for it to finish "
                "(its lock goes away when it exits, even if it crashes)"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(sys.argv)[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
