"""OpenAI-compatible HTTP client: ``/chat/completions`` and ``/responses`` over one aiohttp session.

A request that cannot be completed raises ``PolicyError`` with a rollout status (``error`` or
``timeout``); the engine turns it into a rollout row. 429, 408, 5xx and connection errors are retried
with exponential backoff and jitter, honouring ``Retry-After`` (seconds or an HTTP date). ``requests`` and
``retries`` count what was actually sent. Responses and error messages pass through ``rollgen.redact``
before anything else sees them, so a key the endpoint echoes never reaches a rollout.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from rollgen import jsonl, redact
from rollgen.config import ResponsesCreateParams
from rollgen.errors import EndpointError
from rollgen.policy import Endpoint
from rollgen.policy.pool import EndpointPool

__all__ = ["Completion", "EndpointUnreachable", "PolicyClient", "PolicyError", "check_endpoint", "retry_after_s"]

log = logging.getLogger("rollgen")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_CAP_S = 30.0


class PolicyError(Exception):
    """A request that failed for good; ``status`` is the rollout status it becomes."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Completion:
    """One model turn, normalised across both APIs."""

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    model: str | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None

    def message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation (chat format)."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg


class EndpointUnreachable(EndpointError):
    """The endpoint did not answer before any work started (connection refused, DNS, a rejected key)."""


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110, 10.2.3), capped.

    None when absent or unparseable; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 850 / asctime forms: always GMT
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), BACKOFF_CAP_S)


class PolicyClient:
    """Sends one conversation turn to an endpoint and parses the answer."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        params: ResponsesCreateParams,
        tools: list[dict[str, Any]] | None = None,
        on_throttle: Callable[[], None] | None = None,
    ):
        self.on_throttle = on_throttle
        self.session = session
        self.endpoint = endpoint
        self.params = params
        self.tools = tools or []
        self.path = "/chat/completions" if endpoint.api == "chat" else "/responses"
        self.headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self._post_headers = {**self.headers, "Content-Type": "application/json"}
        self.timeout = aiohttp.ClientTimeout(total=endpoint.request_timeout_s)
        self.pool = EndpointPool(session, endpoint.urls, headers=self.headers, eject_after=endpoint.eject_after,
                                 health_check_s=endpoint.health_check_s,
                                 health_timeout_s=min(endpoint.request_timeout_s, 30.0))
        self._base_body = self._sampling_body()
        self.requests = 0  # first attempts sent
        self.retries = 0  # further attempts of the same request
        redact.register(endpoint.api_key)

    def _sampling_body(self) -> dict[str, Any]:
        p = self.params
        body: dict[str, Any] = {"model": self.endpoint.model, "temperature": p.temperature, "top_p": p.top_p}
        body["max_tokens" if self.endpoint.api == "chat" else "max_output_tokens"] = p.max_output_tokens
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = p.stop
        if self.tools:
            body["tools"] = self._tools_body(self.tools)
        return body

    def _tools_body(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return tools if self.endpoint.api == "chat" else [_responses_tool(t) for t in tools]

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> Completion:
        """One turn. ``tools`` (a task's own) replace the server's tools for this request."""
        body = dict(self._base_body)
        if tools:
            body["tools"] = self._tools_body(tools)
        if self.endpoint.api == "chat":
            body["messages"] = messages
        else:
            body["input"] = _responses_input(messages)
        data = redact.redact_obj(await self._post(body))
        try:
            return _parse_chat(data) if self.endpoint.api == "chat" else _parse_responses(data)
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise PolicyError("error", f"malformed response: missing or wrong field ({e!r})") from None

    async def close(self) -> None:
        """Stop the endpoints' health checks (``policy.base_urls``); the session is the runtime's."""
        await self.pool.close()

    async def _post(self, body: dict[str, Any]) -> Any:
        data_bytes = jsonl.dumps_bytes(body)
        attempt = 0
        give_up_at = time.monotonic() + self.endpoint.max_retry_time_s
        while True:
            delay: float | None = None
            if attempt:
                self.retries += 1
            else:
                self.requests += 1
            where = self.pool.pick()
            latency: float | None = None
            sick = refused = False  # what the attempt says about the endpoint's health
            started = time.perf_counter()
            try:
                async with self.session.post(where.url + self.path, data=data_bytes, headers=self._post_headers,
                                             timeout=self.timeout) as resp:
                    if resp.status == 200:
                        raw = await resp.read()
                        try:
                            data = jsonl.loads(raw)
                        except ValueError:  # a proxy's error page or a garbled body: worth another try
                            sick = True
                            failure = PolicyError("error", f"malformed response: not JSON ({raw[:80]!r})")
                        else:
                            latency = time.perf_counter() - started
                            return data
                    else:
                        text = (await resp.text(errors="replace"))[:200]
                        failure = PolicyError("error", f"HTTP {resp.status}: {text}")
                        if resp.status not in RETRY_STATUSES:
                            raise self._redacted(failure)
                        sick = resp.status != 429
                        delay = retry_after_s(resp.headers.get("Retry-After"))
                        if resp.status in (429, 503) and self.on_throttle is not None:
                            self.on_throttle()
            except asyncio.TimeoutError:
                sick = True
                failure = PolicyError("timeout", f"no response within {self.endpoint.request_timeout_s:g}s")
            except aiohttp.ClientConnectorError as e:  # refused, unreachable, DNS: nothing listens there
                refused = True
                failure = PolicyError("error", f"{type(e).__name__}: {e}")
            except aiohttp.ClientError as e:
                sick = True
                failure = PolicyError("error", f"{type(e).__name__}: {e}")
            finally:
                self.pool.finished(where, latency, failed=sick, connect_failed=refused)
            if not where.up and self.pool.any_up():
                delay = 0.0  # that endpoint was just taken out: straight on to another one
            if delay is None:
                delay = min(BACKOFF_CAP_S, self.endpoint.retry_backoff_s * 2**attempt) * (0.5 + random.random())
            if attempt >= self.endpoint.max_retries or time.monotonic() + delay > give_up_at:
                if attempt:
                    failure.args = (f"{failure.args[0]} (after {attempt + 1} attempts)",)
                raise self._redacted(failure)
            attempt += 1
            await asyncio.sleep(delay)

    @staticmethod
    def _redacted(error: PolicyError) -> PolicyError:
        """Never let a key reach a rollout, a log or a report, even if the server echoes (part of) it."""
        error.args = (redact.redact(error.args[0]),)
        return error


async def check_endpoint(session: aiohttp.ClientSession, endpoint: Endpoint) -> None:
    """``GET <base_url>/models`` before any work: raise ``EndpointUnreachable`` naming the URL when nothing
    answers (connection refused, DNS, timeouts, after the endpoint's retries) or the key is rejected (401/403).

    Any other answer (200, or a server without ``/models``: 404) counts as reachable. With several URLs
    (``base_urls``) all are checked at once: it raises when none answers or any rejects the key, and logs those
    that do not answer (the run takes them out of rotation at their first refused request).
    """
    if len(endpoint.urls) == 1:
        return await _check_one(session, endpoint, endpoint.urls[0])
    results = await asyncio.gather(*(_check_one(session, endpoint, u) for u in endpoint.urls), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, EndpointUnreachable):
            raise r
    down = [str(r) for r in results if isinstance(r, EndpointUnreachable)]
    if rejected := [d for d in down if "rejected the API key" in d]:
        raise EndpointUnreachable(rejected[0])
    if len(down) == len(results):
        raise EndpointUnreachable(f"none of the {len(down)} base_urls answers: " + "; ".join(down))
    for line in down:
        log.warning("%s; going on with the other %d endpoints", line, len(results) - len(down))


async def _check_one(session: aiohttp.ClientSession, endpoint: Endpoint, base_url: str) -> None:
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    timeout = aiohttp.ClientTimeout(total=min(endpoint.request_timeout_s, 30.0))
    attempts = min(endpoint.max_retries, 3) + 1
    for attempt in range(attempts):
        try:
            async with session.get(url, headers=headers, timeout=timeout) as resp:
                if resp.status in (401, 403):
                    text = (await resp.text(errors="replace"))[:200]
                    raise EndpointUnreachable(redact.redact(
                        f"{base_url} rejected the API key: HTTP {resp.status} {text}".strip()))
                return
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            problem = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if attempt + 1 < attempts:
            await asyncio.sleep(min(BACKOFF_CAP_S, endpoint.retry_backoff_s * 2**attempt))
    raise EndpointUnreachable(redact.redact(
        f"no answer from {base_url} ({problem}; {attempts} attempt{'s' * (attempts > 1)}); "
        "is the server running?"))


def _parse_chat(data: dict[str, Any]) -> Completion:
    choice = data["choices"][0]
    msg = choice["message"]
    logprobs = None
    if lp := choice.get("logprobs"):
        logprobs = [t["logprob"] for t in lp.get("content") or []]
    return Completion(
        text=msg.get("content") or "",
        tool_calls=msg.get("tool_calls") or [],
        finish_reason=choice.get("finish_reason"),
        usage=data.get("usage"),
        model=data.get("model"),
        token_ids=choice.get("token_ids"),
        logprobs=logprobs,
    )


def _parse_responses(data: dict[str, Any]) -> Completion:
    texts, calls = [], []
    for item in data["output"]:
        if item.get("type") == "message":
            texts += [c.get("text", "") for c in item.get("content", []) if c.get("type") == "output_text"]
        elif item.get("type") == "function_call":
            calls.append({
                "id": item.get("call_id") or item.get("id"),
                "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments", "{}")},
            })
    incomplete = (data.get("incomplete_details") or {}).get("reason")
    if data.get("status") == "incomplete" and incomplete in ("max_output_tokens", "max_tokens"):
        finish = "length"
    else:
        finish = "tool_calls" if calls else "stop"
    usage = data.get("usage")
    if usage and "input_tokens" in usage:
        usage = {
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
        }
    return Completion(text="".join(texts), tool_calls=calls, finish_reason=finish, usage=usage, model=data.get("model"))


def _responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function", tool)
    return {"type": "function", "name": fn["name"], "description": fn.get("description", ""),
            "parameters": fn.get("parameters", {})}


def _responses_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages → Responses API input items (tool calls and their outputs become items)."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"), "output": m["content"]})
            continue
        if m.get("content"):
            items.append({"role": m["role"], "content": m["content"]})
        for call in m.get("tool_calls") or []:
            items.append({"type": "function_call", "call_id": call["id"], "name": call["function"]["name"],
                          "arguments": call["function"]["arguments"]})
    return items
