"""``server=llm_judge``: open-ended requests scored by a judge endpoint (a real HTTP fake on 127.0.0.1 that
decides by content), pairwise against the reference with the order swapped, rubric scoring, unparseable
verdicts, user task files, ``rollgen validate`` without a live judge, and a CLI run with two fakes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rollgen
from rollgen.build import build
from rollgen.commands.validate import main as validate
from rollgen.records import Rollout, Task, Verdict
from rollgen.rundir import read_jsonl
from rollgen.servers.llm_judge import JudgeServer
from rollgen.servers.taskfile import TaskFileError
from rollgen.verifiers import verify
from rollgen.verifiers.judge import PAIRWISE_PATTERN, JudgeError, LLMJudge, parse_preference
from tests.conftest import serve_in_thread, started
from tests.fakes import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]


def _server(*overrides: str) -> JudgeServer:
    return build(rollgen.compose(["server=llm_judge", *overrides], output_dir="x").server)


def _between(prompt: str, start: str, end: str) -> str | None:
    m = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), prompt, re.DOTALL)
    return m.group(1).strip() if m else None


def content_judge(good: Callable[[str], float]) -> Callable[[str], str | None]:
    """A judge that decides by content, wherever an answer is shown: of two answers, the one ``good`` rates
    higher wins (equal: TIE); a single response scores 9/10 when rated above 0, else 2/10. Its reasoning names
    the other verdicts, as real judges ramble, so only the last verdict line may count."""
    def reply(prompt: str) -> str | None:
        a, b = _between(prompt, "[Answer A]", "[End of answer A]"), _between(prompt, "[Answer B]", "[End of answer B]")
        if a is not None and b is not None:
            label = "TIE" if good(a) == good(b) else "A" if good(a) > good(b) else "B"
            return f"Could be VERDICT: A or VERDICT: B at first sight. Weighing the criteria...\nVERDICT: {label}"
        response = _between(prompt, "Response to grade:", "Give one point")
        if response is not None:
            return f"Considering the criteria, SCORE: {9 if good(response) else 2}/10"
        return None
    return reply


def fair_judge(tasks: list[Task]) -> Callable[[str], str | None]:
    """A judge that knows each request's reference answer: an answer is good when it is that reference."""
    reference_of = {t.messages[-1]["content"]: t.answer for t in tasks}

    def reply(prompt: str) -> str | None:
        reference = reference_of.get(_between(prompt, "Request:", "\nCriteria:") or "")
        return content_judge(lambda text: text.strip() == reference)(prompt)
    return reply


def first_position_judge(prompt: str) -> str | None:
    """A judge biased to whatever is shown first."""
    return "Answer A reads better.\nVERDICT: A" if "[Answer A]" in prompt else None


def _judge(url: str, **params: Any) -> LLMJudge:
    cfg = rollgen.compose(["server=llm_judge", f"verifier.base_url={url}", "verifier.cache=memory",
                           "verifier.max_retries=0"], output_dir="x")
    return LLMJudge(LLMJudge.Params.model_validate({**cfg.verifier.model_dump(by_alias=True, exclude={"target"}),
                                                    **params}))


def _rollout(task: Task, completion: str) -> Rollout:
    return Rollout(id=f"{task.id}#0", task_id=task.id, repeat=0, completion=completion, status="ok",
                   messages=[*task.chat(), {"role": "assistant", "content": completion}])


def _score(judge: LLMJudge, task: Task, *completions: str) -> list[Verdict]:
    async def main() -> list[Verdict]:
        async with started(judge):
            return list(await asyncio.gather(*(verify(judge, task, _rollout(task, c)) for c in completions)))

    return asyncio.run(main())


SKY = Task(id="sky", prompt="Why is the sky blue?", answer="Air molecules scatter blue sunlight more (Rayleigh).",
           metadata={"rubric": ["Names Rayleigh scattering", "Is brief"]})
WRONG = "Because the sky reflects the colour of the ocean."


def test_the_bundled_requests() -> None:
    tasks = list(_server().tasks())
    assert len(tasks) == 44 and len({t.id for t in tasks}) == 44
    assert Counter(t.metadata["domain"] for t in tasks) == {"explanation": 11, "advice": 11, "summarisation": 11,
                                                            "writing": 11}
    assert all(isinstance(t.answer, str) and len(t.answer) > 40 for t in tasks)
    assert all(len(t.metadata["rubric"]) >= 3 for t in tasks)
    assert all(t.messages == [{"role": "user", "content": t.messages[0]["content"]}] for t in tasks)
    advice = list(_server("server.domains=[advice]").tasks())
    assert len(advice) == 11 and {t.metadata["domain"] for t in advice} == {"advice"}
    with pytest.raises(ValueError, match=r"domains: no bundled tasks with domain 'poetry'; the domains are advice, "):
        _server("server.domains=[poetry]").check()


def test_user_files_in_rollgen_nemo_gym_and_hf_shapes(tmp_path: Path) -> None:
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps({"id": "r1", "prompt": "Give one tip for sleep.", "answer": "Keep a regular bedtime.",
                               "metadata": {"rubric": "Practical and safe"}}) + "\n"
                   + json.dumps({"id": "r2", "prompt": "Write a haiku.", "rubric": [
                       {"criterion": "Three lines", "points": 2}, "About nature"]}) + "\n")
    r1, r2 = _server(f"server.data_path={own}").tasks()
    assert r1.answer == "Keep a regular bedtime." and r2.answer is None and r2.metadata["rubric"][1] == "About nature"
    gym = tmp_path / "gym.jsonl"
    gym.write_text(json.dumps({"responses_create_params": {"input": [{"role": "user", "content": "Define GDP."}]},
                               "expected_answer": "The total value of goods and services a country produces."}) + "\n")
    [g] = _server(f"server.data_path={gym}").tasks()
    assert g.answer.startswith("The total value") and g.messages[-1]["content"] == "Define GDP."
    hf = tmp_path / "hf.parquet"
    pq.write_table(pa.Table.from_pylist([{"instruction": "Summarise: the cat sat.", "output": "A cat sat.",
                                          "criteria": ["Short", "Faithful"]}]), hf)
    [h] = _server(f"server.data_path={hf}", "server.fields={question: instruction, answer: output, rubric: criteria}"
                  ).tasks()
    assert h.answer == "A cat sat." and h.metadata["rubric"] == ["Short", "Faithful"]
    assert h.messages[-1]["content"] == "Summarise: the cat sat."


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    rows = [{"prompt": "ok", "answer": "fine"}, {"prompt": "no reference, no rubric"}, {"prompt": "x", "answer": " "},
            {"prompt": "y", "rubric": 42}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    skipped: list[str] = []
    assert [t.id for t in _server(f"server.data_path={path}").tasks(skipped)] == ["bad-1"]
    assert [s.split(": ", 1)[0] for s in skipped] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "neither a reference answer ('answer') nor a 'rubric'" in skipped[0]
    assert "'rubric' must be a text or a list of criteria" in skipped[2]
    with pytest.raises(TaskFileError, match=r"bad\.jsonl:2: .*neither a reference answer"):
        list(_server(f"server.data_path={path}").tasks())


def test_the_reference_scores_1_and_a_wrong_answer_below_1() -> None:
    fake = FakeOpenAI(reply_fn=content_judge(lambda text: text.count("scatter")), keep_bodies=True)
    with serve_in_thread(fake) as url:
        ref, wrong, better = _score(_judge(url), SKY, SKY.answer, WRONG,
                                    "<think>hmm</think>Rayleigh scattering: short blue waves scatter most.")
    assert (ref.reward, wrong.reward, better.reward) == (1.0, 0.0, 1.0)
    assert [v["label"] for v in ref.details["verdicts"]] == ["TIE", "TIE"] and ref.details["outcome"] == "tie"
    assert [(v["order"], v["label"], v["outcome"]) for v in wrong.details["verdicts"]] == [
        ("reference_first", "A", "loss"), ("answer_first", "B", "loss")]
    assert better.details["outcome"] == "win" and better.details["swap_agree"] is True
    assert fake.requests == 5  # two calls per answer, the order swapped (the reference against itself: one prompt)
    prompts = [b["messages"][-1]["content"] for b in fake.bodies]
    shown = {(_between(p, "[Answer A]", "[End of answer A]"), _between(p, "[Answer B]", "[End of answer B]"))
             for p in prompts}
    assert (SKY.answer, WRONG) in shown and (WRONG, SKY.answer) in shown
    assert all("- Names Rayleigh scattering\n- Is brief" in p and "Why is the sky blue?" in p for p in prompts)
    assert "<think>" not in "".join(prompts)  # the answer after </think> is judged
    assert all(b["temperature"] == 0.0 for b in fake.bodies)


def test_position_swap_turns_a_biased_verdict_into_a_tie() -> None:
    with serve_in_thread(FakeOpenAI(reply_fn=first_position_judge)) as url:
        judge = _judge(url)
        wrong, ref = _score(judge, SKY, WRONG, SKY.answer)
    for v in (wrong, ref):  # the judge always says "A": the two orders disagree
        assert v.reward == 0.5 and v.details["swap_agree"] is False and v.details["outcome"] == "disagree"
        assert [x["label"] for x in v.details["verdicts"]] == ["A", "A"]
        assert [x["outcome"] for x in v.details["verdicts"]] == ["loss", "win"]
    with serve_in_thread(FakeOpenAI(reply_fn=first_position_judge)) as url:
        (strict,) = _score(_judge(url, swap_disagreement_reward=0.0), SKY, WRONG)
    assert strict.reward == 0.0


def test_compare_two_rollouts_both_ways() -> None:
    consistent = FakeOpenAI(reply_fn=content_judge(lambda text: "Rayleigh" in text))
    with serve_in_thread(consistent) as url, serve_in_thread(FakeOpenAI(reply_fn=first_position_judge)) as biased_url:
        a, b = _judge(url), _judge(biased_url)

        async def main() -> list[dict[str, Any]]:
            async with started(a, b):
                return [await a.compare(SKY, WRONG, "It is Rayleigh scattering."),
                        await a.compare(SKY, "Rayleigh, in short.", WRONG),
                        await b.compare(SKY, "Rayleigh, in short.", WRONG)]

        second_wins, first_wins, biased = asyncio.run(main())
    assert second_wins["winner"] == "second" and second_wins["swap_agree"]
    assert [v["label"] for v in second_wins["verdicts"]] == ["B", "A"]
    assert first_wins["winner"] == "first" and biased["winner"] == "disagree" and not biased["swap_agree"]


def test_rubric_only_tasks_are_scored_with_their_criteria() -> None:
    task = Task(id="haiku", prompt="Write a haiku about rain.", metadata={"rubric": ["Three lines", "About rain"]})
    fake = FakeOpenAI(reply_fn=content_judge(lambda text: "rain" in text), keep_bodies=True)
    with serve_in_thread(fake) as url:
        good, bad = _score(_judge(url), task, "Soft rain on the roof\nleaves bow\nthe gutter sings", "Sunny day")
    assert (good.reward, bad.reward) == (pytest.approx(0.9), pytest.approx(0.2)) and good.details["score"] == "9/10"
    prompt = fake.bodies[0]["messages"][-1]["content"]
    assert "Criteria:\n- Three lines\n- About rain" in prompt and "Reference answer" in prompt and fake.requests == 2


def test_an_answer_that_injects_placeholders_is_not_substituted() -> None:
    fake = FakeOpenAI(reply_fn=content_judge(lambda text: "Rayleigh" in text), keep_bodies=True)
    with serve_in_thread(fake) as url:
        (v,) = _score(_judge(url), SKY, "{first} {reference} {rubric}")
    assert v.reward == 0.0
    assert all("{first} {reference} {rubric}" in b["messages"][-1]["content"] for b in fake.bodies)


@pytest.mark.parametrize("reply", ["I like both equally, honestly.", "VERDICT: C", "SCORE: maybe"])
def test_an_unparseable_verdict_is_a_verifier_error_and_is_asked_again(reply: str) -> None:
    calls: list[str] = []

    def flaky(prompt: str) -> str:
        calls.append(prompt)
        return reply if len(calls) == 1 else content_judge(lambda text: "Rayleigh" in text)(prompt) or ""

    with serve_in_thread(FakeOpenAI(reply_fn=flaky)) as url:
        judge = _judge(url, pairwise=False)

        async def main() -> tuple[BaseException | None, Verdict]:
            async with started(judge):
                try:
                    await verify(judge, SKY, _rollout(SKY, SKY.answer))
                    first = None
                except JudgeError as e:
                    first = e
                return first, await verify(judge, SKY, _rollout(SKY, SKY.answer))

        error, again = asyncio.run(main())
    assert isinstance(error, JudgeError) and ("no score" in str(error) or "neither a label" in str(error))
    assert again.reward == pytest.approx(0.9) and len(calls) == 2  # the bad reply was not cached


@pytest.mark.parametrize(("reply", "label"), [
    ("VERDICT: A", "A"), ("**Verdict:** [[B]]", "B"), ("verdict = tie", "TIE"), ("Verdict: [[A]]", "A"),
    ("VERDICT: A at first; on reflection\nVERDICT: B", "B"), ("Final verdict: tie.", "TIE")])
def test_pairwise_verdicts_parse_however_written(reply: str, label: str) -> None:
    assert parse_preference(reply, re.compile(PAIRWISE_PATTERN)) == label


def test_a_final_answer_judge_keeps_the_standard_validation_cases() -> None:
    math_judge = LLMJudge(LLMJudge.Params())  # verifier=judge: grades a final answer
    assert math_judge.validation_cases(SKY, None) is None
    open_cases = _judge("http://127.0.0.1:9/v1").validation_cases(SKY, None)
    assert open_cases is not None and {c.kind for c in open_cases} == {
        "empty", "question_repeated", "reference", "reference_after_thinking", "truncated"}


def test_validate_needs_no_live_judge(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "v"
    assert validate(["server=llm_judge", "verifier.base_url=http://127.0.0.1:9/v1", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"] == 44 and report["confusion"]["positive"]["reward_1"] == 88
    assert report["confusion"]["negative"]["reward_0"] == 176 and report["verifier_note"].startswith("judge: stub")
    assert "not the judge model's grading" in capsys.readouterr().out


def test_validate_with_a_live_judge_measures_it(tmp_path: Path) -> None:
    fair = FakeOpenAI(reply_fn=fair_judge(list(_server().tasks())))
    with serve_in_thread(fair) as url:
        ok = validate(["server=llm_judge", "verifier.validate_with=endpoint", f"verifier.base_url={url}",
                       "server.domains=[writing]", "--out", str(tmp_path / "fair")])
    assert ok == 0 and fair.requests > 0
    with serve_in_thread(FakeOpenAI(reply_fn=first_position_judge)) as url:  # a biased judge fails validation
        bad = validate(["server=llm_judge", "verifier.validate_with=endpoint", f"verifier.base_url={url}",
                        "verifier.model=biased", "server.domains=[writing]", "--out", str(tmp_path / "biased")])
    report = json.loads((tmp_path / "biased" / "report.json").read_text())
    assert bad == 1 and report["kinds"]["reference"]["failures"] == 11 and "endpoint" in report["verifier_note"]


def _pairs(tasks: list[Task]) -> dict[str, tuple[str, str]]:
    return {t.messages[-1]["content"]: (t.answer, "I am not sure, sorry; it depends on many things.") for t in tasks}


def test_a_cli_run_with_a_policy_and_a_judge(tmp_path: Path) -> None:
    tasks = list(_server("server.domains=[explanation,writing]").tasks())
    references = {t.answer for t in tasks}
    policy = FakeOpenAI(pairs=_pairs(tasks), alternate=True)
    key = "judge-key-" + "7f3a9c2e5b1d8f4a"
    judge = FakeOpenAI(reply_fn=fair_judge(tasks), api_key=key)
    out = tmp_path / "run"
    env = {**os.environ, "JUDGE_TEST_KEY": key, "PYTHONPATH": str(ROOT)}
    with serve_in_thread(policy) as policy_url, serve_in_thread(judge) as judge_url:
        proc = subprocess.run(
            [sys.executable, "-m", "rollgen", "server=llm_judge", "server.domains=[explanation,writing]",
             "sampler=dpo", "policy=openai", f"policy.base_url={policy_url}", f"verifier.base_url={judge_url}",
             "verifier.api_key_env=JUDGE_TEST_KEY", "progress=false", "format.validation_fraction=0",
             f"hydra.run.dir={out}"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(read_jsonl(out / "rollouts.jsonl"))
    assert len(rows) == 44 and Counter(r["reward"] for r in rows) == {1.0: 22, 0.0: 22}
    assert all(r["verifier"] == "judge" and len(r["reward_details"]["verdicts"]) == 2 for r in rows)
    assert judge.requests == 22 * 2 + 22 and judge.auth_failures == 0  # the reference against itself: one prompt
    dataset = list(read_jsonl(out / "dataset" / "train.jsonl"))
    assert len(dataset) == 22 and all(d["chosen"][-1]["content"] in references for d in dataset)
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()) + proc.stdout + proc.stderr
    assert key not in written and key[-12:] not in written


def test_a_failing_judge_in_a_run_leaves_verifier_errors(tmp_path: Path) -> None:
    tasks = list(_server("server.domains=[advice]", "limit=4").tasks())[:4]
    with serve_in_thread(FakeOpenAI(pairs=_pairs(tasks))) as policy_url, \
            serve_in_thread(FakeOpenAI(replies={"[Answer A]": "Both are fine."})) as judge_url:
        cfg = rollgen.compose(["server=llm_judge", "server.domains=[advice]", "limit=4", "policy=openai",
                               f"policy.base_url={policy_url}", f"verifier.base_url={judge_url}",
                               "verifier.max_retries=0", "progress=false"], output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    rows = list(read_jsonl(tmp_path / "run" / "rollouts.jsonl"))
    assert len(rows) == 4 and all(r["status"] == "verifier_error" and r["reward"] is None for r in rows)
    assert all("no verdict" in r["error"] for r in rows)


def test_a_judge_that_echoes_its_key_in_errors_leaks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "judge-key-" + "c0ffee1234abcd99"
    monkeypatch.setenv("JUDGE_TEST_KEY", key)
    fake = FakeOpenAI(error_rate=1.0, echo_key=True, api_key=key)
    with serve_in_thread(fake) as url:
        judge = _judge(url, api_key_env="JUDGE_TEST_KEY")
        with pytest.raises(JudgeError) as e:
            _score(judge, SKY, WRONG)
    assert fake.requests >= 1 and fake.auth_failures == 0  # the key was sent, and the error echoed it back
    assert "[redacted]" in str(e.value) and key not in str(e.value) and key[-9:] not in str(e.value)
