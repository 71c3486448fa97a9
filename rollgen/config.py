"""Typed run configuration: the pydantic models that a composed Hydra config is validated into.

YAML in ``conf/`` holds the values; this module holds the types, bounds and docs. Groups rollgen owns
(sampler, quality, format) are closed models chosen with ``kind``; groups users extend (server,
verifier, policy, integration) name a class with ``_target_`` whose own ``Params`` model validates the
remaining keys.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"not a valid regular expression: {e}") from None
    return pattern


Regex = Annotated[str, AfterValidator(_check_regex)]
"""A Python regular expression, checked when the config is validated."""


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
    tool_timeout_s: float = Field(
        30.0, gt=0.0, le=86400.0,
        description="seconds one tool call may run; a slower call is stopped and its timeout is the tool's result")
    responses_create_params: ResponsesCreateParams = ResponsesCreateParams()
    adaptive_concurrency: bool = Field(True, description="halve parallelism on 429/503, grow it back on success")
    failure_window: int = Field(50, ge=1, description="rollouts the failure budget looks back over")
    max_failure_rate: float = Field(
        0.9, gt=0.0, le=1.0,
        description="stop the run when this share of the last failure_window rollouts failed (endpoint down)")


class StatusFilter(_Model):
    """Drop failed rollouts: the statuses listed (``truncated`` also catches ``finish_reason: length``)."""

    drop: list[Literal["error", "timeout", "verifier_error", "truncated"]] = Field(
        ["error", "timeout", "verifier_error", "truncated"], description="statuses that are dropped")


class RewardFilter(_Model):
    """Reward bounds: ``quality.min_reward_threshold <= reward <= max`` and per-criterion minimums."""

    max: float = Field(1.0, ge=0.0, le=1.0, description="drop rewards above this (e.g. 0.99 keeps unsolved only)")
    criteria: dict[str, float] = Field(
        {}, description="reward_details key -> minimum value (booleans count as 0/1; a missing key drops)")


class LengthFilter(_Model):
    """Completion length in characters and in tokens (``usage``); rows without usage skip the token bounds."""

    min_chars: int = Field(1, ge=0, description="drop completions shorter than this (1 drops empty ones)")
    max_chars: int | None = Field(None, ge=1, description="drop completions longer than this")
    min_tokens: int | None = Field(None, ge=0, description="usage completion/output tokens at least")
    max_tokens: int | None = Field(None, ge=1, description="usage completion/output tokens at most")
    max_prompt_tokens: int | None = Field(None, ge=1, description="usage prompt/input tokens at most (trainer cap)")


class RepetitionFilter(_Model):
    """Degenerate loops: the share of repeated word n-grams in the completion."""

    ngram: int = Field(4, ge=1, le=32, description="n of the word n-grams")
    max_repeated_ratio: float = Field(
        0.5, gt=0.0, le=1.0, description="drop when 1 - distinct/total n-grams exceeds this")
    min_ngrams: int = Field(20, ge=1, description="completions with fewer n-grams are not judged")


class RefusalFilter(_Model):
    """Refusals: any of ``phrases`` (case-insensitive) near the start of the completion."""

    phrases: list[str] = Field(
        ["i'm sorry, but i can't", "i am sorry, but i cannot", "i can't help with", "i cannot help with",
         "i can't assist with", "i cannot assist with", "as an ai language model", "i'm unable to help"],
        description="lower-case substrings that mark a refusal")
    first_chars: int | None = Field(400, ge=1, description="look only at this many leading characters (null: all)")


class AnswerFormatFilter(_Model):
    """Missing final-answer format: the completion must match ``pattern`` (a Python regex)."""

    pattern: Regex = Field(r"\\boxed\{", description="regex searched in the completion")
    last_chars: int | None = Field(None, ge=1, description="search only this many trailing characters (null: all)")


DedupField = Literal["prompt", "completion", "prompt_completion"]


class ExactDedupFilter(_Model):
    """Exact duplicates after normalisation (lower case, words only); keeps the best-rewarded copy.

    ``field: prompt`` works on tasks (the best task by mean reward keeps its rollouts), ``completion`` on
    completions across all tasks, ``prompt_completion`` on the pair (duplicate answers to one prompt).
    """

    field: DedupField = "prompt_completion"


class NearDedupFilter(_Model):
    """Near duplicates by MinHash LSH (datasketch) on word n-gram shingles; keeps the best-rewarded one."""

    field: DedupField = "prompt_completion"
    threshold: float = Field(0.8, gt=0.0, lt=1.0, description="estimated Jaccard similarity that counts as a duplicate")
    ngram: int = Field(5, ge=1, le=32, description="words per shingle")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash signature length (accuracy vs speed)")
    seed: int = Field(1, ge=0, description="MinHash hashing seed")
    scheme: Literal["oph", "classic"] = Field(
        "oph", description="oph: one-permutation MinHash (fast); classic: num_perm permutations (datasketch's)")


class DecontaminateFilter(_Model):
    """Drop tasks whose prompt shares a word n-gram with a row of an evaluation file (any task-file format)."""

    eval_files: list[str] = Field([], description="JSONL task files of benchmarks (rollgen, NeMo Gym, question/answer)")
    ngram: int = Field(13, ge=3, le=64, description="words per n-gram; benchmark rows shorter than this match whole")
    field: Literal["prompt", "prompt_completion"] = Field("prompt", description="check prompts, or completions too")

    @field_validator("eval_files")
    @classmethod
    def _exist(cls, files: list[str]) -> list[str]:
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise ValueError(f"no such evaluation file: {', '.join(missing)}")
        return files


class PassRateFilter(_Model):
    """Keep tasks whose mean reward over their rollouts lies in ``[min, max]`` (neither always nor never solved)."""

    min: float = Field(0.1, ge=0.0, le=1.0, description="lowest mean reward kept")
    max: float = Field(0.9, ge=0.0, le=1.0, description="highest mean reward kept")
    min_group_size: int = Field(2, ge=1, description="tasks with fewer rewarded rollouts are dropped (no estimate)")

    @model_validator(mode="after")
    def _ordered(self) -> PassRateFilter:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class ZeroVarianceFilter(_Model):
    """Drop tasks whose rollouts all got the same reward (no GRPO advantage, no DPO pair)."""

    min_group_size: int = Field(2, ge=1, description="smaller groups count as zero-variance too")


class CapPerTaskFilter(_Model):
    """At most ``max_per_task`` rollouts per task, the best-rewarded first."""

    max_per_task: int = Field(4, ge=1)


class StratifyFilter(_Model):
    """Rebalance strata of a task metadata key (domain, difficulty, source) to target proportions."""

    by: str = Field("difficulty", description="task metadata key (tasks.jsonl); nested keys with dots")
    targets: dict[str, float] = Field(
        {}, description="stratum -> share (normalised); unlisted strata are dropped; empty: equal shares")
    max_per_stratum: int | None = Field(None, ge=1, description="cap on rollouts per stratum")
    missing: str = Field("unknown", description="stratum of tasks without the key")
    seed: int = Field(0, description="which rollouts a downsampled stratum keeps")

    @field_validator("targets")
    @classmethod
    def _shares(cls, targets: dict[str, float]) -> dict[str, float]:
        if any(v < 0 for v in targets.values()) or (targets and sum(targets.values()) <= 0):
            raise ValueError("shares must be >= 0 with a positive sum")
        return targets


class KtoBalanceFilter(_Model):
    """Downsample the larger of desirable (reward >= threshold) and undesirable rollouts to ``ratio``."""

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="reward at or above which a rollout is desirable")
    ratio: float = Field(1.0, gt=0.0, le=100.0, description="desirable : undesirable after balancing")
    seed: int = Field(0, description="which rollouts the larger class keeps")


class QualityFilters(_Model):
    """Parameters of every filter; ``quality.chain`` decides which run, in which order."""

    status: StatusFilter = StatusFilter()
    reward: RewardFilter = RewardFilter()
    length: LengthFilter = LengthFilter()
    repetition: RepetitionFilter = RepetitionFilter()
    refusal: RefusalFilter = RefusalFilter()
    answer_format: AnswerFormatFilter = AnswerFormatFilter()
    exact_dedup: ExactDedupFilter = ExactDedupFilter()
    near_dedup: NearDedupFilter = NearDedupFilter()
    decontaminate: DecontaminateFilter = DecontaminateFilter()
    pass_rate: PassRateFilter = PassRateFilter()
    zero_variance: ZeroVarianceFilter = ZeroVarianceFilter()
    cap_per_task: CapPerTaskFilter = CapPerTaskFilter()
    stratify: StratifyFilter = StratifyFilter()
    kto_balance: KtoBalanceFilter = KtoBalanceFilter()


FilterName = Literal["status", "reward", "length", "repetition", "refusal", "answer_format", "exact_dedup",
                     "near_dedup", "decontaminate", "pass_rate", "zero_variance", "cap_per_task", "stratify",
                     "kto_balance"]


class QualityConfig(_Model):
    """The quality stage: ``chain`` names filters in order; ``filters.<name>`` holds each one's parameters."""

    kind: Literal["default", "sft", "dpo", "rl", "custom"] = Field(
        "default", description="which preset this is (custom: your own)")
    min_reward_threshold: float = Field(
        0.0, ge=0.0, le=1.0, description="keep rollouts with reward >= this (the `reward` filter; set by sampler presets)")
    chain: list[FilterName] = Field(
        ["status", "reward", "length", "repetition", "refusal", "exact_dedup", "near_dedup", "decontaminate"],
        description="filters applied in this order; each sees only what the previous ones kept")
    filters: QualityFilters = QualityFilters()
    plots: bool = Field(True, description="write plots/*.png (matplotlib) and link them from report.md")
    overlap: bool | Literal["auto"] = Field(
        "auto", description="run the chain's first pass (and the report's scan) in a child process that reads "
        "rollouts.jsonl while collection writes it, so only the decisions are left when collection ends; "
        "auto: when a run collects at least 10,000 rollouts on a machine with 2 or more CPUs")

    @field_validator("chain")
    @classmethod
    def _once_each(cls, chain: list[str]) -> list[str]:
        twice = sorted({f for f in chain if chain.count(f) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once")
        return chain

    @model_validator(mode="after")
    def _settings_apply(self) -> QualityConfig:
        """A setting that switches a filter's work on, for a filter the chain does not run, is a mistake."""
        f = self.filters
        for key, value, name, off in (("min_reward_threshold", self.min_reward_threshold, "reward", "set it to 0"),
                                      ("filters.reward.criteria", f.reward.criteria, "reward", "leave it empty"),
                                      ("filters.decontaminate.eval_files", f.decontaminate.eval_files, "decontaminate",
                                       "leave it empty"),
                                      ("filters.stratify.targets", f.stratify.targets, "stratify", "leave it empty")):
            if value and name not in self.chain:
                raise ValueError(f"{key}={value} has no effect: add `{name}` to quality.chain or {off}")
        return self


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


class NemoGymFormat(_FormatBase):
    """NeMo Gym task rows (``responses_create_params`` + verifier fields), one per curated task: what ``gym eval
    run`` collects from and NeMo-RL's ``NemoGymDataset`` trains on (``rollgen/formats/nemo_gym.py``)."""

    kind: Literal["nemo_gym"] = "nemo_gym"
    agent_name: str | None = Field(
        None, description="agent_ref.name of every row (NeMo-RL routes rows by it and needs it); null: no agent_ref "
                          "(route with gym eval run --agent)")
    metadata: Literal["top_level", "key", "drop"] = Field(
        "top_level", description="task metadata: top-level keys (NeMo Gym's verifier fields), under 'metadata', "
                                 "or left out")


FormatConfig = Annotated[SftFormat | DpoFormat | KtoFormat | RlFormat | NemoGymFormat, Field(discriminator="kind")]


class Component(_Model):
    """A user-extensible stage: ``_target_`` names a class whose ``Params`` model validates the rest
    (``rollgen.build`` imports it, validates the rest and builds it)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    target: str = Field(alias="_target_")


class GuardsConfig(_Model):
    """Reward-hacking checks that run before any verifier; a rollout that trips one scores 0 (rollgen/verifiers/guards.py)."""

    enabled: bool = True
    truncated: bool = Field(True, description="finish_reason == length: the answer was cut off")
    max_chars: int | None = Field(32_000, ge=1, description="a completion longer than this scores 0 (null = no limit)")
    empty: bool = Field(True, description="no answer text after </think>, or only an opener such as 'Solution:'")
    copied_from_prompt: bool = Field(True, description="the completion mostly repeats the prompt")
    copy_threshold: float = Field(0.8, gt=0.0, le=1.0, description="share of the completion found in the prompt")
    copy_min_chars: int = Field(20, ge=1, description="shorter completions are not checked for copying")
    repetition: bool = Field(True, description="a long completion that is one phrase over and over")
    repetition_min_chars: int = Field(2000, ge=100)
    min_compression_ratio: float = Field(0.1, gt=0.0, lt=1.0, description="zlib ratio below which text is degenerate")
    hedging: bool = Field(True, description="several candidate answers: two different \\boxed{}, 'A or B', a list "
                          "where the gold has one value")


RenderingKind = Literal["plain", "boxed", "answer_is", "trailing_period", "inline_math", "reasoning", "think",
                        "units", "thousands", "no_thousands", "decimal", "fraction", "latex_frac", "boxed_fraction",
                        "letter_paren", "answer_sentence", "number_first", "conclusion", "units_after_math",
                        "trailing_clause", "self_check", "intermediate_box", "retracted_box", "thousands_braces",
                        "thousands_thin_space", "thousands_bang", "thousands_inline", "scientific", "mixed_number",
                        "multi_box", "adjacent_boxes", "or_assignments", "named_parts", "prose_list",
                        "reordered_list", "inequality"]
PerturbationKind = Literal["off_by_one", "sign_flip", "other_task", "empty", "question_repeated", "hedged",
                           "buried_in_list", "truncated", "rambling", "no_statement", "hedged_prose",
                           "gold_after_answer", "missing_part", "restated_question", "unparseable_rhs"]


class ValidateConfig(_Model):
    """``rollgen validate``: gold answers and equivalent renderings must score 1, perturbed answers 0."""

    max_false_positive_rate: float = Field(0.0, ge=0.0, le=1.0, description="per perturbation kind; above it, exit 1")
    max_false_negative_rate: float = Field(0.01, ge=0.0, le=1.0, description="per rendering kind; above it, exit 1")
    renderings: list[RenderingKind] | None = Field(None, description="null = all that apply to each gold answer")
    perturbations: list[PerturbationKind] | None = Field(None, description="null = all")
    examples: int = Field(5, ge=0, le=100, description="failures shown per kind")
    concurrency: int = Field(64, ge=1, le=100_000, description="verifications in flight")
    verifier_alone: bool = Field(True, description="also score guard-caught cases without guards (what each guard saves)")
    rambling_chars: int = Field(40_000, ge=1000, description="length of the 'rambling' perturbation")
    agreement_threshold: float = Field(0.5, ge=0.0, le=1.0, description="run mode: a reward at or above is a pass (kappa)")
    min_kappa: float | None = Field(None, ge=-1.0, le=1.0, description="run mode: exit 1 when agreement is lower")
    output_dir: str | None = Field(None, description="null = outputs/validate/<date>/<time>, or <run>/validate")


class ServeConfig(_Model):
    """``rollgen serve``: the served environment's address, token and limits (rollgen/serve/)."""

    host: str = Field("127.0.0.1", description="bind address (127.0.0.1: this machine only)")
    port: int = Field(8765, ge=0, le=65535, description="TCP port (0: any free port, printed at start)")
    token: str | None = Field(None, exclude=True, repr=False,
                              description="bearer token; null: $token_env, else one is generated and printed")
    token_env: str = Field("ROLLGEN_SERVE_TOKEN", description="environment variable holding the token")
    max_body_bytes: int = Field(8 * 2**20, ge=1024, description="a larger request body is answered 413")
    concurrency: int = Field(64, ge=1, le=100_000, description="requests handled at once; more wait their turn")
    max_waiting: int = Field(4096, ge=0, description="requests waiting for a turn at most; beyond it 503 (Retry-After)")
    max_sessions: int = Field(100_000, ge=1, description="NeMo Gym sessions kept (the oldest is dropped first)")
    shutdown_timeout_s: float = Field(30.0, gt=0.0, description="on SIGTERM/SIGINT: how long in-flight requests may finish")


class ShardConfig(_Model):
    """This run's part of the tasks: those whose id hashes to ``index`` of ``count`` (``rollgen.shards``).

    ``shard.count=N`` runs, one per index, cover every task exactly once; ``rollgen merge`` joins their run dirs.
    """

    index: int = Field(0, ge=0, description="which part this run collects: 0 .. count-1")
    count: int = Field(1, ge=1, le=100_000, description="parts the tasks are split into (1: all tasks, no sharding)")

    @model_validator(mode="after")
    def _index_below_count(self) -> ShardConfig:
        if self.index >= self.count:
            raise ValueError(f"shard.index must be below shard.count ({self.count}): 0 .. {self.count - 1}, "
                             f"not {self.index}")
        return self


class RunConfig(_Model):
    """One whole run, validated before any I/O."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    server: Component
    sampler: SamplerConfig
    policy: Component
    verifier: Component
    quality: QualityConfig
    format: FormatConfig
    integration: dict[str, Component] = Field(
        description="name -> integration; integration=[trl,verl] picks several (each writes export/<name>/)")
    seed: int = 0
    limit: int | None = Field(None, ge=1)
    progress: bool = True
    output_dir: str
    resume: str | None = Field(None, description="a run dir to continue in place")
    reuse_rollouts: bool = Field(True, description="start from an earlier run's rollouts of the same collection hash")
    cache_dir: str | None = Field(None, description="rollout index and task cache; null = $ROLLGEN_CACHE_DIR or ~/.cache/rollgen")
    on_bad_row: Literal["error", "skip"] = "error"
    objective: Literal[
        "mean_reward", "pass_rate", "kept_after_quality", "dataset_rows", "sft_rows", "dpo_pairs", "mean_margin",
        "distinct_2", "dpo_pairs_per_1k_calls"] = "mean_reward"

    guards: GuardsConfig = GuardsConfig()
    shard: ShardConfig = ShardConfig()
    validation: ValidateConfig = Field(ValidateConfig(), alias="validate")
    serve: ServeConfig = ServeConfig()

    @field_validator("integration", mode="before")
    @classmethod
    def _name_integrations(cls, value: Any) -> Any:
        """A bare component (``_target_`` at the top, as in configs written before several integrations were
        allowed) is named after its class: ``{"jsonlintegration": {...}}``."""
        if isinstance(value, dict) and "_target_" in value:
            return {str(value["_target_"]).rsplit(".", 1)[-1].lower(): value}
        return value


COMPONENTS = ("server", "policy", "verifier", "integration")
