"""The cookbook's reward patterns, each on answers that must pass and answers that must fail, and the
composition and nesting rules (``_target_`` lists, errors naming the nested key)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rollgen import compose
from rollgen.build import build_verifier
from rollgen.errors import ConfigError
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier, as_verdict, undecided, verify
from rollgen.verifiers.combine import AllOf, AnyOf, Cascade, WeightedSum
from rollgen.verifiers.numeric import NumericTolerance, PartsMatch
from rollgen.verifiers.shaping import Penalized
from rollgen.verifiers.structured import JsonSchemaVerifier
from rollgen.verifiers.extract import normalize_text
from rollgen.verifiers.text import ExactMatch, FormatCheck, MultipleChoice, NormalizedMatch, RegexMatch
from tests.conftest import started


def rollout(completion: str, finish_reason: str = "stop") -> Rollout:
    return Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=completion, status="ok",
                   finish_reason=finish_reason)


def score(verifier: Any, answer: Any, completion: str, **task: Any) -> Verdict:
    t = Task(id="t", prompt="q", answer=answer, **task)
    async def go() -> Verdict:
        async with started(verifier):
            return await verify(verifier, t, rollout(completion))

    return asyncio.run(go())


def build(cls: type, **params: Any) -> Any:
    return cls(cls.Params.model_validate(params))


# ---------------------------------------------------------------- exact / normalised / regex / choice


@pytest.mark.parametrize(("completion", "reward"), [
    ("Paris", 1.0), ("The answer is Paris.", 1.0), ("\\boxed{Paris}", 1.0), ("<think>Rome?</think>Paris", 1.0),
    ("paris", 0.0), ("Paris, France", 0.0), ("", 0.0), ("\\boxed{Rome}", 0.0),
])
def test_exact_match(completion: str, reward: float) -> None:
    v = score(build(ExactMatch), "Paris", completion)
    assert v.reward == reward and v.verifier == "exact"
    assert v.details["expected"] == "Paris" and "extracted" in v.details


def test_exact_match_any_of_a_list_and_case_folding() -> None:
    assert score(build(ExactMatch), ["NYC", "New York"], "New York").reward == 1.0
    assert score(build(ExactMatch, case_sensitive=False), "Paris", "PARIS").reward == 1.0
    assert undecided(score(build(ExactMatch), "Paris", "").details)


@pytest.mark.parametrize(("gold", "completion", "reward"), [
    ("The Eiffel Tower", "the eiffel tower!", 1.0), ("New York", "**New   York.**", 1.0), ("1000", "1,000", 1.0),
    ("Paris", "$\\text{Paris}$", 1.0), ("-3", "3", 0.0), ("3.5", "35", 0.0), ("Paris", "Rome", 0.0),
    ("Paris", "", 0.0),
])
def test_normalized_match(gold: str, completion: str, reward: float) -> None:
    assert score(build(NormalizedMatch), gold, completion).reward == reward


def test_normalize_keeps_numbers_intact() -> None:
    assert normalize_text("The  -3.5, 1,000 apples!") == "-3.5 1000 apples"
    assert normalize_text("1/2") == "1/2" != normalize_text("12")


def test_regex_extraction() -> None:
    v = build(RegexMatch, pattern=r"ANSWER:\s*(?P<answer>\w+)", compare="exact")
    assert score(v, "B", "blah ANSWER: A\nno wait ANSWER: B").reward == 1.0  # the last match counts
    assert score(build(RegexMatch, pattern=r"ANSWER:\s*(\w+)", occurrence="first"), "A",
                 "ANSWER: A then ANSWER: B").reward == 1.0
    miss = score(v, "B", "the answer is B")
    assert miss.reward == 0.0 and miss.details["extracted"] is None and undecided(miss.details)
    per_task = score(v, "42", "<<42>>", metadata={"output_regex": r"<<(\d+)>>"})
    assert per_task.reward == 1.0 and per_task.details["pattern"] == r"<<(\d+)>>"
    numeric = build(RegexMatch, pattern=r"=\s*(\S+)$", compare="numeric")
    assert score(numeric, "0.5", "x = 1/2").reward == 1.0 and score(numeric, "0.5", "x = 0.51").reward == 0.0


@pytest.mark.parametrize(("completion", "reward"), [
    ("The answer is B.", 1.0), ("Answer: (B)", 1.0), ("\\boxed{B}", 1.0), ("Let me see.\nB", 1.0),
    ("I choose (B).", 1.0), ("The answer is C.", 0.0), ("The answer is B or C.", 0.0), ("\\boxed{A/B}", 0.0),
    ("(A) looks wrong, (B) looks right", 0.0), ("no idea", 0.0),
])
def test_multiple_choice(completion: str, reward: float) -> None:
    assert score(build(MultipleChoice), "B", completion).reward == reward, completion


def test_multiple_choice_gold_as_index_or_option_text() -> None:
    v = build(MultipleChoice)
    assert score(v, 1, "Answer: B").reward == 1.0
    assert score(v, "blue", "Answer: C", metadata={"options": ["red", "green", "Blue"]}).reward == 1.0
    with pytest.raises(ValueError, match="not a choice letter"):
        score(v, "purple", "Answer: A")


# ---------------------------------------------------------------- numbers, parts, JSON, format


def test_numeric_tolerance() -> None:
    v = build(NumericTolerance, abs_tol=0.0, rel_tol=0.01)
    assert score(v, "100", "\\boxed{100.9}").reward == 1.0
    assert score(v, "100", "\\boxed{102}").reward == 0.0
    assert score(v, "100", "The answer is 1,000.").reward == 0.0
    absolute = build(NumericTolerance, abs_tol=0.5, rel_tol=0.0)
    assert score(absolute, "0", "0.4").reward == 1.0 and score(absolute, "0", "0.6").reward == 0.0
    none = score(v, "100", "about a hundred")
    assert none.reward == 0.0 and undecided(none.details)
    with pytest.raises(ValueError, match="not a number"):
        score(v, "Paris", "1")


def test_numeric_partial_credit_falls_linearly() -> None:
    v = build(NumericTolerance, abs_tol=0.0, rel_tol=0.0, partial_credit_rel=0.1)
    assert score(v, "100", "100").reward == 1.0
    assert score(v, "100", "105").reward == pytest.approx(0.5)
    assert score(v, "100", "110").reward == 0.0 and score(v, "100", "50").reward == 0.0
    d = score(v, "100", "105").details
    assert d["within_tolerance"] is False and d["rel_error"] == pytest.approx(0.05)


def test_parts_partial_credit() -> None:
    f1 = build(PartsMatch)
    assert score(f1, "2, 3, 5", "\\boxed{5, 3, 2}").reward == 1.0
    assert score(f1, "2, 3, 5", "\\boxed{2, 3}").reward == pytest.approx(0.8)  # P=1, R=2/3
    assert score(f1, ["2", "3"], "\\boxed{2, 3, 4, 5, 6, 7}").reward == pytest.approx(0.5)  # junk is punished
    assert score(build(PartsMatch, mode="recall"), "2, 3, 5", "\\boxed{2, 9}").reward == pytest.approx(1 / 3)
    assert score(build(PartsMatch, mode="all"), "2, 3", "\\boxed{2, 3, 4}").reward == 0.0
    assert score(build(PartsMatch, ordered=True), "2, 3", "\\boxed{3, 2}").reward == 0.0
    assert score(f1, "1,000", "\\boxed{1000}").reward == 1.0  # a thousands separator is not a part separator


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name"]}


def test_json_schema_and_fields() -> None:
    v = build(JsonSchemaVerifier, schema=SCHEMA)
    gold = {"name": "Ann", "age": 3}
    ok = score(v, gold, 'Here:\n```json\n{"name": "ann", "age": 3}\n```')
    assert ok.reward == 1.0 and ok.details["fields"] == {"name": True, "age": True}
    half = score(v, gold, '{"name": "Ann", "age": 4}')
    assert half.reward == 0.5 and half.details["fields"]["age"] is False
    bad = score(v, gold, '{"age": "three"}')
    assert bad.reward == 0.0 and bad.details["schema_valid"] is False and len(bad.details["schema_errors"]) == 2
    broken = score(v, gold, '{"name": "Ann", ')
    assert broken.reward == 0.0 and broken.details["parsed"] is False
    assert score(v, None, '{"name": "Ann"}').reward == 1.0  # nothing to compare with: valid is enough


def test_json_strict_schema_from_the_task() -> None:
    v = build(JsonSchemaVerifier, strict=True)
    assert score(v, None, '{"name": "A", "age": 1}', metadata={"schema": SCHEMA}).reward == 1.0
    extra = score(v, None, '{"name": "A", "age": 1, "x": 0}', metadata={"schema": SCHEMA})
    assert extra.reward == 0.0 and "Additional properties" in extra.details["schema_errors"][0]
    assert score(v, None, '{"name": "A"}', metadata={"schema": SCHEMA}).reward == 0.0  # strict: age required


def test_format_check_and_penalties() -> None:
    fmt = build(FormatCheck, required=[r"\\boxed\{"], forbidden=[r"(?i)as an ai"])
    assert score(fmt, None, "\\boxed{1}").reward == 1.0
    assert score(fmt, None, "As an AI, 1").reward == 0.0
    assert score(fmt, None, "\\boxed{1} as an AI").reward == 0.5
    pen = build(Penalized, verifier={"_target_": "rollgen.verifiers.math.MathVerifier"}, max_chars=100,
                per_1k_chars=0.5, max_length_penalty=0.3, required=[r"\\boxed"], format_penalty=0.2)
    assert score(pen, "7", "\\boxed{7}").reward == 1.0
    assert score(pen, "7", "The answer is 7.").reward == pytest.approx(0.8)
    long = score(pen, "7", "x" * 1100 + " \\boxed{7}")
    assert long.details["length_penalty"] == 0.3  # 1,010 chars over would cost 0.505: capped at max_length_penalty
    assert long.reward == pytest.approx(0.7)
    assert score(pen, "7", "\\boxed{8}").reward == 0.0


# ---------------------------------------------------------------- composition


class Const(Verifier):
    """A test verifier: a fixed reward, optionally undecided, counting its calls; raises on demand."""

    from pydantic import BaseModel as _B

    class Params(_B):
        reward: float = 0.0
        undecided: bool = False
        fail: bool = False

    calls = 0

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        Const.calls += 1
        if self.params.fail:
            raise RuntimeError("boom")
        details = {"extracted": None} if self.params.undecided else {"extracted": "x"}
        return Verdict(reward=self.params.reward, details=details, verifier="const")


C = "tests.test_verifiers_cookbook.Const"


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    Const.calls = 0


def test_cascade_stops_at_the_first_stage_that_decides() -> None:
    v = build(Cascade, stages=[{"_target_": C, "reward": 0.0, "_name_": "rule"}, {"_target_": C, "reward": 1.0}])
    out = score(v, "7", "x")
    assert out.reward == 0.0 and out.details["decided_by"] == "rule" and Const.calls == 1
    assert out.verifier == "cascade:rule"


def test_cascade_escalates_when_the_rule_cannot_decide() -> None:
    stages = [{"_target_": C, "undecided": True, "_name_": "rule"}, {"_target_": C, "reward": 1.0, "_name_": "judge"}]
    out = score(build(Cascade, stages=stages), "7", "x")
    assert out.reward == 1.0 and out.details["decided_by"] == "judge" and Const.calls == 2
    assert set(out.details["criteria"]) == {"rule", "judge"}


def test_cascade_not_accepted_sends_rejections_on() -> None:
    stages = [{"_target_": C, "reward": 0.0}, {"_target_": C, "reward": 1.0}]
    out = score(build(Cascade, stages=stages, escalate="not_accepted"), "7", "x")
    assert out.reward == 1.0 and out.details["stage"] == 1
    assert out.details["criteria"]["Const"]["reward"] == 0.0 and out.details["criteria"]["Const_2"]["reward"] == 1.0


def test_weighted_sum_and_gate() -> None:
    parts = [{"_target_": C, "reward": 1.0, "_name_": "correct"}, {"_target_": C, "reward": 0.0, "_name_": "format"}]
    out = score(build(WeightedSum, verifiers=parts, weights=[3, 1]), "7", "x")
    assert out.reward == pytest.approx(0.75)
    assert out.details["criteria"]["correct"]["weight"] == pytest.approx(0.75)
    gated = [{"_target_": C, "reward": 0.4}, {"_target_": C, "reward": 1.0}]
    g = score(build(WeightedSum, verifiers=gated, gate=0.5), "7", "x")
    assert g.reward == 0.0 and g.details["gated"] and Const.calls == 3  # the gated part's sibling never ran


def test_all_any() -> None:
    one, zero = {"_target_": C, "reward": 1.0}, {"_target_": C, "reward": 0.0}
    assert score(build(AllOf, verifiers=[one, one]), "7", "x").reward == 1.0
    assert score(build(AllOf, verifiers=[zero, one]), "7", "x").reward == 0.0
    assert Const.calls == 3  # AllOf short-circuits on the first failure
    assert score(build(AnyOf, verifiers=[zero, one]), "7", "x").reward == 1.0
    assert score(build(AnyOf, verifiers=[zero, zero]), "7", "x").reward == 0.0
    half = {"_target_": C, "reward": 0.5}
    assert score(build(AllOf, verifiers=[half, one], reward="min", threshold=0.5), "7", "x").reward == 0.5


def test_a_failing_part_fails_the_whole_verdict() -> None:
    v = build(WeightedSum, verifiers=[{"_target_": C, "reward": 1.0}, {"_target_": C, "fail": True}])
    with pytest.raises(RuntimeError, match="boom"):
        score(v, "7", "x")


def test_real_composition_math_then_format() -> None:
    v = build(WeightedSum, verifiers=[{"_target_": "rollgen.verifiers.math.MathVerifier", "_name_": "correct"},
                                      {"_target_": "rollgen.verifiers.text.FormatCheck", "_name_": "format"}],
              weights=[0.9, 0.1], gate=1.0)
    assert score(v, "7", "\\boxed{7}").reward == pytest.approx(1.0)
    assert score(v, "7", "The answer is 7.").reward == pytest.approx(0.9)
    assert score(v, "7", "\\boxed{8}").reward == 0.0


@pytest.mark.parametrize(("overrides", "key"), [
    (["verifier=cascade", "verifier.stages.0._target_=nope.Verifier"], "verifier.stages.0._target_:"),
    (["verifier=weighted", "verifier.verifiers.1.required=[\"(\"]"], "verifier.verifiers.1.required.0:"),
    (["verifier=cascade", "+verifier.stages.0.timeout=3"], "verifier.stages.0.timeout:"),
    (["verifier=weighted", "verifier.weights=[1]"], "verifier:"),
    (["verifier=numeric", "verifier.rel_tol=-1"], "verifier.rel_tol:"),
    (["verifier=regex", "verifier.pattern='(unclosed'"], "verifier.pattern:"),
    (["verifier=judge", "verifier.prompt_template=no placeholder"], "verifier.prompt_template:"),
    (["verifier=json", "+verifier.schema={type: nope}"], "verifier.schema:"),
])
def test_bad_nested_params_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        compose(overrides, output_dir="x")
    assert any(line.startswith(key) for line in e.value.lines), e.value.lines


def test_every_verifier_option_composes_and_builds() -> None:
    from rollgen.composer import conf_dir

    options = sorted(p.stem for p in (conf_dir() / "verifier").glob("*.yaml"))
    assert {"exact", "normalized", "regex", "numeric", "math", "choice", "json", "code", "judge", "parts",
            "penalized", "cascade", "weighted", "all", "any"} <= set(options)
    for option in options:
        cfg = compose([f"verifier={option}"], output_dir="x")
        verifier = build_verifier(cfg.verifier, cfg.guards)
        assert verifier.inner.name == option or option == "penalized" and verifier.inner.name == "penalized" \
            or option == "open_judge" and verifier.inner.name == "judge"  # the judge, preset for open answers


# ---------------------------------------------------------------- what a verifier may return


def test_verify_accepts_floats_and_tuples_and_rejects_bad_rewards() -> None:
    assert as_verdict(0.5, "v").reward == 0.5
    assert as_verdict(True, "v").reward == 1.0
    assert as_verdict((1, {"why": "x"}), "v").details == {"why": "x"}
    for bad in (1.5, -0.1, float("nan"), "1", None):
        with pytest.raises((ValueError, TypeError)):
            as_verdict(bad, "v")


def test_public_names_exist() -> None:
    import importlib

    for name in ("rollgen.verifiers", "rollgen.verifiers.text", "rollgen.verifiers.numeric", "rollgen.verifiers.structured",
                 "rollgen.verifiers.code", "rollgen.verifiers.sandbox", "rollgen.verifiers.judge", "rollgen.verifiers.combine",
                 "rollgen.verifiers.shaping", "rollgen.verifiers.spec", "rollgen.validation.cases", "rollgen.verifiers.extract",
                 "rollgen.validation.gold", "rollgen.verifiers.reverify", "rollgen.validation.runcheck", "rollgen.verifiers.guards"):
        module = importlib.import_module(name)
        assert module.__all__ and all(hasattr(module, n) for n in module.__all__), name
