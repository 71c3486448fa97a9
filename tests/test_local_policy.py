"""LocalPolicy: llama_cpp.server with the real embedded SmolLM2 model (slow) and its error messages (fast)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from omegaconf import OmegaConf

from rollgen.policy import Endpoint
from rollgen.policy import local as local_mod
from rollgen.policy.local import LocalPolicy

CONF = Path(__file__).resolve().parents[1] / "conf" / "policy" / "local.yaml"


def make_policy(**overrides) -> LocalPolicy:
    data = OmegaConf.to_container(OmegaConf.load(CONF))
    data.pop("_target_")
    data.update(overrides)
    return LocalPolicy(LocalPolicy.Params.model_validate(data))


def port_of(endpoint: Endpoint) -> int:
    return int(endpoint.base_url.rsplit(":", 1)[1].split("/")[0])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_gone(pid: int, port: int, timeout_s: float = 10.0) -> None:
    """The server process (and its group) no longer exists and nothing listens on its port."""
    deadline = time.monotonic() + timeout_s
    while (process_exists(pid) or port_open(port)) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a condition with a deadline
    assert not process_exists(pid), f"server pid {pid} still alive"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not port_open(port), f"port {port} still open"


async def chat(endpoint: Endpoint, token: str | None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {
        "model": endpoint.model,
        "messages": [{"role": "user", "content": "Calculate 3 + 4. Put your final answer within \\boxed{}."}],
        "max_tokens": 32,
        "temperature": 0.0,
    }
    timeout = aiohttp.ClientTimeout(total=endpoint.request_timeout_s)
    async with (
        aiohttp.ClientSession(timeout=timeout) as s,
        s.post(f"{endpoint.base_url}/chat/completions", json=body, headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


# ---- fast --------------------------------------------------------------------------------------------


def test_params_match_conf():
    policy = make_policy()
    assert policy.params.model_path is None
    assert policy.params.host == "127.0.0.1"


def test_missing_model_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "model.gguf"
    policy = make_policy(model_path=str(missing))

    async def enter():
        async with policy.serve():
            pytest.fail("served a missing model")

    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        asyncio.run(enter())
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        policy.fingerprint()


def test_missing_llama_cpp_says_how_to_install(tmp_path, monkeypatch):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    real_find_spec = local_mod.importlib.util.find_spec
    monkeypatch.setattr(local_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a))

    async def enter():
        async with make_policy(model_path=str(model)).serve():
            pytest.fail("served without llama_cpp")

    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[local\]'.*policy=openai"):
        asyncio.run(enter())


# ---- slow: the real embedded model -------------------------------------------------------------------


@pytest.mark.slow
def test_serves_chat_with_token_and_stops(tmp_path):
    policy = make_policy()
    policy.log_path = tmp_path / "server.log"

    async def run() -> tuple[int, int]:
        async with policy.serve() as endpoint:
            assert endpoint.base_url.startswith("http://127.0.0.1:")
            assert endpoint.api == "chat" and endpoint.model == "smollm2-135m-instruct"
            assert endpoint.api_key and endpoint.api_key not in repr(endpoint)
            pid = policy.process.pid
            assert endpoint.api_key not in " ".join(Path(f"/proc/{pid}/cmdline").read_text().split("\0"))

            status, reply = await chat(endpoint, endpoint.api_key)
            assert status == 200, reply
            assert reply["choices"][0]["message"]["content"].strip()
            assert reply["usage"]["completion_tokens"] > 0

            assert (await chat(endpoint, None))[0] == 401
            assert (await chat(endpoint, "wrong-token"))[0] == 401
            return pid, port_of(endpoint)

    pid, port = asyncio.run(run())
    assert policy.process is None
    assert_gone(pid, port)
    assert policy.log_path.stat().st_size > 0

    fp = policy.fingerprint()
    assert fp["model_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert fp["model_size"] > 0 and fp["n_ctx"] == 2048


@pytest.mark.slow
def test_stops_when_body_raises():
    policy = make_policy()
    seen: dict[str, int] = {}

    async def run():
        async with policy.serve() as endpoint:
            seen.update(pid=policy.process.pid, port=port_of(endpoint))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(run())
    assert_gone(seen["pid"], seen["port"])


@pytest.mark.slow
def test_stops_when_cancelled():
    """Ctrl-C under ``asyncio.run`` cancels the main task; the server must still be stopped."""
    policy = make_policy()
    seen: dict[str, int] = {}

    async def serve_forever(ready: asyncio.Event):
        async with policy.serve() as endpoint:
            seen.update(pid=policy.process.pid, port=port_of(endpoint))
            ready.set()
            await asyncio.Event().wait()

    async def run():
        ready = asyncio.Event()
        task = asyncio.create_task(serve_forever(ready))
        await asyncio.wait([task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
        assert ready.is_set(), task.exception()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert_gone(seen["pid"], seen["port"])
