"""``rollgen serve``: real HTTP on 127.0.0.1, the server in-process (its own loop, in a thread) or as a process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import rollgen
from rollgen.build import build_verifier
from rollgen.config import RunConfig
from rollgen.errors import ConfigError
from rollgen.records import Rollout, Task
from rollgen.serve import ServedEnvironment, serve_until_stopped
from rollgen.unit import score
from tests.conftest import started, write_arith_tasks
from tests.test_tools import CalcServer

TOKEN = "serve-test-token-0123456789"
ROOT = Path(__file__).resolve().parent.parent


class GateServer(CalcServer):
    """The calculator server whose ``slow`` tool waits until the test releases it (an in-flight request)."""

    entered = threading.Event()
    release = threading.Event()

    def tools(self) -> list[dict[str, Any]]:
        slow = {"type": "function", "function": {"name": "slow", "parameters": {"type": "object", "properties": {}}}}
        return [*super().tools(), slow]

    async def call_tool(self, name: str, arguments: dict[str, Any], task: Task) -> str:
        if name != "slow":
            return await super().call_tool(name, arguments, task)
        type(self).entered.set()
        await asyncio.to_thread(type(self).release.wait, 30)
        return "done"


def _cfg(tmp_path: Path, *overrides: str) -> RunConfig:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 8)
    return rollgen.compose([f"server.data_path={tasks}", "serve.port=0", *overrides], output_dir=str(tmp_path / "o"))


@contextmanager
def serving(cfg: RunConfig) -> Iterator[tuple[str, ServedEnvironment, Callable[[], None]]]:
    """``rollgen serve`` of ``cfg`` in a thread of its own; yields its URL, environment and a function that
    begins its stop (as SIGTERM does); stops it at the end of the block."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    got: list[Any] = []
    failed: list[BaseException] = []

    def on_ready(url: str, env: ServedEnvironment) -> None:
        got.extend([url, env])
        ready.set()

    def target() -> None:
        try:
            loop.run_until_complete(serve_until_stopped(cfg, TOKEN, on_ready, stop))
        except BaseException as e:  # noqa: BLE001 - reported to the test
            failed.append(e)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(120), "the server did not start"
    assert not failed, failed
    def begin_stop() -> None:
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop has already finished (a test stopped it)
            pass

    try:
        yield got[0], got[1], begin_stop
    finally:
        begin_stop()
        thread.join(60)
        assert not thread.is_alive() and not failed, failed


def call(method: str, url: str, body: Any = None, token: str | None = TOKEN, raw: bytes | None = None,
         cookies: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    """One request in a loop of its own: (status, JSON body or text, response headers)."""
    async def go() -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        async with aiohttp.ClientSession(cookies=cookies) as s, s.request(method, url, data=data, headers=headers) as r:
            text = await r.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            return r.status, parsed, {**r.headers, **{f"cookie:{k}": v.value for k, v in r.cookies.items()}}

    return asyncio.run(go())


def _batch_reward(cfg: RunConfig, task: Task, completion: str) -> tuple[float | None, dict[str, Any]]:
    """What the batch engine's verify step gives the same answer: ``rollgen.unit.score`` on its rollout."""
    async def go() -> tuple[float | None, dict[str, Any]]:
        verifier = build_verifier(cfg.verifier, cfg.guards)
        async with started(verifier):
            rollout = Rollout(id=f"{task.id}#0", task_id=task.id, repeat=0, status="ok", finish_reason="stop",
                              messages=[*task.chat(), {"role": "assistant", "content": completion}],
                              completion=completion)
            await score(verifier, task, rollout)
            return rollout.reward, rollout.reward_details

    return asyncio.run(go())


def test_token_health_and_bad_requests(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "serve.max_body_bytes=2048")
    with serving(cfg) as (url, env, _):
        assert call("GET", f"{url}/health", token=None)[:2] == (200, {"status": "ok"})
        task_id = next(iter(env.tasks))
        body = {"task_id": task_id, "completion": "\\boxed{1}"}
        for token, why in ((None, "missing"), ("wrong-token-xxxxxxxx", "wrong")):
            status, answer, _ = call("POST", f"{url}/verify", body, token=token)
            assert status == 401 and why in answer["error"]
        assert call("POST", f"{url}/verify?token={TOKEN}", body, token=None)[0] == 200  # OpenRLHF sends no headers
        status, answer, _ = call("POST", f"{url}/verify", raw=b'{"task_id": ')
        assert status == 400 and "not valid JSON" in answer["error"]
        status, answer, _ = call("POST", f"{url}/verify", raw=json.dumps({**body, "pad": "x" * 4096}).encode())
        assert status == 413 and "2048" in answer["error"]
        status, answer, _ = call("POST", f"{url}/verify", {"task_id": task_id})
        assert status == 400 and "completion or messages" in answer["error"]
        status, answer, _ = call("POST", f"{url}/verify", {"completion": "7"})
        assert status == 400 and answer["error"].startswith("task_id or task")
        status, answer, _ = call("POST", f"{url}/verify", {"task_id": "no-such-task", "completion": "7"})
        assert status == 404 and "no-such-task" in answer["error"]
        status, answer, _ = call("POST", f"{url}/verify", [1, 2])
        assert status == 400 and "JSON object" in answer["error"]
        status, answer, _ = call("POST", f"{url}/no_such_tool", {})
        assert status == 404 and "no_such_tool" in answer["error"]


def test_verify_rewards_equal_the_batch_scorer(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with serving(cfg) as (url, env, _):
        for task in list(env.tasks.values())[:3]:
            for completion, expected in ((f"So the result is \\boxed{{{task.answer}}}.", 1.0),
                                         (f"So the result is \\boxed{{{int(task.answer) + 1}}}.", 0.0)):
                status, answer, _ = call("POST", f"{url}/verify", {"task_id": task.id, "completion": completion})
                batch_reward, batch_details = _batch_reward(cfg, task, completion)
                assert status == 200 and answer["status"] == "ok"
                assert answer["reward"] == batch_reward == expected
                assert answer["details"] == batch_details
            # the same through the task row itself, and as chat turns
            row = {"question": task.prompt or task.chat()[-1]["content"], "answer": task.answer}
            status, answer, _ = call("POST", f"{url}/verify", {"task": row, "messages": [
                {"role": "assistant", "content": f"\\boxed{{{task.answer}}}"}]})
            assert status == 200 and answer["reward"] == 1.0


def test_openrlhf_and_verl_shapes(tmp_path: Path) -> None:
    with serving(_cfg(tmp_path)) as (url, _, _):
        prompt = "<|im_start|>user\nCalculate 2 + 3.<|im_end|>\n<|im_start|>assistant\n"
        body = {"query": [prompt + "\\boxed{5}<|im_end|>", prompt + "\\boxed{6}<|im_end|>"],
                "prompts": [prompt, prompt], "labels": ["5", "5"]}
        status, answer, _ = call("POST", f"{url}/get_reward?token={TOKEN}", body, token=None)
        assert status == 200 and answer["rewards"] == answer["scores"] == [1.0, 0.0]
        status, answer, _ = call("POST", f"{url}/get_reward", {"query": ["x"], "prompts": ["x"]})
        assert status == 400 and answer["error"].startswith("labels")
        one = {"data_source": "rollgen/math", "solution_str": "\\boxed{5}", "ground_truth": "5", "extra_info": {}}
        status, answer, _ = call("POST", f"{url}/compute_score", one)
        assert status == 200 and answer["score"] == 1.0 and answer["acc"] is True and answer["pred"] == "5"
        status, answer, _ = call("POST", f"{url}/compute_score", [one, {**one, "solution_str": "\\boxed{4}"}])
        assert [a["score"] for a in answer] == [1.0, 0.0]
        status, answer, _ = call("POST", f"{url}/compute_score", {"ground_truth": "5"})
        assert status == 400 and answer["error"].startswith("solution_str")


def _gym_response(output: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "resp_1", "created_at": 1.0, "model": "policy", "object": "response", "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}


def test_nemo_gym_session_tool_and_verify(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "server._target_=tests.test_tools.CalcServer")
    with serving(cfg) as (url, env, _):
        task = env.tasks["t3"]  # Calculate 4 + 5.
        row = {"responses_create_params": {"input": [{"role": "user", "content": task.chat()[-1]["content"]}]},
               "expected_answer": task.answer, "id": task.id}
        status, answer, headers = call("POST", f"{url}/seed_session", row)
        assert status == 200 and answer == {}
        cookies = {"rollgen_session": headers["cookie:rollgen_session"]}
        status, result, _ = call("POST", f"{url}/calculator", {"expression": "4 + 5"}, cookies=cookies)
        assert status == 200 and result == 9  # the tool's text, as the batch engine gives it to the model
        status, answer, _ = call("POST", f"{url}/calculator", {"expression": "4 + 5"})
        assert status == 400 and "seed_session" in answer["error"]
        status, answer, _ = call("POST", f"{url}/weather", {"city": "SF"}, cookies=cookies)
        assert status == 404 and "calculator" in answer["error"]
        status, answer, _ = call("POST", f"{url}/calculator", ["4 + 5"], cookies=cookies)
        assert status == 400 and "arguments" in answer["error"]
        output = [
            {"type": "function_call", "call_id": "c1", "name": "calculator", "arguments": '{"expression": "4 + 5"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "9"},
            {"type": "reasoning", "id": "r1", "summary": [{"type": "summary_text", "text": "the tool said 9"}]},
            {"type": "message", "role": "assistant", "id": "m1",
             "content": [{"type": "output_text", "text": "The sum is \\boxed{9}.", "annotations": []}]}]
        for text, reward in (("The sum is \\boxed{9}.", 1.0), ("The sum is \\boxed{10}.", 0.0)):
            output[-1]["content"][0]["text"] = text
            status, answer, _ = call("POST", f"{url}/verify", {**row, "response": _gym_response(output)},
                                     cookies=cookies)
            assert status == 200 and answer["reward"] == reward == _batch_reward(cfg, task, text)[0]
            assert answer["mask_sample"] is False and answer["failure_kind"] is None
            assert answer["response"]["output"] == output and answer["expected_answer"] == task.answer
        status, answer, _ = call("POST", f"{url}/verify", {**row, "response": {"output": [{"text": "x"}]}})
        assert status == 400 and answer["error"].startswith("response.output[0]")
        status, answer, _ = call("POST", f"{url}/close_session", {}, cookies=cookies)
        assert status == 200 and answer["resources_session_id"] == cookies["rollgen_session"]


def test_a_verify_storm_loses_no_request(tmp_path: Path) -> None:
    n, concurrency = 10_000, 64
    with serving(_cfg(tmp_path)) as (url, env, _):
        tasks = list(env.tasks.values())

        async def storm() -> list[tuple[int, float | None, float]]:
            sem = asyncio.Semaphore(concurrency)
            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=connector,
                                             headers={"Authorization": f"Bearer {TOKEN}"}) as s:
                async def one(i: int) -> tuple[int, float | None, float]:
                    task = tasks[i % len(tasks)]
                    right = i % 3 != 0
                    answer = task.answer if right else str(int(task.answer) + 1)
                    async with sem, s.post(f"{url}/verify", json={"task_id": task.id,
                                                                   "completion": f"\\boxed{{{answer}}}"}) as r:
                        body = await r.json()
                        return r.status, body.get("reward"), 1.0 if right else 0.0

                return await asyncio.gather(*(one(i) for i in range(n)))

        results = asyncio.run(storm())
    assert len(results) == n
    assert [(status, reward) for status, reward, _ in results] == [(200, want) for _, _, want in results]


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError:
        return False
    return True


def test_concurrency_limit_answers_503_and_stop_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "server._target_=tests.test_serve.GateServer", "serve.concurrency=1", "serve.max_waiting=0")
    GateServer.entered.clear()
    GateServer.release.clear()
    held: list[Any] = []
    with serving(cfg) as (url, env, begin_stop):
        _, _, headers = call("POST", f"{url}/seed_session", {"task_id": "t0"})
        cookies = {"rollgen_session": headers["cookie:rollgen_session"]}
        slow = threading.Thread(target=lambda: held.append(call("POST", f"{url}/slow", {}, cookies=cookies)))
        slow.start()
        assert GateServer.entered.wait(30)
        status, answer, headers = call("POST", f"{url}/verify", {"task_id": "t0", "completion": "7"})
        assert status == 503 and "serve.concurrency" in answer["error"] and headers["Retry-After"] == "1"
        assert call("GET", f"{url}/health", token=None)[0] == 200  # health is never queued
        begin_stop()
        deadline = time.monotonic() + 30
        while _listening(url):  # the stop has begun once the port is closed; the slow request is still held
            assert time.monotonic() < deadline, "the server kept listening after its stop"
            time.sleep(0.01)  # polling a condition, with a deadline
        assert not held
        GateServer.release.set()
        slow.join(30)
        assert held and held[0][0] == 200 and held[0][1] == "done"


def test_serve_as_a_process_stops_on_sigterm(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 4)
    env = {**os.environ, "ROLLGEN_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rollgen", "serve", f"server.data_path={tasks}", "serve.port=0"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "token" in line:
                break
        url = re.search(r"http://[\d.]+:\d+", "".join(lines))
        assert url, lines
        assert "$ROLLGEN_SERVE_TOKEN" in "".join(lines) and TOKEN not in "".join(lines)
        status, answer, _ = call("POST", f"{url.group(0)}/verify", {"task_id": "t1", "completion": "\\boxed{5}"})
        assert status == 200 and answer["reward"] == 1.0  # t1: Calculate 2 + 3.
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()  # type: ignore[union-attr]
        assert proc.wait(60) == 0, rest
        assert "stopped" in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_config_errors_exit_2(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "rollgen", "serve", "serve.prot=1"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "serve.prot" in out.stderr and "serve.port" in out.stderr


@pytest.mark.parametrize("override", ["serve.concurrency=0", "serve.port=70000", "serve.max_body_bytes=10"])
def test_serve_config_is_checked(override: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        rollgen.compose([override], output_dir=str(tmp_path))
    assert e.value.lines[0].startswith(override.split("=")[0])


def test_a_served_task_is_shown_per_repeat_as_in_a_run(tmp_path: Path) -> None:
    """server=mcqa with shuffle_choices: each repeat has its own option order and gold letter (server.for_repeat,
    as the rollout unit asks); /verify with ``repeat`` scores against that repeat's letter, as the batch does."""
    cfg = rollgen.compose(["server=mcqa", "server.shuffle_choices=true", "serve.port=0", "limit=3"],
                          output_dir=str(tmp_path / "o"))
    with serving(cfg) as (url, env, _):
        task = next(iter(env.tasks.values()))
        shown = [env.server.for_repeat(task, r) for r in range(8)]
        letters = [t.answer for t in shown]
        assert len(set(letters)) > 1  # the order really varies per repeat
        for r, t in enumerate(shown):
            completion = f"The answer is ({letters[r]})."
            status, answer, _ = call("POST", f"{url}/verify", {"task_id": task.id, "repeat": r, "completion": completion})
            assert status == 200 and answer["reward"] == 1.0 == _batch_reward(cfg, t, completion)[0]
        other = next(r for r in range(8) if letters[r] != letters[0])
        status, answer, _ = call("POST", f"{url}/verify", {"task_id": task.id, "completion": f"The answer is ({letters[other]})."})
        assert status == 200 and answer["reward"] == 0.0  # repeat 0 by default: another letter is wrong
        status, answer, _ = call("POST", f"{url}/verify", {"task_id": task.id, "repeat": -1, "completion": "A"})
        assert status == 400 and answer["error"].startswith("repeat")
