"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks (no mocks of the client).

It answers arithmetic prompts ("Calculate 3 + 4.") by evaluating the expression, right with
probability ``correct_rate`` and off by one otherwise, after ``latency_s``. ``error_rate`` turns
requests into HTTP 500s; ``mode`` injects other faults. It counts requests and the peak number in
flight. ``echo_key`` makes it echo the caller's Authorization header (whole and in pieces) in every
completion and error, as a leaky proxy or a prompt injection would; ``hold`` (a ``threading.Event``)
keeps every completion request waiting until it is set; ``retry_after_date`` sends ``Retry-After`` as an
HTTP date. ``max_concurrency`` serves that many requests at once (with ``latency_s``; the rest queue), as a
model server with a fixed batch does. ``hold_after=N`` answers the first N requests and holds every later one until
``release()``, so a test can act on a run that is certainly still going (N rollouts on disk, the rest
waiting). ``alternate`` makes answers right and wrong by turns for each prompt (its 1st, 3rd, ... request
right), so two repeats of a task always give a DPO pair, whatever order the requests arrive in. ``replies``
answers a prompt containing a key with a fixed text; ``pairs`` with a (right, wrong) text, drawn as
arithmetic answers are, so non-arithmetic servers get a known share right; ``reply_fn`` answers with a function of
the prompt's last user turn (None: answer as usual), e.g. a judge that decides by content. ``tool_script`` makes
the fake call tools over several turns (see ``FakeOpenAI.scripted``). Run
standalone (for benchmarks in another process): ``python tests/fakes.py --port 0``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import email.utils
import json
import operator
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CALC = re.compile(r"Calculate (.+?)\.(?:\s|$)")


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    raise ValueError("unsupported expression")


def solve(prompt: str) -> str | None:
    """The gold answer of an arithmetic prompt, or None when the prompt has none."""
    m = _CALC.search(prompt)
    if not m:
        return None
    try:
        value = _eval(ast.parse(m.group(1), mode="eval"))
    except (ValueError, SyntaxError, ZeroDivisionError):
        return None
    return str(int(value)) if float(value).is_integer() else repr(value)


OPENINGS = ["Let me compute.", "Working it out step by step.", "First, evaluate the expression.", "Quick check"]


@dataclass
class FakeOpenAI:
    latency_s: float = 0.0
    correct_rate: float = 1.0
    error_rate: float = 0.0
    mode: str = "ok"  # ok | 429 | malformed | truncated
    retry_after_s: float = 0.01
    api_key: str | None = None
    seed: int = 0
    requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    auth_failures: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keep_bodies: bool = False
    varied: bool = False  # word each reply differently (an opening drawn per request), as a sampled model does
    faults: dict[str, float] = field(default_factory=dict)  # kind -> probability per request, see FAULTS
    injected: dict[str, int] = field(default_factory=dict)
    echo_key: bool = False
    hold: threading.Event | None = None
    retry_after_date: bool = False
    first: list[str] = field(default_factory=list)  # fault kinds (see FAULTS) for the first requests, in order
    models_requests: int = 0  # GET /v1/models
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each completion request
    hold_after: int | None = None  # requests after the first N wait until release()
    alternate: bool = False  # right and wrong by turns per prompt, instead of drawing with correct_rate
    replies: dict[str, str] = field(default_factory=dict)  # text in the prompt -> the reply (code, prose), verbatim
    # text in the prompt -> (right reply, wrong reply), chosen as arithmetic answers are (correct_rate, alternate)
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    max_concurrency: int | None = None  # requests served at once (the others wait for a slot), as a model server's batch
    reply_fn: Callable[[str], str | None] | None = None  # the last user turn -> the reply (None: as usual)
    # tool calls turn by turn: a callable (messages -> step) or {text in the first user turn: [step per turn]};
    # a step is a list of calls ({"name", "arguments"}), a reply text, or a (right, wrong) text pair
    tool_script: Any = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.asked: dict[str, int] = {}  # prompt -> requests so far (``alternate``)
        self._gate = asyncio.Event()
        self._slots = asyncio.Semaphore(self.max_concurrency or 1)
        self._loop: asyncio.AbstractEventLoop | None = None

    def release(self) -> None:
        """Let held requests (``hold_after``) and all later ones through; callable from any thread."""
        if self._loop is None:  # not serving yet
            self._gate.set()
        else:
            self._loop.call_soon_threadsafe(self._gate.set)

    def app(self) -> web.Application:
        """The aiohttp application; built in the loop that serves it (``release`` wakes that loop)."""
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        self.models_requests += 1
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": f"bad key: {request.headers.get('Authorization')}"}},
                                     status=401)
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    def retry_after(self) -> str:
        if self.retry_after_date:
            return email.utils.formatdate(time.time() + self.retry_after_s, usegmt=True)
        return str(self.retry_after_s)

    def _leak(self, request: web.Request) -> str:
        """What an echoing endpoint gives away: the header, and pieces of the key (as a truncating proxy would)."""
        got = request.headers.get("Authorization", "")
        key = got.removeprefix("Bearer ")
        return f"[auth: {got}] [start: {key[:12]}] [end: ...{key[-9:]}] [middle: {key[5:15]}]"

    async def _answer(self, request: web.Request) -> tuple[str | dict[str, Any], dict[str, Any]] | web.Response:
        """The reply text (or, when the request offers tools and none was called yet, a tool call)."""
        self.requests += 1
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
                self.auth_failures += 1
                got = request.headers.get("Authorization")  # echoed, as some proxies do: the client must redact it
                return web.json_response({"error": {"message": f"bad key: {got}"}}, status=401)
            if self.hold is not None and not self.hold.is_set():
                await asyncio.get_running_loop().run_in_executor(None, self.hold.wait)
            body = await request.json()
            if self.hold_after is not None and self.requests > self.hold_after:
                await self._gate.wait()
            if self.keep_bodies:
                self.bodies.append(body)
            if self.latency_s:
                if self.max_concurrency:  # a server with a fixed number of slots: the rest queue
                    async with self._slots:
                        await asyncio.sleep(self.latency_s)
                else:
                    await asyncio.sleep(self.latency_s)
            if self.requests <= len(self.first):
                return await FAULTS[self.first[self.requests - 1]](self, request)
            if self.faults and (fault := self._draw_fault()) is not None:
                return await FAULTS[fault](self, request)
            if self.mode == "429":
                return web.json_response({"error": {"message": "slow down"}}, status=429,
                                         headers={"Retry-After": self.retry_after()})
            if self.error_rate and self.rng.random() < self.error_rate:
                leak = f" {self._leak(request)}" if self.echo_key else ""
                return web.json_response({"error": {"message": f"injected failure{leak}"}}, status=500)
            if self.mode == "malformed":
                return web.Response(text="{not json", content_type="application/json")
            messages = body.get("messages") or body.get("input") or []
            if self.tool_script is not None and "messages" in body and (step := self.scripted(messages)) is not None:
                return step, body
            if body.get("tools") and "messages" in body:
                if messages[-1].get("role") == "tool":  # answer with what the tool said
                    return f"The tool says \\boxed{{{messages[-1]['content']}}}.", body
                m = _CALC.search(messages[-1].get("content", ""))
                tool = body["tools"][0]["function"]["name"]
                return {"id": f"call_{self.requests}", "type": "function",
                        "function": {"name": tool, "arguments": json.dumps({"expression": m.group(1) if m else ""})}}, body
            prompt = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
            if self.reply_fn is not None and (made := self.reply_fn(str(prompt))) is not None:
                return made, body
            if (keyed := next((r for k, r in self.replies.items() if k in str(prompt)), None)) is not None:
                return keyed, body
            if (pair := next((r for k, r in self.pairs.items() if k in str(prompt)), None)) is not None:
                return pair[0 if self._right(prompt) else 1], body
            gold = solve(prompt if isinstance(prompt, str) else json.dumps(prompt))
            if gold is None:
                text = "I do not know."
            elif self._right(prompt):
                text = f"Let me compute. The answer is \\boxed{{{gold}}}."
                if self.varied:
                    text = f"{self.rng.choice(OPENINGS)} {self.rng.randint(1, 10**6)}: the answer is \\boxed{{{gold}}}."
            else:
                wrong = str(int(gold) + 1) if gold.lstrip("-").isdigit() else gold + "1"
                text = f"I think it is \\boxed{{{wrong}}}."
                if self.varied:
                    text = f"{self.rng.choice(OPENINGS)} {self.rng.randint(1, 10**6)}: I think it is \\boxed{{{wrong}}}."
            if self.echo_key:
                text = f"{self._leak(request)} {text}"
            return text, body
        finally:
            self.in_flight -= 1

    def scripted(self, messages: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
        """The ``tool_script`` step for this conversation: tool calls (OpenAI ``tool_calls`` items) or the reply
        text; None when the script has nothing for it. A mapping's step is picked by the number of assistant
        turns so far (the last step repeats)."""
        if callable(self.tool_script):
            step = self.tool_script(messages)
        else:
            prompt = next((str(m.get("content")) for m in messages if m.get("role") == "user"), "")
            steps = next((s for k, s in self.tool_script.items() if k in prompt), None)
            if not steps:
                return None
            step = steps[min(sum(m.get("role") == "assistant" for m in messages), len(steps) - 1)]
        if isinstance(step, tuple):
            step = step[0 if self._right(json.dumps(messages[:2])) else 1]
        if step is None or isinstance(step, str):
            return step
        return [{"id": f"call_{self.requests}_{i}", "type": "function", "function": {
            "name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"])}}
            for i, c in enumerate(step)]

    def _right(self, prompt: Any) -> bool:
        """Whether this answer is right: by turns per prompt (``alternate``), else with ``correct_rate``."""
        if not self.alternate:
            return self.rng.random() < self.correct_rate
        key = json.dumps(prompt)
        self.asked[key] = self.asked.get(key, 0) + 1
        return self.asked[key] % 2 == 1

    def _draw_fault(self) -> str | None:
        x = self.rng.random()
        for kind, p in self.faults.items():
            if x < p:
                self.injected[kind] = self.injected.get(kind, 0) + 1
                return kind
            x -= p
        return None

    async def _chat(self, request: web.Request) -> web.Response:
        got = await self._answer(request)
        if isinstance(got, web.StreamResponse):
            return got
        text, body = got
        finish = "length" if self.mode == "truncated" else "stop"
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if isinstance(text, (dict, list)):  # tool calls: one (the default tool mode) or a scripted turn's
            calls = text if isinstance(text, list) else [text]
            message, finish, text = {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls", ""
        return web.json_response({
            "id": f"chatcmpl-{self.requests}", "object": "chat.completion", "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": len(text.split()), "total_tokens": 20 + len(text.split())},
        })

    async def _responses(self, request: web.Request) -> web.Response:
        got = await self._answer(request)
        if isinstance(got, web.StreamResponse):
            return got
        text, body = got
        assert isinstance(text, str), "tool calls are served on the chat API only"
        truncated = self.mode == "truncated"
        return web.json_response({
            "id": f"resp-{self.requests}", "object": "response", "model": body.get("model", "fake"),
            "status": "incomplete" if truncated else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
            "output": [{"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": text}]}],
            "usage": {"input_tokens": 20, "output_tokens": len(text.split()), "total_tokens": 20 + len(text.split())},
        })


async def _reset(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.abort()  # connection reset, no response
    return web.Response(status=500)


async def _hang(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(3600)
    return web.Response(status=500)


async def _partial(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "500"})
    await resp.prepare(request)
    await resp.write(b'{"id": "x", "choices": [')  # then the connection drops mid-body
    assert request.transport is not None
    request.transport.abort()
    return resp


FAULTS = {
    "500": lambda f, r: _const(web.json_response({"error": {"message": "injected"}}, status=500)),
    "503": lambda f, r: _const(web.json_response({"error": {"message": "overloaded"}}, status=503)),
    "429": lambda f, r: _const(web.json_response({"error": {"message": "rate limited"}}, status=429,
                                                 headers={"Retry-After": f.retry_after()})),
    "400": lambda f, r: _const(web.json_response({"error": {"message": "bad request"}}, status=400)),
    "nonjson": lambda f, r: _const(web.Response(text="{not json", content_type="application/json")),
    "wrongtype": lambda f, r: _const(web.Response(text="<html>proxy error</html>", content_type="text/html")),
    "reset": _reset,
    "hang": _hang,
    "partial": _partial,
}


async def _const(resp: web.StreamResponse) -> web.StreamResponse:
    return resp


class RunningFake:
    """``async with RunningFake(FakeOpenAI(...)) as base_url:`` serves on 127.0.0.1, a free port."""

    def __init__(self, fake: FakeOpenAI, host: str = "127.0.0.1", port: int = 0):
        self.fake, self.host, self.port = fake, host, port
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        self.runner = web.AppRunner(self.fake.app(), access_log=None)
        await self.runner.setup()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a fake stopped and started again on its port
        sock.bind((self.host, self.port))
        site = web.SockSite(self.runner, sock)
        await site.start()
        self.port = sock.getsockname()[1]
        return f"http://{self.host}:{self.port}/v1"

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description="Fake OpenAI-compatible server for rollgen tests and benchmarks")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--correct-rate", type=float, default=1.0)
    ap.add_argument("--error-rate", type=float, default=0.0)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--faults", default="", help="kind=probability,... with kinds from FAULTS, e.g. 500=0.01,reset=0.01")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-concurrency", type=int, default=None, help="requests served at once (with --latency)")
    ap.add_argument("--alternate", action="store_true", help="right and wrong answers by turns for each prompt")
    ap.add_argument("--varied", action="store_true", help="word each reply differently, as a sampled model does")
    args = ap.parse_args()
    faults = {k: float(v) for k, v in (item.split("=") for item in args.faults.split(",") if item)}
    fake = FakeOpenAI(latency_s=args.latency, correct_rate=args.correct_rate, error_rate=args.error_rate,
                      mode=args.mode, faults=faults, seed=args.seed, retry_after_s=0.001,
                      alternate=args.alternate, max_concurrency=args.max_concurrency, varied=args.varied)

    async def serve() -> None:
        async with RunningFake(fake, port=args.port) as url:
            print(url, flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
