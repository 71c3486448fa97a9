"""Engine against the fake OpenAI server: concurrency bound, streaming, failure rows, both APIs, DPO pairs."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import rollgen
from rollgen.collect import collect
from rollgen.config import SamplerConfig
from rollgen.engine import EndpointUnreachable
from rollgen.policy import Endpoint
from rollgen.records import Rollout, Task, Verdict
from rollgen.rundir import JsonlWriter, read_jsonl
from rollgen.runtime import Runtime
from rollgen.verifiers import Verifier
from tests.conftest import BareServer, serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI


def _run(tmp_path: Path, url: str, tasks: Path, *extra: str) -> dict:
    cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                           "progress=false", *extra], output_dir=str(tmp_path / "run"))
    return rollgen.run(cfg)


def _rollouts(tmp_path: Path) -> list[dict]:
    return list(read_jsonl(tmp_path / "run" / "rollouts.jsonl"))


def test_concurrency_is_bounded_and_reached(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 40)
    fake = FakeOpenAI(latency_s=0.05)
    with serve_in_thread(fake) as url:
        report = _run(tmp_path, url, tasks, "sampler.num_samples_in_parallel=4")
    assert fake.requests == 40
    assert fake.peak_in_flight == 4
    assert report["peak_in_flight"] == 4


def test_run_writes_every_file_and_rewards_correct_answers(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 12)
    with serve_in_thread(FakeOpenAI()) as url:
        report = _run(tmp_path, url, tasks, "sampler=sft")
    run = tmp_path / "run"
    for name in ["run_config.json", "tasks.jsonl", "rollouts.jsonl", "curated.jsonl", "dataset/train.jsonl",
                 "dataset/validation.jsonl", "report.json", "report.md", "export/jsonl/manifest.json"]:
        assert (run / name).is_file(), name
    rows = _rollouts(tmp_path)
    assert len(rows) == 12 and all(r["status"] == "ok" and r["reward"] == 1.0 for r in rows)
    assert rows[0]["usage"]["prompt_tokens"] == 20 and rows[0]["sampling"]["temperature"] == 0.2
    assert report["collection"]["by_status"] == {"ok": 12}
    assert report["kept"]["dataset_rows"] == 12
    sft = [json.loads(x) for f in ("train", "validation") for x in (run / "dataset" / f"{f}.jsonl").read_text().splitlines()]
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    assert json.loads((run / "report.json").read_text())["collection"]["mean_reward"] == 1.0


def test_responses_api(tmp_path: Path, tasks_file: Path) -> None:
    fake = FakeOpenAI(keep_bodies=True)
    with serve_in_thread(fake) as url:
        _run(tmp_path, url, tasks_file, "policy.api=responses", "sampler.responses_create_params.max_output_tokens=64")
    rows = _rollouts(tmp_path)
    assert all(r["reward"] == 1.0 and r["usage"]["completion_tokens"] > 0 for r in rows)
    assert fake.bodies[0]["max_output_tokens"] == 64 and "input" in fake.bodies[0]


def test_dpo_pairs_have_margin_and_differ(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 30)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=3)) as url:
        report = _run(tmp_path, url, tasks, "sampler=dpo", "format.validation_fraction=0")
    pairs = list(read_jsonl(tmp_path / "run" / "dataset" / "train.jsonl"))
    assert report["dataset"]["train"] == len(pairs) > 0
    for p in pairs:
        assert p["margin"] >= 0.1 and p["chosen_reward"] > p["rejected_reward"]
        assert p["chosen"] != p["rejected"] and p["prompt"][0]["role"] == "user"
        assert p["chosen"][0]["role"] == "assistant"
    rewards: dict[str, set] = {}
    for r in _rollouts(tmp_path):
        rewards.setdefault(r["task_id"], set()).add(r["reward"])
    assert len(pairs) == sum(1 for v in rewards.values() if len(v) == 2)


@pytest.mark.parametrize(("fake", "extra", "status", "error"), [
    (FakeOpenAI(error_rate=1.0), ["policy.max_retries=0"], "error", "HTTP 500"),
    (FakeOpenAI(mode="malformed"), [], "error", "malformed"),
    (FakeOpenAI(mode="429", retry_after_s=0.01), ["policy.max_retries=2"], "error", "HTTP 429"),
    (FakeOpenAI(latency_s=5), ["policy.request_timeout_s=0.2", "policy.max_retries=0"], "timeout", "no response"),
])
def test_failed_requests_become_rollouts(tmp_path: Path, tasks_file: Path, fake: FakeOpenAI, extra: list[str],
                                         status: str, error: str) -> None:
    with serve_in_thread(fake) as url:
        report = _run(tmp_path, url, tasks_file, *extra)
    rows = _rollouts(tmp_path)
    assert len(rows) == 12
    assert all(r["status"] == status and error in r["error"] and r["reward"] is None for r in rows)
    assert report["collection"]["by_status"] == {status: 12}
    assert report["kept"]["dataset_rows"] == 0
    # fewer rollouts than the failure window, all failed: never a "complete" run (the CLI exits 3)
    assert report["status"] == "aborted" and report["reason"].startswith(f"every rollout failed ({status} 12)")


def test_retry_honours_attempt_count(tmp_path: Path, tasks_file: Path) -> None:
    fake = FakeOpenAI(mode="429", retry_after_s=0.01)
    with serve_in_thread(fake) as url:
        _run(tmp_path, url, tasks_file, "policy.max_retries=2")
    assert fake.requests == 12 * 3
    assert "after 3 attempts" in _rollouts(tmp_path)[0]["error"]


def test_some_failures_do_not_stop_the_run(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 50)
    with serve_in_thread(FakeOpenAI(error_rate=0.3, seed=1)) as url:
        _run(tmp_path, url, tasks, "policy.max_retries=0")
    rows = _rollouts(tmp_path)
    statuses = {r["status"] for r in rows}
    assert len(rows) == 50 and len({r["id"] for r in rows}) == 50 and statuses == {"ok", "error"}


def test_dead_endpoint_fails_before_any_work_naming_the_url(tmp_path: Path, tasks_file: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EndpointUnreachable, match=rf"no answer from http://127.0.0.1:{port}/v1 \(.*Connect.*2 attempts"):
        _run(tmp_path, f"http://127.0.0.1:{port}/v1", tasks_file, "policy.max_retries=1")
    assert not (tmp_path / "run").exists()  # the run never started: no run dir


def test_rejected_key_fails_before_any_request(tmp_path: Path, tasks_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0123456789")
    fake = FakeOpenAI(api_key="sk-right-key-9876543210")
    with serve_in_thread(fake) as url, pytest.raises(EndpointUnreachable, match="rejected the API key: HTTP 401") as e:
        _run(tmp_path, url, tasks_file)
    assert fake.requests == 0 and fake.models_requests == 1
    assert "wrong-key" not in str(e.value)  # the fake echoes the header it got: redacted
    assert not (tmp_path / "run").exists()


def test_truncated_output_is_marked(tmp_path: Path, tasks_file: Path) -> None:
    with serve_in_thread(FakeOpenAI(mode="truncated")) as url:
        _run(tmp_path, url, tasks_file)
    rows = _rollouts(tmp_path)
    assert all(r["status"] == "truncated" and r["finish_reason"] == "length" for r in rows)


def test_api_key_is_sent_but_never_written(tmp_path: Path, tasks_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-rollgen-test-SECRET-1234567890"
    monkeypatch.setenv("MY_KEY", secret)
    fake = FakeOpenAI(api_key=secret)
    with serve_in_thread(fake) as url:
        _run(tmp_path, url, tasks_file, "policy.api_key_env=MY_KEY")
    assert fake.auth_failures == 0 and all(r["status"] == "ok" for r in _rollouts(tmp_path))
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


class _StreamProbe(Verifier):
    """Records, at its 20th call, how many lines are already on disk (the run is far from over)."""

    def __init__(self, path: Path):
        self.path, self.calls, self.lines_seen = path, 0, -1

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        self.calls += 1
        if self.calls == 20:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                self.lines_seen = sum(1 for _ in open(self.path))
                if self.lines_seen >= 19:
                    break
                await asyncio.sleep(0.005)
        return Verdict(reward=1.0, verifier="probe")


def test_rollouts_stream_to_disk_as_they_complete(tmp_path: Path) -> None:
    path = tmp_path / "rollouts.jsonl"
    tasks = [Task(id=f"t{i}", prompt=f"Calculate {i} + 1.") for i in range(40)]
    probe = _StreamProbe(path)

    async def work() -> AsyncIterator[tuple[Task, int]]:
        for t in tasks:
            yield t, 0

    with serve_in_thread(FakeOpenAI()) as url:
        async def run() -> None:
            writer = await asyncio.to_thread(JsonlWriter, path)
            try:
                async with Runtime(connections=1) as rt:
                    await collect(work(), runtime=rt, server=BareServer(), verifier=probe,
                                  endpoint=Endpoint(url, "m"), sampler=SamplerConfig(num_samples_in_parallel=1),
                                  writer=writer, config_hash="h", progress=False)
            finally:
                await asyncio.to_thread(writer.close)
        asyncio.run(run())
    assert probe.lines_seen >= 19
    assert len(list(read_jsonl(path))) == 40


# ---------------------------------------------------------------- tasks the verifier cannot score


def _no_answers(path: Path, n: int, answered: int = 0) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            row = {"id": f"q{i}", "question": f"Calculate {i} + 1."}
            if i < answered:
                row["answer"] = str(i + 1)
            f.write(json.dumps(row) + "\n")
    return path


@pytest.mark.parametrize("verifier", ["math", "exact", "numeric", "all", "cascade"])
def test_tasks_without_answers_are_bad_rows_before_any_request(tmp_path: Path, verifier: str) -> None:
    tasks = _no_answers(tmp_path / "t.jsonl", 5)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url, pytest.raises(rollgen.engine.UserError) as e:
        _run(tmp_path, url, tasks, f"verifier={verifier}")
    assert f"{tasks}: task 'q0' has no 'answer'" in str(e.value) and "on_bad_row=skip" in str(e.value)
    assert fake.requests == 0 and fake.models_requests == 0  # failed while reading the tasks
    assert not (tmp_path / "run").exists()


def test_tasks_without_answers_are_skipped_with_on_bad_row_skip(tmp_path: Path) -> None:
    tasks = _no_answers(tmp_path / "t.jsonl", 6, answered=2)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:
        report = _run(tmp_path, url, tasks, "on_bad_row=skip")
    assert fake.requests == 2 and report["collection"]["by_status"] == {"ok": 2}
    assert len(report["bad_rows"]) == 4 and "task 'q2' has no 'answer'" in report["bad_rows"][0]
    with serve_in_thread(FakeOpenAI()) as url, pytest.raises(rollgen.engine.UserError, match="4 bad rows skipped"):
        _run(tmp_path, url, _no_answers(tmp_path / "none.jsonl", 4), "on_bad_row=skip")


def test_a_verifier_without_gold_answers_takes_tasks_without_them(tmp_path: Path) -> None:
    tasks = _no_answers(tmp_path / "t.jsonl", 3)
    fake = FakeOpenAI()
    with serve_in_thread(fake) as url:  # json: schema-only checks when there is no answer to compare with
        report = _run(tmp_path, url, tasks, "verifier=json")
    assert fake.requests == 3 and report["bad_rows"] == []


# ---------------------------------------------------------------- Retry-After


def test_retry_after_parses_seconds_and_http_dates() -> None:
    from email.utils import formatdate

    from rollgen.policy.client import BACKOFF_CAP_S, retry_after_s

    now = 1_700_000_000.0
    assert retry_after_s("3", now) == 3.0 and retry_after_s(" 0.5 ", now) == 0.5
    assert retry_after_s(formatdate(now + 7, usegmt=True), now) == pytest.approx(7.0)
    assert retry_after_s("Tue, 14 Nov 2023 22:13:27 GMT", now) == pytest.approx(7.0)  # the same instant, by hand
    assert retry_after_s(formatdate(now - 60, usegmt=True), now) == 0.0  # already past: retry now
    assert retry_after_s(formatdate(now + 3600, usegmt=True), now) == BACKOFF_CAP_S
    assert retry_after_s("9999", now) == BACKOFF_CAP_S
    for junk in (None, "", "soon", "nan", "Tue, 99 Nov 2023 99:99:99 GMT"):
        assert retry_after_s(junk, now) is None


def test_retry_after_http_date_is_honoured(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", 1)
    # the first request gets 429 with "Retry-After: <now + 2 s as an HTTP date>" (1 s resolution: 1-2 s away)
    fake = FakeOpenAI(first=["429"], retry_after_date=True, retry_after_s=2.0)
    with serve_in_thread(fake) as url:
        report = _run(tmp_path, url, tasks, "policy.retry_backoff_s=0.001")
    assert report["collection"]["by_status"] == {"ok": 1} and fake.requests == 2
    assert fake.arrivals[1] - fake.arrivals[0] >= 0.95  # the backoff alone would retry after ~1 ms
    assert report["calls"] == {"model_calls": 1, "retries": 1, "reused_rollouts": 0}
