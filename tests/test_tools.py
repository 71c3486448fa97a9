"""The multi-turn agent loop: the policy calls a server tool, gets its result, then answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import rollgen
from rollgen.records import Task
from rollgen.rundir import read_jsonl
from rollgen.servers.math import MathServer
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI, solve

CALCULATOR = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}


class CalcServer(MathServer):
    """The math server plus a calculator tool (counts its calls)."""

    calls = 0

    def tools(self) -> list[dict[str, Any]]:
        return [CALCULATOR]

    async def call_tool(self, name: str, arguments: dict[str, Any], task: Task) -> str:
        if name != "calculator":
            raise KeyError(name)
        type(self).calls += 1
        return solve(f"Calculate {arguments['expression']}.") or "error"


def test_tool_loop_runs_and_is_recorded(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 6)
    CalcServer.calls = 0
    fake = FakeOpenAI(keep_bodies=True)
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                               "server._target_=tests.test_tools.CalcServer", "progress=false"],
                              output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    rows = list(read_jsonl(tmp_path / "run" / "rollouts.jsonl"))
    assert CalcServer.calls == 6 and fake.requests == 12
    assert fake.bodies[0]["tools"][0]["function"]["name"] == "calculator"
    for r in rows:
        assert r["turns"] == 2 and r["status"] == "ok" and r["reward"] == 1.0
        assert [m["role"] for m in r["messages"]] == ["user", "assistant", "tool", "assistant"]
        assert json.loads(r["messages"][1]["tool_calls"][0]["function"]["arguments"])["expression"]
