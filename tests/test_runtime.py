"""The async core: ``await rollgen.arun(cfg)`` inside a running loop, ``rollgen.run`` as its shim, one
``Runtime`` per run (one HTTP session, the cache dir, worker pools, limits) handed to the components, and
signals, exit codes and event loops left to the command line."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

import rollgen
from rollgen.build import build, build_verifier
from rollgen.records import Rollout, Task, Verdict
from rollgen.runtime import Runtime, cache_root
from rollgen.verifiers import Verifier
from rollgen.verifiers.judge import LLMJudge
from tests.conftest import serve_in_thread, started, write_arith_tasks
from tests.fakes import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rollgen"


def _cfg(tmp_path: Path, url: str, tasks: Path, out: str, *extra: str) -> Any:
    return rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
                            "reuse_rollouts=false", "sampler.num_repeats=2", *extra], output_dir=str(tmp_path / out))


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _rollouts(root: Path) -> dict[str, tuple[str, float | None, str]]:
    rows = [json.loads(line) for line in (root / "rollouts.jsonl").read_text().splitlines()]
    return {r["id"]: (r["completion"], r["reward"], r["status"]) for r in rows}


# ---------------------------------------------------------------- arun and its shim


def test_arun_inside_a_running_loop_writes_what_run_writes(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 10)
    with serve_in_thread(FakeOpenAI(alternate=True)) as url:
        sync_report = rollgen.run(_cfg(tmp_path, url, tasks, "sync"))
        cfg = _cfg(tmp_path, url, tasks, "async")  # composing reads the YAML files: before the loop

        async def in_a_loop() -> dict[str, Any]:
            ticks = 0

            async def tick() -> None:  # the caller's own work keeps running while the run goes on
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.005)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            try:
                report = await rollgen.arun(cfg)
            finally:
                ticker.cancel()
            assert ticks > 0
            return report

        async_report = asyncio.run(in_a_loop())
    sync_dir, async_dir = tmp_path / "sync", tmp_path / "async"
    assert _files(sync_dir) == _files(async_dir)
    assert {"rollouts.jsonl", "tasks.jsonl", "run_config.json", "curated.jsonl", "report.json", "report.md",
            "dataset/train.jsonl"} <= _files(async_dir)
    assert _rollouts(sync_dir) == _rollouts(async_dir) and len(_rollouts(async_dir)) == 20
    assert async_report["status"] == sync_report["status"] == "complete"
    assert async_report["collection"] == sync_report["collection"]
    assert async_report["kept"] == sync_report["kept"] and async_report["config_hash"] == sync_report["config_hash"]


def test_run_inside_a_running_loop_says_to_await_arun_and_touches_nothing(tmp_path: Path, cache_dir: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 3)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:
        cfg = _cfg(tmp_path, url, tasks, "run")

        async def notebook_cell() -> None:
            rollgen.run(cfg)

        with pytest.raises(RuntimeError, match=r"await rollgen\.arun\(cfg\)"):
            asyncio.run(notebook_cell())
    assert not (tmp_path / "run").exists()
    assert not (cache_dir / "rollouts").exists()  # nothing registered in the rollout index
    assert fake.requests == 0


# ---------------------------------------------------------------- the runtime


def test_the_cache_dir_is_the_configs_then_the_environments_then_the_home_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGEN_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert cache_root(None) == tmp_path / "env" == Runtime().cache_dir
    monkeypatch.delenv("ROLLGEN_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(None) == tmp_path / "home" / ".cache" / "rollgen"


def test_a_runs_task_and_judge_caches_are_in_its_cache_dir_not_the_environments(tmp_path: Path, cache_dir: Path
                                                                                 ) -> None:
    """``cache_dir=`` in the config wins over ``$ROLLGEN_CACHE_DIR`` for every cache: the rollout index,
    generated tasks, the judge's replies."""
    from tests.test_verifiers_judge import JudgeFake

    mine = tmp_path / "mine"
    with serve_in_thread(FakeOpenAI()) as url, serve_in_thread(JudgeFake()) as judge_url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", "progress=false", "server.size=3",
                               "verifier=judge", f"verifier.base_url={judge_url}", f"cache_dir={mine}"],
                              output_dir=str(tmp_path / "run"))
        report = rollgen.run(cfg)
    assert report["collection"]["rollouts"] == 3
    assert list((mine / "tasks").glob("*.jsonl")) and list((mine / "judge").rglob("*.json"))
    assert list((mine / "rollouts").glob("*.runs"))
    assert not cache_dir.exists()  # the environment's cache dir was never touched


class _Lifecycle(Verifier):
    class Params(BaseModel):
        pass

    events: ClassVar[list[str]] = []

    def __init__(self, params: BaseModel, name: str = "v"):
        super().__init__(params)
        self.label = name

    async def start(self, runtime: Runtime) -> None:
        await super().start(runtime)
        self.events.append(f"start {self.label}")

    async def close(self) -> None:
        self.events.append(f"close {self.label}")
        await super().close()

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        return Verdict(reward=1.0, verifier=self.label)


def test_the_runtime_starts_components_and_closes_them_last_first_with_its_resources() -> None:
    _Lifecycle.events = []

    async def main() -> tuple[Any, ...]:
        a, b = _Lifecycle(_Lifecycle.Params(), "a"), _Lifecycle(_Lifecycle.Params(), "b")
        with pytest.raises(RuntimeError, match="is not started"):
            a.runtime  # noqa: B018 - the property raises
        async with Runtime(connections=3) as rt:
            await rt.attach(a)
            await rt.attach(b)
            assert a.runtime is rt and b.runtime is rt
            session = rt.session
            assert session is rt.session and session.connector.limit == 3  # one session, sized by the runtime
            assert rt.limit("sandbox", 2) is rt.limit("sandbox", 5)  # shared by name
            assert rt.pool("math-verify", 1) is rt.pool("math-verify", 4)
        return a, b, session

    a, _, session = asyncio.run(main())
    assert _Lifecycle.events == ["start a", "start b", "close b", "close a"]
    assert session.closed and a._runtime is None
    with pytest.raises(RuntimeError, match="not open"):
        Runtime().session  # noqa: B018


def test_the_judge_calls_over_the_runtimes_session() -> None:
    from tests.test_verifiers_judge import JudgeFake

    with serve_in_thread(JudgeFake()) as url:
        async def main() -> float:
            judge = LLMJudge(LLMJudge.Params.model_validate({"base_url": url, "model": "judge", "cache": "off"}))
            async with started(judge) as rt:
                client, _ = judge._client  # type: ignore[misc]
                assert client.session is rt.session
                task = Task(id="t", prompt="Calculate 3 + 4.", answer="7")
                verdict = await judge.verify(task, Rollout(id="t#0", task_id="t", repeat=0, messages=[],
                                                           completion="\\boxed{7}", status="ok"))
            assert judge._client is None
            return verdict.reward

        assert asyncio.run(main()) == 1.0


def test_wrappers_start_and_close_what_they_wrap() -> None:
    cfg = rollgen.compose(["verifier=cascade"], output_dir=".")
    guarded = build_verifier(cfg.verifier, cfg.guards)

    async def main() -> list[bool]:
        async with started(guarded) as rt:
            parts = [guarded.inner, *guarded.inner.parts()]
            assert all(p.runtime is rt for p in parts)
        return [p._runtime is None for p in parts]

    assert all(asyncio.run(main()))


def test_the_engine_writes_nothing_into_its_components() -> None:
    """``on_bad_row`` is passed to the server's ``tasks()``; nothing sets attributes on a built component."""
    tree = ast.parse((PACKAGE / "staging.py").read_text())
    stores = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
              and isinstance(n.value, ast.Attribute) and n.value.attr in ("server", "verifier", "policy")]
    assert stores == []
    server = build(rollgen.compose([], output_dir=".").server)
    assert not hasattr(server, "on_bad_row") and not hasattr(server, "bad_rows")


# ---------------------------------------------------------------- what only the command line does


def _calls(path: Path) -> list[tuple[str, int]]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            fn = ast.unparse(node.func)
            if fn in ("asyncio.run", "os._exit", "sys.exit", "signal.signal") or fn.endswith(".add_signal_handler"):
                names.append((fn, node.lineno))
    return names


def test_signals_exits_and_event_loops_belong_to_the_command_line() -> None:
    """Library code installs no signal handler, never exits the process and never runs an event loop of its
    own: only the CLI modules (and ``rollgen.run``, the one ``asyncio.run`` shim) do."""
    cli = {"cli.py", "cli_run.py", "commands/verify.py", "commands/validate.py", "commands/curate.py",
           "commands/compare.py", "commands/dataset.py", "commands/tasks.py", "commands/serve.py"}
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        if rel.startswith("verifiers/jail/"):  # programs run inside the sandbox, not rollgen's process
            continue
        for fn, line in _calls(path):
            found.setdefault(rel, []).append(fn)
    library = {rel: fns for rel, fns in found.items() if rel not in cli}
    assert library == {
        "engine.py": ["asyncio.run"],  # rollgen.run: the sync shim of arun
        "follow.py": ["signal.signal", "signal.signal", "sys.exit"],  # the quality follower's own process (its main)
        "integrations/openrlhf.py": ["asyncio.run", "loop.add_signal_handler"],  # its `python -m` entry point
        "verifiers/mathverify.py": ["signal.signal", "signal.signal", "signal.signal"],  # the worker's own alarm
    }, library


def test_one_client_session_in_all_of_rollgen() -> None:
    """Calls in rollgen's code (a program rollgen writes out for another process, such as the NeMo Gym bridge
    an export ships, is a string: its own client is not rollgen's)."""
    places = [f"{p.relative_to(PACKAGE)}:{node.lineno}" for p in PACKAGE.rglob("*.py")
              for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
              if isinstance(node, ast.Call) and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
              == "ClientSession"]
    assert places == ["runtime.py:" + places[0].split(":")[1]] and len(places) == 1, places
