"""The recipe: one run, stage by stage, top to bottom.

``arun`` is the run, in the caller's event loop; ``run`` is its synchronous shim (``asyncio.run``). Blocking
work (staging the tasks, opening the run dir, quality, format, export, the report) runs in worker threads,
so the loop stays free for the requests in flight; the run's shared resources (the HTTP session, the cache
dir, worker pools) are one ``Runtime``, which the server, the verifier and the policy are started on.

Everything that can fail on the user's input fails before the run dir is touched: the config, the task
source (bad rows, a verifier's missing gold answers), the endpoint (``GET /models``). Only then is the
run dir created and locked (``RunDirLock``: one process at a time) and the run's files written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from rollgen import formats, quality, redact
from rollgen.follow import Follower, FollowerFailed, Job, wanted
from rollgen.build import build, build_verifier
from rollgen.collect import FAILED, CollectStats, EndpointDown, collect
from rollgen.config import RlFormat, RunConfig
from rollgen.errors import UserError
from rollgen.integrations import export_dataset
from rollgen.jsonl import JsonlWriter, aread_jsonl
from rollgen.logs import logging_off_the_loop
from rollgen.policy.client import EndpointUnreachable, check_endpoint
from rollgen.records import Task, rollout_id
from rollgen.report import build_report, write_plots, write_report
from rollgen.results import Calls, Collection, Concurrency, Resume
from rollgen.resume import Prior, collection_lock
from rollgen.rundir import RunDir, RunDirBusy, RunDirLock, cannot_create
from rollgen.runtime import Runtime
from rollgen.scan import scan_rollouts
from rollgen.staging import open_run, stage_tasks
from rollgen.stop import Interrupted, Stop
from rollgen.verifiers.reverify import load_tasks, rescore

__all__ = ["EndpointUnreachable", "Interrupted", "UserError", "arun", "collection_hash", "run"]

log = logging.getLogger("rollgen")
T = TypeVar("T")


def collection_hash(cfg: RunConfig, server: Any, policy: Any) -> str:
    """Hash of what produces the rollouts: tasks, model, sampling. Downstream knobs do not change it."""
    key = {
        "server": server.fingerprint(),
        "policy": policy.fingerprint(),
        "sampling": cfg.sampler.responses_create_params.model_dump(mode="json"),
        "max_turns": cfg.sampler.max_turns,
        "limit": cfg.limit,
    }
    if cfg.shard.count > 1:  # a shard collects other tasks than the whole run: its own rollouts, its own hash
        key["shard"] = [cfg.shard.index, cfg.shard.count]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


async def _work(rd: RunDir, repeats: int, done: set[str]) -> AsyncIterator[tuple[Task, int]]:
    """Every (task, repeat) not done yet; the task file is read in a thread, a batch of lines at a time."""
    async for row in aread_jsonl(rd.tasks):
        task = Task.model_validate(row)
        for r in range(repeats):
            if rollout_id(task.id, r) not in done:
                yield task, r


class _Run:
    """One run's parts and state, shared by the stages."""

    def __init__(self, cfg: RunConfig, stop: Stop, on_start: Callable[[Path], None] | None):
        self.cfg, self.stop, self.on_start = cfg, stop, on_start
        self.rd = RunDir(cfg.output_dir)
        self.lock = RunDirLock(self.rd.root)
        self.server, self.verifier, self.policy = build(cfg.server), build_verifier(cfg.verifier, cfg.guards), build(cfg.policy)
        self.bad_rows: list[str] = []  # task rows skipped (on_bad_row=skip)
        self.started = False
        self.prior = Prior()
        self.stats = CollectStats()
        self.outcome: dict[str, Any] = {"status": "complete", "model": None}
        self.follower: Follower | None = None  # quality's first pass in a child during collection (quality.overlap)

    def start_follower(self, to_collect: int) -> None:
        """Start the follower when ``quality.overlap`` asks for one (blocking: it starts a process)."""
        if not wanted(self.cfg.quality.overlap, to_collect):
            return
        rd = self.rd
        follower = Follower(Job(self.cfg.quality, rd.rollouts, rd.curated, rd.rejected, rd.tasks,
                                formats.pass_threshold(self.cfg.format), plots=self.cfg.quality.plots,
                                tallies=_reads_tallies(self.cfg)))
        try:
            follower.start()
        except OSError as e:
            log.warning("quality will run after collection: could not start its follower process (%s)", e)
            return
        self.follower = follower
        log.info("quality's first pass runs during collection (follower pid %s)", follower.pid)

    def followed(self, step: str) -> Any:
        """The follower's ``step`` ("scan", "curate", "rest" or "plots"), or None when there is none or it failed
        (then the stage runs here, serially, as without one)."""
        follower = self.follower
        if follower is None:
            return None
        try:
            return getattr(follower, step)()
        except FollowerFailed as e:
            log.warning("%s; running the stage after collection instead", e)
            self.close_follower()
            return None

    def close_follower(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.close()


async def _blocking(stop: Stop, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread that ``stop`` can interrupt. Cancelled meanwhile (Ctrl-C under
    ``asyncio.run``), it interrupts the thread as a stop request would and waits for it to end."""
    work = asyncio.ensure_future(asyncio.to_thread(stop.interruptible, fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.request("cancelled")
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return await work


def _claim(run: _Run) -> None:
    """A second process on an existing run dir fails now, before any work; a run dir that cannot be made, too."""
    if run.rd.root.is_dir():
        run.lock.acquire()
    elif problem := cannot_create(run.rd.root):
        raise UserError(f"output_dir: cannot write to {run.rd.root} ({problem})")


async def _collect(run: _Run, runtime: Runtime, staged: Path, n_tasks: int, config_hash: str) -> None:
    """Start the policy, check its endpoint, open the run dir, collect. A cancellation is an interrupt."""
    cfg, rd, stats, outcome = run.cfg, run.rd, run.stats, run.outcome
    main = asyncio.current_task()
    assert main is not None
    run.stop.attach(main)
    try:
        # Another run collecting this hash goes first (then this one reuses its rollouts), before a model starts.
        async with collection_lock(runtime.cache_dir, config_hash), run.policy.serve() as endpoint:
            redact.register(endpoint.api_key)
            outcome["model"] = endpoint.model
            await check_endpoint(runtime.session, endpoint)
            await asyncio.to_thread(open_run, run, staged, config_hash, n_tasks, runtime.cache_dir)
            if run.prior.rescore and run.prior.reused:
                log.info("re-verifying %d reused rollouts: this run's verifier config differs from %s",
                         run.prior.reused, run.prior.source)
                await _rescore_reused(rd, run.verifier, run.server)
            writer = await asyncio.to_thread(JsonlWriter, rd.rollouts)
            run.stop.on_flush(writer.close)
            to_collect = n_tasks * cfg.sampler.num_repeats - len(run.prior.done)
            await asyncio.to_thread(run.start_follower, to_collect)
            try:
                await collect(
                    _work(rd, cfg.sampler.num_repeats, run.prior.done), runtime=runtime, server=run.server,
                    verifier=run.verifier, endpoint=endpoint, sampler=cfg.sampler, writer=writer,
                    config_hash=config_hash, total=n_tasks * cfg.sampler.num_repeats - len(run.prior.done),
                    progress=cfg.progress, stats=stats)
            finally:  # every line on disk before the next run of this hash (waiting on the lock) reads them
                await asyncio.to_thread(writer.close)
    except asyncio.CancelledError:
        if not (run.stop.requested or main.cancelling()):
            raise
        while main.uncancel():
            pass
        outcome["status"] = "interrupted"
        log.warning("stopping: in-flight requests cancelled, every written rollout kept (a second signal exits at once)")
    except EndpointDown as e:
        outcome.update(status="aborted", reason=str(e))
    finally:
        run.stop.detach()


async def _rescore_reused(rd: RunDir, verifier: Any, server: Any) -> None:
    """Reused rollouts were scored by another verifier config: score them again with this run's (no model calls)."""
    tasks = await asyncio.to_thread(load_tasks, rd.root)
    tmp = rd.root / "rollouts.jsonl.rescore"  # a temp file the run dir's cleanup knows
    out = await asyncio.to_thread(JsonlWriter, tmp, "w")
    try:
        async for _, new in rescore(aread_jsonl(rd.rollouts), tasks, verifier, server=server):
            out.write(new.model_dump_json() + "\n")
    finally:
        await asyncio.to_thread(out.close)
    await asyncio.to_thread(os.replace, tmp, rd.rollouts)


async def arun(cfg: RunConfig, *, stop: Stop | None = None,
               on_start: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Collect → verify → curate → format → export → report, in the running event loop. Returns the report.

    ``stop`` lets a caller (the CLI's signal handlers) interrupt the run; ``on_start(run_dir)`` is called (in
    a worker thread) once the run dir is created and locked, before rollgen writes to it. Raises ``UserError``
    for bad input (nothing written), ``EndpointUnreachable`` when the endpoint does not answer, and
    ``Interrupted`` when stopped before the run dir was opened; stopped later (during collection, quality,
    format or export) it returns a report with status ``interrupted`` that says during which stage.
    """
    t0 = time.perf_counter()
    redact.register_config(cfg.model_dump(mode="json", by_alias=True))
    redact.install_log_filter()
    async with logging_off_the_loop():  # a log file is written from a thread, never from the loop
        return await _arun(cfg, stop or Stop(), on_start, t0)


async def _arun(cfg: RunConfig, stop: Stop, on_start: Callable[[Path], None] | None, t0: float) -> dict[str, Any]:
    run_ = _Run(cfg, stop, on_start)
    try:
        await _blocking(run_.stop, _claim, run_)
        async with Runtime.for_run(cfg) as runtime:
            for component in (run_.server, run_.verifier, run_.policy):
                await runtime.attach(component)
            staged, n_tasks = await _blocking(run_.stop, stage_tasks, run_, runtime.cache_dir / "tmp")
            try:
                config_hash = await asyncio.to_thread(collection_hash, cfg, run_.server, run_.policy)
                t_collect = time.perf_counter()
                await _collect(run_, runtime, staged, n_tasks, config_hash)
                collect_s = time.perf_counter() - t_collect
            finally:
                await asyncio.to_thread(staged.unlink, missing_ok=True)
        if not run_.started:
            raise Interrupted("interrupted before the run started; nothing was written")
        try:
            return await _blocking(run_.stop, _finish, run_, config_hash, collect_s, t0)
        finally:
            await asyncio.to_thread(run_.close_follower)  # before the temp files go: it may be writing one
            await asyncio.to_thread(run_.rd.remove_temp_files)
    except KeyboardInterrupt:
        if run_.started:
            raise
        raise Interrupted("interrupted before the run started; nothing was written") from None
    except RunDirBusy as e:
        raise UserError(str(e)) from None
    finally:
        await asyncio.to_thread(run_.close_follower)
        await asyncio.to_thread(run_.lock.release)


def run(cfg: RunConfig, *, stop: Stop | None = None, on_start: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """``arun`` for callers without an event loop: ``asyncio.run(arun(cfg))``.

    Inside a running event loop (Jupyter, an async trainer) it raises ``RuntimeError`` before doing
    anything: there, ``await rollgen.arun(cfg)``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(cfg, stop=stop, on_start=on_start))
    raise RuntimeError("rollgen.run() cannot run inside a running event loop (Jupyter, an async trainer); "
                       "use `await rollgen.arun(cfg)` there")


def _finish(run_: _Run, config_hash: str, collect_s: float, t0: float) -> dict[str, Any]:
    """The stages after a collection that ended: quality → format → export when it completed, then the report."""
    cfg, rd = run_.cfg, run_.rd
    collection = _collection(run_, config_hash, collect_s)
    status = reason = None
    done: dict[str, Any] = {}
    plots: list[str] | None = None
    if collection.status == "complete":
        stage = ["quality"]
        try:
            curation = run_.followed("curate") or quality.curate(cfg.quality, rd.rollouts, rd.curated, rd.rejected,
                                                                  tasks=rd.tasks)
            log.info("%s", quality.format_funnel(curation.funnel, curation.total, str(rd.rejected)))
            stage.append("format")
            if _reads_tallies(cfg):
                _rest_of_scan(run_, collection)
            dataset = formats.make_dataset(cfg, rd, collection, run_.server.tools(), curation=curation)
            stage.append("export")
            exports = export_dataset(cfg, rd, dataset)
            done = {"curation": curation, "dataset": dataset, "exports": exports}
            stage.append("report")
            _rest_of_scan(run_, collection)
            if collection.pass_at_k is None:
                collection.pass_at_k = collection.scan.curves.curves()
            plots = run_.followed("plots") if cfg.quality.plots else None
            run_.close_follower()  # its last answer is in
            if plots is None:
                plots = write_plots(cfg, rd, curation, collection.pass_at_k)
        except KeyboardInterrupt:
            status, reason = "interrupted", f"stopped by a signal during {stage[-1]}, after collection"
    run_.close_follower()
    report = build_report(cfg, collection, **done, status=status, reason=reason, plots=plots,
                          wall_time_s=round(time.perf_counter() - t0, 3))
    for line in report.empty or []:
        log.warning("%s", line)
    return write_report(rd, report)


def _reads_tallies(cfg: RunConfig) -> bool:
    """Whether the format stage reads each task's reward tallies from the scan (RL rows' pass rates)."""
    return isinstance(cfg.format, RlFormat)


def _rest_of_scan(run_: _Run, collection: Collection) -> None:
    """When the follower sent its scan's counts only (``partial``): pass@k (and the per-task tallies it was asked
    for) from it after its curation, else, without a follower left to ask, the whole scan from one pass here."""
    scan = collection.scan
    if not scan.partial or collection.pass_at_k is not None:
        return
    rest = run_.followed("rest")
    if rest is None:
        collection.scan = scan_rollouts(run_.rd.rollouts, pass_threshold=scan.pass_threshold)
        return
    collection.pass_at_k = rest.pass_at_k
    scan.complete(rest)


def _collection(run_: _Run, config_hash: str, collect_s: float) -> Collection:
    """The collect stage's result: the live counters, and one pass over rollouts.jsonl (or the follower's counts of
    it) for the rest."""
    cfg, prior, live, s = run_.cfg, run_.prior, run_.outcome, run_.stats
    scan = run_.followed("scan") or scan_rollouts(run_.rd.rollouts, pass_threshold=formats.pass_threshold(cfg.format))
    stats = scan.stats
    status, reason = live["status"], live.get("reason")
    failed = sum(n for st, n in stats.by_status.items() if st in FAILED or st == "verifier_error")
    if status == "complete" and stats.rollouts and failed == stats.rollouts:
        status = "aborted"
        reason = (f"every rollout failed ({', '.join(f'{k} {v}' for k, v in stats.by_status.items())})"
                  + (f"; last error: {s.last_error}" if s.last_error else ""))
    elif status != "complete" and reason is None:
        reason = "stopped by a signal during collection"
    return Collection(
        status=status, reason=reason, stats=stats, config_hash=config_hash, model=live["model"],
        calls=Calls(model_calls=s.requests, retries=s.retries, reused_rollouts=prior.reused),
        resume=Resume(source=prior.source, reused=prior.reused, retried=prior.retried, torn=prior.torn,
                      rescored=prior.reused if prior.rescore else 0, kept_aside=prior.kept_aside,
                      set_aside=prior.set_aside),
        bad_rows=run_.bad_rows,
        first_rollout_s=round(s.first_rollout_s, 3) if s.first_rollout_s is not None else None,
        peak_in_flight=s.peak_in_flight,
        concurrency=Concurrency(max=cfg.sampler.num_samples_in_parallel, lowest=s.lowest_limit,
                                throttled_responses=s.throttled),
        collect_time_s=round(collect_s, 3), endpoints=s.endpoints,
        rollouts_per_s=round((stats.rollouts - prior.reused) / collect_s, 2) if collect_s > 0 else None,
        scan=scan)
