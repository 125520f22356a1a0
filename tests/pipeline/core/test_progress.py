"""Progress bars on the console: in place on a terminal, a line every 10% in a log, and never the
error a step ends with."""

import errno
import io

from pipeline.core.progress import ProgressBar, console


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_off_a_terminal_one_line_per_tenth_and_no_carriage_returns():
    log = io.StringIO()
    with console(log):
        bar = ProgressBar("work", 100)
        for done in range(1, 101):
            bar.update(done)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    # the first update (1%), then one line as each tenth is reached: 10%, 20%, … 100%
    assert len(lines) == 11
    assert lines[0].startswith("work: 1/100 (1%, ")
    assert lines[5].startswith("work: 50/100 (50%, ")
    assert lines[-1].startswith("work: 100/100 (100%, ")


def test_on_a_terminal_redrawn_in_place_and_ended_with_a_newline():
    terminal = _Terminal()
    with console(terminal):
        bar = ProgressBar("work", 4, width=8)
        for done in range(1, 5):
            bar.update(done)
    out = terminal.getvalue()
    assert out.startswith("\rwork [........] 0/4 ")
    assert out.endswith("\n")
    assert "\rwork [########] 4/4 " in out  # the last draw, at the close
    assert out.count("\n") == 1


def test_on_a_terminal_at_most_one_redraw_per_tenth_of_a_second():
    terminal = _Terminal()
    with console(terminal):
        bar = ProgressBar("work", 10_000)
        for done in range(1, 10_001):
            bar.update(done)
    # the start and the close, and a redraw at most every 0.1 s in between
    assert terminal.getvalue().count("\r") < 50


def test_total_given_with_an_update_replaces_the_first():
    log = io.StringIO()
    with console(log):
        bar = ProgressBar("work", 10)
        bar.update(5, 20)
        bar.update(20, 20)
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == [
        "work: 5/20",
        "work: 20/20",
    ]


def test_a_console_that_cannot_be_written_drops_the_progress():
    for stream in (_FullDisk(), type("_FullTerminal", (_FullDisk, _Terminal), {})()):
        with console(stream):
            bar = ProgressBar("work", 2)
            bar.update(1)
            bar.update(2)
