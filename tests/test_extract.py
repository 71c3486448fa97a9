"""Answer extraction is public in one module, ``rollgen.verifiers.extract``, and the gold answer is read one way."""

from __future__ import annotations

import importlib

import pytest

from rollgen.formats.rows import _ground_truth
from rollgen.verifiers import extract
from rollgen.verifiers.extract import gold_answers, gold_text, gold_value
from tests.test_architecture import import_graph

SUBMODULES = {"rollgen.verifiers.extract." + m for m in ("region", "numbers", "values", "final", "quantities", "answers")}


def test_the_public_module_exports_every_primitive_of_its_parts() -> None:
    exported = set(extract.__all__)
    for name in SUBMODULES:
        module = importlib.import_module(name)
        assert set(module.__all__) <= exported, name
        for attr in module.__all__:
            assert getattr(extract, attr) is getattr(module, attr), f"{name}.{attr}"
    for old in ("final", "values", "numbers", "quantities"):  # one place, not two
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"rollgen.verifiers.{old}")


def test_only_the_extract_package_imports_its_parts() -> None:
    graph = import_graph()
    outside = {mod: deps & SUBMODULES for mod, deps in graph.items()
               if not mod.startswith("rollgen.verifiers.extract") and deps & SUBMODULES}
    assert outside == {}
    users = {mod for mod, deps in graph.items() if "rollgen.verifiers.extract" in deps}
    assert {"rollgen.verifiers.guards", "rollgen.verifiers.math", "rollgen.verifiers.mathscore", "rollgen.verifiers.text",
            "rollgen.validation.gold", "rollgen.validation.cases", "rollgen.formats.rows"} <= users


@pytest.mark.parametrize(("answer", "text", "answers"), [
    ("7", "7", ["7"]),
    (7, "7", ["7"]),
    (2.5, "2.5", ["2.5"]),
    (["7", 8], '["7", 8]', ["7", "8"]),  # a list: any of them
    ({"a": 1}, '{"a": 1}', ['{"a": 1}']),
    ("π ≈ 3.14", "π ≈ 3.14", ["π ≈ 3.14"]),
])
def test_a_gold_answer_is_read_one_way(answer: object, text: str, answers: list[str]) -> None:
    assert gold_text(answer) == text and gold_answers(answer) == answers
    assert _ground_truth(answer) == text  # the RL export trains on what the verifiers compare with
    with pytest.raises(ValueError, match="no ground-truth 'answer'"):
        gold_text(None)
    assert _ground_truth(None) is None


def test_a_worked_solution_is_read_for_its_value() -> None:
    assert gold_value("\\boxed{2}, \\boxed{3}") == "2, 3"
    solution = "First add the two amounts of apples she has in total. " * 2 + "So the answer is 15."
    assert gold_value(solution) == "15" and gold_value("15") == "15"
