"""A step's log: what this process and its Beam workers write to stderr, in one file per run.

File descriptor 2 becomes a pipe that a thread of this process copies to the log, rather than
the log file itself. A worker whose write to its stderr fails (the log's disk is full) loses what
it was reporting, and Beam's workers write a failed bundle's traceback to stderr before they send
the runner the bundle's answer: that answer never came, and the runner waited for it forever.
Through the pipe every write succeeds, and the one thread that writes the file sees its errors
and tells the step (`StepLog.notify`), which ends its job with the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import sys
import threading
from collections.abc import Callable, Iterator

from pipeline.core.progress import console

__all__ = ["StepLog", "stderr_to_log"]

_CHUNK = 1 << 16
# Room for what C code writes to its stderr while it holds the GIL, which the copying thread
# needs: 1 MiB where Linux allows it, rather than the pipe's default 64 KiB.
_PIPE_SIZE = 1 << 20


@contextlib.contextmanager
def stderr_to_log(path: str) -> Iterator[StepLog]:
    """Sends everything written to file descriptor 2 (by this process and the worker processes it
    starts) to the file `path`, appended to, while `progress.say` keeps writing to the console.

    Raises:
      OSError: the log cannot be created.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    log = StepLog(path)
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        with console(terminal):
            os.dup2(log.pipe_input, 2)
            try:
                yield log
            finally:
                with contextlib.suppress(OSError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        terminal.close()
        log.close()


class StepLog:
    """A log file and the thread that copies a pipe into it. A write that fails (a full disk)
    stops the copying, not the reading, so no writer to the pipe ever blocks on it.

    Attributes:
      path: The log file.
      error: The first error writing it, or None.
      pipe_input: The pipe's write end, for `os.dup2`; closed by `close`.
    """

    def __init__(self, path: str):
        self.path = path
        self.error: OSError | None = None
        self._listener: Callable[[OSError], None] | None = None
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._pipe_output, self.pipe_input = os.pipe()
        with contextlib.suppress(AttributeError, OSError):  # F_SETPIPE_SZ: Linux only
            fcntl.fcntl(self.pipe_input, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._copy, name="step-log", daemon=True)
        self._thread.start()

    def notify(self, listener: Callable[[OSError], None]) -> None:
        """Calls `listener` once with the first error writing the log: now if there was one
        already, else from the copying thread when it comes."""
        with self._lock:
            self._listener = listener
            error = self.error
        if error is not None:
            listener(error)

    def _copy(self) -> None:
        while True:
            readable, _, _ = select.select([self._pipe_output], [], [], 0.2)
            if not readable:
                if self._closing.is_set():
                    return  # every write made before `close` has been copied
                continue
            chunk = os.read(self._pipe_output, _CHUNK)
            if not chunk:
                return
            if self.error is None:
                self._write(chunk)

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as e:
            e.filename = self.path
            with self._lock:
                self.error = e
                listener = self._listener
            if listener is not None:
                listener(e)

    def close(self) -> None:
        """Copies what is left in the pipe, then closes the pipe and the log."""
        os.close(self.pipe_input)
        self._closing.set()
        # A worker that outlived its job may still hold the pipe: the thread ends anyway once
        # the pipe is empty. One stuck in a write to a hung disk is left behind, with its files.
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            os.close(self._pipe_output)
            os.close(self._fd)
