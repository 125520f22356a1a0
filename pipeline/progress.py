"""Progress for long work, on stderr: counted progress bars and a heartbeat for opaque jobs."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

__all__ = ["Heartbeat", "ProgressBar", "console", "say"]

# Where progress goes: the terminal's stderr, also while `step_log.stderr_to_log` diverts file
# descriptor 2 (and so the chatter of worker processes) to a log file.
_console: TextIO | None = None


def _out() -> TextIO:
    return _console if _console is not None else sys.stderr


def say(message: str) -> None:
    """One progress line on the console; dropped when the console cannot take it (a full disk
    under a redirected stderr), so that progress never becomes the error a step ends with."""
    with contextlib.suppress(OSError):
        print(message, file=_out(), flush=True)


@contextlib.contextmanager
def console(stream: TextIO) -> Iterator[None]:
    """Progress goes to `stream` in the block: the terminal, while file descriptor 2 goes to a
    step's log (`step_log.stderr_to_log`)."""
    global _console
    previous, _console = _console, stream
    try:
        yield
    finally:
        _console = previous


class ProgressBar:
    """`label [#####.....] done/total` redrawn in place on a terminal, or a line every 10% when
    stderr is a file (CI logs)."""

    def __init__(self, label: str, total: int, width: int = 30):
        self._label = label
        self._total = max(total, 1)
        self._width = width
        self._tty = _out().isatty()
        self._last_decile = -1
        self._last_draw = 0.0

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self._total = max(total, 1)
        fraction = min(done / self._total, 1.0)
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1 and done < self._total:
                return
            self._last_draw = now
            filled = int(fraction * self._width)
            bar = "#" * filled + "." * (self._width - filled)
            out = _out()
            out.write(f"\r{self._label} [{bar}] {done}/{self._total}")
            if done >= self._total:
                out.write("\n")
            out.flush()
        else:
            decile = int(fraction * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                say(f"{self._label}: {done}/{self._total} ({fraction:.0%})")


class Heartbeat:
    """Context manager that reports elapsed time while a job whose progress cannot be counted
    (a Beam pipeline on a remote or local runner) is running."""

    def __init__(self, label: str, interval: float = 15.0):
        self._label = label
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._start = 0.0

    def __enter__(self) -> Heartbeat:
        self._start = time.monotonic()
        say(f"{self._label}: started")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            say(f"{self._label}: running, {time.monotonic() - self._start:.0f} s")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._thread.join()
        state = "failed" if exc_type else "done"
        say(f"{self._label}: {state} in {time.monotonic() - self._start:.1f} s")
