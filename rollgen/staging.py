"""The two steps around a run's start: its tasks validated into a temp file, then its run dir opened.

``stage_tasks`` reads the task source before anything else happens: a bad row (or, for a verifier that
compares with a gold answer, a task without one) stops the run, or is skipped with ``on_bad_row=skip``,
before any request and before the run dir is touched. ``open_run`` is the start: it creates and locks the
run dir and only then writes to it (``run_config.json``, ``tasks.jsonl``), sets aside rollouts of another
collection, and restores the rollouts it can reuse (``rollgen.resume``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from rollgen.errors import UserError
from rollgen.jsonl import atomic_file, write_json, write_jsonl
from rollgen.records import Task
from rollgen.resume import Prior, find_sources, own_sources, register, restore, set_aside_other_hash
from rollgen.rundir import saved_config
from rollgen.servers import TaskSourceError
from rollgen.shards import in_shard
from rollgen.verifiers import verifier_name

__all__ = ["open_run", "stage_tasks"]

log = logging.getLogger("rollgen")


def _answered(tasks: Iterable[Task], run: Any) -> Iterator[Task]:
    """The tasks, less those without the gold answer the verifier needs (bad rows: an error, or skipped)."""
    if not getattr(run.verifier, "needs_answer", False):
        yield from tasks
        return
    source = getattr(run.server.params, "data_path", None)
    for task in tasks:
        if task.answer is None:
            problem = (f"{source + ': ' if source else ''}task {task.id!r} has no 'answer', and the verifier "
                       f"({verifier_name(run.verifier)}) compares the completion with one")
            if run.cfg.on_bad_row != "skip":
                raise UserError(f"{problem}; add the answers, or leave such tasks out with on_bad_row=skip")
            run.bad_rows.append(problem)
            continue
        yield task


def stage_tasks(run: Any, tmp_dir: Path) -> tuple[Path, int]:
    """Read every task into a new temp file in ``tmp_dir``: ``(path, count)``. The caller removes the file
    unless ``open_run`` took it. Bad rows raise ``UserError``, or, with ``on_bad_row=skip``, go to
    ``run.bad_rows``. Blocking: call it in a thread."""
    cfg, server, bad_rows = run.cfg, run.server, run.bad_rows
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="tasks.", suffix=".jsonl")
    os.close(fd)
    path = Path(name)
    try:
        tasks = server.tasks(bad_rows) if cfg.on_bad_row == "skip" else server.tasks()
        try:
            n = write_jsonl(path, in_shard(islice(_answered(tasks, run), cfg.limit), cfg.shard.index, cfg.shard.count))
        except TaskSourceError as e:
            raise UserError(str(e)) from None
        if n == 0:
            source = getattr(server.params, "data_path", None)
            if cfg.shard.count > 1:
                raise UserError(f"shard.index={cfg.shard.index}: none of the tasks falls in this shard of "
                                f"{cfg.shard.count}; use fewer shards for a task source this small")
            raise UserError(f"{source + ': ' if source else ''}no tasks to collect" + (
                f" ({len(bad_rows)} bad rows skipped; first: {bad_rows[0]})" if bad_rows
                else ": the task file is empty" if source else ": the task source is empty"))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if bad_rows:
        log.warning("skipped %d bad task rows (on_bad_row=skip); first: %s", len(bad_rows), bad_rows[0])
    return path, n


def _move(src: Path, dest: Path) -> None:
    try:
        os.replace(src, dest)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        with open(src, "rb") as f, atomic_file(dest, "wb") as out:  # the cache is on another file system
            shutil.copyfileobj(f, out)
        src.unlink()


def _config_of(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def open_run(run: Any, staged: Path, config_hash: str, n_tasks: int, cache: Path) -> None:
    """Create and lock the run dir, then write the run's files into it and restore what can be reused (from
    runs registered in ``cache``, the cache dir).

    Sets ``run.started`` (the run dir is this run's now) and ``run.prior``. Blocking: call it in a thread.
    """
    cfg, rd = run.cfg, run.rd
    try:
        rd.mkdir()
    except OSError as e:
        raise UserError(f"output_dir: cannot write to {rd.root} ({e.strerror or e})") from None
    run.lock.acquire()
    run.started = True
    if run.on_start is not None:
        run.on_start(rd.root)
    old = _config_of(rd.config)
    ours = cfg.model_dump(mode="json", by_alias=True)
    write_json(rd.config, saved_config(cfg))
    _move(staged, rd.tasks)
    set_aside = set_aside_other_hash(rd.root, config_hash)
    if set_aside:
        log.warning("%s held rollouts of another collection (the sampling, model, endpoint or tasks changed): "
                    "kept as %s; collecting afresh for this config (hash %s)", rd.root, set_aside, config_hash)
    sources = own_sources(rd.root, config_hash)
    if cfg.reuse_rollouts:
        sources += find_sources(cache, config_hash, rd.root)
    repeats = cfg.sampler.num_repeats
    prior = restore(sources, rd.rollouts, rd.root / "rollouts.torn.jsonl", config_hash, repeats,
                    needed=n_tasks * repeats) if sources else Prior()
    prior.set_aside = set_aside

    def scored_otherwise(src: Path) -> bool:
        theirs = old if src.parent.resolve() == rd.root.resolve() else _config_of(src.parent / "run_config.json")
        return theirs is None or any(theirs.get(k) != ours.get(k) for k in ("verifier", "guards"))

    prior.rescore = prior.reused > 0 and any(scored_otherwise(src) for src in prior.used)
    register(cache, config_hash, rd.root)
    if prior.reused or prior.kept_aside:
        log.info("reusing %d rollouts from %s (%d failed ones retried, %d torn lines set aside; %d of other repeat "
                 "indices kept aside in rollouts.%s.jsonl)", prior.reused, prior.source, prior.retried, prior.torn,
                 prior.kept_aside, config_hash)
    log.info("%d tasks x %d repeats -> %s", n_tasks, repeats, rd.rollouts)
    run.prior = prior
