"""Several endpoints (``policy.base_urls``): spread, failover, back after a health check, all down → exit 3."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

import rollgen
from rollgen.cli_run import execute
from rollgen.config import ResponsesCreateParams
from rollgen.errors import ConfigError
from rollgen.logs import logging_off_the_loop
from rollgen.policy import Endpoint
from rollgen.policy.client import PolicyClient
from rollgen.runtime import Runtime
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI, RunningFake


def _cfg(tmp_path: Path, urls: list[str], n: int, *extra: str) -> rollgen.RunConfig:
    tasks = write_arith_tasks(tmp_path / "t.jsonl", n)
    return rollgen.compose(["policy=openai", f"policy.base_urls=[{','.join(urls)}]", f"server.data_path={tasks}",
                            "progress=false", "sampler.num_repeats=1", *extra], output_dir=str(tmp_path / "run"))


def test_requests_spread_over_three_endpoints(tmp_path: Path) -> None:
    fakes = [FakeOpenAI(latency_s=0.01) for _ in range(3)]
    with ExitStack() as stack:
        urls = [stack.enter_context(serve_in_thread(f)) for f in fakes]
        report = rollgen.run(_cfg(tmp_path, urls, 90, "sampler.num_samples_in_parallel=9"))
    assert report["status"] == "complete" and report["collection"]["by_status"] == {"ok": 90}
    counts = [f.requests for f in fakes]
    assert sum(counts) == 90 and min(counts) >= 15, counts  # least outstanding: none starved
    assert [e["url"] for e in report["endpoints"]] == urls
    assert [e["requests"] for e in report["endpoints"]] == counts and all(e["ok"] == e["requests"] for e in report["endpoints"])
    assert all(e["latency_p50_s"] >= 0.01 and e["taken_out"] == 0 for e in report["endpoints"])
    md = (tmp_path / "run" / "report.md").read_text()
    assert all(f"| {u} | {c} | {c} | 0 | 0 |" in md for u, c in zip(urls, counts))


def test_the_least_busy_endpoint_gets_more(tmp_path: Path) -> None:
    slow, fast = FakeOpenAI(latency_s=0.2), FakeOpenAI(latency_s=0.005)
    with serve_in_thread(slow) as a, serve_in_thread(fast) as b:
        report = rollgen.run(_cfg(tmp_path, [a, b], 80, "sampler.num_samples_in_parallel=8"))
    assert report["collection"]["by_status"] == {"ok": 80}
    assert fast.requests > 3 * slow.requests, (fast.requests, slow.requests)


def test_traffic_moves_off_a_failing_endpoint(tmp_path: Path) -> None:
    broken, a, b = FakeOpenAI(error_rate=1.0), FakeOpenAI(), FakeOpenAI()
    with serve_in_thread(broken) as u0, serve_in_thread(a) as u1, serve_in_thread(b) as u2:
        report = rollgen.run(_cfg(tmp_path, [u0, u1, u2], 60, "sampler.num_samples_in_parallel=4",
                                  "policy.eject_after=2", "policy.health_check_s=30", "policy.retry_backoff_s=0.01"))
    assert report["collection"]["by_status"] == {"ok": 60}  # every request that hit it went on to another
    first = report["endpoints"][0]
    assert first["taken_out"] == 1 and first["ok"] == 0 and not first["up"]
    assert broken.requests == first["requests"] <= 2 + 4  # its streak, plus those already in flight
    assert a.requests + b.requests == 60


def test_a_stopped_endpoint_is_taken_out_and_comes_back() -> None:
    """Stopped mid-run: refused connections take it out at once; restarted on its port, the health check
    (GET /models) puts it back and it serves again."""

    async def go() -> None:
        one, two = FakeOpenAI(), FakeOpenAI()
        first = RunningFake(one)
        async with RunningFake(two) as u2:
            u1 = await first.__aenter__()
            endpoint = Endpoint(u1, "m", base_urls=(u1, u2), max_retries=2, retry_backoff_s=0.01, health_check_s=0.05)
            messages = [{"role": "user", "content": "Calculate 1 + 2."}]
            async with logging_off_the_loop(), Runtime(connections=8) as rt:  # as in a run
                client = PolicyClient(rt.session, endpoint, ResponsesCreateParams())
                state = client.pool.states[0]
                try:
                    await asyncio.gather(*(client.complete(messages) for _ in range(8)))
                    assert one.requests > 0 and two.requests > 0
                    await first.__aexit__(None, None, None)  # stopped
                    done = await asyncio.gather(*(client.complete(messages) for _ in range(8)))
                    assert all(c.text for c in done) and not state.up and state.ejections == 1
                    before = one.requests
                    restarted = RunningFake(one, port=first.port)
                    assert await restarted.__aenter__() == u1
                    deadline = time.monotonic() + 30
                    while not state.up:  # the health check's next try; a condition with a deadline
                        assert time.monotonic() < deadline, "the endpoint did not come back"
                        await asyncio.sleep(0.02)
                    await asyncio.gather(*(client.complete(messages) for _ in range(8)))
                    assert one.requests > before and state.ok > 0
                    await restarted.__aexit__(None, None, None)
                finally:
                    await client.close()

    asyncio.run(go())


def test_all_endpoints_down_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # nothing listening on either: the check before the run says so, nothing is written
    with serve_in_thread(FakeOpenAI()) as u1, serve_in_thread(FakeOpenAI()) as u2:
        pass
    cfg = _cfg(tmp_path, [u1, u2], 10, "policy.max_retries=0")
    with pytest.raises(SystemExit) as e:
        execute(cfg)
    assert e.value.code == 3 and not (tmp_path / "run").exists()
    err = capsys.readouterr().err
    assert "none of the 2 base_urls answers" in err and u1 in err and u2 in err
    # both failing mid-run: the failure budget stops the run
    with serve_in_thread(FakeOpenAI(error_rate=1.0)) as u1, serve_in_thread(FakeOpenAI(error_rate=1.0)) as u2:
        cfg = _cfg(tmp_path, [u1, u2], 40, "policy.max_retries=1", "policy.retry_backoff_s=0.01",
                   "policy.eject_after=1", "sampler.failure_window=10")
        with pytest.raises(SystemExit) as e:
            execute(cfg)
    assert e.value.code == 3
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["status"] == "aborted" and all(x["ok"] == 0 and x["taken_out"] >= 1 for x in report["endpoints"])


def test_base_urls_config() -> None:
    cfg = rollgen.compose(["policy=openai", "policy.base_urls=[http://a:1/v1,http://b:2/v1]"], output_dir=".")
    from rollgen.build import build

    endpoint = build(cfg.policy).endpoint()
    assert endpoint.urls == ("http://a:1/v1", "http://b:2/v1") and endpoint.base_url == "http://a:1/v1"
    assert rollgen.compose(["policy=openai"], output_dir=".").policy.model_extra["base_urls"] is None
    # replicas of one model: which servers (and how many) is not part of the collection hash
    other = build(rollgen.compose(["policy=openai", "policy.base_urls=[http://c:3/v1,http://a:1/v1,http://d:4/v1]"],
                                  output_dir=".").policy)
    assert other.fingerprint() == build(cfg.policy).fingerprint() != build(rollgen.compose(
        ["policy=openai", "policy.base_urls=[http://a:1/v1,http://b:2/v1]", "policy.model=other"],
        output_dir=".").policy).fingerprint()
    for bad, says in (("[]", "empty list"), ("[http://a:1/v1,http://a:1/v1/]", "listed twice"), ("[ftp://x]", "pattern")):
        with pytest.raises(ConfigError) as e:
            rollgen.compose(["policy=openai", f"policy.base_urls={bad}"], output_dir=".")
        assert e.value.lines[0].startswith("policy.base_urls") and says in e.value.lines[0], e.value.lines
