"""Assert tests, split so that the verdict is computed outside the sandbox.

A test is Python source with ``assert`` statements: ``assert add(1, 2) == 3``, with setup lines, loops and
helper functions if it needs them (the HumanEval shape, ``def check(candidate): ...`` then ``check(add)``,
works too). ``split`` rewrites every ``assert`` (a top-level ``and`` becomes one assert per operand) into
``__fire__(k, (hole, ...))``. The holes are the parts that need the code (calls of its functions, names,
attributes, comprehensions, ``isinstance``); the rest stays outside as the check, with the holes' values
bound to ``_h0, _h1, ...``: ``assert abs(area(2) - 12.566) < 1e-3`` sends ``area(2)`` in and keeps
``abs(_h0 - 12.566) < 1e-3`` out. The sandbox sends back each fired value as plain data; ``judge``
evaluates the checks on them (``rollgen.verifiers.plain``).

So the expected values a test writes never reach the code, and nothing the code prints or sends can pass
a check without the right values. Expected values a test computes with code (``assert f(x) == g(x)``, a
loop over (input, output) pairs) are holes themselves, computed inside next to the code, which could
tamper with them: write expected values as literals. ``or`` and conditional expressions that need the
code are one hole, so they short-circuit as written.

A test passes when the solution loaded, the test ran to its end without an exception, every assert in it
that looks at the code's values fired at least once (an ``assert False`` after a call that should raise is
meant never to run), and every firing passed its check. Frames the code forges add firings, which must
pass too, and cannot remove any.
"""

from __future__ import annotations

import ast
import copy
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rollgen.verifiers.plain import MATH, SAFE, PlainError, evaluate, literal

__all__ = ["Check", "Split", "judge", "split"]

_OUTSIDE = (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp, ast.Compare,
            ast.Subscript, ast.Slice)
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class Check:
    """One assert: its source, the expression computed outside, and the source of each hole."""

    source: str
    expr: ast.expr
    holes: tuple[str, ...]


@dataclass(frozen=True)
class Split:
    """A test: the program the sandbox runs, and the checks that stay outside."""

    program: str
    checks: tuple[Check, ...]


class _Lifter:
    def __init__(self) -> None:
        self.holes: list[ast.expr] = []

    def lift(self, node: ast.expr) -> ast.expr:
        if isinstance(node, (ast.BoolOp, ast.IfExp)):
            inner = _Lifter()
            lifted = inner._children(node)
            return self._hole(node) if inner.holes else lifted
        return self._children(node) if _outside(node) else self._hole(node)

    def _hole(self, node: ast.expr) -> ast.expr:
        self.holes.append(node)
        return ast.Name(f"_h{len(self.holes) - 1}", ast.Load())

    def _children(self, node: ast.expr) -> ast.expr:
        new = copy.copy(node)
        for field, value in ast.iter_fields(node):
            if field == "func":
                continue
            if isinstance(value, ast.expr):
                setattr(new, field, self.lift(value))
            elif isinstance(value, list):
                setattr(new, field, [self.lift(v) if isinstance(v, ast.expr)
                                     else ast.keyword(v.arg, self.lift(v.value)) if isinstance(v, ast.keyword)
                                     else v for v in value])
        return new


def _outside(node: ast.expr) -> bool:
    """Whether rollgen can compute this node itself once its children's values are known."""
    if isinstance(node, ast.Call):
        func = node.func
        safe = (isinstance(func, ast.Name) and func.id in SAFE) or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "math"
            and func.attr in MATH)
        return safe and not any(isinstance(a, ast.Starred) for a in node.args) and all(k.arg for k in node.keywords)
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr in MATH
    if isinstance(node, ast.Dict):
        return None not in node.keys
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return not any(isinstance(e, ast.Starred) for e in node.elts)
    return isinstance(node, _OUTSIDE)


class _Rewriter(ast.NodeTransformer):
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def visit_Assert(self, node: ast.Assert) -> list[ast.stmt]:
        test = node.test
        parts = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
        out: list[ast.stmt] = []
        for part in parts:
            lifter = _Lifter()
            expr = lifter.lift(part)
            fire = ast.Call(ast.Name("__fire__", ast.Load()),
                            [ast.Constant(len(self.checks)), ast.Tuple(lifter.holes, ast.Load())], [])
            self.checks.append(Check(ast.unparse(part), expr, tuple(ast.unparse(h) for h in lifter.holes)))
            out.append(ast.copy_location(ast.Expr(fire), node))
        return out


@lru_cache(maxsize=4096)
def split(test: str) -> Split:
    """The program to run inside and the checks to keep outside. Raises ValueError on a syntax error."""
    try:
        tree = ast.parse(test)
    except SyntaxError as e:
        raise ValueError(f"the test does not parse: {e.msg} (line {e.lineno}): {test[:200]!r}") from None
    rewriter = _Rewriter()
    tree = ast.fix_missing_locations(rewriter.visit(tree))
    return Split(ast.unparse(tree), tuple(rewriter.checks))


def _frames(channel: str) -> list[tuple]:
    frames = []
    for line in channel.splitlines():
        try:
            frame = ast.literal_eval(line)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(frame, tuple) and frame and isinstance(frame[0], str):
            frames.append(frame)
    return frames


def judge(splits: list[Split], channel: str, unfinished: str) -> list[tuple[bool, str | None]]:
    """(passed, error) per test from the frames the sandbox sent; ``unfinished`` explains a test that never
    reported its end (timed out, output limit, exit code)."""
    loads: list[Any] = []
    ends: dict[Any, list[Any]] = defaultdict(list)
    fires: dict[tuple[Any, Any], list[tuple[Any, Any]]] = defaultdict(list)
    for frame in _frames(channel):
        if frame[0] == "load" and len(frame) == 2:
            loads.append(frame[1])
        elif frame[0] == "end" and len(frame) == 3:
            ends[frame[1]].append(frame[2])
        elif frame[0] == "fire" and len(frame) == 5:
            fires[frame[1], frame[2]].append((frame[3], frame[4]))
    load_error = next((e for e in loads if e is not None), None)
    if not loads or load_error is not None:
        why = f"the solution failed to load: {load_error}" if load_error else f"not run ({unfinished})"
        return [(False, _short(why))] * len(splits)
    return [_judge_test(s, ends.get(i), [fires.get((i, k), []) for k in range(len(s.checks))], unfinished)
            for i, s in enumerate(splits)]


def _judge_test(test: Split, ends: list[Any] | None, fired: list[list[tuple[Any, Any]]],
                unfinished: str) -> tuple[bool, str | None]:
    if not ends:
        return False, _short(f"did not finish ({unfinished})")
    error = next((e for e in ends if e is not None), None)
    if error is not None:
        return False, _short(str(error))
    for check, firings in zip(test.checks, fired):
        if not firings and check.holes:  # `assert False` in a try block is meant never to run
            return False, _short(f"assert {check.source}: never ran")
        for values, error in firings:
            why = error or _failure(check, values)
            if why:
                return False, _short(str(why))
    return True, None


def _failure(check: Check, values: Any) -> str | None:
    if not isinstance(values, list) or len(values) != len(check.holes) or not all(isinstance(v, str) for v in values):
        return f"assert {check.source}: malformed values from the sandbox"
    try:
        env = {f"_h{i}": literal(v) for i, v in enumerate(values)}
        ok = bool(evaluate(check.expr, env))
    except PlainError as e:
        return f"assert {check.source}: {e}"
    if ok:
        return None
    got = ", ".join(f"{h} = {v}" for h, v in zip(check.holes, values))
    return f"AssertionError: assert {check.source}" + (f" ({got})" if got else "")


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
