"""LLM judge with a rubric: an OpenAI-compatible model grades the answer against the reference.

The endpoint is configured like ``policy=openai`` (``base_url``, ``model``, ``api``, ``api_key_env``) and
called through rollgen's ``PolicyClient`` (retries with backoff on 429/5xx, ``Retry-After``). Best
practice from the peers is the default: judge the **final answer only** (not the reasoning), a closed
label set on a parseable last line (``VERDICT: CORRECT``), temperature 0.

* Cache: each call is keyed by a hash of everything that decides the judge's output (endpoint model,
  sampling, system prompt, rendered prompt); ``cache: disk`` keeps them in
  ``<cache dir>/judge/`` (the run's ``cache_dir``) so ``rollgen verify`` and ``validate`` re-runs cost nothing, and equal
  calls in flight are made once.
* Concurrency: at most ``max_concurrency`` calls at once, over the runtime's HTTP session.
* Master-key defence: an answer with no letters or digits (``":"``, ``"."``) or only an opener is scored 0
  without calling the judge (``details["skipped"]``).
* Failures: a call that fails after retries, or a reply the score pattern cannot parse, raises
  ``JudgeError``: the rollout gets status ``verifier_error``, never a silent 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from rollgen.config import ResponsesCreateParams
from rollgen.policy.client import PolicyClient, PolicyError
from rollgen.policy.openai import EndpointParams
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import answer_region, final_answer, is_empty_answer

if TYPE_CHECKING:
    from rollgen.runtime import Runtime

__all__ = ["DEFAULT_TEMPLATE", "JudgeError", "LLMJudge", "parse_score"]

DEFAULT_TEMPLATE = """You are grading an answer to a question against the reference answer.

Question:
{question}

Reference answer:
{reference}

Answer to grade:
{response}

Rubric:
{rubric}

Think briefly, then end with exactly one line: "VERDICT: CORRECT" or "VERDICT: INCORRECT"."""

DEFAULT_RUBRIC = ("The answer is CORRECT when it states the same final result as the reference (equivalent "
                  "forms count: 0.5 = 1/2, units may differ in spelling). It is INCORRECT when it differs, gives "
                  "several candidate answers, is empty, or only restates the question.")

class JudgeError(RuntimeError):
    """The judge could not give a score (call failed, or the reply did not parse)."""


def parse_score(text: str, pattern: re.Pattern[str], labels: dict[str, float], max_score: float) -> tuple[float, str]:
    """``(reward, raw)`` from the judge's reply: the last match of ``pattern``'s ``score`` group, a label
    (case-insensitive) or a number (``7``, ``7/10``) scaled by ``max_score``. Raises JudgeError."""
    matches = list(pattern.finditer(text))
    if not matches:
        raise JudgeError(f"judge reply has no score (pattern {pattern.pattern!r}): {text[-200:]!r}")
    raw = matches[-1].group("score").strip()
    upper = {k.upper(): v for k, v in labels.items()}
    if raw.upper() in upper:
        return upper[raw.upper()], raw
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?", raw)
    if not m:
        raise JudgeError(f"judge score {raw!r} is neither a label ({', '.join(labels)}) nor a number")
    value, scale = float(m.group(1)), float(m.group(2)) if m.group(2) else max_score
    if scale <= 0 or not 0 <= value <= scale:
        raise JudgeError(f"judge score {raw!r} is outside 0..{scale:g}")
    return value / scale, raw


class LLMJudge(Verifier):
    """Reward from an LLM judge's verdict on the answer, given a rubric and the reference answer."""

    class Params(EndpointParams):
        temperature: float = Field(0.0, ge=0.0, le=2.0)
        max_output_tokens: int = Field(512, ge=1)
        seed: int | None = 0
        system_prompt: str | None = None
        prompt_template: str = DEFAULT_TEMPLATE
        rubric: str = DEFAULT_RUBRIC
        judge_input: Literal["final_answer", "full"] = Field(
            "final_answer", description="what the judge sees: the extracted final answer, or the whole answer")
        max_response_chars: int = Field(4000, ge=1, description="longer answers are cut to their last N chars")
        score_pattern: str = Field(
            r"(?i)\b(?:verdict|score|grade)\**\s*[:=]\s*\**\s*(?P<score>[A-Za-z_]+|\d+(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?)",
            description="regex with a 'score' group; the last match counts")
        labels: dict[str, float] = Field(default_factory=lambda: {"CORRECT": 1.0, "INCORRECT": 0.0,
                                                                  "PARTIALLY_CORRECT": 0.5})
        max_score: float = Field(1.0, gt=0, description="a bare number is divided by this (e.g. 10 for 0-10)")
        max_concurrency: int = Field(8, ge=1, le=10_000)
        cache: Literal["disk", "memory", "off"] = "disk"

        @field_validator("prompt_template")
        @classmethod
        def _has_response(cls, template: str) -> str:
            if "{response}" not in template:
                raise ValueError("must contain '{response}', where the answer to grade goes")
            return template

        @field_validator("score_pattern")
        @classmethod
        def _has_score_group(cls, pattern: str) -> str:
            try:
                rx = re.compile(pattern)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
            if "score" not in rx.groupindex:
                raise ValueError("needs a named group (?P<score>...)")
            return pattern

        @field_validator("labels")
        @classmethod
        def _labels_in_range(cls, labels: dict[str, float]) -> dict[str, float]:
            bad = {k: v for k, v in labels.items() if not 0.0 <= v <= 1.0}
            if bad:
                raise ValueError(f"label rewards must be in [0, 1]: {bad}")
            return labels

    params: Params
    name = "judge"

    def __init__(self, params: Params):
        super().__init__(params)
        self.needs_answer = "{reference}" in params.prompt_template
        self._pattern = re.compile(params.score_pattern)
        self._client: tuple[PolicyClient, asyncio.Semaphore] | None = None  # set by start()
        self._memory: dict[str, str] = {}
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self.calls = 0  # judge requests actually sent (cache misses)

    # ------------------------------------------------------------ prompt

    def render(self, task: Task, rollout: Rollout) -> str | None:
        """The judge prompt, or None when the answer is empty (nothing to judge)."""
        p = self.params
        if p.judge_input == "final_answer":
            answer, _ = final_answer(rollout.completion)
        else:
            answer = answer_region(rollout.completion).strip()[-p.max_response_chars:] or None
        if answer is None or is_empty_answer(answer):
            return None
        answer = answer[-p.max_response_chars:]
        question = task.metadata.get("question") or next(
            (m.get("content") for m in reversed(task.chat()) if m.get("role") == "user"), "") or ""
        reference = task.answer if isinstance(task.answer, str) else (
            "(none)" if task.answer is None else json.dumps(task.answer, ensure_ascii=False))
        text = p.prompt_template
        for key, value in (("{rubric}", p.rubric), ("{question}", str(question)), ("{reference}", reference),
                           ("{response}", answer)):  # the answer last: its text is never re-substituted
            text = text.replace(key, value)
        return text

    # ------------------------------------------------------------ verify

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        prompt = self.render(task, rollout)
        if prompt is None:
            details = {"skipped": "no answer to judge", "decided": True}
            return Verdict(reward=0.0, details=details, verifier=self.name)
        key = self._key(prompt)
        reply, cached = await self._reply(key, prompt)
        reward, raw = parse_score(reply, self._pattern, self.params.labels, self.params.max_score)
        details = {"score": raw, "judge_model": self.params.model, "cached": cached, "prompt_hash": key[:16],
                   "judge_reply": reply[-500:]}
        return Verdict(reward=reward, details=details, verifier=self.name)

    def _key(self, prompt: str) -> str:
        p = self.params
        what = {"model": p.model, "api": p.api, "temperature": p.temperature, "max_output_tokens": p.max_output_tokens,
                "seed": p.seed, "system": p.system_prompt, "prompt": prompt}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()

    async def _reply(self, key: str, prompt: str) -> tuple[str, bool]:
        """The judge's reply text and whether it came from the cache; one call per key at a time
        (``cache: off``: every verification is its own call, e.g. to sample several judgements)."""
        if self.params.cache == "off":
            return await self._call(prompt), False
        if key in self._memory:
            return self._memory[key], True
        if (pending := self._inflight.get(key)) is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            text = await self._disk_get(key)
            cached = text is not None
            if text is None:
                text = await self._call(prompt)
                await self._disk_put(key, text)
            self._memory[key] = text
            future.set_result(text)
            return text, cached
        except BaseException as e:
            future.set_exception(e if isinstance(e, Exception) else JudgeError("cancelled"))
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self._inflight[key]

    async def _call(self, prompt: str) -> str:
        if self._client is None:
            raise self.not_started()
        client, slots = self._client
        messages = ([{"role": "system", "content": self.params.system_prompt}] if self.params.system_prompt else [])
        messages.append({"role": "user", "content": prompt})
        async with slots:
            self.calls += 1
            try:
                completion = await client.complete(messages)
            except PolicyError as e:
                raise JudgeError(f"judge call failed ({e.status}): {e}") from None
        if not completion.text.strip():
            raise JudgeError(f"judge returned an empty reply (finish_reason {completion.finish_reason})")
        return completion.text

    async def start(self, runtime: Runtime) -> None:
        """Call the judge over the runtime's session, ``max_concurrency`` calls at a time."""
        await super().start(runtime)
        p = self.params
        sampling = ResponsesCreateParams(temperature=p.temperature, max_output_tokens=p.max_output_tokens, seed=p.seed)
        self._client = (PolicyClient(runtime.session, p.endpoint(), sampling), asyncio.Semaphore(p.max_concurrency))

    async def close(self) -> None:
        if self._client is not None:
            await self._client[0].close()
        self._client = None
        await super().close()

    # ------------------------------------------------------------ disk cache

    def _path(self, key: str) -> Path:
        return self.runtime.cache_dir / "judge" / key[:2] / f"{key}.json"

    async def _disk_get(self, key: str) -> str | None:
        if self.params.cache != "disk":
            return None
        path = self._path(key)

        def read() -> str | None:
            try:
                return json.loads(path.read_text(encoding="utf-8"))["reply"]
            except (OSError, ValueError, KeyError):
                return None

        return await asyncio.to_thread(read)

    async def _disk_put(self, key: str, text: str) -> None:
        if self.params.cache != "disk":
            return
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"reply": text, "model": self.params.model}), encoding="utf-8")
            os.replace(tmp, path)

        await asyncio.to_thread(write)
