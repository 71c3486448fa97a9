"""math-verify, as the math verifier calls it inside a worker process: with a SIGALRM deadline of our own (its
signal timeouts would turn a timeout into a silent False) and with the checks it lacks.

``equal(gold, pred, ...)`` is True when math-verify finds the two equivalent. An answer ``original = X`` whose
right side does not parse is not equivalent to anything, even when its left side (often the question's own
quantity) is: math-verify alone keeps the parsable left side of ``\\frac{6}{8} = ???``.
"""

from __future__ import annotations

import re
import signal
import threading
from functools import lru_cache
from typing import Any

__all__ = ["MathVerifyTimeout", "as_boxed", "equal", "init_worker", "warm_up"]


class MathVerifyTimeout(TimeoutError):
    """math-verify ran out of time (raised in the worker, which stays usable)."""


class _Deadline(BaseException):
    """Raised by SIGALRM inside math-verify; a BaseException so its ``except Exception`` cannot swallow it."""


_alarm_armed = False  # the handler raises only while math-verify runs, never inside our own cleanup
_TOP_EQ = re.compile(r"(?<![<>!:\\=])=(?!=)")


def _on_alarm(signum: int, frame: Any) -> None:
    if _alarm_armed:
        raise _Deadline


def as_boxed(answer: str) -> str:
    """``answer`` as math-verify reads a final answer: in ``\\boxed{}``, its ``$``/``\\(`` wrappers removed."""
    s = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : -len(right)].strip()
            break
    return s if "\\boxed" in s or "\\fbox" in s else "\\boxed{" + s + "}"


@lru_cache(maxsize=1)
def _math_verify() -> Any:
    """Import math-verify, silencing its one-time "timeout is disabled" warning: we time it out ourselves."""
    import math_verify
    from math_verify import grader, parser

    grader.TIMEOUT_WARNING_SHOWN = parser.TIMEOUT_WARNING_SHOWN = True
    return math_verify


@lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> Any:
    return _math_verify().parse(as_boxed(gold), parsing_timeout=None)


def _right_side_parses(pred: str) -> bool:
    """False for ``A = B`` whose last side parses to nothing (``\\frac{6}{8} = ???``)."""
    sides = _TOP_EQ.split(pred)
    if len(sides) < 2 or "," in sides[-1]:
        return True
    last = sides[-1].strip().rstrip(".").strip()
    return bool(last) and bool(_math_verify().parse(as_boxed(last), parsing_timeout=None))


def equal(gold: str, pred: str, timeout_s: float | None, float_rounding: int = 6, strict: bool = True,
          allow_set_relation_comp: bool = True) -> bool | None:
    """math-verify's ``verify(gold, pred)``; None when the gold answer does not parse. Interrupted by SIGALRM
    after ``timeout_s`` (main thread only), raising MathVerifyTimeout."""
    global _alarm_armed
    mv = _math_verify()
    use_alarm = bool(timeout_s) and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    try:
        if use_alarm:
            _alarm_armed = True
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
        gold_parsed = _parse_gold(gold)
        if not gold_parsed:
            return None
        pred_parsed = mv.parse(as_boxed(pred), parsing_timeout=None)
        same = bool(mv.verify(gold_parsed, pred_parsed, float_rounding=float_rounding, strict=strict,
                              allow_set_relation_comp=allow_set_relation_comp, timeout_seconds=None))
        return same and ("=" not in pred or "=" in gold or _right_side_parses(pred))
    except _Deadline:
        raise MathVerifyTimeout(f"math-verify took longer than {timeout_s:g}s") from None
    finally:
        if use_alarm:
            _alarm_armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def init_worker() -> None:
    """A worker's start-up: ignore Ctrl-C (the parent's to handle), import sympy and math-verify, warm
    ``simplify()``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    equal("\\sqrt{2}/2", "\\sqrt{3}", None)


def warm_up() -> None:
    """Nothing: the initializer did the work. Returns once a worker is ready."""
