"""``python -m rollgen`` / ``rollgen``: the Hydra entry point. DictConfig lives here and nowhere else."""

from __future__ import annotations

import difflib
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rollgen.api import compose, conf_dir, rerun_config
from rollgen.config import ConfigError, RunConfig, preflight, validate_run_config

__all__ = ["main"]

log = logging.getLogger("rollgen")

# Flags after which Hydra does something other than one plain run; the early check is skipped for them.
_HYDRA_MODES = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--multirun", "-m",
                "--shell-completion", "-sc", "--resolve", "--package", "-p", "--version", "--experimental-rerun"}
_HYDRA_VALUE_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"}


def _fail(lines: list[str]) -> None:
    for line in lines:
        print(f"rollgen: config error: {line}", file=sys.stderr)
    sys.exit(2)


def _early_check(argv: list[str]) -> None:
    """Validate a plain run's overrides before Hydra creates a run dir, so errors cost no I/O."""
    overrides, config_dir, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg in _HYDRA_MODES or arg.split("=", 1)[0] in _HYDRA_MODES:
            return
        if arg in _HYDRA_VALUE_FLAGS:
            if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
                config_dir = argv[i + 1]
            elif arg not in ("--config-dir", "-cd"):
                return  # another primary config: let Hydra handle it
            i += 2
            continue
        if arg.startswith("--config-dir="):
            config_dir = arg.split("=", 1)[1]
        elif not arg.startswith("-"):
            overrides.append(arg)
        i += 1
    try:
        cfg = compose(overrides, config_dir=config_dir, output_dir=".")
        if cfg.resume is None:  # a resumed run is checked once its saved config is read
            preflight(cfg)
    except ConfigError as e:
        _fail(e.lines)
    # Hydra creates the run dir before rollgen runs: make sure it can, or say so in one line.
    run_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir=")), "outputs")
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"rollgen: error: output_dir: cannot write to {run_dir} ({e.strerror or e})", file=sys.stderr)
        sys.exit(2)


def _run_config(cfg: DictConfig) -> RunConfig:
    data = OmegaConf.to_container(cfg, resolve=True)
    if resume := data.get("resume"):  # type: ignore[union-attr]
        from hydra.core.hydra_config import HydraConfig

        others = [o for o in HydraConfig.get().overrides.task if not o.lstrip("+").startswith("resume=")]
        return rerun_config(resume, others)
    return validate_run_config(data)  # type: ignore[arg-type]


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from rollgen.engine import UserError, run

    try:
        run_cfg = _run_config(cfg)
        preflight(run_cfg)
    except ConfigError as e:
        _fail(e.lines)
    try:
        report = run(run_cfg)
    except UserError as e:
        print(f"rollgen: error: {e}", file=sys.stderr)
        sys.exit(2)
    c = report["collection"]
    log.info("%d rollouts (%s), mean reward %s, %d dataset rows -> %s", c["rollouts"],
             ", ".join(f"{k} {v}" for k, v in c["by_status"].items()), c["mean_reward"],
             report["kept"]["dataset_rows"], run_cfg.output_dir)
    if report["status"] == "interrupted":
        print(f"rollgen: interrupted; {c['rollouts']} rollouts kept in {run_cfg.output_dir}. "
              f"Re-run the same command (or resume={run_cfg.output_dir}) to continue.", file=sys.stderr)
        sys.exit(130)
    if report["status"] == "aborted":
        print(f"rollgen: stopped early: {report['reason']}", file=sys.stderr)
        sys.exit(3)
    from rollgen.metrics import run_metrics

    return run_metrics(run_cfg.output_dir).get(run_cfg.objective)


def _is_bare_word(arg: str) -> bool:
    """Neither a flag nor a Hydra override (``key=value``, ``+key=value``, ``~key``): meant as a command."""
    return not arg.startswith(("-", "+", "~")) and "=" not in arg


def _subcommand(argv: list[str]) -> int | None:
    """Run ``rollgen <subcommand> ...`` if argv names one; None otherwise."""
    import importlib

    from rollgen.commands import SUBCOMMANDS

    if argv and _is_bare_word(argv[0]) and argv[0] not in SUBCOMMANDS:
        near = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1, cutoff=0.6)
        print(f"rollgen: '{argv[0]}' is not a command" + (f"; did you mean 'rollgen {near[0]}'?" if near else "")
              + f" (commands: {', '.join(SUBCOMMANDS)}; a run takes overrides: key=value or group=option)",
              file=sys.stderr)
        return 2
    if not argv or argv[0] not in SUBCOMMANDS:
        return None
    module_name, _ = SUBCOMMANDS[argv[0]]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        print(f"rollgen: '{argv[0]}' is not available in this version", file=sys.stderr)
        return 2
    return int(module.main(argv[1:]) or 0)


def main() -> None:
    if (code := _subcommand(sys.argv[1:])) is not None:
        sys.exit(code)
    _early_check(sys.argv[1:])
    try:
        _hydra_main()
    except KeyboardInterrupt:
        print("rollgen: interrupted; every rollout written so far is complete in rollouts.jsonl", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
