"""Python API for notebooks and trainers: ``rollgen.compose([...])``, then ``rollgen.run(cfg)`` (or
``await rollgen.arun(cfg)`` inside a running event loop)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollgen.composer import GROUPS, compose, conf_dir, hydra_error_line, rerun_config
from rollgen.config import RunConfig
from rollgen.runtime import Runtime

if TYPE_CHECKING:
    from rollgen.stop import Stop

__all__ = ["GROUPS", "Runtime", "arun", "compose", "conf_dir", "hydra_error_line", "rerun_config", "run"]


def run(cfg: RunConfig) -> dict[str, Any]:
    """Run every stage of ``cfg``; returns the report (also written to ``cfg.output_dir``). Inside a running
    event loop (Jupyter, an async trainer) it raises ``RuntimeError``: use ``await rollgen.arun(cfg)``."""
    from rollgen.engine import run as engine_run

    return engine_run(cfg)


async def arun(cfg: RunConfig, *, stop: Stop | None = None,
               on_start: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """``run`` in the running event loop: ``report = await rollgen.arun(cfg)``. Blocking stages run in worker
    threads, so the loop stays free; ``stop`` (a ``rollgen.stop.Stop``) interrupts the run, ``on_start`` is
    called with the run dir once it is created (``rollgen.engine.arun``)."""
    from rollgen.engine import arun as engine_arun

    return await engine_arun(cfg, stop=stop, on_start=on_start)
