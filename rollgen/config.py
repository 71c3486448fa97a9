"""Typed run configuration: the pydantic models that a composed Hydra config is validated into.

YAML in ``conf/`` holds the values; this module holds the types, bounds and docs. Groups rollgen owns
(sampler, quality, format) are closed models chosen with ``kind``; groups users extend (server,
verifier, policy, integration) name a class with ``_target_`` whose own ``Params`` model validates the
remaining keys.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResponsesCreateParams(_Model):
    """Sampling parameters sent with every policy request (NeMo Gym's ``responses_create_params``)."""

    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_output_tokens: int = Field(512, ge=1, le=1_000_000)
    seed: int | None = None
    stop: list[str] | None = None


class SamplerConfig(_Model):
    num_samples_in_parallel: int = Field(20, ge=1, le=100_000, description="requests in flight at most")
    num_repeats: int = Field(1, ge=1, le=10_000, description="rollouts per task")
    max_turns: int = Field(4, ge=1, le=1000, description="policy calls per rollout (tool loops)")
    responses_create_params: ResponsesCreateParams = ResponsesCreateParams()
    adaptive_concurrency: bool = Field(True, description="halve parallelism on 429/503, grow it back on success")
    failure_window: int = Field(50, ge=1, description="rollouts the failure budget looks back over")
    max_failure_rate: float = Field(
        0.9, gt=0.0, le=1.0,
        description="stop the run when this share of the last failure_window rollouts failed (endpoint down)")


class QualityConfig(_Model):
    kind: Literal["default"] = "default"
    min_reward_threshold: float = Field(0.0, ge=0.0, le=1.0)
    drop_failed: bool = True


class _FormatBase(_Model):
    """Knobs every dataset format shares: the split, the prompt, tool-call encoding and the card's licence."""

    validation_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of tasks (not rows) in validation.jsonl")
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="share of tasks (not rows) in test.jsonl")
    system_prompt: str | None = Field(None, description="prepended as a system turn to prompts that have none")
    tool_arguments: Literal["dict", "string"] = Field(
        "dict", description="tool-call arguments as a JSON object (TRL, NeMo-RL) or the OpenAI API's JSON string")
    license: str | None = Field(None, description="licence of the dataset, written into dataset/README.md")

    @model_validator(mode="after")
    def _train_keeps_tasks(self) -> _FormatBase:
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("validation_fraction + test_fraction must be below 1, or no task is left for train")
        return self


class SftFormat(_FormatBase):
    """Demonstrations: the best ``best_k`` rollouts of each task as chat ``messages`` (or prompt/completion)."""

    kind: Literal["sft"] = "sft"
    best_k: int = Field(1, ge=1, description="best rollouts kept per task (distinct completions)")
    style: Literal["messages", "prompt_completion"] = "messages"


class DpoFormat(_FormatBase):
    """Preference pairs within a task: chosen and rejected differ by at least ``min_quality_difference``."""

    kind: Literal["dpo"] = "dpo"
    min_quality_difference: float = Field(
        0.1, gt=0.0, le=1.0, description="chosen.reward - rejected.reward must be at least this")
    strategy: Literal["best_vs_worst", "all_pairs", "best_vs_random_lower"] = "best_vs_worst"
    max_pairs_per_task: int | None = Field(
        None, ge=1, description="pairs per task at most; null: 1, or every qualifying pair for all_pairs")


class KtoFormat(_FormatBase):
    """Unpaired preferences: every rollout with ``label = reward >= desirable_threshold``."""

    kind: Literal["kto"] = "kto"
    desirable_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="reward at or above which a completion is desirable (label true)")
    balance: bool = Field(False, description="downsample the larger class (seeded) to the size of the smaller")


class RlFormat(_FormatBase):
    """Prompts for online RL (GRPO/PPO): one row per task with ground truth, verifier and observed difficulty."""

    kind: Literal["rl"] = "rl"
    pass_threshold: float = Field(
        1.0, ge=0.0, le=1.0, description="reward at or above which a rollout counts as a pass (pass_rate)")


FormatConfig = Annotated[SftFormat | DpoFormat | KtoFormat | RlFormat, Field(discriminator="kind")]


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


class Component(_Model):
    """A user-extensible stage: ``_target_`` names a class whose ``Params`` model validates the rest."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    target: str = Field(alias="_target_")

    @field_validator("target")
    @classmethod
    def _check_target(cls, target: str) -> str:
        params_cls = getattr(import_target(target), "Params", None)
        if not (isinstance(params_cls, type) and issubclass(params_cls, BaseModel)):
            raise ValueError(f"'{target}' has no pydantic 'Params' model (a nested `class Params(BaseModel)`)")
        return target

    @property
    def cls(self) -> type:
        return import_target(self.target)

    @property
    def params(self) -> BaseModel:
        """The target's ``Params``, validated (``validate_run_config`` has checked them already)."""
        return self.cls.Params.model_validate(self.model_extra or {})

    def build(self) -> Any:
        return self.cls(self.params)


class RunConfig(_Model):
    """One whole run, validated before any I/O."""

    server: Component
    sampler: SamplerConfig
    policy: Component
    verifier: Component
    quality: QualityConfig
    format: FormatConfig
    integration: Component
    seed: int = 0
    limit: int | None = Field(None, ge=1)
    progress: bool = True
    output_dir: str
    resume: str | None = Field(None, description="a run dir to continue in place")
    reuse_rollouts: bool = Field(True, description="start from an earlier run's rollouts of the same collection hash")
    cache_dir: str | None = Field(None, description="rollout index and task cache; null = $ROLLGEN_CACHE_DIR or ~/.cache/rollgen")
    on_bad_row: Literal["error", "skip"] = "error"


COMPONENTS = ("server", "policy", "verifier", "integration")


class ConfigError(ValueError):
    """Every problem of a config at once, one ``key.path: message`` line each."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


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


def validate_run_config(data: dict[str, Any]) -> RunConfig:
    """Validate a plain-container config into a ``RunConfig``; raise ``ConfigError`` naming every bad key."""
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_error_lines(e)) from None
    lines = []
    for name in COMPONENTS:
        comp: Component = getattr(cfg, name)
        try:
            comp.cls.Params.model_validate(comp.model_extra or {})
        except ValidationError as e:
            lines += _error_lines(e, name)
    if lines:
        raise ConfigError(lines)
    return cfg
