"""Progress for long work, on stderr: counted progress bars and a heartbeat for opaque jobs."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from tqdm import tqdm

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
    """A counted progress bar on the console (tqdm): `label [#####.....] done/total` with the
    elapsed and remaining time, redrawn in place on a terminal at most every 0.1 s; when the
    console is not a terminal (a CI log), `label: done/total (pct%, elapsed<remaining)` as a line
    of its own every 10%, rather than redraws that pile up carriage returns in the file.

    Work reports a running total (`update(done)`, a callback it is handed); the bar closes when
    done reaches the total.
    """

    def __init__(self, label: str, total: int, width: int = 30):
        self._tty = _out().isatty()
        self._last_decile = -1
        if self._tty:
            line = f"{{desc}} [{{bar:{width}}}] {{n_fmt}}/{{total_fmt}} [{{elapsed}}<{{remaining}}]"
        else:
            line = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%, {elapsed}<{remaining})"
        self._bar = tqdm(
            total=max(total, 1),
            desc=label,
            file=_ConsoleFile(lines=not self._tty),
            bar_format=line,
            ascii=".#",
            position=0,  # one bar at a time: no cursor movement for nested bars
            mininterval=0.1,
            # Off a terminal only `update` draws (once a decile): never at the start, on a
            # timer (tqdm's monitor thread), nor again at the close.
            delay=0 if self._tty else math.inf,
            maxinterval=10.0 if self._tty else math.inf,
            leave=self._tty,
        )

    def update(self, done: int, total: int | None = None) -> None:
        """Sets how much is done so far (a running total, not an increment) and, when given, a
        new total."""
        bar = self._bar
        if total is not None:
            bar.total = max(total, 1)
        bar.update(done - bar.n)
        if not self._tty:
            decile = int(min(done / bar.total, 1.0) * 10)
            if decile > self._last_decile:
                self._last_decile = decile
                bar.refresh()
        if done >= bar.total:
            bar.close()


class _ConsoleFile:
    """The file a `ProgressBar`'s tqdm writes to: the console of the moment (`_out()`), where a
    failed write (a full disk under a redirected stderr) drops the progress, as `say` does. Off a
    terminal, each of tqdm's redraws (a carriage return, the bar, padding) becomes a line."""

    def __init__(self, lines: bool):
        self._lines = lines

    def write(self, text: str) -> None:
        if self._lines:
            line = text.strip()
            if line:
                say(line)
            return
        with contextlib.suppress(OSError):
            _out().write(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            _out().flush()


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
