"""The reward for online RL: rollgen's verifier behind its guards, called the way a trainer calls a reward.

Training rewards equal curation rewards because this is the same code: the run's ``verifier`` and ``guards``
sections (``run_config.json``) are built into the same ``Guarded`` verifier the engine used, and each
completion is scored with ``rollgen.verifiers.verify`` on a ``Task``/``Rollout`` pair, as in collection.
The verifier is async (math-verify runs in a worker process), so a ``RewardScorer`` owns one event loop
in a daemon thread and trainers call it synchronously from any thread.

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
from typing import Any

from rollgen.build import build_verifier, component_params
from rollgen.config import Component, GuardsConfig
from rollgen.errors import UserError
from rollgen.integrations import RunReward
from rollgen.records import Rollout, Task
from rollgen.verifiers import verify

__all__ = ["CONFIG_NAME", "RewardScorer", "completion_text", "prompt_text", "verifier_label", "write_reward_config"]

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


class RewardScorer:
    """Scores completions against ground truth with a verifier behind guards, synchronously."""

    def __init__(self, verifier: Component | dict[str, Any], guards: GuardsConfig | dict[str, Any]):
        comp = verifier if isinstance(verifier, Component) else Component.model_validate(verifier)
        self._guards = guards if isinstance(guards, GuardsConfig) else GuardsConfig.model_validate(guards)
        component_params(comp)  # validate the verifier's own Params now, not on the first reward
        self.spec = {"verifier": comp.model_dump(mode="json", by_alias=True),
                     "guards": self._guards.model_dump(mode="json")}
        self._component = comp
        self._verifier: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RewardScorer:
        """From a ``reward_config.json`` written by an export."""
        body = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(body["verifier"], body.get("guards", {}))

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str]) -> RewardScorer:
        """The verifier and guards a finished run curated with."""
        sections = _run_config_sections(Path(run_dir))
        return cls(sections["verifier"], sections["guards"])

    @classmethod
    def from_server(cls, server: str, overrides: Sequence[str] = ()) -> RewardScorer:
        """rollgen's config for ``server=<server>`` plus Hydra ``overrides`` (e.g. ``verifier=numeric``)."""
        cfg = _compose_default(server, overrides)
        return cls(cfg.verifier, cfg.guards)

    # ------------------------------------------------------------ scoring

    def score(self, completion: str, ground_truth: Any, prompt: Any = None,
              finish_reason: str | None = "stop") -> tuple[float | None, dict[str, Any]]:
        """One completion: ``(reward, details)``; reward None when the verifier could not verify."""
        return self.score_many([(completion, ground_truth, prompt, finish_reason)])[0]

    def score_many(self, items: Sequence[tuple[str, Any, Any, str | None]]
                   ) -> list[tuple[float | None, dict[str, Any]]]:
        """Score ``(completion, ground_truth, prompt, finish_reason)`` items concurrently, in order."""
        if not items:
            return []
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._score_all(items), loop)
        return future.result()

    async def _score_all(self, items: Sequence[tuple[str, Any, Any, str | None]]
                         ) -> list[tuple[float | None, dict[str, Any]]]:
        if self._verifier is None:
            self._verifier = build_verifier(self._component, self._guards)
        return list(await asyncio.gather(*(self._score_one(i, *item) for i, item in enumerate(items))))

    async def _score_one(self, i: int, completion: str, ground_truth: Any, prompt: Any,
                         finish_reason: str | None) -> tuple[float | None, dict[str, Any]]:
        text = prompt_text(prompt)
        task = Task(id=f"reward-{i}", messages=[{"role": "user", "content": text}], answer=ground_truth)
        rollout = Rollout(id=f"reward-{i}#0", task_id=task.id, repeat=0,
                          messages=[*task.chat(), {"role": "assistant", "content": completion}],
                          completion=completion, status="ok", finish_reason=finish_reason)
        try:
            verdict = await verify(self._verifier, task, rollout)
        except Exception as e:  # a crashed verifier is "could not verify", as in collection (verifier_error)
            return None, {"verifier_error": f"{type(e).__name__}: {e}"}
        return verdict.reward, {**verdict.details, "verifier": verdict.verifier}

    # ------------------------------------------------------------ the loop thread

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
        verifier, self._verifier = self._verifier, None
        if verifier is not None:
            asyncio.run_coroutine_threadsafe(verifier.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)

    # Trainers may pickle reward functions (process pools, Ray): ship the spec, rebuild on first use.
    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"]["verifier"], state["spec"]["guards"])  # type: ignore[misc]
