"""Collection: the rollout unit, a bounded number at a time, streamed to ``rollouts.jsonl``.

For each (task, repeat) the rollout unit (``rollgen.unit``: policy ↔ tools, then verify) makes one
rollout; ``collect`` adds what a batch needs around it: the adaptive limit (a slot is taken *before* a
rollout's coroutine is created, so a million tasks never become a million coroutines), the writer (one
line per rollout, appended as it completes), the live counters, the failure budget and the progress bar.
Each line is redacted (``rollgen.redact``) as it is written: whatever a tool or the endpoint echoed, no
secret is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterable
from dataclasses import dataclass, field

from tqdm import tqdm

from rollgen import redact
from rollgen.config import SamplerConfig
from rollgen.errors import EndpointError
from rollgen.limiter import AdaptiveLimit
from rollgen.policy import Endpoint
from rollgen.jsonl import JsonlWriter
from rollgen.policy.client import PolicyClient
from rollgen.records import Rollout, Task
from rollgen.results import EndpointUsage
from rollgen.runtime import Runtime
from rollgen.servers import ResourceServer
from rollgen.unit import RolloutUnit
from rollgen.verifiers import Verifier

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
    endpoints: list[EndpointUsage] | None = None  # each endpoint's share (policy.base_urls), at the end

    @property
    def failures(self) -> int:
        return self.rollouts - self.statuses["ok"]

    def postfix(self) -> str:
        mean = self.reward_sum / self.rewarded if self.rewarded else 0.0
        return f"reward={mean:.3f} fail={self.failures}"


class _Collector:
    """Around the rollout unit: the limiter's slot, the writer, the live counters, the progress bar."""

    def __init__(self, unit: RolloutUnit, limit: AdaptiveLimit, sampler: SamplerConfig, writer: JsonlWriter,
                 bar: tqdm, stats: CollectStats):
        self.unit, self.limit, self.writer, self.bar, self.stats = unit, limit, writer, bar, stats
        self.recent: deque[bool] = deque(maxlen=sampler.failure_window)
        self.max_failure_rate = sampler.max_failure_rate
        self.in_flight = 0
        self.started = time.perf_counter()
        self._last_postfix = 0.0

    async def one(self, task: Task, repeat: int) -> None:
        self.in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight)
        try:
            rollout = await self.unit.run(task, repeat)
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
        if len(self.recent) == self.recent.maxlen and sum(self.recent) >= self.max_failure_rate * len(self.recent):
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
    work: AsyncIterable[tuple[Task, int]],
    *,
    runtime: Runtime,
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
    """Run the rollout unit on every (task, repeat) of ``work``, over the runtime's session, and stream the
    rollouts to ``writer``.

    ``stats``, when given, is updated live (so a caller that cancels the collection still has counts).
    Raises ``EndpointDown`` when the failure budget runs out, and a rollgen bug as itself.
    """
    bar = tqdm(total=total, desc="Collecting rollouts", unit="rollout", dynamic_ncols=True, mininterval=0.5,
               disable=not progress or total == 0)  # total 0: every rollout reused, no "0rollout" bar
    limit = AdaptiveLimit(sampler.num_samples_in_parallel, adaptive=sampler.adaptive_concurrency)
    stats = stats if stats is not None else CollectStats()
    client = PolicyClient(runtime.session, endpoint, sampler.responses_create_params, server.tools(),
                          on_throttle=limit.on_throttle)
    unit = RolloutUnit(server=server, verifier=verifier, client=client, sampler=sampler, config_hash=config_hash)
    c = _Collector(unit, limit, sampler, writer, bar, stats)
    try:
        try:
            async with asyncio.TaskGroup() as tg:
                async for task, repeat in work:
                    await limit.acquire()
                    tg.create_task(c.one(task, repeat))
        except* EndpointDown as group:
            raise group.exceptions[0] from None
        except* Exception as group:  # a rollgen bug: raise it as itself, with its traceback and note
            raise group.exceptions[0] from None
        finally:
            stats.lowest_limit, stats.throttled = limit.lowest, limit.throttles
            stats.requests, stats.retries = client.requests, client.retries
            stats.endpoints = client.pool.usage()
            await client.close()
        bar.set_postfix_str(stats.postfix(), refresh=True)
        return stats
    finally:
        bar.close()
