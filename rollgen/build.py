"""From config to objects: import a component's ``_target_``, validate its ``Params``, build it.

``rollgen.config`` holds types only; everything that imports a target or constructs a component is here.
``validate_run_config`` is the one way from a plain container to a checked ``RunConfig``; ``preflight`` then
asks each built component whether it can run (files exist, names are known, optional packages import).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from rollgen.config import COMPONENTS, Component, GuardsConfig, RunConfig
from rollgen.errors import ConfigError

__all__ = ["build", "build_verifier", "component_class", "component_params", "import_target", "preflight",
           "target_class", "validate_run_config"]


def import_target(path: str) -> Any:
    """Import ``package.module.Name``; raise ValueError with a fix-it message."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"'{path}' is not a dotted path like 'my_pkg.my_module.MyClass'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module '{module_name}' ({e}); is it on PYTHONPATH?") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module '{module_name}' has no attribute '{attr}'") from None


def target_class(target: str) -> type:
    """The class a ``_target_`` names; ValueError unless it has a pydantic ``Params`` model."""
    cls = import_target(target)
    params_cls = getattr(cls, "Params", None)
    if not (isinstance(params_cls, type) and issubclass(params_cls, BaseModel)):
        raise ValueError(f"'{target}' has no pydantic 'Params' model (a nested `class Params(BaseModel)`)")
    return cls


def component_class(comp: Component) -> type:
    """The class the component's ``_target_`` names (``target_class``)."""
    return target_class(comp.target)


def component_params(comp: Component) -> BaseModel:
    """The target's ``Params``, validated from the component's other keys."""
    return component_class(comp).Params.model_validate(comp.model_extra or {})


def build(comp: Component) -> Any:
    """The component itself: ``Target(Params(...))``."""
    return component_class(comp)(component_params(comp))


def build_verifier(comp: Component, guards: GuardsConfig | None) -> Any:
    """The verifier behind the run's guards (``guards=None``: the bare verifier)."""
    verifier = build(comp)
    if guards is None:
        return verifier
    from rollgen.verifiers.guards import Guarded

    return Guarded(verifier, guards)


def _error_lines(err: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in ("sft", "dpo", "kto", "rl")))
        key = ".".join(p for p in (prefix, loc) if p)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `--cfg job` prints the valid keys)"
        elif "input" in e and not isinstance(e["input"], (dict, list)) and e["type"] != "missing":
            msg += f" (got {e['input']!r})"
        lines.append(f"{key or '<root>'}: {msg}")
    return lines


def _named_components(cfg: RunConfig) -> list[tuple[str, Component]]:
    named: list[tuple[str, Component]] = []
    for name in COMPONENTS:
        value = getattr(cfg, name)
        named += [(f"{name}.{k}", c) for k, c in value.items()] if isinstance(value, dict) else [(name, value)]
    return named


def validate_run_config(data: dict[str, Any]) -> RunConfig:
    """Validate a plain-container config into a ``RunConfig``: the types, then each component's ``_target_``
    and ``Params``. Raises ``ConfigError`` naming every bad key."""
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_error_lines(e)) from None
    lines = []
    for key, comp in _named_components(cfg):
        try:
            component_params(comp)
        except ValueError as e:
            if isinstance(e, ValidationError):
                lines += _error_lines(e, key)
            else:
                lines.append(f"{key}._target_: {e}")
    if lines:
        raise ConfigError(lines)
    return cfg


def preflight(cfg: RunConfig) -> None:
    """What a run needs beyond types, checked before any work: every component builds, and passes its own
    ``check()`` when it has one (files exist, names are in a registry, optional packages import).

    A ``check()`` raises ``ValueError``; a message that starts with one of its params (``"model_path: ..."``)
    is reported under that key (``policy.model_path: ...``). Raises ``ConfigError`` naming every problem.
    """
    lines = []
    for key, comp in _named_components(cfg):
        try:
            cls = component_class(comp)
            built = cls(component_params(comp))  # the component itself, not a wrapper (the verifier's guards)
            if callable(check := getattr(built, "check", None)):
                check()
        except (ValueError, re.error, OSError) as e:
            msg = str(e).strip() or type(e).__name__
            param = re.split(r"[:. ]", msg, maxsplit=1)[0]
            try:
                known = component_class(comp).Params.model_fields
            except ValueError:
                known = {}
            lines.append(f"{key}.{msg}" if param in known else f"{key}: {msg}")
    if lines:
        raise ConfigError(lines)
