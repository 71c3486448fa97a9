"""The collection engine: one event loop, one aiohttp session, a bounded number of rollouts in flight.

For each (task, repeat): policy call → tool calls executed by the server → repeat until a final
answer or ``max_turns`` → verify → append one line to ``rollouts.jsonl``. A slot is taken *before* a
rollout's coroutine is created, so a million tasks never become a million coroutines. Each line is
redacted (``rollgen.redact``) as it is written: whatever a tool or the endpoint echoed, no secret is stored.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tqdm import tqdm

from rollgen import redact
from rollgen.config import SamplerConfig
from rollgen.errors import EndpointError
from rollgen.limiter import AdaptiveLimit
from rollgen.policy import Endpoint
from rollgen.policy.client import Completion, PolicyClient, PolicyError
from rollgen.records import Rollout, Task, rollout_id
from rollgen.jsonl import JsonlWriter
from rollgen.servers import ResourceServer
from rollgen.verifiers import Verifier, verify

__all__ = ["CollectStats", "EndpointDown", "collect"]

FAILED = frozenset({"error", "timeout"})


class EndpointDown(EndpointError):
    """The failure budget ran out: most recent requests failed, so the endpoint is plainly down."""


@dataclass
class CollectStats:
    """Live counters of one collection (the report recomputes everything from the file)."""

    rollouts: int = 0
    reward_sum: float = 0.0
    rewarded: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    first_rollout_s: float | None = None
    peak_in_flight: int = 0
    last_error: str | None = None
    lowest_limit: int | None = None  # the adaptive concurrency limit's lowest value
    throttled: int = 0  # 429/503 responses seen
    requests: int = 0  # policy requests sent (first attempts)
    retries: int = 0  # further attempts of those requests

    @property
    def failures(self) -> int:
        return self.rollouts - self.statuses["ok"]

    def postfix(self) -> str:
        mean = self.reward_sum / self.rewarded if self.rewarded else 0.0
        return f"reward={mean:.3f} fail={self.failures}"


class _Collector:
    def __init__(self, server: ResourceServer, verifier: Verifier, client: PolicyClient, limit: AdaptiveLimit,
                 sampler: SamplerConfig, writer: JsonlWriter, config_hash: str, bar: tqdm):
        self.server, self.verifier, self.client, self.limit = server, verifier, client, limit
        self.recent: deque[bool] = deque(maxlen=sampler.failure_window)
        self.sampler, self.writer, self.config_hash, self.bar = sampler, writer, config_hash, bar
        self.sampling = sampler.responses_create_params.model_dump(exclude_none=True)
        self.stats = CollectStats()
        self.in_flight = 0
        self.started = time.perf_counter()
        self._last_postfix = 0.0

    async def rollout(self, task: Task, repeat: int) -> Rollout:
        messages = task.chat()
        t0 = time.perf_counter()
        fields: dict[str, Any] = {"status": "ok"}
        completion: Completion | None = None
        turns = 0
        usage: Counter[str] = Counter()
        try:
            while turns < self.sampler.max_turns:
                completion = await self.client.complete(messages, task.tools)
                turns += 1
                for k, v in (completion.usage or {}).items():
                    if isinstance(v, int):
                        usage[k] += v
                messages.append(completion.message())
                if not completion.tool_calls or completion.finish_reason == "length":
                    break
                for call in completion.tool_calls:
                    messages.append(await self._tool_result(call, task))
            if completion.finish_reason == "length":
                fields["status"] = "truncated"
        except PolicyError as e:
            fields.update(status=e.status, error=str(e))
        rollout = Rollout(
            id=rollout_id(task.id, repeat), task_id=task.id, repeat=repeat, messages=messages,
            completion=completion.text if completion else "",
            finish_reason=completion.finish_reason if completion else None,
            usage=dict(usage) if usage else None, latency_s=round(time.perf_counter() - t0, 6),
            model=completion.model if completion else None, sampling=self.sampling,
            token_ids=completion.token_ids if completion else None,
            logprobs=completion.logprobs if completion else None,
            turns=turns, config_hash=self.config_hash, **fields,
        )
        if completion is not None:
            await self._score(task, rollout)
        return rollout

    async def _tool_result(self, call: dict[str, Any], task: Task) -> dict[str, Any]:
        fn = call.get("function", {})
        try:
            args = json.loads(fn.get("arguments") or "{}")
            content = await self.server.call_tool(fn.get("name", ""), args, task)
        except Exception as e:  # a bad tool call is the model's mistake: report it back to the model
            content = f"error: {type(e).__name__}: {e}"
        return {"role": "tool", "tool_call_id": call.get("id"), "content": content}

    async def _score(self, task: Task, rollout: Rollout) -> None:
        try:
            verdict = await verify(self.verifier, task, rollout)
        except Exception as e:  # a crashed verifier is a status, never a silent 0
            rollout.status, rollout.error = "verifier_error", f"{type(e).__name__}: {e}"
            return
        rollout.reward, rollout.reward_details, rollout.verifier = verdict.reward, verdict.details, verdict.verifier

    async def one(self, task: Task, repeat: int) -> None:
        self.in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight)
        try:
            rollout = await self.rollout(task, repeat)
            self.writer.write(redact.redact_json(rollout.model_dump_json()) + "\n")
            self._count(rollout)
        finally:
            self.in_flight -= 1
            self.limit.release()

    def _count(self, r: Rollout) -> None:
        s = self.stats
        s.rollouts += 1
        s.statuses[r.status] += 1
        failed = r.status in FAILED
        self.recent.append(failed)
        if failed:
            s.last_error = r.error
        else:
            self.limit.on_success()
        if len(self.recent) == self.recent.maxlen and sum(self.recent) >= self.sampler.max_failure_rate * len(self.recent):
            raise EndpointDown(
                f"{sum(self.recent)} of the last {len(self.recent)} rollouts failed; the endpoint looks down "
                f"(last error: {s.last_error}). Check it, then re-run the same command to continue.")
        if r.reward is not None:
            s.reward_sum += r.reward
            s.rewarded += 1
        if s.first_rollout_s is None:
            s.first_rollout_s = time.perf_counter() - self.started
        self.bar.update(1)
        now = time.monotonic()
        if now - self._last_postfix > 0.5:
            self._last_postfix = now
            self.bar.set_postfix_str(s.postfix(), refresh=False)


async def collect(
    work: Iterable[tuple[Task, int]],
    *,
    server: ResourceServer,
    verifier: Verifier,
    endpoint: Endpoint,
    sampler: SamplerConfig,
    writer: JsonlWriter,
    config_hash: str,
    total: int | None = None,
    progress: bool = True,
    stats: CollectStats | None = None,
) -> CollectStats:
    """Run every (task, repeat) of ``work`` and stream the rollouts to ``writer``.

    ``stats``, when given, is updated live (so a caller that cancels the collection still has counts).
    Raises ``EndpointDown`` when the failure budget runs out.
    """
    connector = aiohttp.TCPConnector(limit=sampler.num_samples_in_parallel, ttl_dns_cache=300)
    bar = tqdm(total=total, desc="Collecting rollouts", unit="rollout", dynamic_ncols=True, mininterval=0.5,
               disable=not progress or total == 0)  # total 0: every rollout reused, no "0rollout" bar
    limit = AdaptiveLimit(sampler.num_samples_in_parallel, adaptive=sampler.adaptive_concurrency)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            client = PolicyClient(session, endpoint, sampler.responses_create_params, server.tools(),
                                  on_throttle=limit.on_throttle)
            c = _Collector(server, verifier, client, limit, sampler, writer, config_hash, bar)
            if stats is not None:
                c.stats = stats
            try:
                async with asyncio.TaskGroup() as tg:
                    for task, repeat in work:
                        await limit.acquire()
                        tg.create_task(c.one(task, repeat))
            except* EndpointDown as group:
                raise group.exceptions[0] from None
            finally:
                c.stats.lowest_limit, c.stats.throttled = limit.lowest, limit.throttles
                c.stats.requests, c.stats.retries = client.requests, client.retries
            bar.set_postfix_str(c.stats.postfix(), refresh=True)
            return c.stats
    finally:
        bar.close()
