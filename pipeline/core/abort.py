"""Ending a running job from another thread, with the reason it cannot go on.

Beam's local runner runs a job inside `Pipeline.run`, in the calling thread, and waits there for
each bundle's answer without a timeout. A thread that learns the job can no longer succeed (the
copier of the step's log, when the log's disk is full: `progress.StepLog`) calls `abort(error)`:
the main thread gets a signal whose handler raises where it waits, Beam's cleanup runs on the way
out as it does for Ctrl-C, and the `abortable` block ends with `error`. Outside the main thread,
where Python runs no signal handler, the block ends with `error` when it returns.

Beam's cleanup waits for each worker process to exit, and a worker that had not yet connected
when the signal came never gets its stop: `while_aborting` (killing the job's workers) runs
until the block has ended.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["Abort", "abortable"]

_SIGNAL = signal.SIGUSR1
_REPEAT_SECONDS = 0.5


class _Aborted(BaseException):
    """Raised by the signal handler. Not an Exception: no `except Exception` on its way out of
    Beam takes it for the job's own error."""


class Abort:
    """`abort(error)` ends the `abortable` block that made it with `error`; the first call wins.

    Attributes:
      error: The error the block ends with, once `abort` was called.
    """

    def __init__(self, while_aborting: Callable[[], None] | None = None) -> None:
        self.error: BaseException | None = None
        self._while_aborting = while_aborting
        self._lock = threading.Lock()
        self._armed = False
        self._ended = threading.Event()

    def __call__(self, error: BaseException) -> None:
        with self._lock:
            if self.error is not None or self._ended.is_set():
                return
            self.error = error
            if self._while_aborting is not None:
                threading.Thread(target=self._repeat, name="abort", daemon=True).start()
            if self._armed:  # last: from the main thread itself, the handler raises at once
                signal.pthread_kill(threading.main_thread().ident, _SIGNAL)

    def _repeat(self) -> None:
        while True:
            self._while_aborting()
            if self._ended.wait(_REPEAT_SECONDS):
                return

    def _handle(self, signum, frame) -> None:
        if self._armed:
            raise _Aborted

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """The block's extent: armed (in the main thread) while it runs, ended after."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(_SIGNAL, self._handle) if main else None
        self._armed = main
        try:
            yield
        finally:
            with self._lock:  # no signal is sent after this
                self._armed = False
                self._ended.set()
            if main:
                signal.signal(_SIGNAL, previous)


@contextlib.contextmanager
def abortable(while_aborting: Callable[[], None] | None = None) -> Iterator[Abort]:
    """Runs the block so that the `Abort` it gets, called from any thread, ends it.

    Args:
      while_aborting: Called every 0.5 s from the abort until the block has ended, in a thread
        of its own: for what keeps the block from ending.

    Raises:
      The error given to `Abort`, chained to the block's own exception if it had one; else
      whatever the block raised.
    """
    abort = Abort(while_aborting)
    try:
        with abort._running():
            yield abort
    except _Aborted:
        pass
    except BaseException as e:
        if abort.error is None:
            raise
        raise abort.error from e
    if abort.error is not None:
        raise abort.error from None
