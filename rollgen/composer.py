"""Hydra → ``RunConfig``: compose rollgen's config groups with overrides, re-open a run's saved config, and
turn Hydra's composition errors into one line naming the key."""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from rollgen.build import validate_run_config
from rollgen.config import RunConfig
from rollgen.errors import ConfigError

__all__ = ["GROUPS", "compose", "conf_dir", "hydra_error_line", "rerun_config"]


def conf_dir() -> Path:
    """rollgen's config dir: ``rollgen/conf`` in a wheel, ``conf/`` beside the package in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"rollgen's conf/ directory is missing (looked in {here / 'conf'} and {here.parent / 'conf'})")


def _keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    out = []
    for k, v in node.items():
        out.append(f"{prefix}{k}")
        out += _keys(v, f"{prefix}{k}.")
    return out


def _suggest(key: str, known: list[str]) -> list[str]:
    """The known key closest to ``key``: same parent first, then any key with a similar last part."""
    parent, _, leaf = key.rpartition(".")
    group = parent.split(".")[0]
    for pool in ([k for k in known if k.rpartition(".")[0] == parent], [k for k in known if k.startswith(group)]):
        by_leaf = {k.rpartition(".")[2]: k for k in pool}
        hint = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.75)
        if hint:
            return [by_leaf[hint[0]]]
    return []


def hydra_error_line(exc: BaseException, known_keys: list[str] | None = None) -> str:
    """One line naming the key or option a Hydra composition error is about."""
    from hydra.errors import MissingConfigException, OverrideParseException

    cause = exc.__cause__ or exc
    full_key = getattr(cause, "full_key", None)
    text = str(cause).strip()
    first = text.splitlines()[0] if text else type(cause).__name__
    if full_key and "not in struct" in text:
        hint = _suggest(full_key, known_keys or [])
        return f"{full_key}: unknown key" + (f"; did you mean {hint[0]}?" if hint else "; `--cfg job` lists the keys")
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:  # `group=option` with no such option
        group, _, option = exc.missing_cfg_file.rpartition("/")
        return f"{group}={option}: no such option" + (f"; available: {', '.join(exc.options)}" if exc.options else "")
    if isinstance(exc, OverrideParseException):  # Hydra's grammar: name the key, say what could not be read
        key, eq, _ = exc.override.partition("=")
        key = key.strip().lstrip("+~")
        why = next((ln.strip().split(" expecting ")[0] for ln in str(exc).splitlines()
                    if ln.strip() and not ln.startswith(("Error parsing", "See https"))), "")
        if not eq:
            return f"'{exc.override}': not an override; write key=value or group=option"
        return (f"{key}: cannot parse '{exc.override}' ({why}); quote a value with special characters: "
                f"{key}='\"...\"'")
    if full_key:
        return f"{full_key}: {first}"
    return first


def compose(overrides: list[str] | None = None, config_dir: str | None = None,
            output_dir: str | None = None) -> RunConfig:
    """Compose rollgen's config (plus ``config_dir``'s groups) with Hydra overrides and validate it.

    Raises ``ConfigError`` whose lines name every bad key.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    overrides = list(overrides or [])
    if config_dir:
        overrides.append(f"hydra.searchpath=[file://{Path(config_dir).resolve()}]")
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="rollgen"):
            cfg = hydra_compose(config_name="config", overrides=overrides)
    except Exception as e:  # Hydra's composition errors: bad override, unknown option or key
        line = hydra_error_line(e, _keys_of_default())
        if hint := _plus_hint(line, overrides, config_dir, output_dir):
            line = line.split(";", 1)[0] + hint
        raise ConfigError([line]) from None
    with open_dict(cfg):
        cfg.output_dir = output_dir or time.strftime("outputs/%Y-%m-%d/%H-%M-%S")
    return validate_run_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


def _plus_hint(line: str, overrides: list[str], config_dir: str | None, output_dir: str | None) -> str:
    """For an unknown key that the component accepts but its YAML does not list (a generator's options, a
    verifier's optional field): the hint to add it with ``+``, when the config is valid that way."""
    key = line.split(": unknown key", 1)[0] if ": unknown key" in line else None
    hits = [o for o in overrides if key and (o.split("=", 1)[0] == key or o.startswith(key + "."))]
    if len(hits) != 1 or hits[0].startswith(("+", "~")):
        return ""
    try:
        compose([f"+{o}" if o == hits[0] else o for o in overrides], config_dir, output_dir)
    except ConfigError as e:
        if any(bad.startswith(key) and "unknown key" in bad for bad in e.lines):
            return ""
    return f"; it is a valid key the YAML does not list: add it with a leading +, +{hits[0]}"


def _keys_of_default() -> list[str]:
    try:
        from hydra import compose as hydra_compose
        from hydra import initialize_config_dir

        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="rollgen"):
            return _keys(OmegaConf.to_container(hydra_compose(config_name="config")))
    except Exception:
        return []


def rerun_config(run_dir: str | Path, overrides: list[str] | None = None, config_dir: str | None = None) -> RunConfig:
    """The run's saved config with ``overrides``: a group choice (``verifier=judge``, from rollgen's groups
    or ``config_dir``'s) replaces that section; ``key.path=value`` edits the saved value.

    ``output_dir`` stays the run dir. Raises ``ConfigError`` naming bad keys.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    run_dir = Path(run_dir)
    saved_path = run_dir / "run_config.json"
    if not saved_path.is_file():
        raise ConfigError([f"{run_dir}: not a rollgen run directory (no run_config.json)"])
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    saved.pop("rollgen_version", None)
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides or []))
    except HydraException as e:
        raise ConfigError([hydra_error_line(e)]) from None
    choices = [o.input_line for o in parsed if "." not in o.key_or_group and o.key_or_group in GROUPS]
    fresh = compose(choices, config_dir=config_dir, output_dir=str(run_dir)).model_dump(mode="json", by_alias=True)
    # A choice replaces its section and every section its preset sets (``server=code`` brings the code verifier
    # and guards, ``sampler=sft`` its format and quality): those that differ from a config composed without it.
    plain = compose([], config_dir=config_dir, output_dir=str(run_dir)).model_dump(mode="json", by_alias=True) \
        if choices else fresh
    chosen = {o.key_or_group for o in parsed if o.input_line in choices}
    for key in GROUPS:
        if key in chosen or (key in fresh and fresh[key] != plain.get(key)):
            saved[key] = fresh[key]
    for key in ("guards", "validate"):  # runs from before these sections existed
        saved.setdefault(key, fresh[key])
    cfg = OmegaConf.create(saved)
    for o in parsed:
        if o.input_line not in choices:
            OmegaConf.update(cfg, o.key_or_group.lstrip("+"), o.value(), merge=True)
    cfg.output_dir = str(run_dir)
    return validate_run_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


GROUPS = ("server", "sampler", "policy", "verifier", "quality", "format", "integration", "guards", "validate", "serve")
