"""What a run's components share: one HTTP session, the cache dir, worker pools, limits, the seed.

A ``Runtime`` lives inside one event loop, for one run (or one ``rollgen verify``, one trainer's reward
function)::

    async with Runtime(cache_dir=None, connections=64) as rt:
        await rt.attach(verifier)          # verifier.start(rt): it takes its session, pool, limits from rt
        verdict = await verifier.verify(task, rollout)
    # every attached component closed (last first), then the pools and the session

Components (servers, policies, verifiers) have a lifecycle: ``async start(runtime)`` and ``async close()``;
both are optional (a component without them needs nothing). Nothing here is global or keyed by event
loop: a component started on a runtime uses that runtime's objects until it is closed.

* ``session``: the one ``aiohttp.ClientSession`` (made on first use; its connector holds at most
  ``connections`` connections: the sampler's ``num_samples_in_parallel`` in a run, so policy and judge
  calls together never exceed what the run allows in flight). Nothing else in rollgen opens a session.
* ``cache_dir``: ``cache_root(cfg.cache_dir)``, resolved once: the rollout index, the task cache, the
  judge cache.
* ``pool(name, ...)``: a process pool shared by every component that asks for the same name (the
  math-verify workers); ``limit(name, n)``: a semaphore shared the same way (the code sandboxes at once).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import aiohttp

from rollgen.workers import WorkerPool

__all__ = ["Runtime", "cache_root", "close_component", "start_component"]

log = logging.getLogger("rollgen")


def cache_root(configured: str | os.PathLike[str] | None = None) -> Path:
    """The cache dir: ``configured`` (``cfg.cache_dir``), else ``$ROLLGEN_CACHE_DIR``, else ``~/.cache/rollgen``."""
    return Path(configured or os.environ.get("ROLLGEN_CACHE_DIR") or Path.home() / ".cache" / "rollgen").expanduser()


async def start_component(component: Any, runtime: Runtime) -> None:
    """``component.start(runtime)`` when it has one (a user's component may not)."""
    start = getattr(component, "start", None)
    if start is not None:
        await start(runtime)


async def close_component(component: Any) -> None:
    """``component.close()`` when it has one."""
    close = getattr(component, "close", None)
    if close is not None:
        await close()


class Runtime:
    """The shared resources of one run, opened and closed in one event loop (``async with``)."""

    def __init__(self, *, cache_dir: str | os.PathLike[str] | None = None, connections: int = 100, seed: int = 0):
        if connections < 1:
            raise ValueError(f"connections must be at least 1, not {connections}")
        self.cache_dir = cache_root(cache_dir)
        self.connections = connections
        self.seed = seed
        self._session: aiohttp.ClientSession | None = None
        self._pools: dict[str, WorkerPool] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._components: list[Any] = []
        self._open = False

    @classmethod
    def for_run(cls, cfg: Any) -> Runtime:
        """The runtime of a run: its ``cache_dir``, ``seed``, and as many connections as rollouts in flight."""
        return cls(cache_dir=cfg.cache_dir, connections=cfg.sampler.num_samples_in_parallel, seed=cfg.seed)

    async def open(self) -> Self:
        """Open it (what ``async with`` does); ``close()`` ends it."""
        self._open = True
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require_open(self, what: str) -> None:
        if not self._open:
            raise RuntimeError(f"Runtime.{what}: the runtime is not open; use `async with Runtime(...) as rt:`")

    # ------------------------------------------------------------ components

    async def attach(self, component: Any) -> Any:
        """Start ``component`` on this runtime; it is closed when the runtime closes. Returns it."""
        self._require_open("attach")
        await start_component(component, self)
        self._components.append(component)
        return component

    # ------------------------------------------------------------ shared resources

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session every component uses (made on first use, in this runtime's loop)."""
        self._require_open("session")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.connections, ttl_dns_cache=300)
            # No shared cookie jar: cookies are per request (a NeMo Gym session per rollout, server=remote), as
            # NeMo Gym's own client does (DummyCookieJar); a jar would send one rollout's session with another's.
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def limit(self, name: str, n: int) -> asyncio.Semaphore:
        """The semaphore called ``name`` (made with ``n`` slots by its first user; later users share it)."""
        self._require_open("limit")
        if name not in self._limits:
            self._limits[name] = asyncio.Semaphore(n)
        return self._limits[name]

    def pool(self, name: str, workers: int, *, initializer: Callable[[], None] | None = None,
             warm_up: Callable[[], None] | None = None) -> WorkerPool:
        """The worker process pool called ``name`` (made by its first user, its processes started on first
        call); every component asking for ``name`` shares it."""
        self._require_open("pool")
        if name not in self._pools:
            self._pools[name] = WorkerPool(name, workers, initializer=initializer, warm_up=warm_up)
        return self._pools[name]

    # ------------------------------------------------------------ end

    async def close(self) -> None:
        """Close the attached components (last attached first), then the pools and the session.

        Every part is closed even if one fails; the first failure is raised afterwards.
        """
        first: BaseException | None = None
        components, self._components = self._components, []
        for component in reversed(components):
            try:
                await close_component(component)
            except Exception as e:  # noqa: BLE001 - close the rest, then raise the first
                first = first or e
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            try:
                await pool.close()
            except Exception as e:  # noqa: BLE001
                first = first or e
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._limits.clear()
        self._open = False
        if first is not None:
            raise first
