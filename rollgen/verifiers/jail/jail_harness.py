"""What runs in the confined process, after ``jail_confine``: the solution, as a program or as a module
whose values the tests probe.

* ``run_program``: the solution is ``__main__``; fd 0 is the case's input, fd 1 its output.
* ``run_probes``: the solution is loaded as module ``solution``; each test program (rewritten outside:
  every ``assert`` became ``__fire__(k, (value, ...))`` with the expected values left outside) runs in a
  copy of its namespace; each fired value goes, encoded as a Python literal of plain data, to fd 3 as a
  line ``repr(("fire", test, k, [literal, ...], error))``. The code can write to fd 3 too: all it can claim
  there is a value, which rollgen compares with an expected value the code never saw.
"""

import builtins
import collections.abc
import io
import math
import os
import signal
import sys
import types

__all__ = ["encode", "run_probes", "run_program"]

_MAX_DEPTH = 64
_BIG_INT = 10 ** 4000  # beyond int-to-str's digit limit: sent as hex


def encode(value, depth=0):
    """``value`` as the text of a Python literal of plain data (numbers, strings, bytes, lists, tuples,
    dicts and other mappings, sets; ``float('inf')``); ``tolist()`` for array types. Anything else raises
    TypeError."""
    if depth > _MAX_DEPTH:
        raise ValueError("the value is nested too deeply to leave the sandbox")
    if value is None or isinstance(value, bool):
        return "True" if value is True else "False" if value is False else "None"
    if isinstance(value, int):
        n = int.__index__(value)
        return hex(n) if abs(n) >= _BIG_INT else int.__repr__(n)
    if isinstance(value, float):
        f = float.__float__(value)
        if math.isnan(f) or math.isinf(f):
            return f"float('{f!r}')"
        return float.__repr__(f)
    if isinstance(value, complex):
        return f"complex({encode(value.real)}, {encode(value.imag)})"
    if isinstance(value, str):
        return str.__repr__(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes.__repr__(bytes(value))
    if isinstance(value, (list, tuple)):
        items = [encode(v, depth + 1) for v in value]
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, (set, frozenset)):
        kind = "frozenset" if isinstance(value, frozenset) else "set"
        return kind + "([" + ", ".join(encode(v, depth + 1) for v in value) + "])"
    if isinstance(value, (dict, collections.abc.Mapping)):
        return "{" + ", ".join(f"{encode(k, depth + 1)}: {encode(v, depth + 1)}" for k, v in value.items()) + "}"
    tolist = getattr(type(value), "tolist", None)
    if callable(tolist):
        return encode(tolist(value), depth + 1)
    raise TypeError(f"a {type(value).__name__} value cannot leave the sandbox: return numbers, strings, bytes, "
                    "lists, tuples, dicts or sets")


def _streams() -> None:
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="replace")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _module(name: str, path: str) -> types.ModuleType:
    """A real module in ``sys.modules`` (as runpy makes), so pickling the code's functions works."""
    module = types.ModuleType(name)
    module.__file__ = path
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules[name] = module
    return module


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken stream must not change the exit code
            pass
    os._exit(code)


def run_program(code: str, path: str) -> None:
    """Run ``code`` as ``__main__`` (stdin/stdout are the case's) and exit with its status."""
    _streams()
    sys.argv = [path]
    try:
        exec(compile(code, path, "exec"), _module("__main__", path).__dict__)
    except SystemExit as e:
        _exit(e.code if isinstance(e.code, int) else 0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - the solution's own error: its traceback, exit 1
        import traceback  # noqa: PLC0415 - loaded when needed: it costs every sandbox start-up time

        traceback.print_exc()
        _exit(1)
    _exit(0)


class _TestTimeout(BaseException):
    pass


def _on_alarm(*_):
    raise _TestTimeout


def _run(source: str, name: str, namespace: dict, seconds: float):
    signal.signal(signal.SIGALRM, _on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        exec(compile(source, name, "exec"), namespace)
        return None
    except _TestTimeout:
        return f"timed out after {seconds:g}s"
    except BaseException as e:  # noqa: BLE001 - the solution's error fails the test
        return f"{type(e).__name__}: {e}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_probes(code: str, tests: "list[str]", load_timeout: float, test_timeout: float, channel: int) -> None:
    """Load the solution, run each test program, report fired values and per-test errors on ``channel``."""
    _streams()
    write = os.write

    def send(frame) -> None:
        data = (repr(frame) + "\n").encode()
        while data:
            data = data[write(channel, data):]

    def firing(test: int):
        def fire(k, values):
            try:
                send(("fire", test, k, [encode(v) for v in values], None))
            except (TypeError, ValueError, RecursionError) as e:
                send(("fire", test, k, None, str(e)[:300]))
        return fire

    namespace = _module("solution", "solution.py").__dict__
    error = _run(code, "solution.py", namespace, load_timeout)
    send(("load", error))
    if error is None:
        for i, source in enumerate(tests):
            send(("end", i, _run(source, f"test_{i}", {**namespace, "__fire__": firing(i)}, test_timeout)))
    _exit(0)
