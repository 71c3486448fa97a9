"""``rollgen merge DIR... [--out DIR] [overrides]``: join the run dirs of one run's shards into one run dir.

    python -m rollgen shard.index=0 shard.count=2 hydra.run.dir=runs/s0 ...   # on one machine
    python -m rollgen shard.index=1 shard.count=2 hydra.run.dir=runs/s1 ...   # on another
    rollgen merge runs/s0 runs/s1 --out runs/all

First it checks that the dirs are the shards of one run: the same config apart from ``shard.index`` (and
where each shard ran: ``output_dir``, ``resume``, ``progress``, ``cache_dir``, ``reuse_rollouts``, the
endpoint URLs), the same ``shard.count``, and every index exactly once. Then, in one streaming pass, that
each shard is complete: its collection ended (report status ``complete``), each of its tasks hashes to its
index, and every (task, repeat) has exactly one rollout. Anything missing or duplicated is listed and
nothing is written. Only then does it write OUT's ``tasks.jsonl`` and ``rollouts.jsonl`` (shard 0's, then
shard 1's, ...) and run quality, format, export and the report once on the whole, as ``rollgen curate``
does: exact and near dedup, decontamination and the train/test split see every shard's rollouts, not one
shard's. The overrides apply to those stages (``quality.min_reward_threshold=0.8``, ``format=dpo``).

Exit status: 0 merged; 1 the shards are incomplete (a shard missing, given twice, interrupted, or rollouts
missing or duplicated: each named); 2 bad arguments, a dir that is not a run dir, shards of different runs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MergeError", "ShardProblem", "main", "merge", "say"]

# Keys that may differ between the shards of one run: where and how each ran, not what it collected.
PER_MACHINE = ("shard.index", "output_dir", "resume", "progress", "cache_dir", "reuse_rollouts", "rollgen_version",
               "policy.base_url", "policy.base_urls")
SHOWN = 5  # problems of one kind listed before "and N more"
# The start of a rollout line as rollgen writes it (pydantic's field order): read without parsing the rest.
_HEAD = re.compile(rb'\{"id":"(?:[^"\\]|\\.)*","task_id":"((?:[^"\\]|\\.)*)","repeat":(\d+),')


class MergeError(Exception):
    """The dirs are not the shards of one run (exit 2)."""


class ShardProblem(Exception):
    """The shards are incomplete: ``lines`` names each problem (exit 1)."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class _Shard:
    root: Path
    config: dict[str, Any]
    report: dict[str, Any]
    index: int = 0
    tasks: int = 0
    rollouts: int = 0
    problems: list[str] = field(default_factory=list)


def _load(root: Path) -> _Shard:
    try:
        config = json.loads((root / "run_config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(f"{root}: not a rollgen run directory (no run_config.json)") from None
    except (OSError, ValueError) as e:
        raise MergeError(f"{root}/run_config.json: cannot read it ({e})") from None
    try:
        report = json.loads((root / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = {}
    shard = config.get("shard") or {"index": 0, "count": 1}
    return _Shard(root, config, report, index=int(shard["index"]))


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _same_run(shards: list[_Shard]) -> int:
    """Check the shards are parts of one run; returns ``shard.count``. Raises ``MergeError``."""
    def comparable(s: _Shard) -> dict[str, Any]:
        return {k: v for k, v in _flat(s.config).items() if not k.startswith(PER_MACHINE)}

    first = comparable(shards[0])
    for s in shards[1:]:
        other = comparable(s)
        diff = sorted(k for k in first.keys() | other.keys() if first.get(k, "<unset>") != other.get(k, "<unset>"))
        if diff:
            k = diff[0]
            more = f" (and {len(diff) - 1} more keys)" if len(diff) > 1 else ""
            raise MergeError(f"{s.root} is not a shard of the same run as {shards[0].root}: {k} is "
                             f"{other.get(k, '<unset>')!r} there, {first.get(k, '<unset>')!r} here{more}")
    return int((shards[0].config.get("shard") or {}).get("count", 1))


def _indices(shards: list[_Shard], count: int) -> list[str]:
    """Every index 0 .. count-1 exactly once: the problems."""
    problems, seen = [], {}
    for s in shards:
        if s.index in seen:
            problems.append(f"shard.index={s.index} given twice: {seen[s.index]} and {s.root}")
        else:
            seen[s.index] = s.root
    missing = [i for i in range(count) if i not in seen]
    if missing:
        problems.append(f"shard{'s' * (len(missing) > 1)} missing: no run dir with shard.index="
                        + ", ".join(map(str, missing[:SHOWN * 4])) + (" ..." if len(missing) > SHOWN * 4 else "")
                        + f" (of shard.count={count})")
    return problems


def _listed(kind: str, items: list[str], total: int) -> str:
    return f"{total} {kind}: " + ", ".join(items[:SHOWN]) + (f" and {total - SHOWN} more" if total > SHOWN else "")


def _task_ids(s: _Shard, count: int, out: Any) -> set[str]:
    """Copy the shard's tasks.jsonl to ``out``; its task ids. Tasks of another shard or given twice are problems."""
    from rollgen.jsonl import lines, parse
    from rollgen.shards import shard_of

    path = s.root / "tasks.jsonl"
    if not path.is_file():
        s.problems.append(f"{s.root}: no tasks.jsonl (the shard never started)")
        return set()
    ids: set[str] = set()
    twice: list[str] = []
    foreign: list[str] = []
    for line in lines(path):
        task_id = str(parse(path, line)["id"])
        if task_id in ids:
            twice.append(task_id)
        elif shard_of(task_id, count) != s.index:
            foreign.append(task_id)
        ids.add(task_id)
        out.write(line.raw + b"\n")
    if twice:
        s.problems.append(f"{s.root}: " + _listed("tasks given twice", twice, len(twice)))
    if foreign:
        s.problems.append(f"{s.root}: " + _listed(f"tasks of another shard than {s.index}", foreign, len(foreign)))
    s.tasks = len(ids)
    return ids


def _rollouts(s: _Shard, ids: set[str], repeats: int, out: Any) -> None:
    """Copy the shard's rollouts.jsonl to ``out``, checking each (task, repeat) is there exactly once."""
    from rollgen.jsonl import lines, parse

    path = s.root / "rollouts.jsonl"
    seen: set[tuple[str, int]] = set()
    twice: list[str] = []
    stray: list[str] = []
    if path.is_file():
        for line in lines(path):
            m = _HEAD.match(line.raw)
            if m is not None:
                raw_id = m.group(1)
                task_id = json.loads(b'"' + raw_id + b'"') if b"\\" in raw_id else raw_id.decode("utf-8")
                key = (task_id, int(m.group(2)))
            else:  # another writer's field order
                row = parse(path, line)
                key = (str(row["task_id"]), int(row["repeat"]))
            if key in seen:
                twice.append(f"{key[0]}#{key[1]}")
                continue
            if key[0] not in ids or key[1] >= repeats:
                stray.append(f"{key[0]}#{key[1]}")
                continue
            seen.add(key)
            out.write(line.raw + b"\n")
    s.rollouts = len(seen)
    need = len(ids) * repeats
    if len(seen) < need:
        missing = [f"{t}#{r}" for t in sorted(ids) for r in range(repeats) if (t, r) not in seen][:SHOWN]
        s.problems.append(f"{s.root}: " + _listed("rollouts missing (task#repeat)", missing, need - len(seen)))
    if twice:
        s.problems.append(f"{s.root}: " + _listed("rollouts given twice (task#repeat)", twice, len(twice)))
    if stray:
        s.problems.append(f"{s.root}: " + _listed("rollouts of tasks or repeats not in this shard", stray, len(stray)))
    status = s.report.get("status")
    if status != "complete":
        why = f": {s.report['reason']}" if s.report.get("reason") else ""
        s.problems.append(f"{s.root}: collection {status or 'never finished (no report.json)'}{why}; "
                          "re-run that shard's command to complete it")


def _collection(shards: list[_Shard]) -> Any:
    """The merged run's collection: the shards' requests summed, their slowest collection time."""
    from rollgen.results import Calls, Collection, RolloutStats

    calls = [s.report.get("calls") or {} for s in shards]
    times = [s.report.get("collect_time_s") for s in shards if s.report.get("collect_time_s")]
    rollouts = sum(s.rollouts for s in shards)
    placeholder = RolloutStats(tasks=0, rollouts=0, by_status={}, mean_reward=None, pass_rate=None,
                               task_pass_rate=None, tokens={})  # the rollouts' own counts replace it
    collect_s = max(times) if times else None
    return Collection(
        status="complete", stats=placeholder, model=shards[0].report.get("model"),
        calls=Calls(model_calls=sum(c.get("model_calls", 0) for c in calls), retries=sum(c.get("retries", 0) for c in calls),
                    reused_rollouts=sum(c.get("reused_rollouts", 0) for c in calls)),
        bad_rows=[row for s in shards for row in s.report.get("bad_rows") or []],
        collect_time_s=collect_s, rollouts_per_s=round(rollouts / collect_s, 2) if collect_s else None,
        present=frozenset({"calls", "bad_rows", "collect_time_s", "rollouts_per_s"}))


def merge(dirs: list[str | Path], out: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Merge the shard run dirs ``dirs`` into ``out`` and run quality → format → export → report on it.

    Returns the report. Raises ``MergeError`` (not shards of one run), ``ShardProblem`` (incomplete: nothing
    written), ``ConfigError`` (a bad override), ``UserError`` (``out`` busy or unwritable).
    """
    from rollgen.commands.curate import recurate
    from rollgen.errors import UserError
    from rollgen.jsonl import atomic_file, write_json
    from rollgen.rundir import RunDir, RunDirBusy, RunDirLock

    t0, cpu0 = time.perf_counter(), time.process_time()
    roots = [Path(d) for d in dirs]
    if not roots:
        raise MergeError("no shard run dirs given")
    out_dir = Path(out)
    if any(out_dir.resolve() == r.resolve() for r in roots):
        raise MergeError(f"--out {out_dir} is one of the shards; merge into a new directory")
    shards = [_load(r) for r in roots]
    count = _same_run(shards)
    problems = _indices(shards, count)
    if problems:
        raise ShardProblem(problems)
    shards.sort(key=lambda s: s.index)
    repeats = int(shards[0].config["sampler"]["num_repeats"])
    made = not out_dir.exists()
    try:
        rd = RunDir(out_dir).mkdir()
    except OSError as e:
        raise UserError(f"--out: cannot write to {out_dir} ({e.strerror or e})") from None
    lock = RunDirLock(rd.root)
    try:
        lock.acquire()
    except RunDirBusy as e:
        raise UserError(str(e)) from None
    try:
        with atomic_file(rd.tasks, "wb") as tasks_out, atomic_file(rd.rollouts, "wb") as rollouts_out:
            for s in shards:
                ids = _task_ids(s, count, tasks_out)
                _rollouts(s, ids, repeats, rollouts_out)
            problems = [p for s in shards for p in s.problems]
            if problems:
                raise ShardProblem(problems)  # atomic_file: neither file is written
        config = dict(shards[0].config)
        config.update(shard={"index": 0, "count": 1}, output_dir=str(rd.root))
        write_json(rd.config, config)
        for stale in (rd.report_json, rd.curated, rd.rejected):
            stale.unlink(missing_ok=True)
    except BaseException:
        lock.release()
        if made:  # nothing of it is worth keeping
            shutil.rmtree(rd.root, ignore_errors=True)
        raise
    lock.release()
    merged = {"shard_count": count, "time_s": round(time.perf_counter() - t0, 3),
              "cpu_s": round(time.process_time() - cpu0, 3), "shards": [
        {"dir": str(s.root), "index": s.index, "tasks": s.tasks, "rollouts": s.rollouts,
         "config_hash": s.report.get("config_hash"), "collect_time_s": s.report.get("collect_time_s")}
        for s in shards]}
    return recurate(rd.root, overrides, collection=_collection(shards), extra={"merged": merged})


def say(prog: str, error: Exception, out: Path) -> int | None:
    """Print ``merge``'s ``error`` (one line per problem, each starting ``prog: ``); its exit status, or None for
    an error that is not merge's (a bug: the caller raises it again)."""
    from rollgen.errors import ConfigError, UserError

    if isinstance(error, ShardProblem):
        print(f"{prog}: the shards are incomplete; nothing merged into {out}", file=sys.stderr)
        for line in error.lines:
            print(f"{prog}: {line}", file=sys.stderr)
        return 1
    if isinstance(error, ConfigError):
        for line in error.lines:
            print(f"rollgen: config error: {line}", file=sys.stderr)
        return 2
    if isinstance(error, (MergeError, UserError, FileNotFoundError)):
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    return None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rollgen merge", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("items", nargs="+", metavar="DIR_OR_OVERRIDE",
                    help="the shards' run dirs, then Hydra-style overrides for the stages after collection (key=value)")
    ap.add_argument("--out", help="the merged run dir (default: outputs/merge/<date>/<time>)")
    args = ap.parse_intermixed_args(argv)

    from rollgen.commands.curate import print_outcome

    # key=value is an override, unless it names a directory (a run dir such as outputs/temp=0.7 from a sweep)
    dirs = [i for i in args.items if "=" not in i or Path(i).is_dir()]
    overrides = [i for i in args.items if i not in dirs]
    out = Path(args.out or time.strftime("outputs/merge/%Y-%m-%d/%H-%M-%S"))
    try:
        report = merge(dirs, out, overrides)
    except Exception as e:  # noqa: BLE001 - say() knows merge's errors; anything else is raised again
        if (code := say("rollgen merge", e, out)) is None:
            raise
        return code
    merged = report["merged"]
    print(f"merged {len(merged['shards'])} shards: {sum(s['tasks'] for s in merged['shards'])} tasks, "
          f"{report['collection']['rollouts']} rollouts -> {out / 'rollouts.jsonl'}")
    print_outcome("rollgen merge", report, out)
    return 0
