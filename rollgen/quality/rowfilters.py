"""Filters that judge one rollout at a time: status, reward, length, repetition, refusal, answer format.

Each is a ``RowFilter`` registered under its chain name, with ``check(view) -> Reason | None``: a
``(label, detail)`` pair to drop the row, None to keep it. Labels are few and stable (the funnel counts
them); details carry the numbers.
"""

from __future__ import annotations

import math
import re

from rollgen import config as c
from rollgen.quality.registry import FILTERS, Inputs, RowFilter
from rollgen.quality.view import Reason, RowView

__all__ = ["AnswerFormat", "Length", "Refusal", "Repetition", "Reward", "Status"]


@FILTERS.register("status")
class Status(RowFilter):
    def __init__(self, p: c.StatusFilter):
        self.drop = set(p.drop)

    def check(self, v: RowView) -> Reason | None:
        status = v.row.get("status")
        if status in self.drop:
            return f"status={status}", str(v.row.get("error") or "")[:200]
        if "truncated" in self.drop and v.row.get("finish_reason") == "length":
            return "status=truncated", "finish_reason=length"
        return None


@FILTERS.register("reward")
class Reward(RowFilter):
    def __init__(self, p: c.RewardFilter, min_reward: float):
        self.min, self.max, self.criteria = min_reward, p.max, dict(p.criteria)

    @classmethod
    def from_config(cls, params: c.RewardFilter, cfg: c.QualityConfig, inputs: Inputs) -> Reward:
        return cls(params, cfg.min_reward_threshold)  # the bar sits at the top of quality (presets set it)

    def check(self, v: RowView) -> Reason | None:
        r = v.reward
        if math.isnan(r):
            return "no reward", f"status={v.row.get('status')}"
        if r < self.min:
            return f"reward < {self.min:g}", f"reward {r:g}"
        if r > self.max:
            return f"reward > {self.max:g}", f"reward {r:g}"
        details = v.row.get("reward_details") or {}
        for key, minimum in self.criteria.items():
            value = details.get(key)
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, (int, float)):
                return f"{key} missing", f"reward_details.{key} = {value!r} is not a number"
            if value < minimum:
                return f"{key} < {minimum:g}", f"reward_details.{key} = {value:g}"
        return None


@FILTERS.register("length")
class Length(RowFilter):
    def __init__(self, p: c.LengthFilter):
        self.p = p

    def check(self, v: RowView) -> Reason | None:
        p, chars = self.p, len(v.completion)
        if chars < p.min_chars:
            return ("empty completion" if chars == 0 else "too short"), f"{chars} chars < {p.min_chars}"
        if p.max_chars is not None and chars > p.max_chars:
            return "too long", f"{chars} chars > {p.max_chars}"
        tokens = v.completion_tokens
        if tokens is not None:
            if p.min_tokens is not None and tokens < p.min_tokens:
                return "too short", f"{tokens} tokens < {p.min_tokens}"
            if p.max_tokens is not None and tokens > p.max_tokens:
                return "too long", f"{tokens} tokens > {p.max_tokens}"
        prompt_tokens = v.prompt_tokens
        if p.max_prompt_tokens is not None and prompt_tokens is not None and prompt_tokens > p.max_prompt_tokens:
            return "prompt too long", f"{prompt_tokens} prompt tokens > {p.max_prompt_tokens}"
        return None


@FILTERS.register("repetition")
class Repetition(RowFilter):
    def __init__(self, p: c.RepetitionFilter):
        self.p = p

    def check(self, v: RowView) -> Reason | None:
        ratio, total = v.repetition(self.p.ngram)
        if total < self.p.min_ngrams:
            return None
        if ratio > self.p.max_repeated_ratio:
            return "repetitive", f"{ratio:.0%} of {total} word {self.p.ngram}-grams repeat"
        return None


@FILTERS.register("refusal")
class Refusal(RowFilter):
    def __init__(self, p: c.RefusalFilter):
        self.first_chars = p.first_chars
        self.pattern = re.compile("|".join(re.escape(x.lower()) for x in p.phrases)) if p.phrases else None

    def check(self, v: RowView) -> Reason | None:
        if self.pattern is None:
            return None
        head = v.completion[: self.first_chars] if self.first_chars else v.completion
        # curly apostrophes are common in model output; the phrases use straight ones
        m = self.pattern.search(head.lower().replace("\u2019", "'"))
        return ("refusal", f"contains {m.group(0)!r}") if m else None


@FILTERS.register("answer_format")
class AnswerFormat(RowFilter):
    def __init__(self, p: c.AnswerFormatFilter):
        self.pattern, self.last_chars = re.compile(p.pattern), p.last_chars

    def check(self, v: RowView) -> Reason | None:
        text = v.completion[-self.last_chars:] if self.last_chars else v.completion
        if self.pattern.search(text):
            return None
        return "no final answer", f"no match for /{self.pattern.pattern}/"
