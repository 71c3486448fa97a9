"""NeMo Gym 0.7.0 data both ways: rollout files into rollgen (curate --from-nemo-gym), format=nemo_gym rows out.

The rollout lines are written as NeMo Gym 0.7.0 writes them (docs/design/nemo_gym_facts.md §1: a line is the
resources server's /verify answer + the collector's stamps, ``nemo_gym/rollout_collection.py`` l.2597-2616;
items as in ``resources_servers/example_single_tool_call/data/example_rollouts.jsonl`` and
``simple_agent/app.py``). The rows written are checked against a schema written from nemo-gym 0.7.0's source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from rollgen.commands import curate
from rollgen.nemogym.items import chat_messages, output_items
from rollgen.rundir import read_jsonl

PARAMS_NULLS = {k: None for k in ("instructions", "max_output_tokens", "metadata", "model", "previous_response_id",
                                  "reasoning", "temperature", "top_p", "truncation", "user")}
TOOL = {"name": "calculate", "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                                            "required": ["expression"], "additionalProperties": False},
        "strict": True, "type": "function", "description": "evaluate"}


def _response(output: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"id": "resp_68ab", "created_at": 1756074069.0, "model": "policy-7b", "object": "response",
            "output": output, "parallel_tool_calls": True, "temperature": 1.0, "tool_choice": "auto", "tools": [TOOL],
            "top_p": 1.0, "status": status, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "usage": {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 20,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 70}}


def _message(text: str) -> dict[str, Any]:
    return {"id": "msg_1", "content": [{"annotations": [], "text": text, "type": "output_text", "logprobs": []}],
            "role": "assistant", "status": "completed", "type": "message"}


def _line(task: int, rollout: int, expr: str, answer: str, got: str, *, tool: bool = True, **extra: Any) -> dict:
    output: list[dict[str, Any]] = [{"type": "reasoning", "id": "rs_1", "encrypted_content": None,
                                     "summary": [{"type": "summary_text", "text": f"I should compute {expr}."}]}]
    if tool:
        output += [{"arguments": json.dumps({"expression": expr}), "call_id": f"call_{task}{rollout}",
                    "name": "calculate", "type": "function_call", "id": "fc_1", "status": "completed"},
                   {"call_id": f"call_{task}{rollout}", "output": json.dumps({"result": got}),
                    "type": "function_call_output", "id": None, "status": None}]
    output.append(_message(f"The answer is \\boxed{{{got}}}."))
    row = {"responses_create_params": {**PARAMS_NULLS, "input": [
               {"content": "You are a careful calculator.", "role": "developer", "type": "message"},
               {"content": [{"type": "input_text", "text": f"Calculate {expr}."}], "role": "user", "type": "message"}],
               "parallel_tool_calls": True, "tool_choice": "auto", "tools": [TOOL]},
           "response": _response(output), "reward": float(got == answer), "mask_sample": False,
           "failure_kind": None, "failure_reason": None, "expected_answer": answer, "extracted_answer": got,
           "_ng_task_index": task, "_ng_rollout_index": rollout,
           "agent_ref": {"type": "responses_api_agents", "name": "calc_simple_agent"}}
    row.update(extra)
    return row


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def gym_file(tmp_path: Path) -> Path:
    """Three tasks x two rollouts, one masked judge failure, with the _materialized_inputs sidecar."""
    rows = [_line(0, 0, "3 + 4", "7", "7"), _line(0, 1, "3 + 4", "7", "8"),
            _line(1, 0, "6 * 7", "42", "42"), _line(1, 1, "6 * 7", "42", "41", tool=False),
            _line(2, 0, "9 - 1", "8", "8"),
            _line(2, 1, "9 - 1", "8", "8", reward=0.0, mask_sample=True, failure_kind="judge_failed",
                  failure_reason="judge timed out")]
    path = _write(tmp_path / "rollouts.jsonl", rows)
    _write(tmp_path / "rollouts_materialized_inputs.jsonl", [
        {"responses_create_params": r["responses_create_params"], "question": f"task {r['_ng_task_index']}",
         "expected_answer": r["expected_answer"], "agent_ref": r["agent_ref"], "_ng_task_index": r["_ng_task_index"],
         "_ng_rollout_index": r["_ng_rollout_index"]} for r in rows])
    return path


def test_items_of_one_model_turn_make_one_assistant_message() -> None:
    items = _line(0, 0, "3 + 4", "7", "7")["response"]["output"]
    msgs = chat_messages(items, "response.output")
    assert [m["role"] for m in msgs] == ["assistant", "tool", "assistant"]
    assert msgs[0]["reasoning_content"] == "I should compute 3 + 4." and msgs[0]["content"] == ""
    assert msgs[0]["tool_calls"] == [{"id": "call_00", "type": "function",
                                      "function": {"name": "calculate", "arguments": '{"expression": "3 + 4"}'}}]
    assert msgs[1] == {"role": "tool", "tool_call_id": "call_00", "content": '{"result": "7"}'}
    assert msgs[2]["content"] == "The answer is \\boxed{7}."
    back = chat_messages(output_items(msgs), "x")  # and back again: the same conversation
    assert back == msgs


def test_curate_from_nemo_gym_writes_a_run_and_sft_and_dpo_datasets_that_load(tmp_path: Path, gym_file: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    import datasets

    sft, dpo = tmp_path / "sft", tmp_path / "dpo"
    assert curate.main(["--from-nemo-gym", str(gym_file), "--out", str(sft), "quality.min_reward_threshold=0.5",
                        "format.validation_fraction=0"]) == 0
    assert "imported 6 rollouts of 3 tasks" in capsys.readouterr().out
    tasks = {t["id"]: t for t in read_jsonl(sft / "tasks.jsonl")}
    assert tasks["rollouts-1"]["answer"] == "42" and tasks["rollouts-1"]["metadata"] == {
        "question": "task 1", "env": "calc_simple_agent"}  # the task's fields joined from the materialized inputs
    rollouts = {r["id"]: r for r in read_jsonl(sft / "rollouts.jsonl")}
    assert rollouts["rollouts-0#1"]["reward"] == 0.0 and rollouts["rollouts-0#0"]["reward"] == 1.0
    assert rollouts["rollouts-2#1"]["status"] == "verifier_error" and "judge_failed" in rollouts["rollouts-2#1"]["error"]
    assert rollouts["rollouts-0#0"]["usage"] == {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
    assert rollouts["rollouts-0#0"]["reward_details"]["extracted_answer"] == "7"
    config = json.loads((sft / "run_config.json").read_text())
    assert config["server"]["name"] == "calc_simple_agent" and config["policy"]["model"] == "policy-7b"
    assert config["sampler"]["num_repeats"] == 2
    rows = datasets.load_dataset("json", data_dir=str(sft / "dataset"), split="train")
    assert len(rows) == 3 and sorted(rows["reward"]) == [1.0, 1.0, 1.0]
    msgs = rows[rows["task_id"].index("rollouts-0")]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    assert rows[0]["tools"][0]["function"]["name"] == "calculate"

    assert curate.main(["--from-nemo-gym", str(gym_file), "--out", str(dpo), "format=dpo",
                        "format.validation_fraction=0", "quality=dpo", "quality.min_reward_threshold=0"]) == 0
    pairs = datasets.load_dataset("json", data_dir=str(dpo / "dataset"), split="train")
    assert sorted(pairs["task_id"]) == ["rollouts-0", "rollouts-1"]  # task 2: one ok rollout, no pair
    assert set(pairs["margin"]) == {1.0}


def test_a_bad_line_is_named_or_skipped_and_counted(tmp_path: Path, gym_file: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    lines = gym_file.read_text().splitlines()
    bad = _write(tmp_path / "bad.jsonl", [lines[0], "{not json", json.dumps({"reward": 1.0}), lines[2],
                                          json.dumps(_line(3, 0, "1 + 1", "2", "2", reward="high"))])
    assert curate.main(["--from-nemo-gym", str(bad), "--out", str(tmp_path / "a")]) == 2
    assert f"{bad}:2: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()  # nothing half-made left behind
    assert curate.main(["--from-nemo-gym", str(bad), "--out", str(tmp_path / "b"), "on_bad_row=skip",
                        "quality.min_reward_threshold=0"]) == 0
    summary = json.loads((tmp_path / "b" / "nemo_gym_import.json").read_text())
    assert summary["rollouts"] == 2 and summary["skipped_lines"] == 3
    assert summary["skipped"][1].startswith(f"{bad}:3: no 'responses_create_params' object")
    assert summary["skipped"][2] == f"{bad}:5: 'reward' must be a number, got \"high\""
    assert curate.main(["--from-nemo-gym", str(bad), "--out", str(tmp_path / "b")]) == 2  # never over a run
    assert "holds a run already" in capsys.readouterr().err


def test_old_files_without_stamps_group_rollouts_by_prompt(tmp_path: Path) -> None:
    rows = [_line(0, 0, "3 + 4", "7", "7"), _line(0, 0, "3 + 4", "7", "9"), _line(1, 0, "2 + 2", "4", "4")]
    for r in rows:
        for k in ("_ng_task_index", "_ng_rollout_index", "agent_ref"):
            del r[k]
    path = _write(tmp_path / "old.jsonl", rows)
    assert curate.main(["--from-nemo-gym", str(path), "--out", str(tmp_path / "r"), "format=dpo"]) == 0
    got = [(r["task_id"], r["repeat"], r["reward"]) for r in read_jsonl(tmp_path / "r" / "rollouts.jsonl")]
    assert got[0][0] == got[1][0] != got[2][0] and [g[1:] for g in got] == [(0, 1.0), (1, 0.0), (0, 1.0)]


# ---- format=nemo_gym, checked against a schema written from nemo-gym 0.7.0's source ------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputText(_Strict):  # openai ResponseInputTextParam
    type: Literal["input_text"]
    text: str


class EasyMessage(_Strict):  # openai EasyInputMessageParam (nemo_gym/openai_utils.py NeMoGymEasyInputMessage)
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText]
    type: Literal["message"] | None = None


class FunctionCall(_Strict):  # NeMoGymResponseFunctionToolCall, openai_utils.py l.321
    type: Literal["function_call"]
    arguments: str
    call_id: str
    name: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutput(_Strict):  # NeMoGymFunctionCallOutput, openai_utils.py l.308
    type: Literal["function_call_output"]
    call_id: str
    output: str


class FunctionTool(_Strict):  # openai FunctionToolParam: name, parameters, strict, type required
    type: Literal["function"]
    name: str
    parameters: dict[str, Any] | None
    strict: bool | None
    description: str | None = None


class CreateParams(_Strict):  # NeMoGymResponseCreateParamsNonStreaming, openai_utils.py l.776-835 (extra=forbid)
    input: str | list[EasyMessage | FunctionCall | FunctionCallOutput]
    tools: list[FunctionTool] = []
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None


class AgentRef(_Strict):
    type: Literal["responses_api_agents"]
    name: str


class GymRow(BaseModel):  # BaseRunRequest (base_resources_server.py l.92-100; extras allowed) + NeMo-RL's lookups
    model_config = ConfigDict(extra="allow")
    responses_create_params: CreateParams
    agent_ref: AgentRef


class MathTaskData(BaseModel):  # resources_servers/math_with_judge/task_data.py (extra="allow", unknown keys reported)
    model_config = ConfigDict(extra="allow")
    question: str
    expected_answer: str


def test_format_nemo_gym_rows_match_nemo_gyms_schema_and_round_trip(tmp_path: Path, gym_file: Path) -> None:
    out = tmp_path / "fmt"
    assert curate.main(["--from-nemo-gym", str(gym_file), "--out", str(out), "format=nemo_gym",
                        "format.agent_name=calc_simple_agent", "format.validation_fraction=0",
                        "quality.min_reward_threshold=0"]) == 0
    lines = (out / "dataset" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        row = json.loads(line)  # NeMo-RL: NemoGymDataset keeps the line, nemo_gym_data_processor json.loads it
        GymRow.model_validate(row)
        task = MathTaskData.model_validate(row)
        assert set(task.model_extra or {}) == {"responses_create_params", "agent_ref"}  # no unknown task keys
        assert row["agent_ref"]["name"] == "calc_simple_agent"
        items = row["responses_create_params"]["input"]
        assert items[0] == {"role": "system", "content": "You are a careful calculator.", "type": "message"}
        assert row["responses_create_params"]["tools"][0]["strict"] is True
    # and the rows are tasks rollgen reads again: same prompts, same answers
    from rollgen.servers.taskrows import read_tasks

    again = {t.answer: t for t in read_tasks(out / "dataset" / "train.jsonl")}
    assert set(again) == {"7", "42", "8"} and again["7"].messages[1]["content"] == "Calculate 3 + 4."
    assert again["7"].tools[0]["function"]["name"] == "calculate"


def test_format_nemo_gym_writes_tool_history_as_items_never_role_tool(tmp_path: Path) -> None:
    from rollgen.nemogym.taskrow import task_row

    row = task_row({"id": "t", "answer": 3, "metadata": {"responses_create_params": {"temperature": 0.5, "seed": 1}},
                    "messages": [{"role": "user", "content": "go"},
                                 {"role": "assistant", "content": None, "tool_calls": [
                                     {"id": "c1", "type": "function",
                                      "function": {"name": "f", "arguments": {"a": 1}}}]},
                                 {"role": "tool", "tool_call_id": "c1", "content": "done"}]})
    GymRow.model_validate({**row, "agent_ref": {"type": "responses_api_agents", "name": "a"}})
    assert [i.get("type") for i in row["responses_create_params"]["input"]] == [
        "message", "function_call", "function_call_output"]
    assert row["responses_create_params"]["input"][1]["arguments"] == '{"a": 1}'
    assert row["responses_create_params"]["temperature"] == 0.5 and "seed" not in row["responses_create_params"]
    assert row["expected_answer"] == "3"


def test_dataset_validate_knows_nemo_gym_rows(tmp_path: Path) -> None:
    from rollgen.formats.validate import validate
    from rollgen.nemogym.taskrow import task_row

    good = task_row({"id": "t", "answer": "7", "messages": [{"role": "user", "content": "Calculate 3 + 4."}],
                     "tools": [{"type": "function", "function": {"name": "calculate", "parameters": {}}}]})
    bad = {"responses_create_params": {"input": [{"role": "tool", "content": "x"}], "seed": 3,
                                       "tools": [{"type": "function", "function": {"name": "f"}}]}}
    path = _write(tmp_path / "rows.jsonl", [good, bad])
    result = validate(path)
    assert result.format == "nemo_gym" and result.rows == 2  # detected from the keys
    problems = [(e.line, e.message) for e in result.errors]
    assert all(line == 2 for line, _ in problems) and len(problems) == 3, problems
    text = " | ".join(m for _, m in problems)
    assert "responses_create_params.seed: not a key NeMo Gym accepts" in text
    assert "input[0].role: 'tool'" in text and "tools[0]: missing name, parameters, strict" in text


def test_task_rows_with_tool_history_read_back(tmp_path: Path) -> None:
    from rollgen.nemogym.taskrow import task_row
    from rollgen.servers.taskrows import read_tasks

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "go"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "done"}, {"role": "user", "content": "and now?"}]
    path = _write(tmp_path / "rows.jsonl", [task_row({"id": "t", "answer": "x", "messages": messages})])
    (task,) = read_tasks(path)
    assert task.messages == messages and task.answer == "x"
