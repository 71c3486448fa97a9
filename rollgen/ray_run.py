"""Run a run's shards as Ray tasks, then merge them: ``rollgen ray-run --shards N [overrides]``.

Each shard (``shard.index=i shard.count=N``) is one ``ray.remote`` task that calls ``rollgen.run`` with the
run's overrides, writing ``<out>/shard-<i>/``; the driver waits for all of them, then ``rollgen merge`` joins
them into ``<out>/merged/`` (quality, format, export once on the whole). Ray schedules the tasks on whatever
cluster ``ray.init`` reaches (``--address auto`` on a cluster's head node; a local instance otherwise). Each
shard is a whole rollgen run, so everything a run does holds per shard: its run-dir lock, resume (a shard
that failed is re-run by running the same command again: finished shards reuse every rollout they wrote,
given a shared ``cache_dir``), exit codes, ``policy.base_urls``.

Requirements on a cluster: rollgen installed on every node (or a Ray ``runtime_env``), and ``--out`` and
``cache_dir`` on storage every node sees at the same path (docs/scale.md, "Shared storage").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["ShardFailed", "main", "run_on_ray"]


class ShardFailed(Exception):
    """A shard's run did not complete; ``lines`` names each one and why."""

    def __init__(self, lines: list[str], code: int):
        super().__init__("\n".join(lines))
        self.lines, self.code = lines, code


def _run_shard(overrides: list[str], index: int, count: int, out: str) -> dict[str, Any]:
    """One shard, in a Ray worker: ``rollgen.run`` on the overrides plus this shard's index; its outcome."""
    import rollgen
    from rollgen.errors import ConfigError, EndpointError, UserError

    try:
        cfg = rollgen.compose([*overrides, f"shard.index={index}", f"shard.count={count}"], output_dir=out)
        report = rollgen.run(cfg)
    except ConfigError as e:
        return {"index": index, "dir": out, "status": "error", "code": 2, "reason": "; ".join(e.lines)}
    except UserError as e:
        return {"index": index, "dir": out, "status": "error", "code": 2, "reason": str(e)}
    except EndpointError as e:
        return {"index": index, "dir": out, "status": "error", "code": 3, "reason": f"endpoint: {e}"}
    code = {"complete": 0, "aborted": 3, "interrupted": 130}.get(report["status"], 1)
    return {"index": index, "dir": out, "status": report["status"], "code": code, "reason": report.get("reason"),
            "rollouts": report["collection"]["rollouts"]}


def run_on_ray(overrides: list[str], shards: int, out: str | Path, *, cpus_per_shard: float = 1.0,
               address: str | None = None) -> dict[str, Any]:
    """Collect ``shards`` shards of the run ``overrides`` describe as Ray tasks, then merge them into
    ``<out>/merged``; returns the merged report. Starts Ray (``ray.init(address)``) unless it is running.

    Raises ``ConfigError`` for bad overrides (before any task starts), ``ShardFailed`` when a shard did not
    complete (the others' run dirs stay; running it again continues), and ``rollgen merge``'s errors.
    """
    import ray

    import rollgen
    from rollgen.commands.merge import merge

    if shards < 1:
        raise ValueError(f"--shards must be at least 1, not {shards}")
    root = Path(out).absolute()
    rollgen.compose([*overrides, f"shard.count={shards}"], output_dir=str(root / "shard-0"))  # fail fast, here
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=cpus_per_shard, max_retries=0)(_run_shard)
    results = ray.get([task.remote(list(overrides), i, shards, str(root / f"shard-{i}")) for i in range(shards)])
    failed = [r for r in results if r["code"] != 0]
    if failed:
        raise ShardFailed([f"shard {r['index']} ({r['dir']}): {r['status']}: {r['reason']}" for r in failed],
                          max(r["code"] for r in failed))
    return merge([r["dir"] for r in results], root / "merged")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="rollgen ray-run", description=__doc__.split("\n\n")[0].split(": ", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("overrides", nargs="*", help="the run's overrides, as for `python -m rollgen`")
    ap.add_argument("--shards", type=int, required=True, help="shards, one Ray task each")
    ap.add_argument("--out", help="where shard-<i>/ and merged/ go (default: outputs/ray/<date>/<time>)")
    ap.add_argument("--address", help="a Ray cluster to join (auto: the one this node belongs to); default: start one")
    ap.add_argument("--cpus-per-shard", type=float, default=1.0, help="CPUs Ray reserves per shard task")
    args = ap.parse_args(argv)
    try:
        import ray  # noqa: F401
    except ModuleNotFoundError:
        print("rollgen ray-run: Ray is not installed; pip install 'rollgen[ray]'", file=sys.stderr)
        return 2

    from rollgen.commands.merge import say

    if args.shards < 1:
        print(f"rollgen ray-run: --shards must be at least 1, not {args.shards}", file=sys.stderr)
        return 2
    out = Path(args.out or time.strftime("outputs/ray/%Y-%m-%d/%H-%M-%S"))
    try:
        report = run_on_ray(args.overrides, args.shards, out, cpus_per_shard=args.cpus_per_shard,
                            address=args.address)
    except ShardFailed as e:
        for line in e.lines:
            print(f"rollgen ray-run: {line}", file=sys.stderr)
        print(f"rollgen ray-run: run it again with --out {out} to continue (finished shards collect nothing)",
              file=sys.stderr)
        return e.code
    except Exception as e:  # noqa: BLE001 - merge's errors, said as merge says them; anything else is raised again
        if (code := say("rollgen ray-run", e, out / "merged")) is None:
            raise
        return code
    print(f"{args.shards} shards on Ray: {report['collection']['rollouts']} rollouts, "
          f"{report['kept']['dataset_rows']} {report['format']} dataset rows -> {out / 'merged'}")
    return 0
