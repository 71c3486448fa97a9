"""``rollgen validate``: gold answers and renderings must score 1, perturbations 0; a naive verifier is
caught; guards are shown catching their cases; run mode gives the reward distribution and Cohen's kappa."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

import rollgen
from rollgen.build import build
from rollgen.commands.validate import main
from rollgen.records import Rollout, Task, Verdict
from rollgen.runtime import Runtime
from rollgen.validation.cases import (
    PERTURBATIONS,
    RENDERINGS,
    perturbations,
    render_number,
    renderings,
)
from rollgen.validation.gold import run_gold_validation
from rollgen.validation.runcheck import cohen_kappa
from rollgen.verifiers import Verifier
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


class Substring(Verifier):
    """Deliberately naive: 1.0 when the gold answer appears anywhere in the completion."""

    class Params(BaseModel):
        pass

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        return Verdict(reward=float(str(task.answer) in rollout.completion), verifier="substring")


def user_conf(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    (conf / "verifier").mkdir(parents=True)
    (conf / "verifier" / "substring.yaml").write_text("_target_: tests.test_validate.Substring\n")
    return conf


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def fraction_tasks(path: Path) -> Path:
    rows = [{"id": f"f{i}", "question": f"Simplify {2 * i}/{2 * (i + 1)}.", "answer": f"{i}/{i + 1}"} for i in range(1, 9)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_math_verifier_passes_with_no_false_positives(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 30)
    out = tmp_path / "out"
    assert main([f"server.data_path={tasks}", "--out", str(out)]) == 0
    r = report(out)
    assert r["passed"] and r["false_positive_rate"] == 0.0 and r["false_negative_rate"] == 0.0
    assert r["tasks"] == 30 and r["confusion"]["negative"]["reward_1"] == 0
    assert set(PERTURBATIONS) - {"missing_part", "restated_question", "unparseable_rhs"} <= set(r["kinds"])
    assert {"plain", "boxed", "answer_is", "think", "units"} <= set(r["kinds"])
    md = (out / "report.md").read_text()
    assert "**PASS**" in md and "## Confusion matrix" in md and "| sign_flip | 0 |" in md
    assert "PASS" in capsys.readouterr().out


CATEGORY_TASKS = [
    {"id": "sum", "question": "Calculate 7 + 8.", "answer": "15"},
    {"id": "half", "question": "What is 3 + 1/2?", "answer": "7/2"},
    {"id": "square", "question": "Compute 122 * 122.", "answer": "14884"},
    {"id": "grouped", "question": "Add 1,000 and 250.", "answer": "1,250"},
    {"id": "roots", "question": "Solve x^2 + x - 6 = 0.", "answer": "2, -3"},
    {"id": "system", "question": "Solve the system x + y = 1, x - y = 3.", "answer": "(2, -1)"},
    {"id": "interval", "question": "Solve 2 <= x + 1 < 6.", "answer": "[1, 5)"},
    {"id": "lowest", "question": "Simplify 6/8 to lowest terms.", "answer": "3/4"},
    {"id": "power", "question": "Evaluate 2^{10}.", "answer": "1024"},
    {"id": "decimal", "question": "Write 0.75 as a fraction in lowest terms.", "answer": "3/4"},
    {"id": "choice", "question": "Which is prime? (A) 4 (B) 7 (C) 9", "answer": "B"},
]


def test_every_reward_category_is_reported_and_the_math_verifier_passes_them(tmp_path: Path) -> None:
    path = tmp_path / "categories.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in CATEGORY_TASKS))
    assert main([f"server.data_path={path}", "--out", str(tmp_path / "out")]) == 0
    r = report(tmp_path / "out")
    assert set(r["kinds"]) == set(RENDERINGS) | set(PERTURBATIONS)
    assert all(k["failures"] == 0 and k["errors"] == 0 for k in r["kinds"].values()), r["problems"]
    kinds = r["kinds"]
    # Multi-part golds get their renderings, the question's own quantity its perturbations.
    assert kinds["multi_box"]["cases"] == 2 and kinds["named_parts"]["cases"] == 1 and kinds["inequality"]["cases"] == 1
    assert kinds["restated_question"]["cases"] == 2 and kinds["missing_part"]["cases"] == 2
    assert kinds["thousands_braces"]["cases"] == 3 and kinds["mixed_number"]["cases"] == 1
    # What the guards save: the verifier alone would reward a prose hedge; it already scores a reply without
    # a stated answer 0.
    assert kinds["hedged_prose"]["caught_by_guards"] == len(CATEGORY_TASKS)
    assert kinds["hedged_prose"]["verifier_alone_failures"] > 0
    assert kinds["no_statement"]["verifier_alone_failures"] == 0 and kinds["restated_question"]["caught_by_guards"] == 0


def test_each_guard_is_shown_catching_its_case(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 20)
    main([f"server.data_path={tasks}", "--out", str(tmp_path / "out")])
    catches = report(tmp_path / "out")["guard_catches"]
    assert catches["truncated"]["truncated"] == 20
    assert catches["empty"]["empty"] == 20
    assert catches["copied_from_prompt"]["question_repeated"] == 20
    assert catches["hedging"]["hedged"] == 20 and catches["hedging"]["buried_in_list"] == 20
    assert catches["too_long"]["rambling"] == 20 and catches["repetition"]["rambling"] == 20
    saves = report(tmp_path / "out")["guard_saves"]
    assert saves["truncated"]["truncated"] == 20  # the math verifier alone would reward the cut-off answer


def test_a_naive_substring_verifier_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 30)
    out = tmp_path / "out"
    code = main([f"server.data_path={tasks}", "verifier=substring", "--config-dir", str(user_conf(tmp_path)),
                 "--out", str(out)])
    assert code == 1
    r = report(out)
    assert not r["passed"] and r["false_positive_rate"] > 0
    assert r["kinds"]["sign_flip"]["failures"] == 30  # "-7" contains "7"
    assert 0 < len(r["kinds"]["sign_flip"]["examples"]) <= 5
    assert any(p.startswith("sign_flip: false-positive rate 1.0000 > 0") for p in r["problems"])
    assert "FAIL" in capsys.readouterr().out
    assert "### sign_flip (should score 0; 30 of 30)" in (out / "report.md").read_text()


def test_without_guards_the_math_verifier_alone_fails(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 10)
    assert main([f"server.data_path={tasks}", "guards=off", "--out", str(tmp_path / "out")]) == 1
    kinds = report(tmp_path / "out")["kinds"]
    assert kinds["truncated"]["failures"] == 10 and kinds["hedged_prose"]["failures"] == 10
    assert kinds["rambling"]["failures"] == 0  # "..., so maybe 7" states no answer: 0 without the guards too
    assert kinds["off_by_one"]["failures"] == 0 and kinds["empty"]["failures"] == 0


def test_exact_match_fails_equivalent_renderings_and_thresholds_are_config(tmp_path: Path) -> None:
    tasks = fraction_tasks(tmp_path / "f.jsonl")
    assert main([f"server.data_path={tasks}", "verifier=exact", "--out", str(tmp_path / "a")]) == 1
    r = report(tmp_path / "a")
    assert r["kinds"]["latex_frac"]["rate"] == 1.0 and r["kinds"]["decimal"]["failures"] > 0
    assert r["kinds"]["boxed"]["failures"] == 0
    assert main([f"server.data_path={tasks}", "verifier=exact", "validate.max_false_negative_rate=1",
                 "--out", str(tmp_path / "b")]) == 0
    assert main([f"server.data_path={tasks}", "--out", str(tmp_path / "c")]) == 0  # math handles every form


def test_kinds_can_be_chosen(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 5)
    main([f"server.data_path={tasks}", "validate.renderings=[boxed]", "validate.perturbations=[empty,sign_flip]",
          "--out", str(tmp_path / "o")])
    assert set(report(tmp_path / "o")["kinds"]) == {"boxed", "empty", "sign_flip"}


def test_config_errors_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["validate.max_false_positive_rate=2"]) == 2
    assert "validate.max_false_positive_rate" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2  # not a run dir
    assert main(["validate.perturbations=[nope]"]) == 2
    assert "validate.perturbations.0" in capsys.readouterr().err


def test_cases_renderings_and_perturbations() -> None:
    kinds = {c.kind: c.completion for c in renderings("1/2")}
    assert kinds["decimal"] == "\\boxed{0.5}" and kinds["latex_frac"] == "\\boxed{\\frac{1}{2}}"
    assert kinds["boxed_fraction"] == "\\boxed{1/2}" and kinds["fraction"] == "The answer is 1/2."
    assert {c.kind: c.completion for c in renderings("1000")}["thousands"] == "\\boxed{1,000}"
    assert {c.kind: c.completion for c in renderings("1,000")}["no_thousands"] == "\\boxed{1000}"
    assert "thousands" not in {c.kind for c in renderings("12")}
    task = Task(id="t", prompt="Calculate 3 + 4.", answer="7")
    p = {c.kind: c for c in perturbations(task, "7", "12", rambling_chars=5000)}
    assert p["off_by_one"].completion.endswith("\\boxed{8}.") and "\\boxed{-7}" in p["sign_flip"].completion
    assert p["truncated"].finish_reason == "length" and len(p["rambling"].completion) > 5000
    assert p["question_repeated"].completion == "Calculate 3 + 4." and p["empty"].completion == ""
    assert "sign_flip" not in {c.kind for c in perturbations(task, "0", "1")}
    assert render_number(__import__("fractions").Fraction(-3, 8)) == "-0.375"


CODE_TASKS = [
    {"id": "add", "prompt": "Write add(a, b).",
     "metadata": {"solution": "def add(a, b):\n    return a + b", "tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]}},
    {"id": "rev", "prompt": "Write rev(s), the string reversed.",
     "metadata": {"solution": "def rev(s):\n    out = ''\n    for ch in s:\n        out = ch + out\n    return out",
                  "tests": ["assert rev('abc') == 'cba'", "assert rev('') == ''"]}},
    {"id": "sq", "prompt": "Read n and print n squared.",
     "metadata": {"solution": "n = int(input())\nprint(n * n)", "tests": [{"input": "3\n", "output": "9"}, {"input": "-2", "output": "4"}]}},
]


def test_code_verifier_validates_with_its_own_cases(tmp_path: Path) -> None:
    path = tmp_path / "code.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in CODE_TASKS))
    assert main(["verifier=code", f"server.data_path={path}", "--out", str(tmp_path / "ok")]) == 0
    kinds = report(tmp_path / "ok")["kinds"]
    assert {"reference_fenced", "reference_bare", "stub", "forged_results", "truncated", "other_task"} <= set(kinds)
    assert all(k["failures"] == 0 for k in kinds.values())
    # A task whose tests do not match its reference solution is a false negative validate names.
    bad = [*CODE_TASKS[:2], {**CODE_TASKS[2], "metadata": {**CODE_TASKS[2]["metadata"], "tests": [{"input": "3", "output": "6"}]}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in bad))
    assert main(["verifier=code", f"server.data_path={path}", "--out", str(tmp_path / "bad")]) == 1
    r = report(tmp_path / "bad")
    assert r["kinds"]["reference_fenced"]["failures"] == 1
    assert r["kinds"]["reference_fenced"]["examples"][0]["task_id"] == "sq"


def test_json_verifier_validates_and_a_lenient_one_is_caught(tmp_path: Path) -> None:
    rows = [{"id": "p1", "prompt": "Ann, 3, as JSON.", "answer": {"name": "Ann", "age": 3}},
            {"id": "p2", "prompt": "Bob, 5, cat, as JSON.", "answer": {"name": "Bob", "age": 5, "pet": {"kind": "cat"}}}]
    path = tmp_path / "json.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["verifier=json", f"server.data_path={path}", "--out", str(tmp_path / "ok")]) == 0
    kinds = report(tmp_path / "ok")["kinds"]
    assert {"json_fenced", "json_reordered", "field_changed", "field_missing", "invalid_json"} <= set(kinds)
    # Comparing no fields accepts any valid JSON: a changed field gets full credit.
    assert main(["verifier=json", "verifier.fields=[]", f"server.data_path={path}", "--out", str(tmp_path / "lax")]) == 1
    assert report(tmp_path / "lax")["kinds"]["field_changed"]["failures"] == 2


def test_cohen_kappa() -> None:
    assert cohen_kappa([True, True, False, False], [True, False, False, False]) == pytest.approx(0.5)
    assert cohen_kappa([True, False] * 5, [True, False] * 5) == pytest.approx(1.0)
    assert cohen_kappa([True, False, True, False], [False, True, False, True]) == pytest.approx(-1.0)
    assert cohen_kappa([True] * 4, [True] * 4) is None  # chance agreement 1: undefined
    assert cohen_kappa([], []) is None


def _collect(tmp_path: Path, n: int = 20) -> Path:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", n)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=1)) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                               "progress=false", "reuse_rollouts=false"], output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    return tmp_path / "run"


def test_run_mode_reward_distribution_and_agreement(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _collect(tmp_path)
    assert main([str(run)]) == 0
    r = report(run / "validate")
    s = r["stats"]
    assert s["rollouts"] == 20 and s["share_0"] + s["share_1"] == pytest.approx(1.0) and 0 < s["share_1"] < 1
    assert sum(h["count"] for h in s["histogram"]) == 20 and s["share_unparseable"] == 0.0
    assert "agreement" not in r

    assert main([str(run), "--against", "verifier=regex", "verifier.pattern='boxed\\{(?P<answer>[^}]*)\\}'"]) == 0
    a = report(run / "validate")["agreement"]
    assert a["compared"] == 20 and a["cohen_kappa"] == pytest.approx(1.0) and a["disagreements"] == 0

    # The fake's wrong answers are "I think it is \boxed{N+1}": half credit for any \boxed{} disagrees.
    assert main([str(run), "--against", "verifier=format", "--out", str(tmp_path / "o")]) == 2  # no such option
    assert main([str(run), "validate.min_kappa=0.9", "--out", str(tmp_path / "o"), "--against", "verifier=weighted",
                 "verifier.weights=[0.5,0.5]", "verifier.gate=null"]) == 1
    a = report(tmp_path / "o")["agreement"]
    assert a["cohen_kappa"] is not None and a["cohen_kappa"] < 0.9 and a["disagreements"] > 0
    assert "Cohen's kappa" in (tmp_path / "o" / "report.md").read_text()
    assert "kappa" in capsys.readouterr().out


def test_run_mode_counts_unparseable_answers(tmp_path: Path) -> None:
    run = _collect(tmp_path, 10)
    rows = [json.loads(x) for x in (run / "rollouts.jsonl").read_text().splitlines()]
    for r in rows[:4]:
        r["completion"] = "I do not know."
    (run / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(run), "verifier=exact", "verifier.extract=boxed"]) == 0  # re-scored with A = exact
    s = report(run / "validate")["stats"]
    assert s["share_unparseable"] == pytest.approx(0.4)


@pytest.mark.slow
def test_math_verifier_on_1000_reasoning_gym_tasks(cache_dir: Path) -> None:
    generators = ["basic_arithmetic", "chain_sum", "gsm_symbolic", "fraction_simplification", "decimal_arithmetic",
                  "simple_equations", "products", "leg_counting", "gcd", "lcm"]
    cfg = rollgen.compose([f"server.generators=[{','.join(generators)}]", "server.size=100",
                           "server.generator_config={}"], output_dir="x")
    tasks = list(build(cfg.server).tasks())
    assert len(tasks) == 1000

    async def validate() -> dict:
        async with Runtime() as rt:
            return await run_gold_validation(cfg, tasks, rt)

    r = asyncio.run(validate())
    assert r["false_positive_rate"] == 0.0, r["problems"]
    assert r["false_negative_rate"] <= 0.01, r["problems"]
    assert r["passed"], r["problems"]
    assert r["cases"] > 15_000


def test_every_case_kind_can_be_chosen_in_the_config() -> None:
    from typing import get_args

    from rollgen.config import PerturbationKind, RenderingKind

    assert set(get_args(RenderingKind)) == set(RENDERINGS) and set(get_args(PerturbationKind)) == set(PERTURBATIONS)
