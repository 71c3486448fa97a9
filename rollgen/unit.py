"""One rollout: a task → policy ↔ server tools, turn by turn → guards and verifier → a ``Rollout``.

``RolloutUnit.run(task, repeat)`` is all a rollout is; it knows nothing of files, progress bars or counters.
``collect`` (batch collection) runs many of them; ``score`` (its verify step) is what the reward scorer
(online RL) and ``rollgen verify`` call, so training, curation and re-verification score the same way.

A bad sample is data, a bug is a crash:

* a request that fails for good (``PolicyError``: HTTP errors after retries, timeouts, malformed responses)
  is a rollout with status ``error`` or ``timeout``;
* a verifier that raises is a rollout with status ``verifier_error``, its error naming the exception and,
  for a user's verifier or a library, where it was raised (``KeyError: 'x' (raised in MyReward.verify,
  my_rewards.py:12)``);
* a tool call that fails is the model's mistake: the error is the tool's result, sent back to the model (an
  unknown tool, arguments that are not JSON or break the tool's schema, a tool that raised or ran past
  ``sampler.tool_timeout_s``); the calls of one turn run concurrently, their results kept in call order;
* a bug in rollgen's own code (a ``TypeError``, ``AttributeError``, ``LookupError``, ``NameError`` or
  ``AssertionError`` raised by rollgen, not by a user's component or a library it calls) propagates with a
  note saying where it was raised: it stops the run rather than turn every rollout into an error row.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sysconfig
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from rollgen.config import SamplerConfig
from rollgen.policy.client import Completion, PolicyClient, PolicyError
from rollgen.records import Rollout, Task, rollout_id
from rollgen.verifiers import verify
from rollgen.verifiers.toolcalls import ToolCallError, parse_call, ready

__all__ = ["RolloutUnit", "describe", "rollgen_bug", "score"]

_BUG_TYPES = (TypeError, AttributeError, LookupError, NameError, AssertionError)
_ROLLGEN = os.path.dirname(__file__) + os.sep  # as the package's frames name their files (no resolving on the loop)
_STDLIB = tuple({p + os.sep for k in ("stdlib", "platstdlib")
                 for p in (sysconfig.get_paths()[k], os.path.realpath(sysconfig.get_paths()[k]))})
_REMOTE_FILE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _is_stdlib(filename: str) -> bool:
    return filename.startswith("<frozen") or (
        filename.startswith(_STDLIB) and "site-packages" not in filename and "dist-packages" not in filename)


def _origin(exc: BaseException) -> tuple[str, int, str, Any] | None:
    """Where ``exc`` was raised: ``(file, line, function, self)`` of the innermost frame outside the
    standard library (threads and process pools re-raise through it); None when there is none."""
    remote = exc.__cause__
    if type(remote).__name__ == "_RemoteTraceback":  # raised in a worker process: its text says where
        found = [m for m in _REMOTE_FILE.finditer(str(remote)) if not _is_stdlib(m.group(1))]
        if found:
            return found[-1].group(1), int(found[-1].group(2)), found[-1].group(3), None
    tb: TracebackType | None = exc.__traceback__
    origin = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if not _is_stdlib(code.co_filename):
            origin = (code.co_filename, tb.tb_lineno, code.co_name, tb.tb_frame.f_locals.get("self"))
        tb = tb.tb_next
    return origin


def _in_rollgen(filename: str) -> bool:
    return filename.startswith(_ROLLGEN)


def rollgen_bug(exc: BaseException) -> bool:
    """True when ``exc`` is a programming error raised by rollgen's own code (not a user's component, not a
    library rollgen calls): it must stop the run, not become a sample's status."""
    if not isinstance(exc, _BUG_TYPES):
        return False
    origin = _origin(exc)
    return origin is not None and _in_rollgen(origin[0])


def _where(origin: tuple[str, int, str, Any]) -> str:
    filename, line, function, self = origin
    owner = f"{type(self).__name__}." if self is not None and not isinstance(self, type) else ""
    return f"{owner}{function}, {Path(filename).name}:{line}"


def describe(exc: BaseException) -> str:
    """``Type: message``, plus where it was raised when that is outside rollgen (a user's class, a library)."""
    text = f"{type(exc).__name__}: {exc}"
    origin = _origin(exc)
    if origin is not None and not _in_rollgen(origin[0]):
        text += f" (raised in {_where(origin)})"
    return text


def _mark_bug(exc: BaseException, doing: str) -> None:
    origin = _origin(exc)
    where = f" at {origin[0]}:{origin[1]} in {origin[2]}" if origin else ""
    exc.add_note(f"rollgen bug: {type(exc).__name__} raised{where} while {doing}. This is not a sample failure: "
                 "the run stopped so it is not hidden in the rollouts; please report it with this traceback.")


async def score(verifier: Any, task: Task, rollout: Rollout) -> Rollout:
    """The verify step, in place: ``reward``, ``reward_details`` and ``verifier`` from the verifier behind its
    guards, or status ``verifier_error`` when it raises (a rollgen bug propagates). Returns ``rollout``."""
    try:
        verdict = await verify(verifier, task, rollout)
    except Exception as e:
        if rollgen_bug(e):
            _mark_bug(e, f"verifying rollout {rollout.id!r}")
            raise
        rollout.status, rollout.error = "verifier_error", describe(e)
        rollout.reward, rollout.reward_details, rollout.verifier = None, {}, None
        return rollout
    rollout.reward, rollout.reward_details, rollout.verifier = verdict.reward, verdict.details, verdict.verifier
    return rollout


class RolloutUnit:
    """Runs one rollout of one task: the policy's turns, the server's tools between them, then the verify step."""

    def __init__(self, *, server: Any, verifier: Any, client: PolicyClient, sampler: SamplerConfig,
                 config_hash: str = ""):
        self.server, self.verifier, self.client = server, verifier, client
        self.max_turns = sampler.max_turns
        self.tool_timeout_s = sampler.tool_timeout_s
        self.sampling = sampler.responses_create_params.model_dump(exclude_none=True)
        self.config_hash = config_hash

    async def run(self, task: Task, repeat: int) -> Rollout:
        """The rollout of ``task``'s ``repeat``-th attempt, scored (or with the status saying why not)."""
        task = self.server.for_repeat(task, repeat)  # e.g. its own option order, the gold moved with it
        messages = task.chat()
        t0 = time.perf_counter()
        fields: dict[str, Any] = {"status": "ok"}
        completion: Completion | None = None
        turns = 0
        usage: Counter[str] = Counter()
        try:
            while turns < self.max_turns:
                completion = await self.client.complete(messages, task.tools)
                turns += 1
                for k, v in (completion.usage or {}).items():
                    if isinstance(v, int):
                        usage[k] += v
                messages.append(completion.message())
                if not completion.tool_calls or completion.finish_reason == "length":
                    break
                specs = task.tools or self.server.tools()  # the calls of one turn run at once, results in call order
                await ready(specs)
                messages.extend(await asyncio.gather(*(self._tool_result(c, task, specs) for c in completion.tool_calls)))
            if completion is not None and completion.finish_reason == "length":
                fields["status"] = "truncated"
        except PolicyError as e:
            fields.update(status=e.status, error=str(e))
        rollout = Rollout(
            id=rollout_id(task.id, repeat), task_id=task.id, repeat=repeat, messages=messages,
            completion=completion.text if completion else "",
            finish_reason=completion.finish_reason if completion else None,
            usage=dict(usage) if usage else None, latency_s=round(time.perf_counter() - t0, 6),
            model=completion.model if completion else None, sampling=self.sampling,
            token_ids=completion.token_ids if completion else None,
            logprobs=completion.logprobs if completion else None,
            turns=turns, config_hash=self.config_hash, **fields,
        )
        if completion is not None:
            await score(self.verifier, task, rollout)
        return rollout

    async def _tool_result(self, call: dict[str, Any], task: Task, specs: list[dict[str, Any]]) -> dict[str, Any]:
        """The tool message answering ``call``: the server's result, or the error the model made (an unknown tool,
        arguments that are not JSON or break the tool's schema, a tool that raised or ran past the timeout)."""
        deadline = asyncio.timeout(self.tool_timeout_s)
        name = None
        try:
            name, args = parse_call(call, specs)
            async with deadline:
                content = await self.server.call_tool(name, args, task)
            if not isinstance(content, str):
                content = json.dumps(content, ensure_ascii=False, default=str)
        except ToolCallError as e:
            content = f"error: {e}"
        except Exception as e:  # noqa: BLE001 - a bad tool call is the model's mistake: report it back to the model
            if isinstance(e, TimeoutError) and deadline.expired():
                content = (f"error: the tool {name!r} did not finish within {self.tool_timeout_s:g}s "
                           "(sampler.tool_timeout_s) and was stopped")
            else:
                content = f"error: {type(e).__name__}: {e}"
        return {"role": "tool", "tool_call_id": call.get("id") if isinstance(call, dict) else None, "content": content}
