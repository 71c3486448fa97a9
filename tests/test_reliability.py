"""Reliability: resume after kill -9, reuse by collection hash, fault injection, failure budget, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import rollgen
from rollgen.engine import EndpointUnreachable, UserError
from rollgen.rundir import read_jsonl
from tests.conftest import serve_in_thread, wait_for_lines, write_arith_tasks
from tests.fakes import FakeOpenAI


def _cfg(tmp_path: Path, url: str, tasks: Path, run: str = "run", *extra: str) -> rollgen.config.RunConfig:
    return rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}", "progress=false",
                            "policy.retry_backoff_s=0.001", *extra], output_dir=str(tmp_path / run))


def _ids(path: Path) -> list[str]:
    return [r["id"] for r in read_jsonl(path)]


# ---------------------------------------------------------------- resume and reuse


def test_rerun_of_a_finished_collection_makes_no_requests(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 10)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:
        rollgen.run(_cfg(tmp_path, url, tasks, "a", "sampler=dpo"))
        assert fake.requests == 20
        report = rollgen.run(_cfg(tmp_path, url, tasks, "b", "sampler=dpo", "format.min_quality_difference=0.5"))
        assert fake.requests == 20  # same collection hash: reused, not re-collected
    assert report["resume"]["reused"] == 20
    assert sorted(_ids(tmp_path / "a" / "rollouts.jsonl")) == sorted(_ids(tmp_path / "b" / "rollouts.jsonl"))


def test_reused_rollouts_are_rescored_under_a_new_verifier(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 6)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:
        rollgen.run(_cfg(tmp_path, url, tasks, "a"))
        # same collection hash (the verifier is not part of it), another verifier: reused rows are re-scored
        report = rollgen.run(_cfg(tmp_path, url, tasks, "b", "verifier=exact"))
    assert fake.requests == 6 and report["resume"]["rescored"] == 6
    rows = list(read_jsonl(tmp_path / "b" / "rollouts.jsonl"))
    assert {r["verifier"] for r in rows} != {"math"}
    assert [r["reward"] for r in read_jsonl(tmp_path / "a" / "rollouts.jsonl")] == [1.0] * 6


def test_changed_sampling_never_reuses(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 5)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:
        rollgen.run(_cfg(tmp_path, url, tasks, "a"))
        report = rollgen.run(_cfg(tmp_path, url, tasks, "b", "sampler.responses_create_params.temperature=0.9"))
    assert fake.requests == 10 and report["resume"]["reused"] == 0
    assert {r["sampling"]["temperature"] for r in read_jsonl(tmp_path / "b" / "rollouts.jsonl")} == {0.9}


def test_failed_rollouts_are_retried_on_rerun(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 30)
    fake = FakeOpenAI(error_rate=0.4, seed=2)
    with serve_in_thread(fake) as url:
        first = rollgen.run(_cfg(tmp_path, url, tasks, "a", "policy.max_retries=0"))
        failed = first["collection"]["by_status"]["error"]
        assert failed > 0
        fake.error_rate, sent = 0.0, fake.requests  # the endpoint recovers (same URL: the same collection)
        again = rollgen.run(rollgen.api.rerun_config(tmp_path / "a"))  # what resume=<run_dir> runs
    assert again["resume"]["retried"] == failed and again["collection"]["by_status"] == {"ok": 30}
    assert fake.requests - sent == failed == again["calls"]["model_calls"]
    ids = _ids(tmp_path / "a" / "rollouts.jsonl")
    assert len(ids) == len(set(ids)) == 30


def test_torn_last_line_is_set_aside_and_reported(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 8)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:
        cfg = _cfg(tmp_path, url, tasks, "a")
        rollgen.run(cfg)
        path = tmp_path / "a" / "rollouts.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # killed mid-write of line 6
        report = rollgen.run(cfg)  # the same run dir: resume in place
    assert report["resume"] == {"source": str(path), "reused": 5, "retried": 0, "torn": 1, "rescored": 0,
                                "kept_aside": 0, "set_aside": None}
    assert fake.requests == 8 + 3
    assert sorted(_ids(path)) == sorted(f"t{i}#0" for i in range(8))
    assert (tmp_path / "a" / "rollouts.torn.jsonl").read_text().count("\n") == 1


@pytest.mark.slow
def test_kill_9_then_same_command_gives_the_uninterrupted_set(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 300)
    env = {**os.environ, "ROLLGEN_CACHE_DIR": str(tmp_path / "cache")}
    fake = FakeOpenAI(hold_after=37)  # the run is certainly going when killed: later requests wait
    with serve_in_thread(fake) as url:
        args = [sys.executable, "-m", "rollgen", "policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                "sampler.num_samples_in_parallel=4", "progress=false"]
        proc = subprocess.Popen([*args, "hydra.run.dir=run1"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = tmp_path / "run1" / "rollouts.jsonl"
        wait_for_lines(proc, first, 37)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = len(first.read_bytes().splitlines())
        fake.release()
        p = subprocess.run([*args, "hydra.run.dir=run2"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert p.returncode == 0, p.stderr
    assert killed_at == 37
    ids = _ids(tmp_path / "run2" / "rollouts.jsonl")
    assert len(ids) == len(set(ids)) == 300
    assert set(ids) == {f"t{i}#0" for i in range(300)}
    report = json.loads((tmp_path / "run2" / "report.json").read_text())
    assert report["resume"]["reused"] == killed_at


# ---------------------------------------------------------------- faults


def test_fault_injection_every_task_accounted_for(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 200)
    faults = {k: 0.03 for k in ["500", "503", "429", "400", "nonjson", "wrongtype", "reset", "hang", "partial"]}
    fake = FakeOpenAI(faults=faults, seed=7, retry_after_s=0.001)
    with serve_in_thread(fake) as url:
        report = rollgen.run(_cfg(tmp_path, url, tasks, "run", "policy.request_timeout_s=0.5", "policy.max_retries=2",
                                  "sampler.num_samples_in_parallel=16"))
    rows = list(read_jsonl(tmp_path / "run" / "rollouts.jsonl"))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 200
    assert sum(report["collection"]["by_status"].values()) == 200
    assert set(report["collection"]["by_status"]) <= {"ok", "error", "timeout"}
    assert all(r["error"] for r in rows if r["status"] != "ok")
    assert all(r["reward"] == 1.0 for r in rows if r["status"] == "ok")
    assert set(fake.injected) == set(faults)  # every kind was actually injected
    errors = Counter(r["error"].split(":")[0] for r in rows if r["status"] != "ok")
    assert "HTTP 400" in errors  # not retried: a 400 fails on its first attempt
    assert all("attempts" not in r["error"] for r in rows if r["error"] and r["error"].startswith("HTTP 400"))


def test_429_storm_halves_concurrency_and_honours_retry_after(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 60)
    fake = FakeOpenAI(faults={"429": 0.5}, retry_after_s=0.001, seed=1)
    with serve_in_thread(fake) as url:
        report = rollgen.run(_cfg(tmp_path, url, tasks, "run", "policy.max_retries=20",
                                  "sampler.num_samples_in_parallel=16", "sampler.max_failure_rate=1.0"))
    assert report["collection"]["by_status"] == {"ok": 60}
    assert fake.injected["429"] > 10
    assert report["concurrency"]["throttled_responses"] == fake.injected["429"]
    assert report["concurrency"]["lowest"] <= 8  # halved at least once from 16


def test_adaptive_limit_halves_once_per_burst_and_grows_back() -> None:
    import asyncio

    from rollgen.limiter import AdaptiveLimit

    async def main() -> None:
        lim = AdaptiveLimit(16)
        for _ in range(5):  # one burst of 429s: one halving
            lim.on_throttle()
        assert lim.limit == 8 and lim.throttles == 5
        await asyncio.gather(*(lim.acquire() for _ in range(8)))
        waiter = asyncio.ensure_future(lim.acquire())
        await asyncio.sleep(0)
        assert not waiter.done()  # the 9th slot waits while the limit is 8
        for _ in range(8):
            lim.on_success()
        assert lim.limit == 9
        await asyncio.sleep(0)
        assert waiter.done()  # growing the limit woke it
        assert AdaptiveLimit(16, adaptive=False).limit == 16

    asyncio.run(main())


def test_failure_budget_stops_a_dead_endpoint(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 500)
    fake = FakeOpenAI(error_rate=1.0)
    with serve_in_thread(fake) as url:
        report = rollgen.run(_cfg(tmp_path, url, tasks, "run", "policy.max_retries=0", "sampler.failure_window=20",
                                  "sampler.num_samples_in_parallel=4"))
    assert report["status"] == "aborted" and "endpoint looks down" in report["reason"]
    assert 20 <= report["collection"]["rollouts"] < 40 and fake.requests < 40
    assert not (tmp_path / "run" / "dataset").exists()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("content", "message"), [
    (b'{"question": "Calculate 1 + 1.", "answer": "2"}\n{"question": "x"\n', ":2: "),
    (b'{"question": "Calculate 1 + 1.", "answer": "2"}\n[1, 2]\n', ":2: "),
    (b'{"question": "ok", "answer": "1"}\n{"question": 5, "answer": "1"}\n', ":2: "),
    (b'{"answer": "1"}\n', ":1: "),
    (b'{"question": "caf\xe9", "answer": "1"}\n', ":1: not UTF-8"),
    (b"", "no tasks"),
])
def test_bad_task_file_fails_before_any_request(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url, pytest.raises(UserError, match=message):
        rollgen.run(_cfg(tmp_path, url, path))
    assert fake.requests == 0


def test_huge_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write('{"question": "Calculate 1 + 1.", "answer": "2"}\n')
        f.write('{"question": "' + "x" * (50 * 2**20) + '", "answer": "1"}\n')
    with serve_in_thread(FakeOpenAI()) as url, pytest.raises(UserError, match=r"big.jsonl:2: line is 50.0 MiB"):
        rollgen.run(_cfg(tmp_path, url, path))


def test_on_bad_row_skip_reports_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"id": "a", "question": "Calculate 1 + 1.", "answer": "2"}\nnot json\n'
                    '{"id": "b", "question": "Calculate 2 + 2.", "answer": "4"}\n')
    with serve_in_thread(FakeOpenAI()) as url:
        report = rollgen.run(_cfg(tmp_path, url, path, "run", "on_bad_row=skip"))
    assert report["collection"]["rollouts"] == 2 and len(report["bad_rows"]) == 1
    assert "mixed.jsonl:2:" in report["bad_rows"][0]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "expected"), [
    (["server.data_path=/no/such/file.jsonl"], "rollgen: error: /no/such/file.jsonl: no such task file"),
    (["hydra.run.dir=/proc/rollgen-run"], "rollgen: error: output_dir: cannot write to /proc/rollgen-run"),
    (["verifier=nope"], "rollgen: config error: verifier=nope: no such option"),
])
def test_user_mistakes_are_one_line_without_traceback(tmp_path: Path, args: list[str], expected: str) -> None:
    p = subprocess.run([sys.executable, "-m", "rollgen", "policy=openai", "policy.base_url=http://127.0.0.1:9/v1",
                        "progress=false", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert expected in p.stderr and "Traceback" not in p.stderr


def test_key_echoed_by_server_is_redacted(tmp_path: Path, tasks_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-echo-SECRET-0987654321"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    fake = FakeOpenAI(api_key="something-else")  # 401 whose body we make echo the header below
    with serve_in_thread(fake) as url, pytest.raises(EndpointUnreachable) as err:
        rollgen.run(_cfg(tmp_path, url, tasks_file))  # the key is checked before any rollout
    assert "HTTP 401" in str(err.value) and secret not in str(err.value) and "[redacted]" in str(err.value)
    assert fake.requests == 0  # no completion request was sent
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace")


def test_key_echoed_in_error_bodies_is_redacted(tmp_path: Path, tasks_file: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-echo-SECRET-0987654321"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    fake = FakeOpenAI(api_key=secret, echo_key=True, error_rate=1.0)  # every 500 echoes the key, whole and cut
    with serve_in_thread(fake) as url:
        report = rollgen.run(_cfg(tmp_path, url, tasks_file, "run", "policy.max_retries=0"))
    rows = list(read_jsonl(tmp_path / "run" / "rollouts.jsonl"))
    assert all(r["status"] == "error" and "HTTP 500" in r["error"] and "[redacted]" in r["error"] for r in rows)
    assert report["status"] == "aborted" and "[redacted]" in report["reason"]
    pieces = [secret[i:i + 8] for i in range(len(secret) - 7)]
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert not [p for p in pieces if p in path.read_text(errors="replace")], path
