"""The recipe: one run, stage by stage, top to bottom."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any

from rollgen import __version__, formats, quality
from rollgen.collect import collect
from rollgen.config import RunConfig
from rollgen.records import Task
from rollgen.report import rollout_stats, write_report
from rollgen.rundir import JsonlWriter, RunDir, write_json, write_jsonl

__all__ = ["collection_hash", "run"]

log = logging.getLogger("rollgen")


def collection_hash(cfg: RunConfig, server: Any, policy: Any) -> str:
    """Hash of what produces the rollouts: tasks, model, sampling. Downstream knobs do not change it."""
    key = {
        "server": server.fingerprint(),
        "policy": policy.fingerprint(),
        "sampling": cfg.sampler.responses_create_params.model_dump(mode="json"),
        "max_turns": cfg.sampler.max_turns,
        "limit": cfg.limit,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _work(rd: RunDir, repeats: int) -> Iterator[tuple[Task, int]]:
    with open(rd.tasks, encoding="utf-8") as f:
        for line in f:
            task = Task.model_validate_json(line)
            for r in range(repeats):
                yield task, r


async def _collect(cfg: RunConfig, rd: RunDir, server: Any, verifier: Any, policy: Any,
                   n_tasks: int, config_hash: str) -> dict[str, Any]:
    writer = JsonlWriter(rd.rollouts)
    try:
        async with policy.serve() as endpoint:
            stats = await collect(
                _work(rd, cfg.sampler.num_repeats), server=server, verifier=verifier, endpoint=endpoint,
                sampler=cfg.sampler, writer=writer, config_hash=config_hash,
                total=n_tasks * cfg.sampler.num_repeats, progress=cfg.progress)
        return {"model": endpoint.model, "first_rollout_s": stats.first_rollout_s,
                "peak_in_flight": stats.peak_in_flight}
    finally:
        await verifier.close()
        await asyncio.to_thread(writer.close)


def run(cfg: RunConfig) -> dict[str, Any]:
    """Collect → verify → curate → format → export → report. Returns the report."""
    t0 = time.perf_counter()
    rd = RunDir(cfg.output_dir).mkdir()
    write_json(rd.config, {"rollgen_version": __version__, **cfg.model_dump(mode="json", by_alias=True)})
    server, verifier, policy = cfg.server.build(), cfg.verifier.build(), cfg.policy.build()

    n_tasks = write_jsonl(rd.tasks, islice(server.tasks(), cfg.limit))
    config_hash = collection_hash(cfg, server, policy)
    log.info("%d tasks x %d repeats -> %s", n_tasks, cfg.sampler.num_repeats, rd.rollouts)
    rd.rollouts.unlink(missing_ok=True)
    t_collect = time.perf_counter()
    live = asyncio.run(_collect(cfg, rd, server, verifier, policy, n_tasks, config_hash))
    collect_s = time.perf_counter() - t_collect

    funnel = quality.curate(cfg.quality, rd.rollouts, rd.curated, rd.rejected)
    dataset = formats.write_dataset(cfg.format, rd.curated, rd.dataset, cfg.seed)
    integration = cfg.integration.build()
    exported = integration.export(rd.dataset, rd.export / cfg.integration.target.rsplit(".", 1)[-1].lower(),
                                  cfg.format.kind)

    stats = rollout_stats(rd.rollouts)
    report = {
        "status": "complete",
        "rollgen_version": __version__,
        "config_hash": config_hash,
        "model": live["model"],
        "format": cfg.format.kind,
        "collection": stats,
        "funnel": funnel,
        "kept": {"rollouts": stats["rollouts"], "curated": funnel[-1]["out"] if funnel else stats["rollouts"],
                 "dataset_rows": sum(dataset.values())},
        "dataset": dataset,
        "export": exported,
        "first_rollout_s": round(live["first_rollout_s"], 3) if live["first_rollout_s"] is not None else None,
        "peak_in_flight": live["peak_in_flight"],
        "collect_time_s": round(collect_s, 3),
        "wall_time_s": round(time.perf_counter() - t0, 3),
        "rollouts_per_s": round(stats["rollouts"] / collect_s, 2) if collect_s > 0 else None,
    }
    write_report(rd, report)
    return report
