"""``python -m rollgen`` / ``rollgen``: the Hydra entry point. DictConfig lives here and nowhere else."""

from __future__ import annotations

import difflib
import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from rollgen.composer import compose, conf_dir
from rollgen.build import preflight, validate_run_config
from rollgen.config import RunConfig
from rollgen.errors import ConfigError
from rollgen.rundir import cannot_create

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
    # Hydra creates the run dir before rollgen runs: make sure it can (leaving nothing), or say so in one line.
    run_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir=")), "outputs")
    if problem := cannot_create(run_dir):
        print(f"rollgen: error: output_dir: cannot write to {run_dir} ({problem})", file=sys.stderr)
        sys.exit(2)


def _run_config(cfg: DictConfig) -> RunConfig:
    data = OmegaConf.to_container(cfg, resolve=True)
    if data.get("resume"):  # type: ignore[union-attr]
        raise ConfigError(["resume: continues one run in place; use it without -m (rollgen resume=RUN_DIR)"])
    return validate_run_config(data)  # type: ignore[arg-type]


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from rollgen.cli_run import execute, write_hydra_files

    try:
        run_cfg = _run_config(cfg)
        preflight(run_cfg)
    except ConfigError as e:
        _fail(e.lines)
    execute(run_cfg, on_start=lambda root: write_hydra_files(root, cfg))
    from rollgen.metrics import run_metrics

    value = run_metrics(run_cfg.output_dir).get(run_cfg.objective)
    return float("nan") if value is None else value  # a sweeper (Optuna) records NaN as a failed trial, not a crash


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
    from rollgen.cli_run import install_signals, resume, resume_target

    install_signals()
    if resume_target(sys.argv[1:]) and not any(a in _HYDRA_MODES or a.split("=", 1)[0] in _HYDRA_MODES
                                               for a in sys.argv[1:]):
        resume(sys.argv[1:])
    _early_check(sys.argv[1:])
    try:
        _hydra_main()
    except SystemExit as e:
        if e.code not in (0, None):
            from rollgen.cli_run import discard_sweep_stubs

            discard_sweep_stubs()
        raise
    except KeyboardInterrupt:
        print("rollgen: interrupted; every rollout written so far is complete in rollouts.jsonl", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
