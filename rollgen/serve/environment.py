"""A rollgen resource server and its verifier, served: the tasks by id, sessions, tools, and the scorer.

The pieces are the batch engine's: the server built from ``cfg.server`` (its tools through
``server.call_tool``), the verifier behind the run's guards built from ``cfg.verifier``/``cfg.guards`` in an
``AsyncRewardScorer``, and the rollout unit's verify step (``rollgen.unit.score``) on a ``Rollout`` shaped as
the engine writes it, so a served reward equals the reward of the same answer in a batch run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from itertools import islice
from typing import Any

from rollgen.build import build
from rollgen.config import RunConfig
from rollgen.integrations.openrlhf import reward_body, reward_items
from rollgen.integrations.reward import AsyncRewardScorer
from rollgen.records import Rollout, Task
from rollgen.runtime import Runtime
from rollgen.serve.shapes import RequestError, gym_turns, plain_turns, rollout_of, task_of_row

__all__ = ["ServedEnvironment"]

_GYM_FAILURE = "verifier_error"


def _tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    return {str((t.get("function") or t).get("name")) for t in tools or [] if isinstance(t, dict)}


class ServedEnvironment:
    """What ``rollgen serve`` answers with; every method takes a parsed JSON body and returns a JSON value,
    or raises ``RequestError``. Start it on a runtime (``await runtime.attach(env)``)."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.server = build(cfg.server)
        self.scorer = AsyncRewardScorer(cfg.verifier, cfg.guards)
        self.tasks: dict[str, Task] = {}
        self.skipped: list[str] = []
        self._sessions: OrderedDict[str, Task | None] = OrderedDict()
        self.tool_names = _tool_names(self.server.tools())

    async def start(self, runtime: Runtime) -> None:
        await runtime.attach(self.server)
        await runtime.attach(self.scorer)
        self.tasks = await asyncio.to_thread(self._load_tasks)

    def _load_tasks(self) -> dict[str, Task]:
        cfg = self.cfg
        tasks = self.server.tasks(self.skipped) if cfg.on_bad_row == "skip" else self.server.tasks()
        return {t.id: t for t in islice(tasks, cfg.limit)}

    # -- tasks and rollouts --------------------------------------------------------------------------

    def task(self, body: dict[str, Any]) -> Task:
        """The task a body names: ``task_id`` (or a NeMo Gym row's ``id``) among the served tasks, as its
        ``repeat``-th attempt was shown it (``server.for_repeat``, as the rollout unit asks; default 0), else the
        row itself (``task``, or the body's own task fields) read as a task file row."""
        task_id = body.get("task_id")
        if task_id is None and body.get("id") is not None and str(body["id"]) in self.tasks:
            task_id = body["id"]
        if task_id is not None:
            found = self.tasks.get(str(task_id))
            if found is None:
                raise RequestError(404, f"task_id: unknown task id {str(task_id)[:200]!r} (this server has "
                                        f"{len(self.tasks)} tasks)")
            repeat = body.get("repeat", 0)
            if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
                raise RequestError(400, "repeat: expected a non-negative integer")
            return self.server.for_repeat(found, repeat)
        if isinstance(body.get("task"), dict):
            return task_of_row(body["task"], "task")
        if "task" in body:
            raise RequestError(400, "task: expected a task row (an object)")
        if "responses_create_params" in body:
            row = {k: v for k, v in body.items() if k not in ("response", "reward") and not k.startswith("_ng_")}
            return task_of_row(row, "responses_create_params")
        raise RequestError(400, "task_id or task: missing (a served task's id, or the task row itself)")

    async def _scored(self, task: Task, rollout: Rollout) -> Rollout:
        return await self.scorer.score_rollout(task, rollout)

    # -- plain and NeMo Gym /verify ------------------------------------------------------------------

    async def verify(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /verify``: a NeMo Gym verify request (it has ``response``) or a plain one."""
        if "response" in body:
            return await self.verify_gym(body)
        task = self.task(body)
        turns, whole = plain_turns(body)
        rollout = await self._scored(task, rollout_of(task, turns, whole, body.get("finish_reason", "stop")))
        out: dict[str, Any] = {"task_id": task.id, "reward": rollout.reward, "details": rollout.reward_details,
                               "status": rollout.status, "verifier": rollout.verifier}
        if rollout.error:
            out["error"] = rollout.error
        return out

    async def verify_gym(self, body: dict[str, Any]) -> dict[str, Any]:
        """NeMo Gym's ``/verify``: the request echoed with ``reward``, ``mask_sample``, ``failure_kind``,
        ``failure_reason`` (``BaseVerifyResponse``), plus the verifier's ``reward_details`` and
        ``extracted_answer``. A verifier error is reward 0 with ``mask_sample: true``, as Gym marks a judge failure."""
        task = self.task(body)
        turns, finish = gym_turns(body["response"])
        rollout = await self._scored(task, rollout_of(task, turns, False, finish))
        failed = rollout.status == "verifier_error"
        out = {**body, "reward": 0.0 if failed or rollout.reward is None else rollout.reward,
               "mask_sample": failed, "failure_kind": _GYM_FAILURE if failed else None,
               "failure_reason": rollout.error if failed else None,
               "reward_details": rollout.reward_details, "verifier": rollout.verifier}
        if "extracted" in rollout.reward_details:
            out["extracted_answer"] = rollout.reward_details["extracted"]
        return out

    # -- NeMo Gym sessions and tools -----------------------------------------------------------------

    def seed_session(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``/seed_session``: a new session for the row (legacy: the whole row; new: ``task_data``). Returns
        the session id (the cookie) and the body: ``{}``, or ``{"resources_session_id"}`` when one was given."""
        row = body.get("task_data") if isinstance(body.get("task_data"), dict) else body
        task: Task | None
        try:
            task = self.task(row)
        except RequestError as e:
            if e.status == 404:
                raise
            task = None  # a session without a known task: tools that need none still work
        session = str(body.get("resources_session_id") or uuid.uuid4())
        self._sessions[session] = task
        self._sessions.move_to_end(session)
        while len(self._sessions) > self.cfg.serve.max_sessions:
            self._sessions.popitem(last=False)
        return session, ({"resources_session_id": session} if "resources_session_id" in body else {})

    def close_session(self, session: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """``/close_session``: forget the session (by ``resources_session_id`` or the cookie)."""
        sid = body.get("resources_session_id") or session
        if sid is not None:
            self._sessions.pop(str(sid), None)
        return {"resources_session_id": sid}

    async def call_tool(self, name: str, session: str | None, arguments: Any) -> str:
        """``POST /<tool>``: the tool's result text, as the batch engine gives it to the model (a tool that
        raises answers ``error: Type: message``, the model's mistake, not the server's)."""
        task = self._sessions.get(session) if session is not None else None
        if name not in self.tool_names and (task is None or name not in _tool_names(task.tools)):
            raise RequestError(404, f"unknown tool {name[:200]!r} (tools: {sorted(self.tool_names) or 'none'})")
        if session is None or session not in self._sessions:
            raise RequestError(400, "session: none (POST /seed_session first and send its cookie back)")
        if task is None:
            raise RequestError(400, "session: its row names no task this server knows; tools need one")
        if not isinstance(arguments, dict):
            raise RequestError(400, "body: the tool call's arguments must be a JSON object")
        try:
            return await self.server.call_tool(name, arguments, task)
        except Exception as e:  # noqa: BLE001 - a bad tool call is the model's mistake, as in a batch run
            return f"error: {type(e).__name__}: {e}"

    # -- trainers' reward protocols ------------------------------------------------------------------

    async def get_reward(self, body: dict[str, Any]) -> dict[str, Any]:
        """OpenRLHF's remote reward model: ``{query, prompts, labels}`` → ``{rewards, scores, extra_logs}``."""
        for key in ("query", "prompts", "labels"):
            if not isinstance(body.get(key), list):
                raise RequestError(400, f"{key}: missing, or not a list")
        try:
            items = reward_items(body["query"], body["prompts"], body["labels"])
        except ValueError as e:
            raise RequestError(400, str(e)) from None
        return reward_body(await self.scorer.score_many(items))

    async def compute_score(self, body: Any) -> Any:
        """VeRL's reward function over HTTP: the keyword arguments of ``compute_score(data_source,
        solution_str, ground_truth, extra_info)`` → the dict it returns (``score``, ``acc``, ``pred``); a
        list of them → a list."""
        if isinstance(body, list):
            return list(await asyncio.gather(*(self.compute_score(b) for b in body)))
        if not isinstance(body, dict):
            raise RequestError(400, "body: expected an object or a list of objects")
        if not isinstance(body.get("solution_str"), str):
            raise RequestError(400, "solution_str: missing, or not a string")
        if "ground_truth" not in body:
            raise RequestError(400, "ground_truth: missing")
        extra = body.get("extra_info") if isinstance(body.get("extra_info"), dict) else {}
        prompt = extra.get("question") or extra.get("prompt")
        reward, details = await self.scorer.score(body["solution_str"], body["ground_truth"], prompt)
        out: dict[str, Any] = {"score": float(reward or 0.0), "acc": bool(reward is not None and reward >= 1.0)}
        if isinstance(details.get("extracted"), (str, int, float)):
            out["pred"] = str(details["extracted"])
        if "verifier_error" in details:
            out["verifier_error"] = str(details["verifier_error"])
        return out

    async def close(self) -> None:
        self._sessions.clear()
