"""Python API for notebooks and trainers: ``rollgen.compose([...])``, then ``rollgen.run(cfg)`` (or
``await rollgen.arun(cfg)`` inside a running event loop)."""

from __future__ import annotations

from typing import Any

from rollgen.composer import GROUPS, compose, conf_dir, hydra_error_line, rerun_config
from rollgen.config import RunConfig

__all__ = ["GROUPS", "compose", "conf_dir", "hydra_error_line", "rerun_config", "run"]


def run(cfg: RunConfig) -> dict[str, Any]:
    """Run every stage of ``cfg``; returns the report (also written to ``cfg.output_dir``)."""
    from rollgen.engine import run as engine_run

    return engine_run(cfg)
