"""``Stop.interruptible``: a request interrupts the stage's thread; nothing is left pending after it."""

from __future__ import annotations

import ctypes
import threading

import pytest

from rollgen.stop import Stop


@pytest.fixture
def async_exc_calls(monkeypatch):
    """Every ``PyThreadState_SetAsyncExc`` call rollgen makes, passed through to CPython."""
    real = ctypes.pythonapi.PyThreadState_SetAsyncExc
    calls: list[object] = []

    def spy(thread_id, exc):
        calls.append(exc)
        return real(thread_id, exc)

    monkeypatch.setattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc", spy)
    return calls


def _calls_python(n: int = 1000) -> int:
    """Python calls and backward jumps: where a pending async exception would be delivered."""

    def one(i: int) -> int:
        return i

    return sum(one(i) for i in range(n))


def test_a_stage_that_returns_leaves_no_async_exception_call(async_exc_calls):
    stop = Stop()
    assert stop.interruptible(lambda x: x + 1, 41) == 42
    # Cancelling with NULL would leave CPython's "async exception pending" flag set for every thread.
    assert async_exc_calls == []
    assert _calls_python() == 499500


def test_a_request_interrupts_the_running_stage_in_its_thread(async_exc_calls):
    stop = Stop()
    started = threading.Event()
    outcome: dict[str, object] = {}

    def stage() -> None:
        started.set()
        while True:  # pure Python: checks for pending work at every jump back
            _calls_python(10)

    def worker() -> None:
        try:
            stop.interruptible(stage)
        except KeyboardInterrupt:
            outcome["interrupted"] = True
        outcome["after"] = _calls_python()

    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(30)
    assert stop.request("SIGTERM") is True
    thread.join(30)
    assert not thread.is_alive()
    assert outcome == {"interrupted": True, "after": 499500}
    assert stop.reason == "SIGTERM"
    assert all(exc is not None for exc in async_exc_calls) and len(async_exc_calls) == 1
    assert stop.request("again") is False  # no stage thread any more, no collection attached


def test_a_request_as_the_stage_returns_is_dropped_not_raised_later(async_exc_calls):
    stop = Stop()

    def stage() -> int:
        stop.request("SIGINT")  # arrives while the thread is still registered: an exception is pending
        return 7

    try:
        value = stop.interruptible(stage)
    except KeyboardInterrupt:
        value = None  # delivered inside the stage: an interrupted stage, also correct
    assert value in (7, None)
    assert _calls_python() == 499500  # nothing pending any more
    assert stop.request("later") is False
    assert len(async_exc_calls) == 1 and async_exc_calls[0] is not None
