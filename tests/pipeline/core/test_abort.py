"""Ending a running block from another thread: in the main thread a wait with no timeout is cut
short by the error; elsewhere the block ends with it; the cleanup repeats until the end."""

import threading
import time

import pytest

from pipeline.core.abort import abortable


def _later(seconds, action):
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_an_abort_from_another_thread_ends_a_wait_of_the_main_thread_with_its_error():
    started = time.monotonic()
    with pytest.raises(OSError, match="disk full") as info, abortable() as abort:
        _later(0.2, lambda: abort(OSError("disk full")))
        threading.Event().wait()  # forever, as Beam waits for a bundle's answer
    assert time.monotonic() - started < 5
    assert info.value.__cause__ is None  # the block had no error of its own


def test_the_first_abort_wins_and_an_abort_after_the_block_does_nothing():
    with pytest.raises(ValueError, match="first"), abortable() as abort:
        _later(0.1, lambda: (abort(ValueError("first")), abort(ValueError("second"))))
        threading.Event().wait()
    abort(ValueError("late"))  # the block has ended: no signal, no error
    time.sleep(0.1)


def _in_a_thread(function):
    """What `function` returned or raised, run in a thread other than the main one."""
    outcome = []

    def run():
        try:
            outcome.append(function())
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return outcome[0]


def test_the_error_of_the_abort_wins_over_the_one_the_block_ended_with():
    def block():
        with abortable() as abort:
            abort(OSError("disk full"))
            raise RuntimeError("what the interrupted job said")

    error = _in_a_thread(block)
    assert isinstance(error, OSError) and str(error) == "disk full"
    assert isinstance(error.__cause__, RuntimeError)


def test_without_an_abort_the_block_ends_as_it_would():
    with pytest.raises(KeyError), abortable():
        raise KeyError("own")
    with abortable() as abort:
        pass
    assert abort.error is None


def test_outside_the_main_thread_the_block_ends_with_the_error_when_it_returns():
    went_on = []

    def block():
        with abortable() as abort:
            abort(OSError("disk full"))
            went_on.append(True)  # no signal handler here: the block runs to its end

    error = _in_a_thread(block)
    assert went_on == [True]
    assert isinstance(error, OSError) and str(error) == "disk full"


def test_the_cleanup_repeats_from_the_abort_until_the_block_has_ended():
    calls = []
    with pytest.raises(OSError), abortable(lambda: calls.append(time.monotonic())) as abort:
        assert calls == []
        _later(0.1, lambda: abort(OSError("disk full")))
        try:
            threading.Event().wait()
        finally:  # as Beam's cleanup, which waits for the workers the cleanup kills
            time.sleep(1.2)
    count = len(calls)
    assert count >= 2
    time.sleep(0.7)
    assert len(calls) == count  # none after the end
