"""Final-answer equivalence for math: extract the answer, compare numbers exactly, else ask math-verify.

The hot path is pure Python and takes microseconds: find the answer (last ``\\boxed{}``, then "answer is X",
then the last number) and, when it and the gold answer are both plain numbers, compare them exactly as
fractions. Anything else (radicals, sets, intervals, expressions) goes to math-verify in a worker process,
with a deadline, so sympy never blocks the event loop and a runaway parse cannot hang the run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from fractions import Fraction
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.workers import process_context

__all__ = ["MathVerifier", "extract_answer", "parse_number", "score_text"]

# Extra time the event loop grants a worker beyond ``timeout_s`` before it declares the worker hung and kills
# it. The worker interrupts itself at ``timeout_s``; this backstop only fires for code that ignores signals.
_HARD_GRACE_S = 5.0
_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
_WARMUP_TIMEOUT_S = 120.0  # worker start-up (imports sympy and math-verify), not counted against timeout_s


# ---------------------------------------------------------------- extraction


_BOX_CMDS = ("\\boxed", "\\fbox")
_BRACE = re.compile(r"[{}]")
_ANSWER_IS = re.compile(r"answer\**\s*(?:is\b|[:=])\s*:?[\s*]*(?P<ans>[^\n]*)", re.IGNORECASE)
_ANSWER_WORDS = ("answer", "Answer", "ANSWER")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+(?:\.\d+)?)?")
_DIGITS = "0123456789"
# Bounds that keep extraction in microseconds on 100k-character rollouts (truncated reasoning, say):
_MAX_CANDIDATES = 32  # \boxed / "answer" / digit positions tried, from the end
_MAX_BOXED_CHARS = 4096  # a longer (or unclosed) \boxed{ is not an answer
_MAX_NUMBER_CHARS = 100  # longer "numbers" are left to math-verify


def _braced(text: str, start: int) -> str | None:
    """The content of the balanced ``{...}`` group opening at ``start`` (after spaces), or None."""
    while start < len(text) and text[start] == " ":
        start += 1
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for m in _BRACE.finditer(text, start, start + _MAX_BOXED_CHARS):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return text[start + 1 : m.start()]
    return None  # unbalanced: truncated output


def _last_boxed(text: str) -> str | None:
    """The content of the last non-empty, balanced ``\\boxed{...}`` or ``\\fbox{...}``."""
    end = len(text)
    for _ in range(_MAX_CANDIDATES):
        i, cmd = max((text.rfind(c, 0, end), c) for c in _BOX_CMDS)
        if i < 0:
            return None
        content = _braced(text, i + len(cmd))
        if content is not None and content.strip():
            return content.strip()
        end = i
    return None


def _answer_is(text: str) -> str | None:
    """X from the last "answer is X" / "Answer: X" / "Final answer: X" (up to the end of the sentence)."""
    end, words = len(text), _ANSWER_WORDS
    for _ in range(_MAX_CANDIDATES):
        found = [(text.rfind(w, 0, end), w) for w in words]
        words = tuple(w for i, w in found if i >= 0)  # a spelling absent now stays absent
        if not words:
            return None
        i = end = max(found)[0]
        if i and text[i - 1].isalnum():
            continue
        m = _ANSWER_IS.match(text, i)
        if m:
            ans = _SENTENCE_END.split(m["ans"], maxsplit=1)[0].strip().strip("*`").strip()
            if ans:
                return ans
    return None


def _last_number(text: str) -> str | None:
    """The last number, found from the last digit backwards (``rfind`` is fast, a regex scan of the whole
    text is not): a number is one token, so it is matched from the space before that digit."""
    end, digits = len(text), _DIGITS
    for _ in range(_MAX_CANDIDATES):
        found = [(text.rfind(c, 0, end), c) for c in digits]
        digits = "".join(c for i, c in found if i >= 0)  # a digit absent now stays absent
        if not digits:
            return None
        last_digit = max(found)[0]
        lo = max(last_digit - _MAX_NUMBER_CHARS, 0)
        start = max(text.rfind(" ", lo, last_digit), text.rfind("\n", lo, last_digit), lo)
        last = None
        for last in _NUMBER.finditer(text, start, last_digit + 1):
            pass
        if last is not None:
            return last.group().rstrip(",")
        end = start
    return None


_TRAILING_MATH = re.compile(
    r"(?:\$\$(?P<a>[^$]+)\$\$|\$(?P<b>[^$]+)\$|\\\((?P<c>.+?)\\\)|\\\[(?P<d>.+?)\\\]"
    r"|(?P<e>-?\\[dt]?frac\{[^{}]+\}\{[^{}]+\}))[\s.]*$",
    re.DOTALL,
)
_TAIL_CHARS = 512


def _trailing_math(text: str) -> str | None:
    """The math the text ends with: ``... is $\\frac{23}{131}$.`` or ``... = \\frac{1}{2}`` (whose last number
    is only the denominator)."""
    tail = text[-_TAIL_CHARS:]
    m = _TRAILING_MATH.search(tail)
    if not m:
        return None
    ans = next(g for g in m.groups() if g is not None).strip()
    return ans or None


def extract_answer(text: str) -> tuple[str | None, str]:
    """The final answer in a completion and the rule that found it: ``boxed``, ``answer_is``,
    ``trailing_math`` (the ``$...$`` or ``\\frac{}{}`` the text ends with), ``last_number`` or ``none``.
    Text before the last ``</think>`` is ignored."""
    think_end = text.rfind("</think>")
    if think_end >= 0:
        text = text[think_end + len("</think>") :]
    for rule, find in (("boxed", _last_boxed), ("answer_is", _answer_is), ("trailing_math", _trailing_math),
                       ("last_number", _last_number)):
        ans = find(text)
        if ans:
            return ans, rule
    return None, "none"


# ---------------------------------------------------------------- exact numbers


_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?")
_GROUPED = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SLASH = re.compile(r"(?P<a>[-+]?[\d.]+)\s*/\s*(?P<b>[-+]?[\d.]+)")
_TEX_FRAC = re.compile(r"(?P<sign>[-+]?)\\[dt]?frac(?:\{(?P<a>[^{}]+)\}\{(?P<b>[^{}]+)\}|(?P<a1>\d)(?P<b1>\d))")
_WRAPPERS = re.compile(r"\\\$|\$|\\[(),\[\]!; ]|\\left|\\right|\{,\}")
_TRAILING_UNIT = re.compile(
    r"(?:\s*\\(?:text|textrm|mathrm|mbox|textbf)\s*\{[^{}]*\}|\s*\\?%|\s*\^\s*\{?\\circ\}?|\s*°)$"
)
_ASSIGNMENT = re.compile(r"^[A-Za-z]\s*=\s*")
_UNIT_WORDS = re.compile(r"^(?P<num>.*?\d)\s+(?P<words>[A-Za-z]{2,}\.?(?:\s+[A-Za-z]{2,}\.?)?)$")
_MATH_WORDS = frozenset({"pi", "sqrt", "inf", "infinity", "and", "or", "to", "times", "plus", "minus", "over", "mod"})


def _plain_fraction(s: str) -> Fraction | None:
    s = s.strip()
    if _GROUPED.fullmatch(s):
        s = s.replace(",", "")
    if not _DECIMAL.fullmatch(s):
        return None
    return Fraction(s)


def parse_number(text: str) -> Fraction | None:
    """``text`` as an exact number when it is plain: ``-3``, ``0.25``, ``1,000``, ``3/4``, ``\\frac{3}{4}``,
    with ``$``, a trailing period, ``x =``, ``%``, degrees and trailing units (``\\text{cm}``, ``apples``)
    stripped. None for anything else (which math-verify then handles)."""
    s = text.strip().replace("\u2212", "-")
    if len(s) > _MAX_NUMBER_CHARS:
        return None
    if _DECIMAL.fullmatch(s):  # the common case, without the clean-up below
        return Fraction(s)
    s = _WRAPPERS.sub("", s).strip().rstrip(".").strip()
    while (stripped := _TRAILING_UNIT.sub("", s)) != s:
        s = stripped.rstrip()
    s = _ASSIGNMENT.sub("", s)
    m = _UNIT_WORDS.match(s)
    if m and not {w.rstrip(".").lower() for w in m["words"].split()} & _MATH_WORDS:
        s = m["num"]
    s = s.strip().rstrip(".")
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1].strip()
    try:
        if (value := _plain_fraction(s)) is not None:
            return value
        if m := _SLASH.fullmatch(s) or _TEX_FRAC.fullmatch(s):
            a, b = (m["a"], m["b"]) if m["a"] is not None else (m["a1"], m["b1"])
            num, den = _plain_fraction(a), _plain_fraction(b)
            if num is None or den is None or den == 0:
                return None
            value = num / den
            return -value if m.groupdict().get("sign") == "-" else value
    except (ValueError, ZeroDivisionError):  # e.g. more digits than int() accepts
        return None
    return None


# ---------------------------------------------------------------- math-verify (runs in a worker process)


class MathVerifyTimeout(TimeoutError):
    """math-verify ran out of time (raised in the worker, which stays usable)."""


class _Deadline(BaseException):
    """Raised by SIGALRM inside math-verify; a BaseException so its ``except Exception`` cannot swallow it."""


_alarm_armed = False  # the handler raises only while math-verify runs, never inside our own cleanup


def _on_alarm(signum: int, frame: Any) -> None:
    if _alarm_armed:
        raise _Deadline


def _as_boxed(answer: str) -> str:
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
    return _math_verify().parse(_as_boxed(gold), parsing_timeout=None)


def _math_verify_equal(gold: str, pred: str, timeout_s: float | None) -> bool | None:
    """math-verify's ``verify(gold, pred)``; None when the gold answer does not parse. Interrupted by
    SIGALRM after ``timeout_s`` (main thread only), raising MathVerifyTimeout. math-verify's own signal timeouts
    are off: they would turn a timeout into a silent False."""
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
        pred_parsed = mv.parse(_as_boxed(pred), parsing_timeout=None)
        return bool(mv.verify(gold_parsed, pred_parsed, timeout_seconds=None))
    except _Deadline:
        raise MathVerifyTimeout(f"math-verify took longer than {timeout_s:g}s") from None
    finally:
        if use_alarm:
            _alarm_armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _math_verify_equal("\\sqrt{2}/2", "\\sqrt{3}", None)  # import sympy and math-verify, warm simplify()


def _warm_up() -> None:
    """Nothing: the initializer did the work. Returns once a worker is ready."""


# ---------------------------------------------------------------- scoring


def _gold_text(answer: Any) -> str:
    if answer is None:
        raise ValueError("the task has no ground-truth 'answer'")
    return answer if isinstance(answer, str) else str(answer)


def _fast_score(completion: str, gold: str) -> tuple[float | None, dict[str, Any]]:
    """Extraction and the exact numeric comparison. A None reward means math-verify must decide."""
    extracted, rule = extract_answer(completion)
    details: dict[str, Any] = {"extracted": extracted, "expected": gold, "rule": rule, "method": "none"}
    if extracted is None:
        return 0.0, details
    gold_core = _last_boxed(gold) or gold
    gold_num, pred_num = parse_number(gold_core), parse_number(extracted)
    if gold_num is not None and pred_num is not None:
        details["method"] = "numeric"
        return float(gold_num == pred_num), details
    if gold_num is not None and _NUMBER_LIST.fullmatch(extracted.replace("$", "")):
        details["method"] = "numeric"  # several numbers ("6, 7, 9", "7 or 8") never equal one number
        return 0.0, details
    details["method"] = "math_verify"
    return None, details


_PLAIN = r"[-+]?\d+(?:\.\d+)?(?:/\d+)?"
_NUMBER_LIST = re.compile(rf"\s*{_PLAIN}(?:\s*(?:,|;|\bor\b|\band\b)\s*{_PLAIN})+\s*\.?\s*")


def _finish(equal: bool | None, gold: str) -> float:
    if equal is None:
        raise ValueError(f"math-verify cannot parse the gold answer {gold[:200]!r}")
    return float(equal)


def score_text(completion: str, gold: str, *, timeout_s: float | None = None) -> tuple[float, dict[str, Any]]:
    """Score one completion against a gold answer in this process (no worker pool): ``(reward, details)``.

    ``timeout_s`` bounds the math-verify step with SIGALRM, in the main thread only. Raises ValueError when
    math-verify cannot parse the gold answer, MathVerifyTimeout (a TimeoutError) when it runs out of time.
    """
    reward, details = _fast_score(completion, gold)
    if reward is None:
        reward = _finish(_math_verify_equal(gold, details["extracted"], timeout_s), gold)
    return reward, details


class MathVerifier(Verifier):
    """Reward 1.0 when the completion's final answer equals ``task.answer``, else 0.0.

    ``details``: ``extracted``, ``expected``, ``rule`` (boxed | answer_is | last_number | none) and ``method``
    (numeric | math_verify | none). A math-verify timeout, a crashed worker or an unparseable gold answer
    raises, so the rollout is marked ``verifier_error`` rather than scored 0.
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        timeout_s: float = Field(10.0, gt=0, description="per math-verify call, in the worker process")
        workers: int = Field(1, ge=1, description="worker processes for symbolic checks")

    params: Params
    needs_answer = True

    def __init__(self, params: Params):
        super().__init__(params)
        self._pool: ProcessPoolExecutor | None = None
        self._warm: list[Future] = []
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @property
    def name(self) -> str:
        return "math"

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        gold = _gold_text(task.answer)
        reward, details = _fast_score(rollout.completion, gold)
        if reward is None:
            reward = _finish(await self._math_verify(gold, details["extracted"]), gold)
        return Verdict(reward=reward, details=details, verifier=self.name)

    async def _math_verify(self, gold: str, pred: str) -> bool | None:
        pool, warm = self._ensure_pool()
        loop = asyncio.get_running_loop()
        timeout_s = self.params.timeout_s
        try:
            for f in warm:  # worker start-up does not count against timeout_s
                if not f.done():
                    await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(f)), _WARMUP_TIMEOUT_S)
            # At most `workers` calls are inside the pool, so the deadline measures work, not queueing.
            async with self._semaphore(loop):
                call = loop.run_in_executor(pool, _math_verify_equal, gold, pred, timeout_s)
                return await asyncio.wait_for(call, timeout_s + _HARD_GRACE_S)
        except MathVerifyTimeout:
            raise
        except asyncio.TimeoutError:  # the worker ignored its alarm: kill it
            self._discard(pool)
            raise TimeoutError(f"math-verify worker hung past {timeout_s:g}s; restarted the pool") from None
        except BrokenProcessPool as e:
            self._discard(pool)
            raise RuntimeError(f"math-verify worker died ({e or 'killed'}); restarted the pool") from None

    def _ensure_pool(self) -> tuple[ProcessPoolExecutor, list[Future]]:
        """The worker pool, started on first need, and its warm-up futures."""
        if self._pool is None:
            workers = self.params.workers
            self._pool = ProcessPoolExecutor(  # workers that do not re-run the caller's main script
                max_workers=workers, mp_context=process_context(_START_METHOD), initializer=_init_worker
            )
            self._warm = [self._pool.submit(_warm_up) for _ in range(workers)]
        return self._pool, self._warm

    def _semaphore(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.params.workers))
        return self._slots[1]

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Kill a hung or broken pool; the next call starts a fresh one."""
        if self._pool is pool:
            self._pool, self._warm = None, []
        _stop(pool, kill=True)

    async def close(self) -> None:
        pool, self._pool, self._warm = self._pool, None, []
        if pool is not None:
            try:
                await asyncio.to_thread(_stop, pool, kill=False)
            except RuntimeError:  # at interpreter exit no thread starts (the pool's own exit hook ran): kill
                _stop(pool, kill=True)


def _stop(pool: ProcessPoolExecutor, *, kill: bool, join_s: float = 5.0) -> None:
    """Shut a pool down and reap its processes (killing any still alive after ``join_s``, or at once)."""
    processes = list((pool._processes or {}).values())  # noqa: SLF001 - the executor has no public handle
    if kill:
        for p in processes:
            p.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.join(join_s)
        if p.is_alive():
            p.kill()
            p.join()
