"""Several endpoints of one model (``policy.base_urls``): least outstanding requests, failover, health checks.

``PolicyClient`` asks ``pick()`` for an endpoint for every attempt of every request and reports back with
``finished()``. ``pick`` takes, of the endpoints in rotation, the one with the fewest requests outstanding
(ties in turn), so a slow or saturated server gets less traffic without any tuning. An endpoint leaves the
rotation when a connection to it fails (refused, reset, DNS) or after ``eject_after`` failures in a row
(5xx, timeouts, broken responses); a background task then sends ``GET <url>/models`` with backoff
(``health_check_s``, doubling up to 30 s) and puts it back once it answers; one that fails again before any
success waits twice as long the next time (a server whose ``/models`` answers while its completions fail). With every endpoint out, requests
still go to the least loaded one, and fail, retry and back off as with a single endpoint: the run's failure
budget then stops it (exit 3, ``collect.EndpointDown``). One URL is never taken out: there is nowhere else to go.

``usage()`` is each endpoint's record for the report: attempts, successes, failures, times taken out,
latency (mean, p50, p95 of successful attempts, from a bounded sample).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

import aiohttp

from rollgen.results import EndpointUsage

__all__ = ["EndpointPool", "EndpointState"]

log = logging.getLogger("rollgen")

HEALTH_CAP_S = 30.0
SAMPLE = 4096  # latencies kept per endpoint for percentiles (reservoir sampling)


@dataclass(eq=False)
class EndpointState:
    """One endpoint's live state and counters."""

    url: str
    up: bool = True
    outstanding: int = 0
    streak: int = 0  # failures in a row
    attempts: int = 0
    ok: int = 0
    failed: int = 0
    ejections: int = 0
    latency_sum: float = 0.0
    sample: list[float] = field(default_factory=list)
    checker: asyncio.Task[None] | None = None
    backoff: float = 0.0  # the next health check's first wait: doubles each time it is taken out, reset by a success

    def usage(self) -> EndpointUsage:
        ordered = sorted(self.sample)

        def pct(q: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4) if ordered else None

        return EndpointUsage(url=self.url, requests=self.attempts, ok=self.ok, failed=self.failed,
                             taken_out=self.ejections, up=self.up,
                             latency_mean_s=round(self.latency_sum / self.ok, 4) if self.ok else None,
                             latency_p50_s=pct(0.5), latency_p95_s=pct(0.95))


class EndpointPool:
    """The endpoints of one client, in one event loop."""

    def __init__(self, session: aiohttp.ClientSession, urls: tuple[str, ...], *, headers: dict[str, str],
                 eject_after: int = 3, health_check_s: float = 1.0, health_timeout_s: float = 30.0):
        if not urls:
            raise ValueError("an endpoint pool needs at least one URL")
        self.session, self.headers = session, headers
        self.states = [EndpointState(u.rstrip("/")) for u in urls]
        self.eject_after, self.health_check_s = eject_after, health_check_s
        self.health_timeout = aiohttp.ClientTimeout(total=health_timeout_s)
        self._turn = 0
        self._rng = random.Random(0)

    def pick(self) -> EndpointState:
        """The endpoint for the next attempt: fewest outstanding requests among those in rotation (all, if none)."""
        states = self.states
        if len(states) == 1:
            best = states[0]
        else:
            live = [s for s in states if s.up] or states
            n = len(live)
            self._turn = (self._turn + 1) % n
            best = live[self._turn]
            for i in range(1, n):
                s = live[(self._turn + i) % n]
                if s.outstanding < best.outstanding:
                    best = s
        best.outstanding += 1
        best.attempts += 1
        return best

    def finished(self, state: EndpointState, latency_s: float | None, *, failed: bool = False,
                 connect_failed: bool = False) -> None:
        """An attempt on ``state`` ended: ``latency_s`` when it succeeded; ``failed`` (a 5xx, a timeout, a broken
        response) counts towards taking it out, ``connect_failed`` takes it out at once. Neither: an answer that
        says nothing about the server's health (429, 4xx)."""
        state.outstanding -= 1
        if latency_s is not None:
            state.ok += 1
            state.streak = 0
            state.backoff = 0.0
            state.latency_sum += latency_s
            if len(state.sample) < SAMPLE:
                state.sample.append(latency_s)
            else:
                j = self._rng.randrange(state.ok)
                if j < SAMPLE:
                    state.sample[j] = latency_s
            return
        if not (failed or connect_failed):
            return
        state.failed += 1
        state.streak += 1
        if len(self.states) > 1 and state.up and (connect_failed or state.streak >= self.eject_after):
            self._eject(state)

    def any_up(self) -> bool:
        return any(s.up for s in self.states)

    def _eject(self, state: EndpointState) -> None:
        state.up = False
        state.ejections += 1
        left = sum(s.up for s in self.states)
        log.warning("endpoint %s taken out after %d failure%s in a row (%d of %d left); checking GET /models",
                    state.url, state.streak, "s" * (state.streak != 1), left, len(self.states))
        state.checker = asyncio.get_running_loop().create_task(self._health(state))

    async def _health(self, state: EndpointState) -> None:
        """``GET <url>/models`` with backoff until the endpoint answers (any status below 500), then back in."""
        delay = state.backoff = min(HEALTH_CAP_S, state.backoff * 2 or self.health_check_s)
        while True:
            await asyncio.sleep(delay)
            try:
                async with self.session.get(state.url + "/models", headers=self.headers,
                                            timeout=self.health_timeout) as resp:
                    healthy = resp.status < 500
            except (aiohttp.ClientError, asyncio.TimeoutError):
                healthy = False
            if healthy:
                state.up, state.streak, state.checker = True, 0, None
                log.warning("endpoint %s is back (GET /models answered)", state.url)
                return
            delay = min(HEALTH_CAP_S, delay * 2)

    def usage(self) -> list[EndpointUsage]:
        return [s.usage() for s in self.states]

    async def close(self) -> None:
        """Stop the health checks still running."""
        tasks = [s.checker for s in self.states if s.checker is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        for s in self.states:
            s.checker = None

    def describe(self) -> str:
        """One line for a log: each endpoint's share so far."""
        total = sum(s.attempts for s in self.states) or 1
        return ", ".join(f"{s.url} {100 * s.attempts / total:.0f}%{'' if s.up else ' (out)'}" for s in self.states)
