"""Integrations: hand a dataset to a training framework (files it loads + the command that trains).

An integration is a class with a ``Params`` model and ``export(dataset_dir, out_dir, fmt)``. The export stage
of a run (``export_dataset``) calls ``export_for``, which also hands over the reward the run scored with
(``RunReward``: its verifier and guards); integrations that write a reward function for online RL
(``RewardIntegration``: TRL, VeRL, OpenRLHF) take it from there, the others ignore it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from rollgen.config import Component, RunConfig
from rollgen.results import DatasetSummary, ExportResult, IntegrationExport
from rollgen.rundir import RunDir, saved_config

__all__ = ["Integration", "RewardIntegration", "RunReward", "export", "export_dataset"]


@dataclass(frozen=True)
class RunReward:
    """The reward a run scored with: its ``verifier`` and ``guards`` sections as ``run_config.json`` holds them,
    and ``source``, where they came from (written into ``reward_config.json``)."""

    verifier: dict[str, Any]
    guards: dict[str, Any]
    source: str

    @classmethod
    def of_config(cls, saved: Mapping[str, Any], source: str) -> RunReward:
        """From a run's saved config (``run_config.json``'s content)."""
        return cls(verifier=dict(saved["verifier"]), guards=saved.get("guards", {}), source=source)


class Integration(ABC):
    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: BaseModel):
        self.params = params

    @abstractmethod
    def export(self, dataset_dir: Path, out_dir: Path, fmt: str) -> dict[str, Any]:
        """Write ``out_dir`` from ``dataset_dir`` (rows of format ``fmt``); return what was written (the manifest)."""

    def export_for(self, dataset_dir: Path, out_dir: Path, fmt: str, reward: RunReward) -> dict[str, Any]:
        """What the export stage calls: ``export``, with the run's ``reward`` at hand (unused here)."""
        return self.export(dataset_dir, out_dir, fmt)


class RewardIntegration(Integration):
    """An integration that writes a reward function scoring like the run's verifier: ``export`` takes the reward
    as ``reward=`` (None: the verifier and guards in ``run_config.json`` beside ``dataset_dir``)."""

    @abstractmethod
    def export(self, dataset_dir: Path, out_dir: Path, fmt: str, reward: RunReward | None = None) -> dict[str, Any]:
        """Write ``out_dir`` from ``dataset_dir``; a reward function scores with ``reward``'s verifier and guards."""

    def export_for(self, dataset_dir: Path, out_dir: Path, fmt: str, reward: RunReward) -> dict[str, Any]:
        return self.export(dataset_dir, out_dir, fmt, reward=reward)


def export_dataset(cfg: RunConfig, rd: RunDir, dataset: DatasetSummary) -> ExportResult:
    """The export stage of a run: each of ``cfg.integration`` writes ``rd.export/<name>/`` from ``rd.dataset`` (rows
    of ``dataset.format``), in config order, with the run's own reward. Blocking file work: from a loop, run it in
    a thread."""
    return export(cfg.integration, rd.dataset, rd.export, dataset.format,
                  RunReward.of_config(saved_config(cfg), str(rd.config)))


def export(integrations: Mapping[str, Component], dataset_dir: Path, export_dir: Path, fmt: str,
           reward: RunReward) -> ExportResult:
    """Each integration writes ``export_dir/<name>/`` from ``dataset_dir``, in order; their manifests, typed."""
    from rollgen.build import build

    done = []
    for name, comp in integrations.items():
        manifest = build(comp).export_for(dataset_dir, export_dir / name, fmt, reward)
        files, skipped = manifest.get("files"), manifest.get("skipped")  # a user's integration may leave them out
        done.append(IntegrationExport(name=name, files=dict(files) if isinstance(files, dict) else {},
                                      manifest=manifest, skipped=list(skipped) if isinstance(skipped, list) else []))
    return ExportResult(done)
