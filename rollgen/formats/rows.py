"""Dataset rows of one task, per format, and the format registry (``format.kind``). Field names follow TRL's
conversational forms (frameworks.md B.1).

- sft: ``messages`` (or ``prompt`` + ``completion``), ``tools`` when tools were offered, ``task_id``,
  ``rollout_id``, ``reward``.
- dpo: ``prompt``, ``chosen``, ``rejected`` (message lists), ``chosen_reward``, ``rejected_reward``,
  ``margin``, ``task_id``, ``chosen_id``, ``rejected_id`` (+ ``tools``).
- kto: ``prompt``, ``completion``, ``label`` (bool), ``reward``, ``task_id``, ``rollout_id`` (+ ``tools``).
- rl: ``prompt``, ``ground_truth``, ``verifier``, ``task_id``, ``metadata``, and what collection saw:
  ``n_rollouts``, ``n_passed``, ``pass_rate``, ``mean_reward``, ``reward_variance``, ``reward_std``
  (population statistics over the task's scored rollouts, before quality filters) (+ ``tools``).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from rollgen.config import DpoFormat, KtoFormat, RlFormat, SftFormat
from rollgen.formats.messages import BadToolCall, normalize, prompt_len, text_key, with_system
from rollgen.formats.pairs import candidate_pairs, default_cap
from rollgen.formats.source import Entry, Reader
from rollgen.registry import Registry
from rollgen.scan import RolloutScan, scan_rollouts
from rollgen.verifiers.extract import gold_text

__all__ = ["FORMATS", "Context", "Format"]

Row = dict[str, Any]
Message = dict[str, Any]
RowBuilder = Callable[["Context", str, list[Entry]], Iterator[Row]]


@dataclass(frozen=True)
class Format:
    """A dataset format: the rows of one task, what the dataset card says of it, the fields its statistics measure."""

    rows: RowBuilder
    description: str
    text_fields: tuple[str, ...]
    number_fields: tuple[str, ...]


FORMATS: Registry[Format] = Registry("dataset format")


def _register(kind: str, description: str, text_fields: tuple[str, ...],
              number_fields: tuple[str, ...]) -> Callable[[RowBuilder], RowBuilder]:
    """Register the decorated row builder as format ``kind`` (the ``kind:`` of ``conf/format/<kind>.yaml``)."""

    def add(rows: RowBuilder) -> RowBuilder:
        FORMATS.register(kind)(Format(rows, description, text_fields, number_fields))
        return rows

    return add


class Turns(NamedTuple):
    """A rollout's conversation, normalized, split where the first assistant turn starts."""

    rollout: dict[str, Any]
    prompt: list[Message]
    completion: list[Message]


class Context:
    """What row builders share: the config, the reader, the seed, and tallies of what was left out."""

    def __init__(self, cfg: SftFormat | DpoFormat | KtoFormat | RlFormat, reader: Reader, seed: int):
        self.cfg, self.reader, self.seed = cfg, reader, seed
        self.dropped: Counter[str] = Counter()  # rollouts (or pairs, or tasks) left out, by reason
        self.collection: RolloutScan | None = None  # every rollout's rewards per task (RL pass rates)
        self._tools_of: tuple[str | None, list[dict[str, Any]] | None] = (None, None)
        if isinstance(cfg, RlFormat):
            scan = reader.source.collection
            if scan is None or scan.pass_threshold != cfg.pass_threshold:  # without the run's rollouts: the curated
                scan = scan_rollouts(scan.path if scan else reader.source.curated, pass_threshold=cfg.pass_threshold)
            self.collection = scan

    def turns(self, entry: Entry) -> Turns | None:
        """The rollout at ``entry`` as prompt + completion turns, or None (counted) when unusable."""
        r = self.reader.rollout(entry.offset)
        try:
            msgs = with_system(normalize(r["messages"], self.cfg.tool_arguments), self.cfg.system_prompt)
        except BadToolCall:
            self.dropped["tool-call arguments not a JSON object"] += 1
            return None
        cut = prompt_len(msgs)
        if cut == len(msgs) or cut == 0:
            self.dropped["no prompt or no assistant turn"] += 1
            return None
        return Turns(r, msgs[:cut], msgs[cut:])

    def with_tools(self, row: Row, task_id: str) -> Row:
        if self._tools_of[0] != task_id:  # rows of a task come together: read its tools once
            self._tools_of = (task_id, self.reader.tools_for(self.reader.task(task_id)))
        if self._tools_of[1]:
            row["tools"] = self._tools_of[1]
        return row


def _distinct(ctx: Context, entries: list[Entry]) -> Iterator[tuple[Entry, Any]]:
    """(entry, turns) in the given order, skipping unreadable rollouts and repeated completions (counted)."""
    seen: set[str] = set()
    for e in entries:
        t = ctx.turns(e)
        if t is None:
            continue
        key = text_key(t.completion)
        if key in seen:
            ctx.dropped["duplicate completion in task"] += 1
            continue
        seen.add(key)
        yield e, t


@_register("sft", "Supervised fine-tuning demonstrations: the best verified rollouts of each task as chat `messages` "
                  "(or `prompt` + `completion`), the form TRL's `SFTTrainer` takes.",
           ("prompt", "completion"), ("reward",))
def sft_rows(ctx: Context, task_id: str, entries: list[Entry]) -> Iterator[Row]:
    """The best ``best_k`` rollouts (highest reward, then lowest repeat), distinct completions only."""
    cfg = ctx.cfg
    assert isinstance(cfg, SftFormat)
    ranked = sorted(entries, key=lambda e: (e.reward is None, -(e.reward or 0.0), e.repeat))
    for _, (e, t) in zip(range(cfg.best_k), _distinct(ctx, ranked)):
        row: Row = ({"messages": t.prompt + t.completion} if cfg.style == "messages"
                    else {"prompt": t.prompt, "completion": t.completion})
        ctx.with_tools(row, task_id)
        row.update(task_id=task_id, rollout_id=t.rollout["id"], reward=t.rollout.get("reward"))
        yield row


@_register("dpo", "Preference pairs within a task: a shared `prompt` with a `chosen` and a `rejected` completion "
                  "(message lists, TRL `DPOTrainer`'s conversational form), their rewards and the `margin`.",
           ("prompt", "chosen", "rejected"), ("chosen_reward", "rejected_reward", "margin"))
def dpo_rows(ctx: Context, task_id: str, entries: list[Entry]) -> Iterator[Row]:
    """Pairs by ``strategy`` with margin ≥ ``min_quality_difference``; same-text pairs are skipped."""
    cfg = ctx.cfg
    assert isinstance(cfg, DpoFormat)
    scored = sorted((e for e in entries if e.reward is not None), key=lambda e: e.repeat)
    rewards = [float(e.reward) for e in scored]  # type: ignore[arg-type]
    cap = default_cap(cfg.strategy, cfg.max_pairs_per_task)
    rng = random.Random(f"{ctx.seed}:{task_id}")
    loaded: dict[int, Turns | None] = {}

    def load(i: int) -> Turns | None:
        if i not in loaded:
            loaded[i] = ctx.turns(scored[i])
        return loaded[i]

    made = 0
    for c, r in candidate_pairs(rewards, cfg.min_quality_difference, cfg.strategy, rng):
        if cap is not None and made >= cap:
            break
        chosen, rejected = load(c), load(r)
        if chosen is None or rejected is None:
            continue
        if text_key(chosen.completion) == text_key(rejected.completion):
            ctx.dropped["pair with identical chosen and rejected text"] += 1
            continue
        if chosen.prompt != rejected.prompt:
            ctx.dropped["pair whose prompts differ"] += 1
            continue
        row: Row = {"prompt": chosen.prompt, "chosen": chosen.completion, "rejected": rejected.completion}
        ctx.with_tools(row, task_id)
        row.update(chosen_reward=rewards[c], rejected_reward=rewards[r], margin=round(rewards[c] - rewards[r], 9),
                   task_id=task_id, chosen_id=chosen.rollout["id"], rejected_id=rejected.rollout["id"])
        made += 1
        yield row
    if not made:
        ctx.dropped["task without a qualifying pair"] += 1


@_register("kto", "Unpaired preferences: `prompt`, `completion` and a boolean `label` (reward at or above a "
                  "threshold), the form TRL's `KTOTrainer` takes.",
           ("prompt", "completion"), ("reward",))
def kto_rows(ctx: Context, task_id: str, entries: list[Entry]) -> Iterator[Row]:
    """Every scored rollout (distinct completions), ``label = reward >= desirable_threshold``."""
    cfg = ctx.cfg
    assert isinstance(cfg, KtoFormat)
    scored = []
    for e in sorted(entries, key=lambda e: e.repeat):
        if e.reward is None:
            ctx.dropped["rollout without a reward"] += 1
        else:
            scored.append(e)
    for e, t in _distinct(ctx, scored):
        assert e.reward is not None
        row: Row = {"prompt": t.prompt, "completion": t.completion, "label": e.reward >= cfg.desirable_threshold}
        ctx.with_tools(row, task_id)
        row.update(reward=e.reward, task_id=task_id, rollout_id=t.rollout["id"])
        yield row


def _ground_truth(answer: Any) -> str | None:
    """The gold answer as the verifier reads it (``gold_text``), for the reward function that trains on it."""
    return None if answer is None else gold_text(answer)


@_register("rl", "Prompts for online RL (GRPO / PPO): one row per task with `ground_truth`, the `verifier` spec and "
                 "the pass rate and reward variance observed while collecting (for difficulty curricula).",
           ("prompt",), ("pass_rate", "mean_reward", "reward_variance"))
def rl_rows(ctx: Context, task_id: str, entries: list[Entry]) -> Iterator[Row]:
    """One prompt per task, from tasks.jsonl (else from a rollout), with the difficulty seen in collection."""
    cfg = ctx.cfg
    assert isinstance(cfg, RlFormat)
    task = ctx.reader.task(task_id)
    if task is not None:
        prompt = task.get("messages") or [{"role": "user", "content": task.get("prompt")}]
        try:
            prompt = with_system(normalize(prompt, cfg.tool_arguments), cfg.system_prompt)
        except BadToolCall:
            ctx.dropped["tool-call arguments not a JSON object"] += 1
            return
    else:
        t = ctx.turns(min(entries, key=lambda e: e.repeat))
        if t is None:
            return
        prompt = t.prompt
        ctx.dropped["task not in tasks.jsonl: prompt from a rollout, no ground truth"] += 1
    assert ctx.collection is not None
    s = ctx.collection.task(task_id)
    mean = s.total / s.n if s.n else None
    var = max(0.0, s.total_sq / s.n - mean * mean) if mean is not None else None
    row: Row = {"prompt": prompt, "ground_truth": _ground_truth((task or {}).get("answer")),
                "verifier": ctx.reader.source.verifier}
    ctx.with_tools(row, task_id)
    row.update(task_id=task_id, metadata=(task or {}).get("metadata") or {}, n_rollouts=s.n, n_passed=s.passed,
               pass_rate=round(s.passed / s.n, 6) if s.n else None,
               mean_reward=round(mean, 6) if mean is not None else None,
               reward_variance=round(var, 6) if var is not None else None,
               reward_std=round(math.sqrt(var), 6) if var is not None else None)
    yield row
