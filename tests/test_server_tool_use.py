"""``server=tool_use``: tools that compute right and refuse bad input, bundled tasks with expected calls, the
tool_use verifier (final answer; calls by BFCL's AST rules), and the multi-turn loop against the fake endpoint:
parallel calls in one turn run concurrently, a hanging tool times out, tool errors go back to the model, and
every call and result reaches the rollouts and the SFT dataset."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import pytest

import rollgen
from rollgen.build import build, build_verifier
from rollgen.commands.validate import main as validate
from rollgen.config import SamplerConfig
from rollgen.policy import Endpoint
from rollgen.policy.client import PolicyClient
from rollgen.records import Rollout, Task
from rollgen.rundir import read_jsonl
from rollgen.servers.taskfile import TaskFileError
from rollgen.servers.tool_use import ToolUseServer
from rollgen.servers.tools import ToolError, add_days, calculator, convert_units, days_between, lookup, run_tool, weekday
from rollgen.unit import RolloutUnit
from rollgen.verifiers import verify
from rollgen.verifiers.tool_use import ToolUseVerifier
from rollgen.verifiers.toolcalls import match_call, parse_call
from tests.conftest import serve_in_thread, started
from tests.fakes import FakeOpenAI


def _server(*overrides: str) -> ToolUseServer:
    return build(rollgen.compose(["server=tool_use", *overrides], output_dir="x").server)


@functools.cache
def _tasks() -> list[Task]:
    return list(_server().tasks())


def _reference_turns(task: Task) -> list[list[dict[str, Any]]]:
    """The task's expected calls, turn by turn, each argument its first accepted value."""
    return [[{"name": name, "arguments": {p: next(v for v in values if v != "") for p, values in params.items()}}
             for call in turn for name, params in call.items()] for turn in task.metadata["expected_calls"]]


def _conversation(task: Task, turns: list[list[dict[str, Any]]], final: str) -> list[dict[str, Any]]:
    """The messages of a rollout that makes ``turns`` of calls (results from the real tools), then says ``final``."""
    messages = task.chat()
    for t, turn in enumerate(turns):
        calls = [{"id": f"c{t}{i}", "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                 for i, c in enumerate(turn)]
        messages.append({"role": "assistant", "content": "", "tool_calls": calls})
        messages += [{"role": "tool", "tool_call_id": call["id"], "content": run_tool(c["name"], c["arguments"])}
                     for call, c in zip(calls, turn)]
    return [*messages, {"role": "assistant", "content": final}]


def _score(verifier: Any, task: Task, messages: list[dict[str, Any]]) -> float:
    rollout = Rollout(id=f"{task.id}#0", task_id=task.id, repeat=0, messages=messages,
                      completion=messages[-1]["content"], status="ok")

    async def main() -> float:
        return (await verify(verifier, task, rollout)).reward
    return asyncio.run(main())


def _verifier(*overrides: str) -> Any:
    cfg = rollgen.compose(["server=tool_use", *overrides], output_dir="x")
    return build_verifier(cfg.verifier, cfg.guards)


def test_the_bundled_tasks_load_and_their_reference_calls_give_the_gold() -> None:
    tasks = _tasks()
    assert len(tasks) == 57 and len({t.id for t in tasks}) == 57
    kinds = [t.metadata["kind"] for t in tasks]
    assert {k: kinds.count(k) for k in set(kinds)} == {"single": 29, "chained": 10, "parallel": 4, "parallel_chained": 14}
    for task in tasks:
        assert [m["role"] for m in task.messages] == ["system", "user"] and "\\boxed{}" in task.messages[1]["content"] \
            or "Answer" in task.messages[1]["content"]
        assert [t["function"]["name"] for t in task.tools] == [
            "calculator", "convert_units", "add_days", "weekday", "days_between", "lookup"]
        turns = _reference_turns(task)
        assert 1 <= len(turns) <= 3  # calls fit sampler.max_turns=4 with the answer turn
        results = [run_tool(c["name"], c["arguments"]) for turn in turns for c in turn]  # none raises
        if "abs_tol" in task.metadata:  # a rounded number: the last result, rounded, is the gold
            assert abs(float(results[-1]) - float(task.answer)) <= task.metadata["abs_tol"]
    assert any(len(turn) == 3 for t in tasks for turn in _reference_turns(t))
    assert [t.id for t in _server("server.kinds=[parallel]").tasks()] == ["tool-045", "tool-049", "tool-052", "tool-056"]
    with pytest.raises(ValueError, match=r"kinds: no bundled tasks with kind 'nested'; the kinds are chained, "):
        _server("server.kinds=[nested]").check()
    small = _server("server.tools=[calculator]")
    assert [s["function"]["name"] for s in small.tools()] == ["calculator"]
    with pytest.raises(ValueError, match="unknown tools search"):
        _server("server.tools=[search]")


def test_the_tools_compute_right() -> None:
    assert calculator("(1234 + 5678) * 9") == "62208" and calculator("2^10") == "1024" and calculator("7 / 2") == "3.5"
    assert calculator("sqrt(2)") == "1.41421356237" and calculator("-3 ** 2") == "-9" and calculator("17 // 5 + 17 % 5") == "5"
    assert calculator("round(2 * pi, 3)") == "6.283" and calculator("max(3, 9, 4) - min(3, 9, 4)") == "6"
    assert convert_units(5, "km", "mi") == "3.10685596119" and convert_units(212, "F", "C") == "100"
    assert convert_units(-40, "celsius", "Fahrenheit") == "-40" and convert_units(1, "Square Miles", "acre") == "640"
    assert convert_units(2, "h", "min") == "120" and convert_units(1, "gal", "ml") == "3785.411784"
    assert weekday("2024-01-01") == "Monday" and add_days("2024-02-28", 1) == "2024-02-29"
    assert add_days("2024-03-01", -1) == "2024-02-29" and days_between("2024-12-31", "2024-01-01") == "-365"
    assert lookup("countries", "fra", "capital") == "Paris" and lookup("countries", "Japan", "population") == "124500000"
    assert lookup("elements", "79", "name") == "Gold" and lookup("elements", "hg", "melting_point_c") == "-38.83"


@pytest.mark.parametrize("call, message", [
    (lambda: calculator("__import__('os').system('true')"), "unsupported syntax"),
    (lambda: calculator("__import__('os')"), "unknown function '__import__'; the functions are sqrt"),
    (lambda: calculator("open('/etc/passwd')"), "unknown function 'open'"),
    (lambda: calculator("(1).__class__"), "unsupported syntax"),
    (lambda: calculator("x + 1"), "unknown name 'x': use numbers, pi, e and the functions sqrt"),
    (lambda: calculator("9 ** 9 ** 9 ** 9"), "too large"),
    (lambda: calculator("10 ** 99 * 10 ** 99"), "too large"),
    (lambda: calculator("round(5, -10 ** 50)"), "at most 15 digits"),
    (lambda: calculator("1 / (3 - 3)"), "division by zero"),
    (lambda: calculator("sqrt(-1)"), "math domain error"),
    (lambda: calculator("2 +"), "not an arithmetic expression"),
    (lambda: calculator("1,000 + 1"), "unsupported syntax"),
    (lambda: calculator("   "), "empty expression"),
    (lambda: convert_units(3, "km", "kg"), "cannot convert length (km) to mass (kg)"),
    (lambda: convert_units(3, "parsec", "km"), "unknown unit 'parsec'; known units: length: m, km"),
    (lambda: convert_units(-300, "C", "K"), "below absolute zero"),
    (lambda: weekday("2024-02-30"), "date: '2024-02-30' is not a date as YYYY-MM-DD"),
    (lambda: add_days("9999-12-31", 1), "outside years 1-9999"),
    (lambda: lookup("planets", "Mars", "mass"), "unknown table 'planets'; the tables are countries, elements"),
    (lambda: lookup("countries", "Atlantis", "capital"), "no row 'Atlantis' in table 'countries'"),
    (lambda: lookup("countries", "France", "anthem"), "no field 'anthem' in table 'countries'; the fields are name, iso3"),
    (lambda: lookup("elements", "Helium", "melting_point_c"), "has no value of 'melting_point_c' for 'Helium'"),
    (lambda: run_tool("search", {"q": "x"}), "unknown tool 'search'; the tools are calculator"),
])
def test_the_tools_refuse_bad_input_with_a_message(call: Any, message: str) -> None:
    with pytest.raises(ToolError) as e:
        call()
    assert message in str(e.value)


def test_the_reference_calls_and_answer_score_1_and_wrong_ones_below() -> None:
    both = _verifier("verifier.calls_weight=1.0")  # half the reward for the answer, half for the calls
    answer_only = _verifier()
    for task in _tasks():
        messages = _conversation(task, _reference_turns(task), f"The answer is \\boxed{{{task.answer}}}.")
        assert _score(both, task, messages) == 1.0 and _score(answer_only, task, messages) == 1.0, task.id
    task = next(t for t in _tasks() if t.id == "tool-050")  # [lookup, lookup] -> calculator -> convert_units
    turns = _reference_turns(task)
    right = f"\\boxed{{{task.answer}}}"
    assert _score(both, task, _conversation(task, turns, "\\boxed{251000}")) == 0.5  # right calls, wrong answer
    assert _score(answer_only, task, _conversation(task, turns, "\\boxed{251000}")) == 0.0
    assert _score(both, task, _conversation(task, [], right)) == 0.5  # the answer without any call
    assert _score(answer_only, task, _conversation(task, [], right)) == 1.0  # calls_weight 0: the answer alone
    swapped = [list(reversed(turns[0])), *turns[1:]]  # parallel calls in the other order: still all matched
    assert _score(both, task, _conversation(task, swapped, right)) == 1.0
    wrong_key = [[{**turns[0][0], "arguments": {**turns[0][0]["arguments"], "key": "Sweden"}}, turns[0][1]], *turns[1:]]
    assert _score(both, task, _conversation(task, wrong_key, right)) == pytest.approx(0.5 + 0.5 * 3 / 4)
    extra = [*turns, [{"name": "weekday", "arguments": {"date": "2024-01-01"}}]]  # a call not needed: 4 of 5
    assert _score(both, task, _conversation(task, extra, right)) == pytest.approx(0.5 + 0.5 * 4 / 5)
    by_code = [[{**c, "arguments": {**c["arguments"], "key": c["arguments"]["key"].upper()[:3]}} for c in turns[0]], *turns[1:]]
    assert by_code[0][0]["arguments"]["key"] == "FIN"  # an ISO code is among the accepted keys
    assert _score(both, task, _conversation(task, by_code, right)) == 1.0


def test_calls_are_matched_by_bfcl_rules() -> None:
    spec = {"name": "f", "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string"}, "n": {"type": "integer"}, "x": {"type": "number"}, "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}}, "unit": {"type": "string"}}}}
    want = {"f": {"city": ["San Francisco, CA"], "n": [3], "x": [2.0], "flag": [True], "tags": [["a b", "C"]],
                  "unit": ["celsius", ""]}}
    ok = {"city": "san francisco ca", "n": 3, "x": 2, "flag": True, "tags": ["AB", "c"]}
    assert match_call(want, "f", ok, spec) is None  # strings standardised; int for a number; optional unit left out
    assert match_call(want, "f", {**ok, "unit": "Celsius"}, spec) is None
    assert "type integer, got float" in match_call(want, "f", {**ok, "n": 3.0}, spec)
    assert "type boolean, got int" in match_call(want, "f", {**ok, "flag": 1}, spec)
    assert "type integer, got bool" in match_call({"f": {**want["f"], "n": [1]}}, "f", {**ok, "n": True}, spec)
    assert "missing required parameter 'city'" in match_call(want, "f", {k: v for k, v in ok.items() if k != "city"}, spec)
    assert "unexpected parameter 'zip'" in match_call(want, "f", {**ok, "zip": "94103"}, spec)
    assert "parameter 'n' not given and not optional" in match_call(want, "f", {k: v for k, v in ok.items() if k != "n"}, spec)
    assert "not one of" in match_call(want, "f", {**ok, "city": "Los Angeles"}, spec)
    assert match_call(want, "g", ok, spec) == "called 'g', expected 'f'"


def test_user_task_files(tmp_path: Path) -> None:
    calc = {"type": "function", "name": "calculator", "parameters": {
        "type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}
    rows = [
        {"id": "mine", "prompt": "What is 12 * 12?", "answer": "144",
         "metadata": {"expected_calls": [{"calculator": {"expression": ["12*12", "12 ** 2"]}}]}},
        {"id": "gym", "responses_create_params": {"input": [{"role": "user", "content": "How much is 3 + 4?"}],
                                                  "tools": [calc]}, "expected_answer": "7"},
        {"id": "calls-only", "question": "Which weekday was 2000-01-01?",
         "expected_calls": [[{"weekday": {"date": ["2000-01-01"]}}]]},
        {"id": "foreign", "prompt": "Search the web", "answer": "x",
         "tools": [{"type": "function", "function": {"name": "web_search", "parameters": {}}}]},
        {"id": "nothing", "prompt": "Just chat"},
        {"id": "bad-calls", "prompt": "x", "answer": "1", "metadata": {"expected_calls": [{"calculator": "1+1"}]}},
        {"id": "not-offered", "prompt": "x", "answer": "1", "metadata": {"expected_calls": [{"search": {"q": ["x"]}}]}},
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = ToolUseServer(ToolUseServer.Params(data_path=str(path)))
    skipped: list[str] = []
    mine, gym, calls_only = server.tasks(skipped)
    assert [s.split(": ", 1)[1] for s in skipped] == [
        "task 'foreign' lists tools server=tool_use does not run: web_search; the tools are add_days, calculator, "
        "convert_units, days_between, lookup, weekday",
        "task 'nothing' has nothing to check: give 'answer' (the final answer) or 'metadata.expected_calls' (the "
        "calls to make), or both",
        "'expected_calls' call 1: must be {\"tool name\": {\"param\": [accepted values]}}, got {\"calculator\": \"1+1\"}",
        "task 'not-offered' expects calls to tools not offered: search"]
    assert skipped[0].startswith(f"{path}:4: ")
    assert len(mine.tools) == 6 and [t["function"]["name"] for t in gym.tools] == ["calculator"]
    assert [m["role"] for m in gym.messages] == ["system", "user"] and gym.answer == "7"  # chat rows as they are
    assert mine.messages[-1]["content"] == "What is 12 * 12?\nWhen you have the result, give the final answer in \\boxed{}."
    with pytest.raises(TaskFileError, match=r"mine\.jsonl:4: task 'foreign' lists tools"):
        list(ToolUseServer(ToolUseServer.Params(data_path=str(path))).tasks())
    verifier = _verifier()
    assert _score(verifier, mine, _conversation(mine, [[{"name": "calculator", "arguments": {"expression": "12 ** 2"}}]],
                                                "\\boxed{144}")) == 1.0
    scored = [_score(verifier, calls_only, _conversation(calls_only, turns, "Saturday"))
              for turns in ([[{"name": "weekday", "arguments": {"date": "2000-01-01"}}]],
                            [[{"name": "weekday", "arguments": {"date": "2000-01-02"}}]], [])]
    assert scored == [1.0, 0.0, 0.0]  # no answer to check: the calls decide


def _script(tasks: list[Task], right: bool | None = True) -> dict[str, list[Any]]:
    """The fake's tool script: each task's reference calls, turn by turn, then its answer (or a wrong one)."""
    script = {}
    for t in tasks:
        answer = (f"Done: the answer is \\boxed{{{t.answer}}}.", "I believe it is \\boxed{0}.")
        script[t.messages[-1]["content"]] = [*_reference_turns(t), answer if right is None else answer[0 if right else 1]]
    return script


def test_a_run_against_the_fake_keeps_every_call_in_the_rollouts_and_the_sft_dataset(tmp_path: Path) -> None:
    tasks = _tasks()
    fake = FakeOpenAI(tool_script=_script(tasks), keep_bodies=True)
    out = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=tool_use", "sampler=sft", "policy=openai", f"policy.base_url={url}",
                               "progress=false", "format.validation_fraction=0", f"cache_dir={tmp_path / 'cache'}"],
                              output_dir=str(out))
        rollgen.run(cfg)
    rows = {r["task_id"]: r for r in read_jsonl(out / "rollouts.jsonl")}
    assert len(rows) == 57 and all(r["status"] == "ok" and r["reward"] == 1.0 for r in rows.values())
    assert [t["function"]["name"] for t in fake.bodies[0]["tools"]] == [
        "calculator", "convert_units", "add_days", "weekday", "days_between", "lookup"]
    for task in tasks:
        messages, turns = rows[task.id]["messages"], _reference_turns(task)
        assert rows[task.id]["turns"] == len(turns) + 1
        calls = [m for m in messages if m["role"] == "assistant" and m.get("tool_calls")]
        assert [[(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in m["tool_calls"]] for m in calls] \
            == [[(c["name"], c["arguments"]) for c in turn] for turn in turns]
        results = [m for m in messages if m["role"] == "tool"]  # in call order, each answering its call
        assert [r["tool_call_id"] for r in results] == [c["id"] for m in calls for c in m["tool_calls"]]
        assert [r["content"] for r in results] == [run_tool(c["name"], c["arguments"]) for turn in turns for c in turn]
    three = rows["tool-050"]["messages"]  # two lookups in parallel, the calculator, then the conversion
    assert [m["role"] for m in three] == ["system", "user", "assistant", "tool", "tool", "assistant", "tool",
                                         "assistant", "tool", "assistant"]
    assert [len(m.get("tool_calls") or []) for m in three if m["role"] == "assistant"] == [2, 1, 1, 0]
    assert [m["content"] for m in three if m["role"] == "tool"] == ["338455", "312696", "651151", "251410.806637"]
    dataset = {d["task_id"]: d for d in read_jsonl(out / "dataset" / "train.jsonl")}
    assert len(dataset) == 57
    row = dataset["tool-050"]
    assert [m["role"] for m in row["messages"]] == [m["role"] for m in three]
    assert [m.get("name") for m in row["messages"] if m["role"] == "tool"] == ["lookup", "lookup", "calculator", "convert_units"]
    assert row["messages"][2]["tool_calls"][1]["function"] == {
        "name": "lookup", "arguments": {"table": "countries", "key": "Poland", "field": "area_km2"}}
    assert [t["function"]["name"] for t in row["tools"]][0] == "calculator"


def test_the_sft_rows_with_tool_turns_render_in_trl(tmp_path: Path) -> None:
    data_utils = pytest.importorskip("trl.data_utils", reason="trl is not installed (the trl extra)")
    from tests.test_formats_trl import CHATML
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    core = Tokenizer(models.WordLevel({"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="<|im_end|>",
                                                     chat_template=CHATML)
    tasks = [t for t in _tasks() if t.id in ("tool-050", "tool-017")]
    out = tmp_path / "run"
    with serve_in_thread(FakeOpenAI(tool_script=_script(tasks))) as url:
        rollgen.run(rollgen.compose(["server=tool_use", "limit=17", "sampler=sft", "policy=openai",
                                     f"policy.base_url={url}", "progress=false", "format.validation_fraction=0",
                                     f"cache_dir={tmp_path / 'cache'}"], output_dir=str(out)))
    import datasets

    ds = datasets.load_dataset("json", data_dir=str(out / "dataset"), cache_dir=str(tmp_path / "hf"))["train"]
    row = next(r for r in ds if r["task_id"] == "tool-017")
    text = data_utils.maybe_apply_chat_template(row, tokenizer, tools=row["tools"])["text"]
    assert '<tool_call>{"name": "weekday", "arguments": {"date": "1969-07-20"}}</tool_call>' in text
    assert "<|im_start|>tool\nSunday<|im_end|>" in text and "\\boxed{Sunday}" in text


class _Waits(ToolUseServer):
    """The tool_use server plus tools that wait: ``ping`` and ``pong`` each need the other running (so they finish
    only when a turn's calls run at once), ``hang`` never returns (and notes that it was stopped)."""

    stopped: list[str] = []

    def tools(self) -> list[dict[str, Any]]:
        free = {"type": "object", "properties": {}}
        return [*super().tools(), *({"type": "function", "function": {"name": n, "parameters": free}}
                                    for n in ("ping", "pong", "hang"))]

    async def call_tool(self, name: str, arguments: dict[str, Any], task: Task) -> str:
        if name not in ("ping", "pong", "hang"):
            return await super().call_tool(name, arguments, task)
        events = self.__dict__.setdefault("events", {n: asyncio.Event() for n in ("ping", "pong", "never")})
        if name != "hang":
            events[name].set()
        try:
            await events[{"ping": "pong", "pong": "ping", "hang": "never"}[name]].wait()
        except asyncio.CancelledError:
            self.stopped.append(name)
            raise
        return f"{name} done"


def _unit_run(script: Any, task: Task, server: Any, timeout_s: float = 30.0) -> Rollout:
    """One rollout of ``task`` by the rollout unit against the fake following ``script``."""
    with serve_in_thread(FakeOpenAI(tool_script=script)) as url:
        async def main() -> Rollout:
            v = ToolUseVerifier(ToolUseVerifier.Params())
            async with started(v) as rt:
                sampler = SamplerConfig(max_turns=4, tool_timeout_s=timeout_s)
                client = PolicyClient(rt.session, Endpoint(url, "m"), sampler.responses_create_params, server.tools())
                unit = RolloutUnit(server=server, verifier=v, client=client, sampler=sampler)
                return await unit.run(task, 0)
        return asyncio.run(main())


def test_a_turns_calls_run_at_once_and_a_hanging_tool_times_out() -> None:
    server = _Waits(ToolUseServer.Params())
    task = server.prompted(Task(id="w", prompt="What is 6 * 7?", answer="42"))
    script = {"6 * 7": [[{"name": "pong", "arguments": {}}, {"name": "ping", "arguments": {}}],
                        [{"name": "hang", "arguments": {}}, {"name": "calculator", "arguments": {"expression": "6*7"}}],
                        "It is \\boxed{42}."]}
    rollout = _unit_run(script, task, server, timeout_s=0.5)
    tool = [m["content"] for m in rollout.messages if m["role"] == "tool"]
    assert tool[:2] == ["pong done", "ping done"]  # each waited for the other: they ran concurrently
    assert tool[2] == "error: the tool 'hang' did not finish within 0.5s (sampler.tool_timeout_s) and was stopped"
    assert tool[3] == "42" and _Waits.stopped == ["hang"]  # the hanging call was cancelled, its neighbour answered
    assert rollout.status == "ok" and rollout.turns == 3 and rollout.reward == 1.0  # the rollout went on


def test_tool_errors_go_back_to_the_model() -> None:
    server = ToolUseServer(ToolUseServer.Params(tools=["calculator", "lookup"]))
    task = server.prompted(Task(id="e", prompt="Compute 2 + 2 with the tools.", answer="4"))
    script = {"2 + 2": [[{"name": "search", "arguments": {"q": "2+2"}},
                         {"name": "calculator", "arguments": "{expression: 2+2"},
                         {"name": "calculator", "arguments": {"expression": 4}},
                         {"name": "calculator", "arguments": {"expression": "2+2", "precise": True}},
                         {"name": "calculator", "arguments": "[1]"},
                         {"name": "calculator", "arguments": {"expression": "2/0"}},
                         {"name": "lookup", "arguments": {"table": "countries", "key": "Mars", "field": "capital"}}],
                        [{"name": "calculator", "arguments": {"expression": "2+2"}}], "So \\boxed{4}."]}
    rollout = _unit_run(script, task, server)
    tool = [m["content"] for m in rollout.messages if m["role"] == "tool"]
    assert tool == [
        "error: unknown tool 'search'; the tools are calculator, lookup",
        "error: the arguments of calculator are not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)): '{expression: 2+2'",
        "error: the arguments of calculator do not match its parameters: expression: 4 is not of type 'string'",
        "error: the arguments of calculator do not match its parameters: arguments: Additional properties are not "
        "allowed ('precise' was unexpected)",
        "error: the arguments of calculator must be a JSON object, got list",
        "error: ToolError: division by zero",
        "error: ToolError: no row 'Mars' in table 'countries' (looked up by name, iso3)",
        "4"]
    assert rollout.status == "ok" and rollout.reward == 1.0
    details = rollout.reward_details["calls"]
    assert details["made"] == 8 and details["valid"] == 3  # five named no tool, were not JSON or broke the schema


def test_parse_call_reports_unreadable_calls() -> None:
    spec = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert parse_call({"function": {"name": "f", "arguments": ""}}, spec) == ("f", {})
    assert parse_call({"function": {"name": "f", "arguments": {"a": 1}}}, spec) == ("f", {"a": 1})
    with pytest.raises(ValueError, match="no function name"):
        parse_call({"type": "function"}, spec)


def test_validate_passes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "v"
    assert validate(["server=tool_use", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"] == 57 and report["tasks_without_gold"] == 0
    assert all(k["failures"] == 0 for k in report["kinds"].values()) and "PASS" in capsys.readouterr().out


def test_bfcl_files_as_tasks_scored_on_their_calls(tmp_path: Path) -> None:
    """BFCL's question and possible-answer rows (the bfcl-eval wheel's data/ files), read without bfcl-eval."""
    questions, answers = tmp_path / "BFCL_v4_parallel.json", tmp_path / "BFCL_v4_parallel_answer.json"
    fn = {"name": "spotify.play", "description": "Play songs.", "parameters": {"type": "dict", "properties": {
        "artist": {"type": "string"}, "duration": {"type": "integer"}, "volume": {"type": "float"},
        "tags": {"type": "tuple", "items": {"type": "string"}}, "extra": {"type": "dict", "properties": {"x": {"type": "any"}}}},
        "required": ["artist", "duration"]}}
    questions.write_text(json.dumps({"id": "parallel_0", "question": [[{"role": "user", "content": "Play Taylor Swift for "
                                     "20 minutes and Maroon 5 for 15."}]], "function": [fn]}) + "\n")
    answers.write_text(json.dumps({"id": "parallel_0", "ground_truth": [
        {"spotify.play": {"artist": ["Taylor Swift"], "duration": [20], "volume": ["", 0.5]}},
        {"spotify.play": {"artist": ["Maroon 5"], "duration": [15], "volume": [""]}}]}) + "\n")
    server = _server(f"server.data_path={questions}", f"server.bfcl_answers={answers}")
    [task] = server.tasks()
    tool = task.tools[0]["function"]
    assert tool["name"] == "spotify_play" and tool["parameters"]["type"] == "object"  # as bfcl-eval sends OpenAI models
    assert {k: v["type"] for k, v in tool["parameters"]["properties"].items()} == {
        "artist": "string", "duration": "integer", "volume": "number", "tags": "array", "extra": "object"}
    assert tool["parameters"]["properties"]["extra"]["properties"]["x"]["type"] == "string"
    assert task.answer is None and list(task.metadata["expected_calls"][0]) == ["spotify_play"]
    assert asyncio.run(server.call_tool("spotify_play", {}, task)) == "(not run: a BFCL task is scored on its calls)"
    verifier = _verifier()

    def play(*calls: dict[str, Any]) -> float:
        return _score(verifier, task, [*task.chat(), {"role": "assistant", "content": "", "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "spotify_play", "arguments": json.dumps(a)}}
            for i, a in enumerate(calls)]}, {"role": "assistant", "content": "Playing."}])

    maroon, taylor = {"artist": "maroon 5", "duration": 15}, {"artist": "Taylor Swift", "duration": 20, "volume": 0.5}
    assert play(maroon, taylor) == 1.0  # any order; an optional parameter given or left out
    assert play(maroon, {**taylor, "duration": 25}) == 0.5
    assert play(maroon, taylor, maroon) == pytest.approx(2 / 3)  # an extra call costs
    assert play({**maroon, "duration": 15.0}, taylor) == 0.5  # a float where BFCL wants an integer
    with pytest.raises(ValueError, match="bfcl_answers: set server.data_path"):
        _server(f"server.bfcl_answers={answers}").check()
