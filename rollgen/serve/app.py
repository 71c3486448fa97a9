"""The aiohttp application of ``rollgen serve``: routes, the token, the body and concurrency limits, JSON errors.

Middlewares, outermost first: every error is JSON ``{"error": message}`` with its status code; the bearer
token (``Authorization: Bearer <token>``, or ``?token=`` for clients that send no headers, as OpenRLHF's)
is checked in constant time on every route but ``GET /`` and ``GET /health``; then a semaphore admits
``serve.concurrency`` requests at once, up to ``serve.max_waiting`` more wait their turn, and beyond that a
request is answered 503 with ``Retry-After: 1`` at once (a trainer retries; nothing queues without bound).
The body limit is aiohttp's ``client_max_size`` (413), checked first against ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from rollgen.config import ServeConfig
from rollgen.serve.environment import ServedEnvironment
from rollgen.serve.shapes import RequestError

__all__ = ["OPEN_PATHS", "SESSION_COOKIE", "make_app"]

SESSION_COOKIE = "rollgen_session"
OPEN_PATHS = frozenset({"/", "/health"})  # readiness probes (NeMo Gym's is GET /): no token
_ENV = web.AppKey("env", ServedEnvironment)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestError as e:
        return _error(e.status, e.message)
    except web.HTTPRequestEntityTooLarge as e:
        return _error(413, f"body: larger than the limit of {e.max_size} bytes (serve.max_body_bytes)")
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _error(e.status, e.reason if e.status != 404 else f"no route {request.method} {request.path}")


def _token_check(token: str) -> Callable[..., Any]:
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS and request.method == "GET":
            return await handler(request)
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else request.query.get("token", "")
        if not given:
            return _error(401, "token: missing (send Authorization: Bearer <token>)")
        if not hmac.compare_digest(given.encode(), expected):
            return _error(401, "token: wrong")
        return await handler(request)

    return check


def _limits(settings: ServeConfig) -> Callable[..., Any]:
    slots = asyncio.Semaphore(settings.concurrency)
    waiting = 0

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal waiting
        if request.path in OPEN_PATHS:
            return await handler(request)
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            return _error(413, f"body: {request.content_length} bytes, over the limit of {settings.max_body_bytes} "
                               "(serve.max_body_bytes)")
        if slots.locked():
            if waiting >= settings.max_waiting:
                return _error(503, f"busy: {settings.concurrency} requests in progress and {waiting} waiting "
                                   "(serve.concurrency, serve.max_waiting); retry", **{"Retry-After": "1"})
            waiting += 1
            try:
                await slots.acquire()
            finally:
                waiting -= 1
        else:
            await slots.acquire()
        try:
            return await handler(request)
        finally:
            slots.release()

    return limit


async def _body(request: web.Request, kind: type | tuple[type, ...] = dict) -> Any:
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(400, f"body: not valid JSON ({e})") from None
    if not isinstance(body, kind):
        raise RequestError(400, "body: expected a JSON object")
    return body


def make_app(env: ServedEnvironment, settings: ServeConfig, token: str) -> web.Application:
    """The routes of a served environment (its lifetime is the caller's: start ``env`` on a runtime first)."""
    if not token:
        raise ValueError("a token is required")
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[_json_errors, _token_check(token), _limits(settings)])
    app[_ENV] = env

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def verify(request: web.Request) -> web.Response:
        return web.json_response(await env.verify(await _body(request)))

    async def seed_session(request: web.Request) -> web.Response:
        session, body = env.seed_session(await _body(request))
        response = web.json_response(body)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Lax")
        return response

    async def close_session(request: web.Request) -> web.Response:
        return web.json_response(env.close_session(request.cookies.get(SESSION_COOKIE), await _body(request)))

    async def get_reward(request: web.Request) -> web.Response:
        return web.json_response(await env.get_reward(await _body(request)))

    async def compute_score(request: web.Request) -> web.Response:
        return web.json_response(await env.compute_score(await _body(request, (dict, list))))

    async def tool(request: web.Request) -> web.Response:
        name = request.match_info["tool"]
        result = await env.call_tool(name, request.cookies.get(SESSION_COOKIE), await _body(request, object))
        return web.Response(text=result, content_type="text/plain")

    app.router.add_get("/", health)
    app.router.add_get("/health", health)
    app.router.add_post("/verify", verify)
    app.router.add_post("/seed_session", seed_session)
    app.router.add_post("/close_session", close_session)
    app.router.add_post("/get_reward", get_reward)
    app.router.add_post("/compute_score", compute_score)
    app.router.add_post("/{tool}", tool)
    return app
