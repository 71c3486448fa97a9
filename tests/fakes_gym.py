"""A fake NeMo Gym 0.7.0 resources server: real aiohttp on 127.0.0.1, NeMo Gym's paths, bodies and errors.

Faithful to ``nemo_gym/base_resources_server.py`` and ``nemo_gym/server_utils.py`` of the 0.7.0 wheel
(docs/design/nemo_gym_facts.md §3): ``POST /seed_session`` (answers ``{}``), ``POST /<tool>`` (the tool's JSON),
``POST /verify`` (the request's declared fields echoed + ``reward``, ``mask_sample``, ``failure_kind``,
``failure_reason`` + the server's fields), FastAPI's 422 shape for a bad body (``{"detail": [{"type", "loc",
"msg", "input"}]}``; ``responses_create_params`` is ``extra="forbid"``, output items need ``type``), 404
``{"detail": "Not Found"}`` elsewhere (``GET /`` too: NeMo Gym's readiness probe takes any answer), and the
session cookie ``{ClassName}___{name}`` (a signed ``{"session_id": uuid}``) set on every response, the
session kept when the request brings a valid one (``setup_session_middleware``, l.1198-1218).

The environment is a calculator: tool ``calculate`` ``{"expression": "3 + 4"}`` -> ``{"result": "7"}``;
``/verify`` gives reward 1.0 when the last assistant message holds ``\\boxed{<expected_answer>}``, and reports
``tool_calls_in_session`` (the session's tool calls: 0 unless the cookies came back). An expected answer in
``mask_answers`` gives a masked sample (``failure_kind: judge_failed``), as NeMo Gym's ``judge_failsafe`` does.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import operator
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CREATE_PARAMS = {
    "background", "context_management", "conversation", "include", "input", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls", "previous_response_id", "prompt",
    "prompt_cache_key", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream",
    "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user"}
RESPONSE_REQUIRED = ("id", "created_at", "model", "object", "output", "parallel_tool_calls", "tool_choice", "tools")
OUTPUT_TYPES = {"message", "function_call", "function_call_output", "reasoning"}
SESSION_ID = web.RequestKey("session_id", str)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _calc(expr: str) -> str:
    def ev(n: ast.AST) -> int:
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.Constant) and isinstance(n.value, int):
            return n.value
        raise ValueError(f"cannot evaluate {expr!r}")
    return str(ev(ast.parse(expr, mode="eval").body))


def _missing(loc: list[Any], body: Any) -> dict[str, Any]:
    return {"type": "missing", "loc": ["body", *loc], "msg": "Field required", "input": body}


@dataclass
class FakeGym:
    name: str = "calc"
    class_name: str = "CalcResourcesServer"
    mask_answers: set[str] = field(default_factory=set)
    seeds: int = 0
    tool_calls: int = 0
    verifies: int = 0
    sessions: dict[str, int] = field(default_factory=dict)  # session id -> tool calls
    verify_bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cookie(self) -> str:
        return f"{self.class_name}___{self.name}"

    def release(self) -> None:
        """(for ``serve_in_thread``)"""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._session_middleware])
        app.router.add_post("/seed_session", self._seed)
        app.router.add_post("/verify", self._verify)
        app.router.add_post("/calculate", self._calculate)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    def _sign(self, payload: bytes) -> str:
        mac = hmac.new(self.cookie.encode(), payload, hashlib.sha256).hexdigest()[:16]
        return base64.urlsafe_b64encode(payload).decode() + "." + mac

    def _session_id(self, request: web.Request) -> str:
        raw = request.cookies.get(self.cookie, "")
        data, _, mac = raw.rpartition(".")
        try:
            payload = base64.urlsafe_b64decode(data.encode())
            if self._sign(payload) == raw:
                return str(json.loads(payload)["session_id"])
        except (ValueError, KeyError):
            pass
        return str(uuid.uuid4())

    @web.middleware
    async def _session_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request[SESSION_ID] = self._session_id(request)
        resp = await handler(request)
        payload = json.dumps({"session_id": request[SESSION_ID]}).encode()
        resp.set_cookie(self.cookie, self._sign(payload), path="/", max_age=1209600, httponly=True, samesite="lax")
        return resp

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError as e:
            raise web.HTTPUnprocessableEntity(text=json.dumps({"detail": [
                {"type": "json_invalid", "loc": ["body", 0], "msg": f"JSON decode error: {e}"}]}),
                content_type="application/json") from None

    def _check_row(self, body: Any) -> list[dict[str, Any]]:
        """``BaseRunRequest``: ``responses_create_params`` (extra forbidden, ``input`` required)."""
        if not isinstance(body, dict) or not isinstance(body.get("responses_create_params"), dict):
            return [_missing(["responses_create_params"], body)]
        params = body["responses_create_params"]
        errors = [{"type": "extra_forbidden", "loc": ["body", "responses_create_params", k],
                   "msg": "Extra inputs are not permitted", "input": params[k]} for k in params if k not in CREATE_PARAMS]
        if "input" not in params:
            errors.append(_missing(["responses_create_params", "input"], params))
        for i, tool in enumerate(params.get("tools") or []):  # openai FunctionToolParam: all four required
            errors += [_missing(["responses_create_params", "tools", i, k], tool)
                       for k in ("name", "parameters", "strict", "type") if k not in tool]
        return errors

    async def _seed(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if errors := self._check_row(body):
            return web.json_response({"detail": errors}, status=422)
        self.seeds += 1
        self.sessions.setdefault(request[SESSION_ID], 0)
        return web.json_response({})

    async def _calculate(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict) or "expression" not in body:
            return web.json_response({"detail": [_missing(["expression"], body)]}, status=422)
        self.tool_calls += 1
        self.sessions[request[SESSION_ID]] = self.sessions.get(request[SESSION_ID], 0) + 1
        try:
            return web.json_response({"result": _calc(str(body["expression"]))})
        except (ValueError, SyntaxError) as e:
            return web.json_response(repr(e), status=500)  # NeMo Gym: an unhandled exception is a JSON string, 500

    async def _verify(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        errors = self._check_row(body)
        response = body.get("response") if isinstance(body, dict) else None
        if not isinstance(response, dict):
            errors.append(_missing(["response"], body))
        else:
            errors += [_missing(["response", k], response) for k in RESPONSE_REQUIRED if k not in response]
            for i, item in enumerate(response.get("output") or []):
                if not isinstance(item, dict) or item.get("type") not in OUTPUT_TYPES:
                    errors.append({"type": "union_tag_invalid", "loc": ["body", "response", "output", i],
                                   "msg": "Input tag not found or invalid", "input": item})
        if isinstance(body, dict) and "expected_answer" not in body:
            errors.append(_missing(["expected_answer"], body))
        if errors:
            return web.json_response({"detail": errors}, status=422)
        self.verifies += 1
        self.verify_bodies.append(body)
        expected = str(body["expected_answer"])
        texts = [p.get("text", "") for it in response["output"] if it["type"] == "message" for p in it["content"]]
        found = re.findall(r"\\boxed\{(.*)\}", texts[-1] if texts else "")
        extracted = found[-1] if found else None
        masked = expected in self.mask_answers
        return web.json_response({
            "responses_create_params": body["responses_create_params"], "response": response,
            "reward": 0.0 if masked else float(extracted == expected), "mask_sample": masked,
            "failure_kind": "judge_failed" if masked else None,
            "failure_reason": "judge endpoint timed out" if masked else None,
            "expected_answer": expected, "extracted_answer": extracted,
            "tool_calls_in_session": self.sessions.get(request[SESSION_ID], 0)})

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"detail": "Not Found"}, status=404)
