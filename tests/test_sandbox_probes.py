"""The out-of-sandbox verdict: asserts split into values that go in and checks that stay out, values sent
back as plain literals, and a bounded evaluator for them (no sandbox process here: these are the parts
rollgen runs itself)."""

from __future__ import annotations

import ast
import importlib.util
import math
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollgen.verifiers.plain import PlainError, evaluate, literal
from rollgen.verifiers.probes import judge, split
from rollgen.verifiers.sandbox import JAIL

_spec = importlib.util.spec_from_file_location("jail_harness", JAIL / "jail_harness.py")
assert _spec and _spec.loader
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


def frames(*items: tuple) -> str:
    return "".join(repr(i) + "\n" for i in items)


def test_expected_literals_stay_outside() -> None:
    s = split("assert add(1, 2) == 31337")
    assert "31337" not in s.program and "add(1, 2)" in s.program
    (check,) = s.checks
    assert check.holes == ("add(1, 2)",) and ast.unparse(check.expr) == "_h0 == 31337"


@pytest.mark.parametrize(("test", "holes", "outside"), [
    ("assert abs(area(2) - 12.566) < 1e-3", ("area(2)",), "abs(_h0 - 12.566) < 0.001"),
    ("assert math.isclose(f(x), 0.5, rel_tol=1e-6)", ("f(x)",), "math.isclose(_h0, 0.5, rel_tol=1e-06)"),
    ("assert sorted(f([3, 1])) == [1, 3]", ("f([3, 1])",), "sorted(_h0) == [1, 3]"),
    ("assert f(1)[0] == 'a'", ("f(1)",), "_h0[0] == 'a'"),
    ("assert not is_prime(8)", ("is_prime(8)",), "not _h0"),
    ("assert is_prime(7)", ("is_prime(7)",), "_h0"),
    ("assert f(x) is None", ("f(x)",), "_h0 is None"),
    ("assert 0 <= f(x) < 10", ("f(x)",), "0 <= _h0 < 10"),
    ("assert isinstance(f(x), int)", ("isinstance(f(x), int)",), "_h0"),  # type checks run inside
    ("assert f(x) == 1 or g(x) == 2", ("f(x) == 1 or g(x) == 2",), "_h0"),  # short-circuit stays inside
    ("assert f(x).strip() == 'a'", ("f(x).strip()",), "_h0 == 'a'"),
])
def test_split_keeps_what_rollgen_can_compute(test: str, holes: tuple[str, ...], outside: str) -> None:
    (check,) = split(test).checks
    assert check.holes == holes and ast.unparse(check.expr) == outside


def test_and_splits_and_nested_asserts_are_rewritten() -> None:
    s = split("def check(candidate):\n    assert candidate(1) == 2 and candidate(2) == 3\n"
              "    for i in range(3):\n        assert candidate(i) > i\ncheck(add)")
    assert [c.source for c in s.checks] == ["candidate(1) == 2", "candidate(2) == 3", "candidate(i) > i"]
    assert "assert" not in s.program and s.program.count("__fire__") == 3 and "check(add)" in s.program
    with pytest.raises(ValueError, match="does not parse"):
        split("assert add(1, 2 == 3")


def test_judge_passes_only_with_the_right_values() -> None:
    s = [split("assert add(1, 2) == 3"), split("assert add(2, 2) == 4")]
    ok = frames(("load", None), ("fire", 0, 0, ["3"], None), ("end", 0, None), ("fire", 1, 0, ["4"], None),
                ("end", 1, None))
    assert judge(s, ok, "exit code 0") == [(True, None), (True, None)]
    wrong = ok.replace("['4']", "['5']")
    passed, error = judge(s, wrong, "exit code 0")[1]
    assert not passed and error == "AssertionError: assert add(2, 2) == 4 (add(2, 2) = 5)"


def test_forged_frames_cannot_pass_a_test() -> None:
    s = [split("assert add(1, 2) == 3")]
    no_fire = frames(("load", None), ("end", 0, None))
    assert judge(s, no_fire, "exit code 0") == [(False, "assert add(1, 2) == 3: never ran")]
    # a forged passing firing next to the real failing one: every firing must pass
    both = frames(("load", None), ("fire", 0, 0, ["3"], None), ("fire", 0, 0, ["2"], None), ("end", 0, None))
    assert judge(s, both, "exit code 0")[0][0] is False
    # an extra end without error does not hide the real one with an error
    errs = frames(("load", None), ("fire", 0, 0, ["3"], None), ("end", 0, None), ("end", 0, "ZeroDivisionError"))
    assert judge(s, errs, "exit code 0") == [(False, "ZeroDivisionError")]
    # a forged load frame does not hide the real load failure
    load = frames(("load", None), ("load", "NameError: x"))
    assert judge(s, load, "exit code 0") == [(False, "the solution failed to load: NameError: x")]
    assert judge(s, "garbage\n(1, 2\n", "timed out after 2s") == [(False, "not run (timed out after 2s)")]
    sentinel = [split("try:\n    f(-1)\n    assert False\nexcept ValueError:\n    pass")]
    assert judge(sentinel, frames(("load", None), ("end", 0, None)), "") == [(True, None)]  # meant never to run
    assert judge(sentinel, frames(("load", None), ("fire", 0, 0, [], None), ("end", 0, None)), "")[0][0] is False
    unfinished = frames(("load", None), ("fire", 0, 0, ["3"], None))
    assert judge(s, unfinished, "output limit exceeded") == [(False, "did not finish (output limit exceeded)")]


def test_values_that_are_not_plain_data_fail() -> None:
    s = [split("assert f() == 1")]
    for bad in ["__import__('os')", "f()", "[x for x in y]", "1 if 0 else open('x')"]:
        ch = frames(("load", None), ("fire", 0, 0, [bad], None), ("end", 0, None))
        passed, error = judge(s, ch, "")[0]
        assert not passed and error and error.startswith("assert f() == 1:"), (bad, error)


@pytest.mark.parametrize("expr", [
    "10 ** 10 ** 9", "2 ** 100000000", "1 << 10 ** 9", "'a' * 10 ** 12", "[0] * 10 ** 9",
    "sum([[1]] * 1000, [])", "round(5, -10 ** 9)", "'%s' % 1", "().__class__", "open('/etc/passwd')",
])
def test_the_evaluator_refuses_what_would_stall_or_escape(expr: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(PlainError):
        evaluate(ast.parse(expr, mode="eval").body, {})
    assert time.perf_counter() - t0 < 1.0


def test_big_hole_values_are_compared_but_not_computed_with() -> None:
    big = 1 << 100_000
    assert evaluate(ast.parse("_h0 == _h1", mode="eval").body, {"_h0": big, "_h1": big}) is True
    with pytest.raises(PlainError, match="too large"):
        evaluate(ast.parse("_h0 // _h1", mode="eval").body, {"_h0": big, "_h1": big - 1})


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary() | st.complex_numbers(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=3), inner,
                                                                                          max_size=3)
    | st.frozensets(st.integers() | st.text(max_size=3), max_size=3),
    max_leaves=12)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, complex):
        return isinstance(b, complex) and same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(plain_values)
def test_plain_values_round_trip_out_of_the_sandbox(value: Any) -> None:
    assert same(literal(harness.encode(value)), value)


def test_encode_sends_subclasses_and_arrays_as_plain_data_and_refuses_objects() -> None:
    import collections

    import numpy as np

    point = collections.namedtuple("point", "x y")
    assert literal(harness.encode(point(1, 2))) == (1, 2)
    assert literal(harness.encode(collections.Counter("aab"))) == {"a": 2, "b": 1}
    assert literal(harness.encode(np.arange(3))) == [0, 1, 2]
    assert literal(harness.encode(10 ** 5000)) == 10 ** 5000

    class AlwaysEqual:
        def __eq__(self, other: object) -> bool:
            return True

    with pytest.raises(TypeError, match="cannot leave the sandbox"):
        harness.encode(AlwaysEqual())

    class Sneaky(int):
        def __repr__(self) -> str:
            return "__import__('os').system('true')"

    assert harness.encode(Sneaky(3)) == "3"
