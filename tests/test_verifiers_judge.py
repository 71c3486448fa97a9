"""The LLM judge against a real HTTP server (the fake, grading like a judge): rubric prompt, score parsing,
cache by content hash, bounded concurrency, failures as verifier errors, and the cascade that calls it
only when the rule cannot decide."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import rollgen
from rollgen.records import Rollout, Task, Verdict
from rollgen.rundir import read_jsonl
from rollgen.verifiers import verify
from rollgen.verifiers.combine import Cascade
from rollgen.verifiers.judge import JudgeError, LLMJudge
from tests.conftest import serve_in_thread, started, write_arith_tasks
from tests.fakes import FakeOpenAI, solve


def _section(prompt: str, title: str) -> str:
    m = re.search(rf"{re.escape(title)}\n(.*?)(?:\n\n|$)", prompt, re.DOTALL)
    return m.group(1).strip() if m else ""


@dataclass
class JudgeFake(FakeOpenAI):
    """The fake OpenAI server as a judge: it solves the question ("Calculate 3 + 4.") itself and replies
    ``VERDICT: CORRECT`` when the answer to grade equals it. ``reply`` forces a fixed reply."""

    reply: str | None = None

    async def _answer(self, request: web.Request) -> Any:
        got = await super()._answer(request)
        if isinstance(got, web.Response):
            return got
        _, body = got
        prompt = body["messages"][-1]["content"]
        if self.reply is not None:
            return self.reply, body
        gold = solve(_section(prompt, "Question:"))
        answer = _section(prompt, "Answer to grade:")
        return f"The answer is {answer}; I get {gold}.\nVERDICT: {'CORRECT' if answer == gold else 'INCORRECT'}", body


def task(expr: str = "3 + 4") -> Task:
    return Task(id="t", prompt=f"Calculate {expr}.", answer=solve(f"Calculate {expr}."))


def rollout(completion: str) -> Rollout:
    return Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=completion, status="ok")


def judge(url: str, **params: Any) -> LLMJudge:
    return LLMJudge(LLMJudge.Params.model_validate({"base_url": url, "model": "judge", "cache": "memory", **params}))


def run_all(v: Any, pairs: list[tuple[Task, str]]) -> list[Verdict]:
    async def main() -> list[Verdict]:
        async with started(v):
            return list(await asyncio.gather(*(verify(v, t, rollout(c)) for t, c in pairs)))

    return asyncio.run(main())


def test_judge_grades_the_final_answer_with_the_rubric() -> None:
    fake = JudgeFake(keep_bodies=True)
    with serve_in_thread(fake) as url:
        right, wrong = run_all(judge(url), [(task(), "Some work... so \\boxed{7}"), (task(), "Hmm, \\boxed{8}")])
    assert (right.reward, wrong.reward) == (1.0, 0.0)
    assert right.details["score"] == "CORRECT" and right.verifier == "judge" and right.details["cached"] is False
    prompt = fake.bodies[0]["messages"][-1]["content"]
    assert "Calculate 3 + 4." in prompt and "Reference answer:\n7" in prompt and "Rubric:" in prompt
    assert "Some work" not in prompt  # the final answer only (judge_input: final_answer)
    assert fake.bodies[0]["temperature"] == 0.0


def test_numeric_rubric_scores_are_scaled() -> None:
    with serve_in_thread(JudgeFake(reply="Reasoning...\nScore: 7/10")) as url:
        (a,) = run_all(judge(url), [(task(), "\\boxed{7}")])
    with serve_in_thread(JudgeFake(reply="Grade = 3")) as url:
        (b,) = run_all(judge(url, max_score=4), [(task(), "\\boxed{7}")])
    assert a.reward == pytest.approx(0.7) and b.reward == pytest.approx(0.75)


def test_equal_calls_are_made_once_and_the_disk_cache_survives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGEN_CACHE_DIR", str(tmp_path))
    fake = JudgeFake(latency_s=0.05)
    with serve_in_thread(fake) as url:
        first = run_all(judge(url, cache="disk"), [(task(), "\\boxed{7}")] * 5 + [(task(), "\\boxed{9}")])
        assert fake.requests == 2  # five equal prompts in flight at once: one call
        again = run_all(judge(url, cache="disk"), [(task(), "\\boxed{7}"), (task(), "\\boxed{9}")])
        assert fake.requests == 2 and all(v.details["cached"] for v in again)
        run_all(judge(url, cache="disk", model="other-judge"), [(task(), "\\boxed{7}")])
        assert fake.requests == 3  # another judge model is another key
        run_all(judge(url, cache="off"), [(task(), "\\boxed{7}")] * 2)
        assert fake.requests == 5
    assert [v.reward for v in first] == [1.0] * 5 + [0.0]
    assert len(list((tmp_path / "judge").rglob("*.json"))) == 3


def test_two_judges_at_other_urls_under_one_model_name_do_not_share_replies(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGEN_CACHE_DIR", str(tmp_path))
    with serve_in_thread(JudgeFake(reply="VERDICT: CORRECT")) as lenient, \
            serve_in_thread(JudgeFake(reply="VERDICT: INCORRECT")) as strict:
        (a,) = run_all(judge(lenient, cache="disk", model="default"), [(task(), "\\boxed{7}")])
        (b,) = run_all(judge(strict, cache="disk", model="default"), [(task(), "\\boxed{7}")])
    assert (a.reward, b.reward) == (1.0, 0.0) and not b.details["cached"]


def test_concurrency_is_bounded() -> None:
    fake = JudgeFake(latency_s=0.05)
    with serve_in_thread(fake) as url:
        out = run_all(judge(url, max_concurrency=3), [(task(f"{i} + 1"), f"\\boxed{{{i + 1}}}") for i in range(12)])
    assert all(v.reward == 1.0 for v in out)
    assert fake.peak_in_flight == 3 and fake.requests == 12


def test_empty_or_master_key_answers_are_not_sent_to_the_judge() -> None:
    fake = JudgeFake(reply="VERDICT: CORRECT")  # a judge fooled by everything
    with serve_in_thread(fake) as url:
        out = run_all(judge(url), [(task(), ""), (task(), ":"), (task(), "Let's solve this problem step by step."),
                                   (task(), "\\boxed{}")])
    assert [v.reward for v in out] == [0.0] * 4 and fake.requests == 0
    assert out[0].details["skipped"]


@pytest.mark.parametrize("fake", [JudgeFake(error_rate=1.0), JudgeFake(mode="malformed"),
                                  JudgeFake(reply="I think it is fine."), JudgeFake(reply="VERDICT: MAYBE"),
                                  JudgeFake(reply="Score: 12/10")])
def test_judge_failures_raise_never_a_silent_zero(fake: JudgeFake) -> None:
    with serve_in_thread(fake) as url, pytest.raises(JudgeError):
        run_all(judge(url, max_retries=0), [(task(), "\\boxed{7}")])


def test_cascade_calls_the_judge_only_when_the_rule_cannot_decide() -> None:
    fake = JudgeFake()
    with serve_in_thread(fake) as url:
        stages = [{"_target_": "rollgen.verifiers.math.MathVerifier", "_name_": "rule"},
                  {"_target_": "rollgen.verifiers.judge.LLMJudge", "_name_": "judge", "base_url": url, "cache": "off"}]
        v = Cascade(Cascade.Params.model_validate({"stages": stages}))
        out = run_all(v, [(task(), "\\boxed{7}"), (task(), "\\boxed{8}"), (task(), "a small odd prime"),
                          (task(), "no idea, sorry")])
    assert [o.reward for o in out] == [1.0, 0.0, 0.0, 0.0]
    assert [o.details["decided_by"] for o in out] == ["rule", "rule", "judge", "judge"]
    assert fake.requests == 2


def test_a_failing_judge_in_a_run_is_a_verifier_error(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 4)
    with serve_in_thread(FakeOpenAI()) as policy_url, serve_in_thread(JudgeFake(error_rate=1.0)) as judge_url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={policy_url}", f"server.data_path={tasks}",
                               "progress=false", "verifier=judge", f"verifier.base_url={judge_url}",
                               "verifier.max_retries=0", "verifier.cache=off"], output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    rows = list(read_jsonl(tmp_path / "run" / "rollouts.jsonl"))
    assert len(rows) == 4
    assert all(r["status"] == "verifier_error" and r["reward"] is None and "JudgeError" in r["error"] for r in rows)


def test_a_working_judge_in_a_run(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 6)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=3)) as policy_url, serve_in_thread(JudgeFake()) as judge_url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={policy_url}", f"server.data_path={tasks}",
                               "progress=false", "verifier=judge", f"verifier.base_url={judge_url}",
                               "verifier.cache=off"], output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    rows = list(read_jsonl(tmp_path / "run" / "rollouts.jsonl"))
    assert all(r["status"] == "ok" and r["verifier"] == "judge" for r in rows)
    tasks_by_id = {json.loads(x)["id"]: json.loads(x)["answer"] for x in tasks.read_text().splitlines()}
    for r in rows:  # the judge agrees with the exact answer
        assert r["reward"] == float(f"\\boxed{{{tasks_by_id[r['task_id']]}}}" in r["completion"])
    assert {r["reward"] for r in rows} == {0.0, 1.0}
