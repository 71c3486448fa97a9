"""Verifiers: turn a rollout into a reward in [0, 1] with per-criterion details.

A verifier is a class with a pydantic ``Params`` model and one ``verify(task, rollout)`` method, async or
sync (a sync one runs in a thread, off the event loop). ``verify`` returns a ``Verdict``; a user's verifier
may also return a bare reward (``0.7``) or ``(reward, details)``. Raising means "could not verify": the
rollout gets status ``verifier_error``, never a silent 0.

A verifier that cannot decide (nothing to parse) says so with ``details["decided"] = False`` or
``details["extracted"] = None``; compositions (``rollgen.verifiers.combine.Cascade``) and ``rollgen
validate`` read that through ``undecided``.

Lifecycle: ``await verifier.start(runtime)`` before the first ``verify`` (a ``rollgen.runtime.Runtime`` does it
in ``attach``), ``await verifier.close()`` at the end. A verifier that needs a shared resource (an HTTP session,
worker processes, a limit on sandboxes) takes it from ``self.runtime``; one that wraps or combines others
lists them in ``parts()`` and they are started and closed with it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from rollgen.records import Rollout, Task, Verdict

if TYPE_CHECKING:
    from rollgen.runtime import Runtime

__all__ = ["BadVerdict", "Verifier", "as_verdict", "undecided", "verifier_name", "verify"]


class BadVerdict(ValueError):
    """A verifier returned something that is not a reward in [0, 1]: the rollout becomes ``verifier_error``."""


class Verifier(ABC):
    """One method, ``verify``: async, or sync (then rollgen runs it in a thread, off the event loop)."""

    Params: ClassVar[type[BaseModel]]
    needs_answer: bool = False
    """True when ``verify`` compares with ``task.answer``: a task without one is then a bad row before any
    request (``on_bad_row``), not a run of ``verifier_error`` rollouts."""

    _runtime: Runtime | None = None

    def __init__(self, params: BaseModel):
        self.params = params

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        """Score ``rollout.completion`` against ``task``."""

    def parts(self) -> list[Any]:
        """The verifiers this one wraps or combines: started and closed with it."""
        return []

    @property
    def runtime(self) -> Runtime:
        """The runtime this verifier was started on (its HTTP session, worker pools, limits)."""
        if self._runtime is None:
            raise self.not_started()
        return self._runtime

    def not_started(self) -> RuntimeError:
        """The error for a verifier used before ``start`` (or after ``close``)."""
        return RuntimeError(f"verifier {self.name} is not started: `async with rollgen.Runtime() as rt: "
                            "await rt.attach(verifier)` before verifying (a run does this itself)")

    async def start(self, runtime: Runtime) -> None:
        """Called once before the first ``verify``, in the event loop that verifies; starts the parts too."""
        from rollgen.runtime import start_component

        self._runtime = runtime
        for part in self.parts():
            await start_component(part, runtime)

    async def close(self) -> None:
        """Called once at the end (the runtime's resources are its own to release); closes the parts too."""
        from rollgen.runtime import close_component

        self._runtime = None
        for part in self.parts():
            await close_component(part)


def verifier_name(verifier: Any) -> str:
    return str(getattr(verifier, "name", None) or type(verifier).__name__)


def as_verdict(result: Any, name: str) -> Verdict:
    """A ``Verdict`` from what a verifier returned: a Verdict, a reward, or ``(reward, details)``.

    Anything else, or a reward outside [0, 1] (NaN included), raises: the rollout becomes ``verifier_error``.
    """
    if isinstance(result, Verdict):
        return result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        return Verdict(reward=_reward(result[0], name), details=result[1], verifier=name)
    return Verdict(reward=_reward(result, name), verifier=name)


def _reward(value: Any, name: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)):
        raise BadVerdict(f"verifier {name} returned {type(value).__name__}; return a Verdict, a float or (float, dict)")
    reward = float(value)
    if not 0.0 <= reward <= 1.0:  # also false for NaN
        raise BadVerdict(f"verifier {name} returned reward {reward!r}, outside [0, 1]")
    return reward


async def verify(verifier: Any, task: Task, rollout: Rollout) -> Verdict:
    """Call ``verifier.verify`` whether it is async or sync, never blocking the loop with sync work."""
    fn = verifier.verify
    if _is_async_fn(fn):
        result = await fn(task, rollout)
    else:
        result = await asyncio.to_thread(fn, task, rollout)
        if inspect.isawaitable(result):
            result = await result
    return as_verdict(result, verifier_name(verifier))


def _is_async_fn(fn: Any) -> bool:
    """``inspect.iscoroutinefunction(fn)``, asked once per method (it costs ~7 us a call, on every rollout)."""
    try:
        return _is_async_cached(fn.__func__)
    except (AttributeError, TypeError):  # not a bound method, or one whose function is unhashable
        return inspect.iscoroutinefunction(fn)


@functools.lru_cache(maxsize=256)
def _is_async_cached(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


def undecided(details: dict[str, Any]) -> bool:
    """True when a verdict's details say the verifier could not decide (nothing it could parse)."""
    return details.get("decided") is False or ("extracted" in details and details["extracted"] is None)
