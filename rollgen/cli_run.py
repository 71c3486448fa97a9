"""The CLI's run path: signals, exit codes, ``resume=``, and the run dir's life as Hydra sees it.

* Signals are handled here and only here: the first SIGINT/SIGTERM stops the run cleanly (during
  collection the engine cancels it; in a later stage the stage is interrupted), the run writes
  ``report.json`` with status ``interrupted`` and rollgen exits 130; a second signal exits at once.
* Exit codes: 0 done; 2 bad input (config, task file, run dir in use); 3 the endpoint is unreachable or
  every rollout failed; 130 interrupted.
* Hydra makes the run dir before rollgen runs. ``hydra.output_subdir`` is null, so Hydra writes nothing
  into it; rollgen writes ``.hydra/`` itself once the run has started. A run that fails before it starts
  removes the directories Hydra made for it (``RunDirWatch`` notes which), so failed runs leave no stub
  ``outputs/<date>/<time>/``; a ``-m`` sweep stopped by an error removes the job dirs of jobs that never
  started, and its ``multirun/<date>/<time>/`` when none did.
* ``resume=<run_dir>`` runs outside Hydra (no new run dir): the saved config plus the other overrides.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rollgen import redact
from rollgen.config import RunConfig
from rollgen.rundir import RunDirBusy, RunDirLock
from rollgen.stop import Interrupted, Stop

__all__ = ["RunDirWatch", "discard_sweep_stubs", "execute", "install_signals", "resume", "resume_target"]

log = logging.getLogger("rollgen")

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's default job_logging format
STOP = Stop()
_made: list[Path] = []  # directories Hydra is about to create for this run, deepest first
_sweep_made: list[Path] = []  # the same for a -m sweep's directory


class RunDirWatch(Callback):
    """Hydra callback: notes which directories of the run dir do not exist yet (Hydra creates them next)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _made[:] = _missing(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _sweep_made[:] = _missing(config, "hydra.sweep.dir")


def _missing(config: DictConfig, key: str) -> list[Path]:
    """The directory at ``key`` and its parents that do not exist yet, deepest first."""
    try:
        path = Path(str(OmegaConf.select(config, key))).absolute()
    except Exception:  # noqa: BLE001 - an interpolation only Hydra's job can resolve: nothing to note
        return []
    return [p for p in (path, *path.parents) if not p.exists()]


def discard_sweep_stubs() -> None:
    """After a -m sweep that stopped on an error: remove the job dirs of jobs that never started (Hydra made
    them; they hold only rollgen.log), and the sweep dir too when no job in it started."""
    if not _sweep_made or not _sweep_made[0].is_dir():
        return
    sweep_dir = _sweep_made[0]
    for job in sweep_dir.iterdir():
        if job.is_dir() and {p.name for p in job.iterdir()} <= {"rollgen.log"}:
            (job / "rollgen.log").unlink(missing_ok=True)
            job.rmdir()
    if {p.name for p in sweep_dir.iterdir()} <= {"multirun.yaml"}:
        (sweep_dir / "multirun.yaml").unlink(missing_ok=True)
        for d in _sweep_made:
            try:
                d.rmdir()
            except OSError:
                break


def install_signals() -> Stop:
    """SIGINT and SIGTERM: the first stops the run cleanly, a second exits at once (130)."""

    def handler(signum: int, frame: Any) -> None:
        if STOP.requested:
            STOP.flush()
            os._exit(130)
        if not STOP.request(signal.Signals(signum).name):
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return STOP


def _say(kind: str, message: str) -> None:
    print(f"rollgen: {kind}{redact.redact(message)}", file=sys.stderr)


def _discard_stub(run_dir: Path) -> None:
    """After a run that never started: remove what Hydra made for it (the dirs, its log file) if no one else uses it."""
    if not _made or _made[0] != run_dir.absolute():
        return
    lock = RunDirLock(run_dir)
    try:
        lock.acquire()
    except (RunDirBusy, OSError):
        return  # another process has the directory: it is theirs
    try:
        for handler in list(logging.getLogger().handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.absolute():
                handler.close()
                Path(handler.baseFilename).unlink(missing_ok=True)
    finally:
        lock.release()
    for d in _made:
        try:
            d.rmdir()
        except OSError:
            break


def execute(cfg: RunConfig, on_start: Any = None) -> dict[str, Any]:
    """Run ``cfg`` with the CLI's exit codes and messages; returns the report of a completed run."""
    from rollgen.engine import EndpointUnreachable, UserError, run

    started: list[Path] = []

    def start(root: Path) -> None:
        started.append(root)
        if on_start is not None:
            on_start(root)

    root = Path(cfg.output_dir)
    try:
        report = run(cfg, stop=STOP, on_start=start)
    except UserError as e:
        _cleanup(started, root)
        _say("error: ", str(e))
        sys.exit(2)
    except EndpointUnreachable as e:
        _cleanup(started, root)
        _say("error: endpoint: ", str(e))
        sys.exit(3)
    except (Interrupted, KeyboardInterrupt):
        _cleanup(started, root)
        _say("", "interrupted before the run started; nothing was written")
        sys.exit(130)
    except BaseException:
        _cleanup(started, root)
        raise
    c = report["collection"]
    log.info("%d rollouts (%s), mean reward %s, %d dataset rows -> %s", c["rollouts"],
             ", ".join(f"{k} {v}" for k, v in c["by_status"].items()), c["mean_reward"],
             report["kept"]["dataset_rows"], cfg.output_dir)
    if report["status"] == "interrupted":
        _say("", f"interrupted: {report['reason']}; {c['rollouts']} rollouts kept in {cfg.output_dir}. "
             f"Re-run the same command (or resume={cfg.output_dir}) to continue.")
        sys.exit(130)
    if report["status"] == "aborted":
        _say("", f"stopped early: {report['reason']}")
        sys.exit(3)
    return report


def _cleanup(started: list[Path], root: Path) -> None:
    if not started:
        _discard_stub(root)


def write_hydra_files(root: Path, task_cfg: DictConfig) -> None:
    """What Hydra writes to ``<run dir>/.hydra/`` (``hydra.output_subdir``), written once the run starts."""
    from hydra.core.hydra_config import HydraConfig

    from rollgen.jsonl import atomic_file

    hydra_cfg = HydraConfig.instance().cfg
    files = {"config.yaml": task_cfg, "hydra.yaml": hydra_cfg,
             "overrides.yaml": hydra_cfg.hydra.overrides.task if hydra_cfg is not None else []}
    for name, node in files.items():
        with atomic_file(root / ".hydra" / name) as f:
            f.write(redact.redact(OmegaConf.to_yaml(node)))


def resume_target(argv: list[str]) -> str | None:
    """The run dir of ``resume=<dir>`` in a plain run's argv (None: not a resume)."""
    found = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("resume=")]
    return found[-1] if found and found[-1] not in ("", "null") else None


def resume(argv: list[str]) -> NoReturn:
    """``rollgen resume=<run_dir> [overrides]``: continue that run in place, outside Hydra (no new run dir)."""
    from rollgen.composer import rerun_config
    from rollgen.errors import ConfigError

    run_dir, config_dir, overrides, i = resume_target(argv), None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            config_dir, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--config-dir="):
            config_dir = arg.split("=", 1)[1]
        elif arg.lstrip("+").startswith(("resume=", "hydra.")):
            pass  # the run dir is the one resumed; Hydra's own settings do not apply
        elif arg.startswith("-"):
            _say("config error: ", f"{arg}: not supported with resume= (a resumed run is a single run)")
            sys.exit(2)
        else:
            overrides.append(arg)
        i += 1
    assert run_dir is not None
    try:
        cfg = rerun_config(run_dir, overrides, config_dir)
    except ConfigError as e:
        for line in e.lines:
            _say("config error: ", line)
        sys.exit(2)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)

    def log_to_file(root: Path) -> None:
        handler = logging.FileHandler(root / "rollgen.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(handler)
        redact.install_log_filter()

    execute(cfg, on_start=log_to_file)
    sys.exit(0)
