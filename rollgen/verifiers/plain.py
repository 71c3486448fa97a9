"""Evaluate plain-data expressions outside the sandbox: the values the code sent back, and the checks
they must pass (``assert f(x) == [1, 2]`` with the value of ``f(x)`` filled in).

The values come from untrusted code, so the evaluator is small and bounded: literals, containers, unary
and binary operators on numbers (and concatenation, repetition and set operators on sequences and sets,
with size limits), comparisons, ``and``/``or``, conditional expressions, subscripts, and calls to a fixed
set of pure builtins and ``math`` functions. Anything else raises ``PlainError``.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MATH", "SAFE", "PlainError", "evaluate", "literal"]


class PlainError(ValueError):
    """The expression is not plain data, or computing it outside the sandbox would be unsafe."""


_NUMBER = (int, float, complex)
_SEQUENCE = (str, bytes, list, tuple)


def _sum(values: Any, start: Any = 0) -> Any:
    """``sum`` of numbers only (summing lists is quadratic)."""
    items = list(values)
    if not all(isinstance(v, _NUMBER) for v in (*items, start)):
        raise PlainError("sum() outside the sandbox adds numbers only")
    return sum(items, start)


def _round(number: Any, ndigits: Any = None) -> Any:
    if isinstance(ndigits, int) and abs(ndigits) > 10_000:
        raise PlainError("round() to more than 10000 digits")
    return round(number, ndigits)


SAFE: dict[str, Any] = {f.__name__: f for f in (
    abs, all, any, bool, complex, dict, float, frozenset, int, len, list, max, min, set, sorted, str,
    tuple, type)} | {"sum": _sum, "round": _round}
MATH: dict[str, Any] = {name: getattr(math, name) for name in (
    "isclose", "isnan", "isinf", "isfinite", "fabs", "floor", "ceil", "sqrt", "inf", "nan", "pi", "e")}
_SAFE_VALUES = frozenset(map(id, [*SAFE.values(), *MATH.values()]))
_MAX_ITEMS = 1_000_000
_MAX_BITS = 1 << 16  # integer arithmetic operands: schoolbook division of larger ones would stall the loop
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.LShift: operator.lshift,
    ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_, ast.IsNot: operator.is_not}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}


def literal(text: str) -> Any:
    """The value of a literal the sandbox sent (see ``jail_harness.encode``)."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        raise PlainError(f"not a literal: {type(e).__name__}") from None
    return evaluate(tree.body, {})


def evaluate(node: ast.expr, env: Mapping[str, Any]) -> Any:
    """Evaluate ``node``; names are looked up in ``env``, then among the safe builtins and ``math``."""
    try:
        return _eval(node, env)
    except PlainError:
        raise
    except RecursionError:
        raise PlainError("nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - an operator failing on the values is a failed check, by name
        raise PlainError(f"{type(e).__name__}: {e}"[:300]) from None


def _eval(node: ast.expr, env: Mapping[str, Any]) -> Any:  # noqa: C901 - one case per node type
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            if name in env:
                return env[name]
            if name in SAFE:
                return SAFE[name]
            raise PlainError(f"unknown name {name!r}")
        case ast.Attribute(value=ast.Name(id="math"), attr=attr) if attr in MATH:
            return MATH[attr]
        case ast.Tuple(elts=elts) | ast.List(elts=elts) | ast.Set(elts=elts):
            items = [_eval(e, env) for e in elts]
            if isinstance(node, ast.Tuple):
                return tuple(items)
            return items if isinstance(node, ast.List) else set(items)
        case ast.Dict(keys=keys, values=values) if None not in keys:
            return {_eval(k, env): _eval(v, env) for k, v in zip(keys, values)}  # type: ignore[arg-type]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            value = _eval(operand, env)
            if not isinstance(op, ast.Not):
                _check_number(value)
            return _UNARY[type(op)](value)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left, env), _eval(right, env)
            _check_binary(op, a, b)
            return _BINARY[type(op)](a, b)
        case ast.BoolOp(op=op, values=values):
            result = None
            for v in values:
                result = _eval(v, env)
                if bool(result) is isinstance(op, ast.Or):
                    return result
            return result
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _eval(body if _eval(test, env) else orelse, env)
        case ast.Compare(left=left, ops=ops, comparators=comparators) if all(type(o) in _COMPARE for o in ops):
            a = _eval(left, env)
            for op, right in zip(ops, comparators):
                b = _eval(right, env)
                if not _COMPARE[type(op)](a, b):
                    return False
                a = b
            return True
        case ast.Subscript(value=value, slice=index):
            base = _eval(value, env)
            if isinstance(index, ast.Slice):
                parts = [None if p is None else _eval(p, env) for p in (index.lower, index.upper, index.step)]
                return base[slice(*parts)]
            return base[_eval(index, env)]
        case ast.Call(func=func, args=args, keywords=keywords) if not any(
                isinstance(a, ast.Starred) for a in args) and all(k.arg for k in keywords):
            fn = _eval(func, env)
            if id(fn) not in _SAFE_VALUES or not callable(fn):
                raise PlainError(f"{ast.unparse(func)} is not a function rollgen computes outside the sandbox")
            return fn(*(_eval(a, env) for a in args), **{k.arg: _eval(k.value, env) for k in keywords})
    raise PlainError(f"{type(node).__name__} is not computed outside the sandbox")


def _check_number(value: Any) -> None:
    if not isinstance(value, _NUMBER):
        raise PlainError(f"expected a number, got {type(value).__name__}")
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise PlainError("integer too large to compute with outside the sandbox")


def _check_binary(op: ast.operator, a: Any, b: Any) -> None:
    """Numbers within size, or concatenation, repetition and set operators within size."""
    if isinstance(a, _NUMBER) and isinstance(b, _NUMBER):
        for v in (a, b):
            _check_number(v)
        if isinstance(op, ast.Pow) and isinstance(a, int) and isinstance(b, int) and abs(b) > 1 and abs(a) > 1 \
                and b * max(a.bit_length(), 1) > _MAX_BITS:
            raise PlainError("power too large to compute outside the sandbox")
        if isinstance(op, ast.LShift) and isinstance(b, int) and b > _MAX_BITS:
            raise PlainError("shift too large to compute outside the sandbox")
        return
    if isinstance(op, ast.Add) and type(a) is type(b) and isinstance(a, _SEQUENCE):
        return
    if isinstance(op, ast.Mult) and isinstance(a, _SEQUENCE + (int,)) and isinstance(b, _SEQUENCE + (int,)):
        seq, n = (a, b) if isinstance(a, _SEQUENCE) else (b, a)
        if isinstance(n, int) and not isinstance(n, bool) and len(seq) * max(n, 0) <= _MAX_ITEMS:
            return
    if isinstance(op, (ast.BitOr, ast.BitAnd, ast.BitXor, ast.Sub)) and isinstance(a, (set, frozenset)) \
            and isinstance(b, (set, frozenset)):
        return
    raise PlainError(f"{type(a).__name__} {type(op).__name__} {type(b).__name__} is not computed outside the sandbox")
