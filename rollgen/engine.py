"""The recipe: one run, stage by stage, top to bottom."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from rollgen import __version__, formats, quality
from rollgen.collect import CollectStats, EndpointDown, collect
from rollgen.config import RunConfig
from rollgen.metrics import pass_curves, repeat_groups
from rollgen.records import Task, rollout_id
from rollgen.report import rollout_stats, write_report
from rollgen.resume import Prior, cache_root, collection_lock, find_prior, register, restore
from rollgen.rundir import JsonlWriter, RunDir, read_jsonl, write_json, write_jsonl

__all__ = ["UserError", "collection_hash", "run"]

log = logging.getLogger("rollgen")


class UserError(Exception):
    """A mistake in the user's input (not a rollgen bug): printed as one line, no traceback."""


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


def _work(rd: RunDir, repeats: int, done: set[str]) -> Iterator[tuple[Task, int]]:
    with open(rd.tasks, encoding="utf-8") as f:
        for line in f:
            task = Task.model_validate_json(line)
            for r in range(repeats):
                if rollout_id(task.id, r) not in done:
                    yield task, r


async def _collect(cfg: RunConfig, rd: RunDir, server: Any, verifier: Any, policy: Any, n_tasks: int,
                   config_hash: str, prior: Prior) -> dict[str, Any]:
    """Collect with graceful stop: the first SIGINT/SIGTERM cancels cleanly, a second exits at once."""
    writer = JsonlWriter(rd.rollouts)
    stats = CollectStats()
    outcome: dict[str, Any] = {"status": "complete", "model": None}
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals = [signal.SIGINT, signal.SIGTERM]

    def on_signal(signame: str) -> None:
        if outcome["status"] == "interrupted":  # second signal: flush what we have and leave now
            writer.close()
            os._exit(130)
        outcome["status"] = "interrupted"
        log.warning("%s: stopping; in-flight requests are cancelled, written rollouts kept (again to exit now)",
                    signame)
        assert main is not None
        main.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        if prior.rescore and prior.reused:
            log.info("re-verifying %d reused rollouts: this run's verifier config differs from %s",
                     prior.reused, prior.source)
            await _rescore_reused(rd, verifier)
        async with policy.serve() as endpoint:
            outcome["model"] = endpoint.model
            await collect(
                _work(rd, cfg.sampler.num_repeats, prior.done), server=server, verifier=verifier,
                endpoint=endpoint, sampler=cfg.sampler, writer=writer, config_hash=config_hash,
                total=n_tasks * cfg.sampler.num_repeats - len(prior.done), progress=cfg.progress, stats=stats)
    except asyncio.CancelledError:
        if outcome["status"] != "interrupted":
            raise
        main.uncancel()  # type: ignore[union-attr]
    except EndpointDown as e:
        outcome.update(status="aborted", reason=str(e))
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await verifier.close()
        await asyncio.to_thread(writer.close)
    outcome.update(first_rollout_s=stats.first_rollout_s, peak_in_flight=stats.peak_in_flight,
                   concurrency={"max": cfg.sampler.num_samples_in_parallel, "lowest": stats.lowest_limit,
                                "throttled_responses": stats.throttled})
    return outcome


def _materialize_tasks(cfg: RunConfig, rd: RunDir, server: Any) -> int:
    """Write the tasks to the run dir (resume reads them back); a bad task file stops here, before any request."""
    from rollgen.servers import TaskSourceError

    server.on_bad_row = cfg.on_bad_row
    try:
        n = write_jsonl(rd.tasks, islice(server.tasks(), cfg.limit))
    except TaskSourceError as e:
        raise UserError(str(e)) from None
    if n == 0:
        raise UserError("no tasks to collect" + (f" ({len(server.bad_rows)} bad rows skipped)" if server.bad_rows else
                                                 ": the task source is empty"))
    if server.bad_rows:
        log.warning("skipped %d bad task rows (on_bad_row=skip); first: %s", len(server.bad_rows), server.bad_rows[0])
    return n


def _start(cfg: RunConfig, rd: RunDir, cache: Path, config_hash: str) -> Prior:
    """What this run starts from: its own rollouts (resume), an earlier run's of the same hash, or nothing."""
    aside = rd.root / "rollouts.torn.jsonl"
    if rd.rollouts.is_file():
        return restore(rd.rollouts, rd.rollouts, aside)
    if cfg.reuse_rollouts and (source := find_prior(cache, config_hash, rd.root)) is not None:
        prior = restore(source / "rollouts.jsonl", rd.rollouts, aside)
        theirs = json.loads((source / "run_config.json").read_text(encoding="utf-8"))
        ours = cfg.model_dump(mode="json", by_alias=True)
        prior.rescore = any(theirs.get(k) != ours.get(k) for k in ("verifier", "guards"))
        return prior
    return Prior()


async def _rescore_reused(rd: RunDir, verifier: Any) -> None:
    """Reused rollouts were scored by another verifier config: score them again with this run's (no model calls)."""
    from rollgen.verifiers.reverify import load_tasks, rescore

    tmp = rd.rollouts.with_suffix(".rescore")
    with open(tmp, "w", encoding="utf-8") as out:
        async for _, new in rescore(read_jsonl(rd.rollouts), load_tasks(rd.root), verifier):
            out.write(new.model_dump_json() + "\n")
    os.replace(tmp, rd.rollouts)


def run(cfg: RunConfig) -> dict[str, Any]:
    """Collect → verify → curate → format → export → report. Returns the report."""
    t0 = time.perf_counter()
    rd = RunDir(cfg.output_dir)
    try:
        rd.mkdir()
        write_json(rd.config, {"rollgen_version": __version__, **cfg.model_dump(mode="json", by_alias=True)})
    except OSError as e:
        raise UserError(f"output_dir: cannot write to {rd.root} ({e.strerror or e})") from None
    server, verifier, policy = cfg.server.build(), cfg.verifier.build(), cfg.policy.build()

    n_tasks = _materialize_tasks(cfg, rd, server)
    config_hash = collection_hash(cfg, server, policy)
    cache = cache_root(cfg.cache_dir)
    with collection_lock(cache, config_hash):
        prior = _start(cfg, rd, cache, config_hash)
        register(cache, config_hash, rd.root)
        if prior.reused:
            log.info("reusing %d rollouts from %s (%d failed ones retried, %d torn lines set aside)",
                     prior.reused, prior.source, prior.retried, prior.torn)
        log.info("%d tasks x %d repeats -> %s", n_tasks, cfg.sampler.num_repeats, rd.rollouts)
        t_collect = time.perf_counter()
        live = asyncio.run(_collect(cfg, rd, server, verifier, policy, n_tasks, config_hash, prior))
        collect_s = time.perf_counter() - t_collect

    stats = rollout_stats(rd.rollouts)
    report: dict[str, Any] = {
        "status": live["status"],
        "rollgen_version": __version__,
        "config_hash": config_hash,
        "model": live["model"],
        "format": cfg.format.kind,
        "collection": stats,
        "resume": {"source": prior.source, "reused": prior.reused, "retried": prior.retried, "torn": prior.torn,
                   "rescored": prior.reused if prior.rescore else 0},
        "bad_rows": server.bad_rows,
        "funnel": [],
        "kept": {"rollouts": stats["rollouts"], "curated": 0, "dataset_rows": 0},
        "dataset": {},
        "first_rollout_s": round(live["first_rollout_s"], 3) if live["first_rollout_s"] is not None else None,
        "peak_in_flight": live["peak_in_flight"],
        "concurrency": live["concurrency"],
        "collect_time_s": round(collect_s, 3),
        "rollouts_per_s": round((stats["rollouts"] - prior.reused) / collect_s, 2) if collect_s > 0 else None,
    }
    if live["status"] == "complete":
        down = _downstream(cfg, rd)
        report["kept"].update(down.pop("kept"))
        report.update(down)
        report["pass_at_k"] = pass_curves(repeat_groups(rd.rollouts))
        if cfg.quality.plots:
            from rollgen.plots import write_pass_curves

            report["plots"] = [*report.get("plots", []), *write_pass_curves(report["pass_at_k"], rd.root / "plots")]
    else:
        report["reason"] = live.get("reason", "stopped by a signal; re-run the same command to continue")
    report["wall_time_s"] = round(time.perf_counter() - t0, 3)
    write_report(rd, report)
    return report


def _downstream(cfg: RunConfig, rd: RunDir) -> dict[str, Any]:
    """Quality → format → integration on the collected rollouts (no model calls)."""
    curation = quality.curate(cfg.quality, rd.rollouts, rd.curated, rd.rejected, tasks=rd.tasks,
                              plots_dir=rd.root / "plots")
    log.info("%s", quality.format_funnel(curation.funnel, curation.total, str(rd.rejected)))
    built = formats.build_dataset(cfg.format, rd.curated, rd.dataset, cfg.seed)
    dataset = built["splits"]
    exported = {name: comp.build().export(rd.dataset, rd.export / name, cfg.format.kind)  # export/<name>/ each
                for name, comp in cfg.integration.items()}
    return {"funnel": curation.funnel, "quality": curation.metrics, "plots": curation.plots,
            "contamination": curation.contamination, "dataset": dataset, "dataset_details": built, "export": exported,
            "kept": {"curated": curation.curated, "dataset_rows": sum(dataset.values())}}
