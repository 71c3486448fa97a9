"""``server=remote``: a running NeMo Gym resources server (0.7.0) as a rollgen server, over HTTP.

Tasks come from ``data_path`` (NeMo Gym rows, read as ``TaskFileServer`` reads any task file); the policy is
rollgen's; the tools and the reward are the remote server's. Per rollout, as NeMo Gym's ``simple_agent``
does it (``responses_api_agents/simple_agent/app.py`` l.420-495 in the 0.7.0 wheel):

1. ``POST {base_url}/seed_session`` with the task's row; its ``Set-Cookie`` starts the rollout's session;
2. each tool call: ``POST {base_url}/{tool name}`` with the parsed arguments and the session's cookies (the
   answer's cookies merged in); the body text, whatever the status, is the tool's result for the model;
3. ``POST {base_url}/verify`` with the row plus ``response`` (the rollout as an OpenAI Response) and the
   cookies: ``rollgen.verifiers.remote.RemoteVerifier``, which the ``server=remote`` preset brings.

The session is the rollout's (a context variable of the asyncio task running it), seeded by the first tool
call or the verify step. Cookies are passed per request, never kept in the run's shared HTTP session (whose
cookie jar is a dummy, like NeMo Gym's own client's). Only tools the task declares are called. Before any
work ``GET {base_url}/`` must answer (NeMo Gym's own readiness probe), else the run stops with exit 3.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import Field, field_validator

from rollgen.nemogym.taskrow import task_row
from rollgen.records import Task
from rollgen.servers.taskfile import TaskFileServer

if TYPE_CHECKING:
    from rollgen.runtime import Runtime

__all__ = ["RemoteServer", "RemoteSession", "session_for"]


@dataclass
class RemoteSession:
    """One rollout's session with the remote server: the task it is for and the cookies the server set."""

    task_id: str
    cookies: dict[str, str] = field(default_factory=dict)

    def merge(self, cookies: SimpleCookie) -> None:
        self.cookies.update({k: m.value for k, m in cookies.items()})


@dataclass
class _Slot:
    """Where one rollout keeps its session: set in the rollout's own task, so its tool calls (which run in child
    tasks, each with a copy of the context) and its verify step all see, and share, one session."""

    session: RemoteSession | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # parallel tool calls of a turn seed once


_SLOT: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("rollgen_remote_session", default=None)


def begin_rollout() -> None:
    """A fresh session slot for the rollout running in this task (the rollout unit's ``for_repeat`` call)."""
    _SLOT.set(_Slot())


async def session_for(server: RemoteServer, task: Task) -> RemoteSession:
    """The current rollout's session for ``task``, seeded (``/seed_session``) on first use."""
    slot = _SLOT.get()
    if slot is None:  # called outside a rollout unit (a direct call): this task's own slot
        slot = _Slot()
        _SLOT.set(slot)
    async with slot.lock:
        if slot.session is not None and slot.session.task_id == task.id:
            return slot.session
        session = RemoteSession(task.id)
        async with server.post("seed_session", task_row(task.model_dump()), session) as resp:
            text = await resp.text(errors="replace")
            if resp.status >= 400:
                raise RuntimeError(f"{server.url('seed_session')}: HTTP {resp.status}: {text[:300]}")
        slot.session = session
        return session


def end_session() -> None:
    """Forget the current rollout's session (after its verify step)."""
    slot = _SLOT.get()
    if slot is not None:
        slot.session = None


class RemoteServer(TaskFileServer):
    """Tasks from ``data_path``; tools and verification by the NeMo Gym resources server at ``base_url``."""

    class Params(TaskFileServer.Params):
        base_url: str | None = Field(None, description="the resources server, e.g. http://127.0.0.1:18124")
        name: str | None = Field(None, description="the environment's name (reports, the rows' agent_ref)")
        request_timeout_s: float = Field(120.0, gt=0, description="one tool or verify request, at most")

        @field_validator("base_url")
        @classmethod
        def _check_url(cls, url: str | None) -> str | None:
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"must start with http:// or https://, got {url!r}")
            return url.rstrip("/") if url else url

    params: Params
    _runtime: Runtime | None = None

    def check(self) -> None:
        """Before any work: a URL and a task file are given."""
        if not self.params.base_url:
            raise ValueError("base_url: set it to a running NeMo Gym resources server, e.g. "
                             "server.base_url=http://127.0.0.1:18124")
        if not self.params.data_path:
            raise ValueError("data_path: set it to a task file of NeMo Gym rows (responses_create_params + "
                             "verifier fields)")
        super().check()

    async def start(self, runtime: Runtime) -> None:
        """Take the runtime's session; ``GET {base_url}/`` must answer (else ``EndpointUnreachable``: exit 3)."""
        from rollgen.policy.client import EndpointUnreachable

        self._runtime = runtime
        if not self.params.base_url:
            return
        url = self.params.base_url + "/"
        timeout = aiohttp.ClientTimeout(total=min(self.params.request_timeout_s, 30.0))
        try:
            async with runtime.session.get(url, timeout=timeout) as resp:
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise EndpointUnreachable(f"no answer from the NeMo Gym resources server at {url} "
                                      f"({type(e).__name__}: {e}); is it running?") from None

    async def close(self) -> None:
        self._runtime = None

    def url(self, path: str) -> str:
        return f"{self.params.base_url}/{path}"

    def post(self, path: str, body: Any, session: RemoteSession) -> Any:
        """``POST {base_url}/{path}`` with ``session``'s cookies; the answer's cookies join the session."""
        if self._runtime is None:
            raise RuntimeError("RemoteServer is not started (a run starts it; or `await runtime.attach(server)`)")
        return _Post(self._runtime.session.post(
            self.url(path), json=body, cookies=session.cookies,
            timeout=aiohttp.ClientTimeout(total=self.params.request_timeout_s)), session)

    def for_repeat(self, task: Task, repeat: int) -> Task:
        """The task itself; starts the rollout's session slot (the unit calls this in the rollout's own task)."""
        begin_rollout()
        return task

    async def call_tool(self, name: str, arguments: dict[str, Any], task: Task) -> str:
        """``POST {base_url}/{name}`` with ``arguments``; the body text is the result (an error status's too)."""
        declared = {(t.get("function") or t).get("name") for t in task.tools or []}
        if name not in declared:
            raise KeyError(f"no tool {name!r} (the task's tools: {', '.join(sorted(map(str, declared))) or 'none'})")
        session = await session_for(self, task)
        async with self.post(name, arguments, session) as resp:
            return await resp.text(errors="replace")

    def fingerprint(self) -> dict[str, Any]:
        """The tasks' file and the server's URL and name (another environment, other rollouts)."""
        fp = super().fingerprint()
        fp.pop("request_timeout_s", None)
        return fp


class _Post:
    """``async with``: the response of a request, its ``Set-Cookie`` merged into the session."""

    def __init__(self, request: Any, session: RemoteSession):
        self.request, self.session = request, session

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self.resp = await self.request.__aenter__()
        self.session.merge(self.resp.cookies)
        return self.resp

    async def __aexit__(self, *exc: Any) -> None:
        await self.request.__aexit__(*exc)
