"""``rollgen serve``: a rollgen resource server and its verifier over HTTP, for online RL.

Endpoints (JSON in, JSON out; every one but ``GET /`` and ``GET /health`` needs the bearer token):

* NeMo Gym resources-server contract (nemo-gym 0.7.0, ``base_resources_server.py``): ``POST /seed_session``
  (the task row, or ``{resources_session_id, task_data, ...}``; sets the session cookie), ``POST /<tool>``
  (the call's arguments; answers the tool's result text), ``POST /verify`` (the row + ``response``, an
  OpenAI Responses object; answers the request with ``reward``, ``mask_sample``, ``failure_kind``,
  ``failure_reason``), ``POST /close_session``;
* plain ``POST /verify``: ``{task_id | task, completion | messages[, finish_reason]}`` →
  ``{task_id, reward, details, status, verifier[, error]}``;
* OpenRLHF's remote reward model ``POST /get_reward``: ``{query, prompts, labels}`` → ``{rewards, scores,
  extra_logs}`` (the token may be ``?token=`` in the URL: OpenRLHF's client sends no headers);
* VeRL's reward function over HTTP ``POST /compute_score``: ``compute_score``'s keyword arguments
  (``data_source, solution_str, ground_truth, extra_info``) → ``{score, acc, pred}``.

``serve_until_stopped`` runs it until its ``stop`` event is set (``rollgen serve`` sets it on SIGTERM or SIGINT:
signals belong to the command line), then lets in-flight requests finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from rollgen.config import RunConfig
from rollgen.runtime import Runtime
from rollgen.serve.app import make_app
from rollgen.serve.environment import ServedEnvironment

__all__ = ["ServedEnvironment", "make_app", "serve_until_stopped"]


async def serve_until_stopped(cfg: RunConfig, token: str, on_ready: Callable[[str, ServedEnvironment], None],
                              stop: asyncio.Event | None = None) -> None:
    """Serve ``cfg``'s server and verifier on ``cfg.serve.host:port`` until ``stop`` is set (None: until
    cancelled); ``on_ready(url, env)`` is called once the port is bound. In-flight requests then finish (up to
    ``serve.shutdown_timeout_s``) before the runtime closes."""
    settings = cfg.serve
    stop = stop or asyncio.Event()
    async with Runtime(cache_dir=cfg.cache_dir, connections=settings.concurrency, seed=cfg.seed) as runtime:
        env = await runtime.attach(ServedEnvironment(cfg))
        runner = web.AppRunner(make_app(env, settings, token), access_log=None,
                               shutdown_timeout=settings.shutdown_timeout_s, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, settings.host, settings.port)
            await site.start()
            address = runner.addresses[0]
            host = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
            on_ready(f"http://{host}:{address[1]}", env)
            await stop.wait()
        finally:
            await runner.cleanup()  # stops listening, waits for in-flight requests, closes connections
