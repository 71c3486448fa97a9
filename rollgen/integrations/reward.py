"""The reward for online RL: rollgen's verifier behind its guards, called the way a trainer calls a reward.

Training rewards equal curation rewards because this is the same code: the run's ``verifier`` and ``guards``
sections (``run_config.json``) are built into the same ``Guarded`` verifier the engine used, and each
completion is scored on a ``Task``/``Rollout`` pair by the rollout unit's verify step (``rollgen.unit.score``),
as in collection: a verifier that raises gives no reward (``verifier_error``), a rollgen bug raises.

``AsyncRewardScorer`` is the scorer, async (an aiohttp reward server awaits it in its own loop); it is a
component started on a ``Runtime`` (``async with AsyncRewardScorer.from_run(run_dir) as scorer:`` makes one).
``RewardScorer`` is the synchronous shim trainers call (TRL, VeRL, OpenRLHF call a plain function): it runs
an ``AsyncRewardScorer`` on its own event loop in a daemon thread, callable from any thread.

``reward_config.json`` (written beside each export) holds ``verifier`` and ``guards`` as the run had them;
``RewardScorer.from_file`` rebuilds the scorer from it on a training node that has rollgen installed.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from rollgen.build import build_verifier, component_params
from rollgen.config import Component, GuardsConfig
from rollgen.errors import UserError
from rollgen.integrations import RunReward
from rollgen.records import Rollout, Task
from rollgen.runtime import Runtime, close_component, start_component
from rollgen.unit import score

__all__ = ["CONFIG_NAME", "AsyncRewardScorer", "RewardScorer", "completion_text", "prompt_text", "verifier_label",
           "write_reward_config"]

Item = tuple[str, Any, Any, str | None]  # (completion, ground_truth, prompt, finish_reason)
Scored = tuple[float | None, dict[str, Any]]  # (reward, details); reward None: could not verify

CONFIG_NAME = "reward_config.json"


def prompt_text(prompt: Any) -> str:
    """The text of a prompt the guards compare a completion with: system and user contents, one per line."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    parts = []
    for m in prompt:
        if isinstance(m, dict) and m.get("role") in ("user", "system") and isinstance(m.get("content"), str):
            parts.append(m["content"])
    return "\n".join(parts)


def completion_text(completion: Any) -> str:
    """A completion as text: a string as is, a message list as its last assistant turn's content."""
    if isinstance(completion, str):
        return completion
    for m in reversed(list(completion or [])):
        if isinstance(m, dict) and m.get("role") == "assistant":
            content = m.get("content")
            return content if isinstance(content, str) else ""
    return ""


def verifier_label(reward_config: dict[str, Any]) -> str:
    """A logical name for the reward (``rollgen/math``), for VeRL's ``data_source`` and OpenRLHF's ``datasource``."""
    name = str(reward_config["verifier"].get("_target_", "")).rsplit(".", 1)[-1]
    return "rollgen/" + (name.removesuffix("Verifier").lower() or "custom")


def _run_config_sections(run_dir: Path) -> dict[str, Any]:
    saved = json.loads((run_dir / "run_config.json").read_text(encoding="utf-8"))
    return {"verifier": saved["verifier"], "guards": saved.get("guards", {})}


def write_reward_config(out_dir: Path, dataset_dir: Path, reward: RunReward | None = None) -> dict[str, Any]:
    """Write ``reward_config.json``: the verifier and guards of the run that made ``dataset_dir``.

    ``reward`` is that run's (the export stage hands it over); without it they are read from the
    ``run_config.json`` beside the dataset. A dataset with neither has no known reward: ``UserError``.
    """
    from rollgen.version import __version__

    run_dir = dataset_dir.resolve().parent
    if reward is not None:
        sections, source = {"verifier": reward.verifier, "guards": reward.guards}, reward.source
    elif (run_dir / "run_config.json").is_file():
        sections, source = _run_config_sections(run_dir), str(run_dir / "run_config.json")
    else:
        raise UserError(f"{dataset_dir}: the reward is unknown (no run_config.json beside the dataset names the run's "
                        "verifier and guards); export it from its run dir (`rollgen curate RUN_DIR integration=...`)")
    body = {"rollgen_version": __version__, "source": source, **sections}
    (out_dir / CONFIG_NAME).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return body


def _compose_default(server: str, overrides: Sequence[str]) -> Any:
    from rollgen.composer import compose

    return compose([f"server={server}", *overrides], output_dir=os.devnull)


class _Spec:
    """A verifier and its guards, checked; the constructors every scorer shares."""

    def __init__(self, verifier: Component | dict[str, Any], guards: GuardsConfig | dict[str, Any]):
        comp = verifier if isinstance(verifier, Component) else Component.model_validate(verifier)
        self._guards = guards if isinstance(guards, GuardsConfig) else GuardsConfig.model_validate(guards)
        component_params(comp)  # validate the verifier's own Params now, not on the first reward
        self.spec = {"verifier": comp.model_dump(mode="json", by_alias=True),
                     "guards": self._guards.model_dump(mode="json")}
        self._component = comp

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Any:
        """From a ``reward_config.json`` written by an export."""
        body = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(body["verifier"], body.get("guards", {}))

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str]) -> Any:
        """The verifier and guards a finished run curated with."""
        sections = _run_config_sections(Path(run_dir))
        return cls(sections["verifier"], sections["guards"])

    @classmethod
    def from_server(cls, server: str, overrides: Sequence[str] = ()) -> Any:
        """rollgen's config for ``server=<server>`` plus Hydra ``overrides`` (e.g. ``verifier=numeric``)."""
        cfg = _compose_default(server, overrides)
        return cls(cfg.verifier, cfg.guards)


class AsyncRewardScorer(_Spec):
    """Scores completions against ground truth with a verifier behind guards, in the running event loop.

    Start it on a runtime (``await runtime.attach(scorer)``), or use it as ``async with scorer:`` (a runtime
    of its own for that block).
    """

    def __init__(self, verifier: Component | dict[str, Any], guards: GuardsConfig | dict[str, Any]):
        super().__init__(verifier, guards)
        self._verifier: Any = None
        self._own: Runtime | None = None

    async def start(self, runtime: Runtime) -> None:
        verifier = build_verifier(self._component, self._guards)
        await start_component(verifier, runtime)
        self._verifier = verifier

    async def close(self) -> None:
        verifier, self._verifier = self._verifier, None
        if verifier is not None:
            await close_component(verifier)

    async def __aenter__(self) -> Self:
        self._own = await Runtime().open()
        await self._own.attach(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        own, self._own = self._own, None
        if own is not None:
            await own.close()

    async def score(self, completion: str, ground_truth: Any, prompt: Any = None,
                    finish_reason: str | None = "stop") -> Scored:
        """One completion: ``(reward, details)``; reward None when the verifier could not verify (details
        then hold ``verifier_error``)."""
        text = prompt_text(prompt)
        task = Task(id="reward", messages=[{"role": "user", "content": text}], answer=ground_truth)
        rollout = Rollout(id="reward#0", task_id=task.id, repeat=0,
                          messages=[*task.chat(), {"role": "assistant", "content": completion}],
                          completion=completion, status="ok", finish_reason=finish_reason)
        await self.score_rollout(task, rollout)
        if rollout.status == "verifier_error":
            return None, {"verifier_error": rollout.error}
        return rollout.reward, {**rollout.reward_details, "verifier": rollout.verifier}

    async def score_many(self, items: Sequence[Item]) -> list[Scored]:
        """Score ``(completion, ground_truth, prompt, finish_reason)`` items concurrently, in order."""
        return list(await asyncio.gather(*(self.score(*item) for item in items)))

    async def score_rollout(self, task: Task, rollout: Rollout) -> Rollout:
        """The rollout unit's verify step on a whole ``rollout`` of ``task`` (a served environment's): sets its
        ``reward``, ``reward_details``, ``verifier``, or status ``verifier_error``. Returns ``rollout``."""
        if self._verifier is None:
            raise RuntimeError("AsyncRewardScorer is not started: `async with scorer:` or "
                               "`await runtime.attach(scorer)`")
        return await score(self._verifier, task, rollout)


class RewardScorer(_Spec):
    """The synchronous shim: an ``AsyncRewardScorer`` on an event loop of its own, in a daemon thread."""

    def __init__(self, verifier: Component | dict[str, Any], guards: GuardsConfig | dict[str, Any]):
        super().__init__(verifier, guards)
        self._scorer: AsyncRewardScorer | None = None
        self._runtime: Runtime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def score(self, completion: str, ground_truth: Any, prompt: Any = None,
              finish_reason: str | None = "stop") -> Scored:
        """One completion: ``(reward, details)``; reward None when the verifier could not verify."""
        return self.score_many([(completion, ground_truth, prompt, finish_reason)])[0]

    def score_many(self, items: Sequence[Item]) -> list[Scored]:
        """Score ``(completion, ground_truth, prompt, finish_reason)`` items concurrently, in order."""
        if not items:
            return []
        return asyncio.run_coroutine_threadsafe(self._score_many(items), self._ensure_loop()).result()

    async def _score_many(self, items: Sequence[Item]) -> list[Scored]:
        if self._scorer is None:  # in the loop thread: the runtime and the verifier live in this loop
            self._runtime = await Runtime().open()
            self._scorer = await self._runtime.attach(AsyncRewardScorer(self.spec["verifier"], self.spec["guards"]))
        return await self._scorer.score_many(items)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="rollgen-reward", daemon=True).start()
                self._loop = loop
                atexit.register(self.close)
            return self._loop

    def close(self) -> None:
        """Stop the verifier's workers and the loop thread (also run at interpreter exit)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        runtime, self._runtime, self._scorer = self._runtime, None, None
        if runtime is not None:
            asyncio.run_coroutine_threadsafe(runtime.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)

    # Trainers may pickle reward functions (process pools, Ray): ship the spec, rebuild on first use.
    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"]["verifier"], state["spec"]["guards"])  # type: ignore[misc]
