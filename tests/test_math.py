"""The math domain: task files, the reasoning-gym server and its cache, and the math verifier."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from rollgen.records import Rollout, Task, Verdict
from rollgen.runtime import Runtime
from rollgen.servers.math import MathServer
from rollgen.servers.taskfile import TaskFileError, read_tasks, write_tasks
from rollgen.verifiers.math import MathVerifier, MathVerifyTimeout, extract_answer, parse_number, score_text

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = ["basic_arithmetic", "chain_sum", "gsm_symbolic"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Task]:
    """Real reasoning-gym tasks, 8 per generator, generated once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROLLGEN_CACHE_DIR", str(tmp_path_factory.mktemp("rg-cache")))
        return list(MathServer(MathServer.Params(generators=GENERATORS, size=8, seed=7)).tasks())


def rollout(completion: str) -> Rollout:
    return Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=completion, status="ok")


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


# ---------------------------------------------------------------- verifier on real reasoning-gym tasks


def test_generated_tasks_have_ids_answers_and_templated_prompts(generated: list[Task]) -> None:
    assert len(generated) == 24
    assert [t.id for t in generated[:2]] == ["basic_arithmetic-7-0", "basic_arithmetic-7-1"]
    assert {t.metadata["source_dataset"] for t in generated} == set(GENERATORS)
    for t in generated:
        assert t.prompt is None and t.messages and t.messages[-1]["role"] == "user"
        # chain_sum and gsm_symbolic say "final answer" themselves: the server's instruction is not added twice
        own = t.metadata["source_dataset"] != "basic_arithmetic"
        suffix = "" if own else "\nPut your final answer within \\boxed{}."
        assert t.messages[-1]["content"] == t.metadata["question"] + suffix
        assert "difficulty" in t.metadata
        assert parse_number(t.answer) is not None  # all three generators have numeric answers


@pytest.mark.parametrize("generator", GENERATORS)
def test_gold_answer_in_any_form_scores_1_and_wrong_answers_0(generated: list[Task], generator: str) -> None:
    tasks = [t for t in generated if t.metadata["source_dataset"] == generator]
    assert tasks
    for t in tasks:
        gold = t.answer
        for text, rule in [
            (f"Let me think. 2 + 2 = 4. So the result is \\boxed{{{gold}}}.", "boxed"),
            (f"Adding up 3 and 9 ... The answer is {gold}.", "answer_is"),
            (gold, "short"),
        ]:
            reward, details = score_text(text, gold)
            assert (reward, details["rule"], details["method"]) == (1.0, rule, "numeric"), text
        value = Fraction(parse_number(gold))
        wrong = [f"\\boxed{{{value + 1}}}", ""]
        if value != 0:
            wrong.append(f"The answer is {-value}.")
        for text in wrong:
            reward, details = score_text(text, gold)
            assert reward == 0.0, text
            assert details["method"] == ("none" if not text else "numeric")


def test_verifier_scores_generated_tasks_without_starting_workers(generated: list[Task]) -> None:
    async def run() -> list[float]:
        async with Runtime() as rt:
            v = await rt.attach(MathVerifier(MathVerifier.Params()))
            rewards = [(await v.verify(t, rollout(f"\\boxed{{{t.answer}}}"))).reward for t in generated]
            rewards += [(await v.verify(t, rollout("no idea"))).reward for t in generated]
            assert not v.pool.started  # numbers never need math-verify
            return rewards

    rewards = asyncio.run(run())
    assert rewards == [1.0] * len(generated) + [0.0] * len(generated)


# ---------------------------------------------------------------- extraction and exact numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{1}. Then \\boxed{\\frac{2}{3}}", ("\\frac{2}{3}", "boxed")),
        ("\\boxed{2} and \\boxed{-3}", ("2, -3", "boxed")),
        ("\\boxed{5} and a truncated \\boxed{\\frac{1", ("5", "boxed")),
        ("so \\fbox{7}", ("7", "boxed")),
        ("<think>maybe \\boxed{3}</think>The answer is 4.", ("4", "answer_is")),
        ("The answer is 3. Wait, no: Final Answer: $-2$", ("-2", "answer_is")),
        ("**Answer:** 12 apples", ("12", "answer_is")),
        ("Final Answer: The volume is 120. I hope it is correct.", ("120", "answer_is")),
        ("10 - 4 = 6, so we get 6", ("6", "short")),
        ("She had 23. So she has 15 apples left after giving 8 to her brother.", ("15", "conclusion")),
        ("It takes her 3 1/2 hours.", ("3 1/2", "short")),
        ("14", ("14", "short")),
        ("I do not know", (None, "none")),
        ("", (None, "none")),
    ],
)
def test_extract_answer_rules(text: str, expected: tuple[str | None, str]) -> None:
    assert extract_answer(text) == expected


def test_a_sentence_about_something_the_question_does_not_ask_is_not_the_answer() -> None:
    question = "A farmer has 3 cows and buys 4 more cows at the market. How many cows does the farmer have now?"
    text = "The farmer has 3 cows. He buys 4 more. A week has 7 days."
    assert extract_answer(text, question) == ("3", "conclusion")
    assert score_text(text, "7", question=question)[0] == 0.0
    assert extract_answer(text) == ("7", "conclusion")  # without the question, "has 7" reads as a statement
    assert score_text("He buys 4 more, so the farmer now has 7 cows.", "7", question=question)[0] == 1.0


def test_a_stated_answer_is_found_in_long_text_and_an_unstated_number_is_not() -> None:
    text = "x " * 5000 + "result 41 " + "filler " * 500 + "Therefore, the total is 42. I hope it is correct."
    assert extract_answer(text) == ("42", "conclusion")
    assert extract_answer("x " * 5000 + "result 41 " + "filler " * 500 + "and finally 42 done") == (None, "none")
    assert extract_answer("12345" + "x" * 5000) == (None, "none")


@pytest.mark.parametrize(
    ("gold", "completion"),
    [
        ("0.5", "\\boxed{1/2}"),
        ("1/2", "\\boxed{\\frac{1}{2}}"),
        ("\\frac{1}{2}", "The answer is 0.5"),
        ("0.5", "\\boxed{\\dfrac{1}{2}}"),
        ("1000", "\\boxed{1,000}"),
        ("1,000", "Answer: 1000."),
        ("-3", "\\boxed{$-3$}"),
        ("12", "\\boxed{12 \\text{ cm}}"),
        ("18", "The answer is \\$18.00"),
        ("5", "\\boxed{x = 5}"),
        ("1/12", "The answer is 0.0833333."),  # no exact decimal: six places agree, as in math-verify
        ("7/2", "It takes 3 1/2 hours."),
        ("7/2", "\\boxed{3\\frac{1}{2}}"),
        ("14916", "The answer is $14{,}916$."),
        ("1000000", "\\boxed{1\\,000\\,000}"),
        ("11111", "\\boxed{11,\\!111}"),
        ("1200", "\\boxed{1.2 \\times 10^3}"),
        ("2.74", "Answer: 2,74"),
        ("-2, 3", "The roots are x = -2 or x = 3."),
        ("-2, 3", "\\boxed{3} and \\boxed{-2}"),
        ("(2, -1)", "\\boxed{x = 2, y = -1}"),
        ("1, 2, 3", "The solutions are 1, 2, and 3."),
    ],
)
def test_numeric_equivalences(gold: str, completion: str) -> None:
    reward, details = score_text(completion, gold)
    assert (reward, details["method"]) == (1.0, "numeric")


@pytest.mark.parametrize(
    ("gold", "completion"),
    [("0.5", "\\boxed{0.51}"), ("1/3", "\\boxed{0.33333}"), ("0.5", "\\boxed{0.5000001}"), ("1000", "\\boxed{100}"),
     ("7", "\\boxed{-7}"), ("2", "\\boxed{1,2}"), ("(2, -1)", "\\boxed{(-1, 2)}")],
)
def test_numeric_comparison_is_exact(gold: str, completion: str) -> None:
    reward, details = score_text(completion, gold)
    assert (reward, details["method"]) == (0.0, "numeric")


def test_a_list_that_goes_on_is_not_the_list() -> None:
    assert score_text("The solutions are $1, 2, 3, \\ldots$", "1, 2, 3")[0] == 0.0
    assert score_text("$1, 2, 3, ...$", "1, 2, 3")[0] == 0.0


def test_details_always_have_the_four_keys() -> None:
    for text in ["\\boxed{2}", "nothing", "\\boxed{\\sqrt{2}}"]:
        _, details = score_text(text, "2")
        assert set(details) == {"extracted", "expected", "rule", "method"}
        assert details["expected"] == "2"


def test_parse_number_rejects_non_numbers_and_huge_inputs() -> None:
    for text in ["\\sqrt{2}", "2 pi", "1,2", "3/0", "x+1", "1e99999", "9" * 5000, "3 hundred", "3 4/2"]:
        assert parse_number(text) is None, text


# ---------------------------------------------------------------- math-verify in the worker pool


def test_symbolic_answers_go_through_math_verify_in_a_worker() -> None:
    async def run() -> list[tuple[float, str]]:
        task = Task(id="t", prompt="q", answer="\\sqrt{2}/2")
        async with Runtime() as rt:
            v = await rt.attach(MathVerifier(MathVerifier.Params(timeout_s=30, workers=1)))
            out = []
            texts = ["\\boxed{\\frac{\\sqrt{2}}{2}}", "\\boxed{\\sqrt{3}}", "The answer is $\\frac{1}{\\sqrt{2}}$."]
            for text in texts:
                verdict = await v.verify(task, rollout(text))
                assert verdict.verifier == "math"
                out.append((verdict.reward, verdict.details["method"]))
            pids = v.pool.pids()
            assert pids and os.getpid() not in pids
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "worker left running after the runtime closed"
        return out

    assert asyncio.run(run()) == [(1.0, "math_verify"), (0.0, "math_verify"), (1.0, "math_verify")]


def test_score_text_uses_math_verify_in_process() -> None:
    assert score_text("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\sqrt{2}/2")[0] == 1.0
    assert score_text("\\boxed{\\sqrt{3}}", "\\sqrt{2}/2")[0] == 0.0
    assert score_text("\\boxed{x^2 + 2x + 1}", "(x+1)^2") == (
        1.0, {"extracted": "x^2 + 2x + 1", "expected": "(x+1)^2", "rule": "boxed", "method": "math_verify"})


def test_worker_timeout_raises_and_the_worker_survives() -> None:
    async def run() -> None:
        task = Task(id="t", prompt="q", answer="\\frac{\\sqrt{2}}{2} + \\sqrt{3}")
        async with Runtime() as rt:
            v = await rt.attach(MathVerifier(MathVerifier.Params(timeout_s=0.0001, workers=1)))
            with pytest.raises(MathVerifyTimeout):
                await v.verify(task, rollout("\\boxed{\\sqrt{5} + \\frac{1}{\\sqrt{2}}}"))
            pids = v.pool.pids()
            with pytest.raises(TimeoutError):
                await v.verify(task, rollout("\\boxed{\\sqrt{7}}"))
            assert pids and v.pool.pids() == pids  # a soft timeout keeps the worker

    asyncio.run(run())


def test_a_hung_worker_is_killed_and_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    import rollgen.verifiers.math as math_verifier

    async def run() -> None:
        task = Task(id="t", prompt="q", answer="\\sqrt{2}/2")
        async with Runtime() as rt:
            v = await rt.attach(MathVerifier(MathVerifier.Params(timeout_s=30, workers=1)))
            assert (await v.verify(task, rollout("\\boxed{\\sqrt{2}/2}"))).reward == 1.0  # start the pool
            pids = v.pool.pids()
            # The worker's own 30 s alarm cannot fire first: the event loop's backstop (1 ms here) gives up.
            monkeypatch.setattr(math_verifier, "_HARD_GRACE_S", 0.001 - 30)
            with pytest.raises(TimeoutError, match="hung"):
                await v.verify(task, rollout("\\boxed{\\sqrt{3} + \\frac{\\pi}{7}}"))
            assert not v.pool.started and not any(Path(f"/proc/{pid}").exists() for pid in pids)
            monkeypatch.setattr(math_verifier, "_HARD_GRACE_S", 5.0)
            assert (await v.verify(task, rollout("\\boxed{\\sqrt{3}}"))).reward == 0.0
            assert v.pool.pids() and not set(v.pool.pids()) & set(pids)  # a fresh pool

    asyncio.run(run())


def test_worker_crash_raises_then_a_fresh_pool_is_used() -> None:
    async def run() -> None:
        task = Task(id="t", prompt="q", answer="\\sqrt{2}")
        async with Runtime() as rt:
            v = await rt.attach(MathVerifier(MathVerifier.Params(timeout_s=30, workers=1)))
            assert (await v.verify(task, rollout("\\boxed{\\sqrt{2}}"))).reward == 1.0
            for pid in v.pool.pids():
                os.kill(pid, signal.SIGKILL)
            with pytest.raises(RuntimeError, match="worker died"):
                await v.verify(task, rollout("\\boxed{\\sqrt{2}}"))
            assert (await v.verify(task, rollout("\\boxed{\\sqrt{2}}"))).reward == 1.0

    asyncio.run(run())


def test_missing_or_unparseable_gold_raises() -> None:
    async def run(answer: object) -> None:
        async with Runtime() as rt:
            v = await rt.attach(MathVerifier(MathVerifier.Params()))
            await v.verify(Task(id="t", prompt="q", answer=answer), rollout("\\boxed{\\sqrt{2}}"))

    with pytest.raises(ValueError, match="no ground-truth"):
        asyncio.run(run(None))
    with pytest.raises(ValueError, match="cannot parse the gold"):
        asyncio.run(run(""))


# ---------------------------------------------------------------- params mirror the YAML


def _yaml(name: str) -> dict:
    data = yaml.safe_load((ROOT / "conf" / name).read_text())
    data.pop("_target_")
    return data


def test_params_defaults_match_the_yaml_and_validate() -> None:
    assert MathServer.Params.model_validate(_yaml("server/math.yaml")) == MathServer.Params()
    assert MathVerifier.Params.model_validate(_yaml("verifier/math.yaml")) == MathVerifier.Params()
    for bad in [{"generators": []}, {"generators": ["chain_sum", "chain_sum"]}, {"size": 0},
                {"prompt_template": "Solve {problem}"}, {"typo": 1}]:
        with pytest.raises(ValidationError):
            MathServer.Params(**bad)
    for bad in [{"timeout_s": 0}, {"workers": 0}, {"timeout": 3}]:
        with pytest.raises(ValidationError):
            MathVerifier.Params(**bad)


# ---------------------------------------------------------------- the generated-task cache


def test_generated_tasks_are_cached_once_and_reread(cache_dir: Path) -> None:
    server = MathServer(MathServer.Params(generators=["chain_sum"], size=5, seed=3))
    path = server.cache_path()
    assert path.parent == cache_dir / "tasks" and not path.exists()
    first = list(server.tasks())
    stat = path.stat()
    assert len(path.read_text().splitlines()) == 5
    second = list(server.tasks())
    assert second == first and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind

    # The template is applied on the way out: another template reuses the same cache file.
    other = MathServer(MathServer.Params(generators=["chain_sum"], size=5, seed=3, prompt_template="Q: {question}",
                                         system_prompt="Be brief."))
    assert other.cache_path() == path
    tasks = list(other.tasks())
    assert tasks[0].messages == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Q: " + first[0].metadata["question"]}]
    assert MathServer(MathServer.Params(generators=["chain_sum"], size=5, seed=4)).cache_path() != path


def test_a_warm_cache_never_imports_reasoning_gym(cache_dir: Path) -> None:
    params = {"generators": ["basic_arithmetic"], "size": 3, "seed": 1}
    list(MathServer(MathServer.Params(**params)).tasks())
    code = (
        "import sys, json\n"
        "from rollgen.servers.math import MathServer\n"
        f"tasks = list(MathServer(MathServer.Params(**json.loads({json.dumps(json.dumps(params))}))).tasks())\n"
        "assert len(tasks) == 3, tasks\n"
        "assert 'reasoning_gym' not in sys.modules, 'reasoning_gym was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_unknown_generator_names_a_few_valid_ones(cache_dir: Path) -> None:
    server = MathServer(MathServer.Params(generators=["basic_arithmetc"]))
    with pytest.raises(ValueError, match="unknown reasoning-gym generators.*basic_arithmetic"):
        list(server.tasks())
    bad_option = MathServer.Params(generators=["chain_sum"], generator_config={"chain_sum": {"bad": 1}})
    with pytest.raises(ValueError, match="generator_config.chain_sum"):
        list(MathServer(bad_option).tasks())
    assert not (cache_dir / "tasks").exists() or not any((cache_dir / "tasks").iterdir())


def test_data_path_tasks_get_the_template_unless_they_are_chats(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "mine.jsonl", [
        json.dumps({"question": "What is 2+2?", "answer": "4"}),
        json.dumps({"id": "chat", "messages": [{"role": "user", "content": "hi"}], "answer": 1}),
    ])
    server = MathServer(MathServer.Params(data_path=str(path), system_prompt="S"))
    a, b = server.tasks()
    assert a.messages == [{"role": "system", "content": "S"},
                          {"role": "user", "content": "What is 2+2?\nPut your final answer within \\boxed{}."}]
    assert b.messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]
    assert server.fingerprint()["data_sha256"]


# ---------------------------------------------------------------- task files


def test_read_tasks_accepts_the_three_row_shapes(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "mixed.jsonl", [
        json.dumps({"id": "r1", "prompt": "1+1?", "answer": "2", "metadata": {"level": 1}}),
        "",
        json.dumps({"responses_create_params": {
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "3+4?"}]}],
            "instructions": "Think.", "temperature": 0.2,
            "tools": [{"type": "function", "name": "calc", "parameters": {"type": "object"}}]},
            "expected_answer": "7", "question": "3+4?"}),
        json.dumps({"responses_create_params": {"input": "5+5?"}, "answer": 10}),
        json.dumps({"question": "6*7?", "answer": "42", "source": "x"}),
        json.dumps({"id": 17, "problem": "Find x.", "solution": "so \\boxed{3}"}),
    ])
    rollgen, nemo, nemo_str, plain, problem = read_tasks(path)
    assert (rollgen.id, rollgen.prompt, rollgen.answer, rollgen.metadata) == ("r1", "1+1?", "2", {"level": 1})
    assert nemo.id == "mixed-3"
    assert nemo.messages == [{"role": "system", "content": "Think."}, {"role": "user", "content": "3+4?"}]
    assert nemo.tools == [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]
    assert nemo.answer == "7"
    assert nemo.metadata == {"question": "3+4?", "responses_create_params": {"temperature": 0.2}}
    assert (nemo_str.messages, nemo_str.answer) == ([{"role": "user", "content": "5+5?"}], 10)
    assert (plain.id, plain.prompt, plain.answer, plain.metadata) == ("mixed-5", "6*7?", "42", {"source": "x"})
    assert (problem.id, problem.prompt, problem.answer) == ("17", "Find x.", "so \\boxed{3}")
    assert score_text("\\boxed{3}", problem.answer)[0] == 1.0  # a worked solution's last \boxed is the gold


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "q", "answer": 1', "invalid JSON"),
        ('["q", 1]', "expected a JSON object, got an array"),
        ('{"answer": 1}', "no task input"),
        ('{"question": 5}', "'question' must be a non-empty string"),
        ('{"prompt": ["a"]}', "'prompt'"),
        ('{"messages": [{"content": "hi"}]}', "'messages[0]' must be an object with a string 'role'"),
        ('{"responses_create_params": {"input": []}}', "'responses_create_params.input' must be"),
        ('{"id": 1.5, "question": "q"}', "'id' must be"),
        ('{"id": "a", "question": "q"}', "duplicate id 'a' (first on line 1)"),
        ('{"question": "q", "metadata": 3}', "'metadata' must be an object"),
    ],
)
def test_a_malformed_line_names_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ['{"id": "a", "question": "q"}', '{"question": "r"}', line])
    tasks = read_tasks(path)
    assert [t.id for t in (next(tasks), next(tasks))] == ["a", "bad-2"]  # streamed: good lines come first
    with pytest.raises(TaskFileError) as err:
        next(tasks)
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)


def test_non_utf8_line_and_missing_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "latin1.jsonl", ['{"question": "ok"}', '{"question": "caf\xe9"}'.encode("latin-1")])
    with pytest.raises(TaskFileError, match=r":2: not UTF-8 \(bad byte 0xe9"):
        list(read_tasks(path))
    with pytest.raises(TaskFileError, match="nope.jsonl: no such task file"):
        read_tasks(tmp_path / "nope.jsonl")
    assert isinstance(TaskFileError("x"), ValueError)


def test_write_tasks_round_trips(tmp_path: Path) -> None:
    tasks = [Task(id="a", prompt="p", answer="1", metadata={"k": [1, 2]}),
             Task(id="b", messages=[{"role": "user", "content": "m"}],
                  tools=[{"type": "function", "function": {"name": "f"}}])]
    path = tmp_path / "sub" / "out.jsonl"
    assert write_tasks(path, tasks) == 2
    assert list(read_tasks(path)) == tasks
    assert [p.name for p in path.parent.iterdir()] == ["out.jsonl"]


# ---------------------------------------------------------------- the task source's own scorer


def _verify(v: MathVerifier, task: Task, text: str) -> tuple[float, dict]:
    """``v``'s verdict, on a runtime of its own; ``v.math_verify_used`` says whether math-verify ran."""
    async def go() -> Verdict:
        async with Runtime() as rt:
            await rt.attach(v)
            try:
                return await v.verify(task, rollout(text))
            finally:
                v.math_verify_used = getattr(v, "math_verify_used", False) or v.pool.started

    verdict = asyncio.run(go())
    return verdict.reward, verdict.details


@pytest.fixture(scope="module")
def fractions(tmp_path_factory: pytest.TempPathFactory) -> list[Task]:
    """Real fraction_simplification tasks: "Simplify the fraction 17080/42490 to its lowest terms"."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROLLGEN_CACHE_DIR", str(tmp_path_factory.mktemp("rg-fractions")))
        params = MathServer.Params(generators=["fraction_simplification"], generator_config={}, size=6, seed=3)
        return list(MathServer(params).tasks())


def test_lowest_terms_is_part_of_a_fraction_tasks_answer(fractions: list[Task]) -> None:
    v = MathVerifier(MathVerifier.Params())
    for t in fractions:
        m = t.metadata
        assert m["source_dataset"] == "fraction_simplification" and m["source_config"] == {}
        num, den = m["simplified_numerator"], m["simplified_denominator"]
        for text in (f"\\boxed{{{num}/{den}}}", f"The answer is $\\frac{{{num}}}{{{den}}}$.", f"\\boxed{{\\dfrac{{{num}}}{{{den}}}}}"):
            reward, details = _verify(v, t, text)
            assert (reward, details["method"], details["source_score"]) == (1.0, "numeric", 1.0), text
        # Equal in value, but not in lowest terms: the question's own fraction, and another multiple.
        for text in (f"\\boxed{{{m['numerator']}/{m['denominator']}}}", f"\\boxed{{\\frac{{{2 * num}}}{{{2 * den}}}}}"):
            reward, details = _verify(v, t, text)
            assert (reward, details["method"]) == (0.0, "source") and details["source_score"] < 1, text
    assert v.math_verify_used is False  # the source's scorer decided; math-verify never started
    # Without the source's scorer, value equality accepts the unreduced multiple (not the question's own).
    plain = MathVerifier(MathVerifier.Params(source_scorer=False))
    t = fractions[0]
    num, den = t.metadata["simplified_numerator"], t.metadata["simplified_denominator"]
    assert _verify(plain, t, f"\\boxed{{{2 * num}/{2 * den}}}")[0] == 1.0
    reward, details = _verify(plain, t, f"\\boxed{{{t.metadata['numerator']}/{t.metadata['denominator']}}}")
    assert reward == 0.0 and details["restates_question"] is True


def test_datasets_with_the_default_scorer_are_left_to_the_math_verifier(generated: list[Task]) -> None:
    v = MathVerifier(MathVerifier.Params())
    by_source = {t.metadata["source_dataset"]: t for t in generated}
    reward, details = _verify(v, by_source["basic_arithmetic"], f"The answer is {by_source['basic_arithmetic'].answer}.")
    assert (reward, details["method"]) == (1.0, "numeric") and "source_score" not in details
    chain = by_source["chain_sum"]  # chain_sum scores decimals itself: it must accept, and so must the value
    reward, details = _verify(v, chain, f"\\boxed{{{chain.answer}}}")
    assert (reward, details["method"], details["source_score"]) == (1.0, "numeric", 1.0)
    reward, details = _verify(v, chain, f"\\boxed{{{chain.answer} \\text{{ apples}}}}")
    assert (reward, details["source_score"]) == (1.0, 1.0)  # the scorer is given the plain form
    gsm = by_source["gsm_symbolic"]  # its scorer reads the first number it finds: -70 passes for 70 there
    reward, details = _verify(v, gsm, f"\\boxed{{-{gsm.answer}}}")
    assert (reward, details["source_score"]) == (0.0, 1.0)  # but the value is not the gold's


def test_a_scorer_that_raises_leaves_the_answer_to_the_math_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    import rollgen.verifiers.source as source

    def broken(answer: str | None, entry: dict) -> float:
        raise KeyError("simplified_numerator")

    monkeypatch.setitem(source._BUILT, ("broken_gen", "{}"), broken)
    task = Task(id="t", prompt="q", answer="3/4", metadata={"source_dataset": "broken_gen"})
    reward, details = _verify(MathVerifier(MathVerifier.Params()), task, "\\boxed{0.75}")
    assert (reward, details["method"]) == (1.0, "numeric") and "KeyError" in details["source_error"]
    unknown = Task(id="u", prompt="q", answer="3/4", metadata={"source_dataset": "no_such_generator"})
    assert _verify(MathVerifier(MathVerifier.Params()), unknown, "\\boxed{3/4}")[1]["method"] == "numeric"


# ---------------------------------------------------------------- what a reply states


@pytest.mark.parametrize(
    ("question", "gold", "completion", "reward"),
    [
        # the question's own quantity, or only its left side, is not an answer
        ("Simplify 6/8 to lowest terms.", "3/4", "\\boxed{6/8}", 0.0),
        ("Evaluate $2^{10}$.", "1024", "The value is $\\boxed{2^{10}}$.", 0.0),
        ("Write $0.75$ as a fraction.", "3/4", "\\boxed{0.75}", 0.0),
        ("Compute $3 + 4 \\cdot 5$.", "23", "\\boxed{3 + 4 \\cdot 5}", 0.0),
        ("Simplify 6/8 to lowest terms.", "3/4", "\\boxed{\\frac{6}{8} = ???}", 0.0),
        ("Simplify 6/8 to lowest terms.", "3/4", "\\boxed{\\frac{6}{8} = \\frac{3}{4}}", 1.0),
        ("Evaluate $2^{10}$.", "1024", "$2^{10} = 1024$", 1.0),
        # no stated answer; a hedge in prose is the guard's (the verifier reads the answer it states)
        ("Calculate 5 + 9.", "14", "Adding is one of the four operations. We learn it in school when we are 14", 0.0),
        # text after the answer
        ("Maria had 23 apples and gave 8 away. How many apples are left?", "15",
         "23 - 8 = 15. So she has 15 apples left after giving 8 to her brother.", 1.0),
        ("How many minutes are in 2.5 hours?", "150", "Therefore, 2.5 hours is 150 minutes. Verification: $150/60 = 2.5$", 1.0),
        # an answer sentence, a choice among the sentence's values
        ("40 students; 25 walk. How many take the bus?", "15", "The answer is: 25 students walk and 15 take the bus.", 1.0),
        ("A prism is 5 by 6 by 4. What is its volume?", "120", "Final Answer: The volume is 120. I hope it is correct.", 1.0),
        # units after the math, intervals as inequalities, mixed numbers
        ("How long is the diagonal?", "5\\sqrt{2}", "So the diagonal is $5\\sqrt{2}$ cm.", 1.0),
        ("Solve $2 \\le x + 1 < 6$.", "[1, 5)", "Subtract 1: $1 \\le x < 5$.", 1.0),
        ("Solve $2 \\le x + 1 < 6$.", "[1, 5)", "Subtract 1: $1 < x \\le 5$.", 0.0),
        ("How long does it take?", "3.5", "It takes 3 1/2 hours.", 1.0),
        # an intermediate box, a retracted one
        ("What is the area?", "20", "The width is \\boxed{4}.\nThen the area is 5 * 4 = 20.\nTherefore, the area is 20.", 1.0),
        ("Calculate 9 + 7.", "16", "9 + 7 = \\boxed{15}\nOops, I made a mistake. 9 + 7 = 16.\nSo the answer is \\boxed{16}.", 1.0),
        ("Calculate 9 + 7.", "16", "The answer is \\boxed{16}.\nCheck: 16 - 7 = 9.", 1.0),
    ],
)
def test_the_stated_answer_is_scored(question: str, gold: str, completion: str, reward: float) -> None:
    assert score_text(completion, gold, question=question, timeout_s=30)[0] == reward


def test_a_gold_solution_is_read_for_its_final_answer() -> None:
    solution = ("The stock keeps 90% and then 80% of that, 72% in all, so it lost 28%. Final Answer: The final "
                "answer is $28\\%$. I hope it is correct.")
    assert score_text("The loss is $\\boxed{28\\%}$.", solution)[0] == 1.0
    assert score_text("\\boxed{1}, \\boxed{2}", "\\boxed{1} papers and \\boxed{2} bins")[0] == 1.0
    assert score_text("\\boxed{1, 2}", "\\boxed{1} no no no no no \\boxed{2}")[0] == 0.0  # not one answer: the last box
