"""``rollgen serve server=NAME [OVERRIDES...]``: serve a resource server and its verifier over HTTP for online RL.

    rollgen serve server=math                          the math tasks, verifier and guards of a math run
    rollgen serve server=code serve.port=9000 serve.concurrency=16
    ROLLGEN_SERVE_TOKEN=... rollgen serve server=mcqa  the token from the environment (serve.token_env)

Overrides are a run's (``verifier=numeric``, ``guards=off``, ``server.data_path=tasks.jsonl``, ``limit=1000``;
``--config-dir`` adds a training repo's groups); the served verifier is the one a run with them would use,
so online rewards equal batch rewards. Endpoints: NeMo Gym's resources-server routes (``/seed_session``,
``/<tool>``, ``/verify``, ``/close_session``), a plain ``POST /verify`` ({task_id or task, completion or
messages} -> {reward, details, status}), OpenRLHF's ``POST /get_reward``, VeRL's ``POST /compute_score``,
and ``GET /health``. Every request but ``/health`` needs ``Authorization: Bearer <token>``: ``serve.token``,
else ``$ROLLGEN_SERVE_TOKEN``, else a generated one printed at start. Binds 127.0.0.1:8765 by default
(``serve.host``, ``serve.port``; port 0 picks a free one). SIGTERM or Ctrl-C stops it: in-flight requests
finish first. Exit status: 0 stopped, 2 a config or task-source error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(prog="rollgen serve", description=doc.split("\n\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc.split("\n\n", 1)[1])
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra-style overrides, as for a run")
    p.add_argument("--config-dir", "-cd", default=None, help="a directory of extra config groups (a training repo's)")
    return p


def _token(cfg: Any) -> tuple[str, str]:
    """The token and how to show it: ``serve.token``, ``$<token_env>``, or a new one (shown in full)."""
    settings = cfg.serve
    if settings.token:
        return settings.token, "serve.token"
    if os.environ.get(settings.token_env):
        return os.environ[settings.token_env], f"${settings.token_env}"
    token = secrets.token_urlsafe(24)
    return token, token


def main(argv: list[str]) -> int:
    from rollgen import redact
    from rollgen.composer import compose
    from rollgen.errors import ConfigError, UserError
    from rollgen.serve import serve_until_stopped

    ns = _parser().parse_intermixed_args(argv)
    try:
        cfg = compose(ns.overrides, config_dir=ns.config_dir, output_dir=os.devnull)
    except ConfigError as e:
        for line in e.lines:
            print(f"rollgen: config error: {line}", file=sys.stderr)
        return 2
    token, shown = _token(cfg)
    redact.register(token)
    redact.register_config(cfg.model_dump(mode="json", by_alias=True))
    redact.install_log_filter()

    def ready(url: str, env: Any) -> None:
        tools = sorted(env.tool_names)
        print(f"rollgen serve: {url} ({type(env.server).__name__}, {len(env.tasks)} tasks, verifier "
              f"{cfg.verifier.target.rsplit('.', 1)[-1]}, tools: {', '.join(tools) or 'none'})", file=sys.stderr)
        print(f"rollgen serve: token {shown} (send Authorization: Bearer <token>); "
              f"e.g. curl -H 'Authorization: Bearer <token>' {url}/verify -d '{{\"task_id\": ..., \"completion\": ...}}'",
              file=sys.stderr, flush=True)
        if env.skipped:
            print(f"rollgen serve: {len(env.skipped)} bad task rows skipped; first: {env.skipped[0]}", file=sys.stderr)

    async def serve() -> None:  # SIGTERM / SIGINT stop it: in-flight requests finish, then exit 0
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await serve_until_stopped(cfg, token, ready, stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        asyncio.run(serve())
    except (UserError, OSError) as e:
        print(f"rollgen serve: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    print("rollgen serve: stopped", file=sys.stderr)
    return 0
