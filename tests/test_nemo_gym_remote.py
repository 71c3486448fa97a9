"""server=remote against a fake NeMo Gym resources server (tests/fakes_gym.py): tools, sessions, rewards, errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import rollgen
from rollgen.engine import EndpointUnreachable
from rollgen.rundir import read_jsonl
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI
from tests.fakes_gym import FakeGym

TOOLS = [{"type": "function", "name": "calculate", "description": "evaluate an arithmetic expression",
          "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                         "required": ["expression"], "additionalProperties": False}, "strict": True}]


def _rows(tmp_path: Path, answers: list[str]) -> Path:
    """NeMo Gym task rows (the shape of resources_servers/*/data/example.jsonl in nemo-gym 0.7.0)."""
    path = tmp_path / "tasks.jsonl"
    exprs = ["3 + 4", "6 * 7", "10 - 2", "5 + 5"]
    with path.open("w") as f:
        for expr, answer in zip(exprs, answers):
            f.write(json.dumps({"responses_create_params": {
                "input": [{"role": "user", "type": "message",
                           "content": [{"type": "input_text", "text": f"Calculate {expr}. Use the tool."}]}],
                "tools": TOOLS}, "expected_answer": answer, "case_note": "kept"}) + "\n")
    return path


def _run(tmp_path: Path, policy_url: str, gym_url: str, tasks: Path, *extra: str) -> dict:
    cfg = rollgen.compose(["policy=openai", f"policy.base_url={policy_url}", "server=remote",
                           f"server.base_url={gym_url}", f"server.data_path={tasks}", "progress=false",
                           "sampler.num_repeats=2", *extra], output_dir=str(tmp_path / "run"))
    return rollgen.run(cfg)


def test_a_run_gets_the_remote_rewards_and_sends_tool_calls_there(tmp_path: Path) -> None:
    gym = FakeGym(mask_answers={"10"})
    # The fake policy calls the tool, then answers \boxed{<tool output>}: {"result": "7"} is not "7", so the
    # reward says the remote's verify read the answer, not rollgen's: task 2's expected answer is made to match.
    tasks = _rows(tmp_path, ["7", '{"result": "42"}', "10", "nope"])
    with serve_in_thread(FakeOpenAI()) as policy, serve_in_thread(gym) as gym_v1:  # type: ignore[arg-type]
        report = _run(tmp_path, policy, gym_v1.removesuffix("/v1"), tasks)
    rollouts = {r["id"]: r for r in read_jsonl(tmp_path / "run" / "rollouts.jsonl")}
    assert len(rollouts) == 8 and report["collection"]["rollouts"] == 8
    assert gym.tool_calls == 8 and gym.seeds == 8  # one tool call and one session per rollout
    assert gym.verifies == 8
    for r in rollouts.values():
        tool_turn = next(m for m in r["messages"] if m["role"] == "tool")
        assert json.loads(tool_turn["content"])["result"]  # the remote tool's body is the tool result
        if r["task_id"] == "tasks-3":  # expected "10": the fake judge fails -> masked sample -> verifier_error
            assert r["status"] == "verifier_error" and "judge_failed" in r["error"]
            continue
        assert r["status"] == "ok"
        assert r["reward_details"]["tool_calls_in_session"] == 1  # the cookies carried the session to /verify
        assert r["verifier"] == "remote"
    assert {r["task_id"]: r["reward"] for r in rollouts.values() if r["status"] == "ok"} == {
        "tasks-1": 0.0, "tasks-2": 1.0, "tasks-4": 0.0}
    body = gym.verify_bodies[0]
    assert body["case_note"] == "kept" and body["responses_create_params"]["tools"][0]["name"] == "calculate"
    kinds = [item["type"] for item in body["response"]["output"]]
    assert kinds == ["function_call", "function_call_output", "message"]


def test_sessions_are_per_rollout_even_when_rollouts_run_at_once(tmp_path: Path) -> None:
    gym = FakeGym()
    tasks = _rows(tmp_path, ["7", "42", "8", "10"])
    with serve_in_thread(FakeOpenAI(latency_s=0.01)) as policy, serve_in_thread(gym) as gym_v1:  # type: ignore[arg-type]
        _run(tmp_path, policy, gym_v1.removesuffix("/v1"), tasks, "sampler.num_samples_in_parallel=8",
             "sampler.num_repeats=4")
    assert len(gym.sessions) == 16 and set(gym.sessions.values()) == {1}  # 16 sessions, one tool call each
    counts = [r["reward_details"]["tool_calls_in_session"] for r in read_jsonl(tmp_path / "run" / "rollouts.jsonl")]
    assert counts == [1] * 16


def test_a_row_the_server_rejects_is_a_verifier_error_with_fastapis_detail(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"responses_create_params": {"input": "Calculate 3 + 4.", "tools": TOOLS}}) + "\n")
    with serve_in_thread(FakeOpenAI()) as policy, serve_in_thread(FakeGym()) as gym_v1:  # type: ignore[arg-type]
        _run(tmp_path, policy, gym_v1.removesuffix("/v1"), path, "sampler.num_repeats=1")
    (r,) = read_jsonl(tmp_path / "run" / "rollouts.jsonl")
    assert r["status"] == "verifier_error"
    assert "HTTP 422" in r["error"] and "body.expected_answer: Field required" in r["error"]


def test_a_down_server_fails_before_collection_naming_the_url(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = FakeOpenAI()
    with serve_in_thread(fake) as policy:
        with pytest.raises(EndpointUnreachable, match=rf"resources server at http://127.0.0.1:{port}/ .*running"):
            _run(tmp_path, policy, f"http://127.0.0.1:{port}", _rows(tmp_path, ["7"]))
    assert fake.requests == 0 and not (tmp_path / "run" / "rollouts.jsonl").exists()


def test_cli_exit_3_for_a_down_server_and_2_without_a_url(tmp_path: Path) -> None:
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tasks = _rows(tmp_path, ["7"])
    with serve_in_thread(FakeOpenAI()) as policy:
        base = [sys.executable, "-m", "rollgen", "policy=openai", f"policy.base_url={policy}", "server=remote",
                f"server.data_path={tasks}", "progress=false", f"hydra.run.dir={tmp_path / 'r'}"]
        down = subprocess.run([*base, f"server.base_url=http://127.0.0.1:{port}"], capture_output=True, text=True,
                              timeout=120)
        no_url = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert down.returncode == 3, down.stderr
    assert f"http://127.0.0.1:{port}/" in down.stderr
    assert no_url.returncode == 2 and "server.base_url" in no_url.stderr, no_url.stderr


def test_a_tool_the_task_does_not_declare_is_not_called(tmp_path: Path) -> None:
    import asyncio

    from rollgen.records import Task
    from rollgen.runtime import Runtime
    from rollgen.servers.remote import RemoteServer

    gym = FakeGym()
    task = Task(id="t", messages=[{"role": "user", "content": "x"}],
                tools=[{"type": "function", "function": {"name": "calculate", "parameters": {}}}])

    async def go(url: str) -> tuple[str, str]:
        async with Runtime() as rt:
            server = await rt.attach(RemoteServer(RemoteServer.Params(base_url=url)))
            ok = await server.call_tool("calculate", {"expression": "2 * 3"}, task)
            try:
                await server.call_tool("verify", {}, task)
            except KeyError as e:
                return ok, str(e)
            return ok, ""

    with serve_in_thread(gym) as gym_v1:  # type: ignore[arg-type]
        ok, refused = asyncio.run(go(gym_v1.removesuffix("/v1")))
    assert json.loads(ok) == {"result": "6"} and "no tool 'verify'" in refused
    assert gym.verifies == 0 and gym.tool_calls == 1


def test_parallel_tool_calls_of_one_turn_share_the_rollouts_one_session(tmp_path: Path) -> None:
    gym = FakeGym()
    tasks = _rows(tmp_path, ["7", "42", "8", "10"])
    calls = [{"name": "calculate", "arguments": {"expression": "3 + 4"}},
             {"name": "calculate", "arguments": {"expression": "1 + 1"}}]
    fake = FakeOpenAI(tool_script={"Calculate": [calls, "\\boxed{7}"]})  # two calls at once, then the answer
    with serve_in_thread(fake) as policy, serve_in_thread(gym) as gym_v1:  # type: ignore[arg-type]
        _run(tmp_path, policy, gym_v1.removesuffix("/v1"), tasks, "sampler.num_samples_in_parallel=8")
    assert gym.seeds == 8 and gym.tool_calls == 16  # 8 rollouts: one session each, both calls in it
    assert len(gym.sessions) == 8 and set(gym.sessions.values()) == {2}
    counts = [r["reward_details"]["tool_calls_in_session"] for r in read_jsonl(tmp_path / "run" / "rollouts.jsonl")]
    assert counts == [2] * 8
