"""LLM judge with a rubric: an OpenAI-compatible model grades the answer against the reference.

The endpoint is configured like ``policy=openai`` (``base_url``, ``model``, ``api``, ``api_key_env``) and
called through rollgen's ``PolicyClient`` (retries with backoff on 429/5xx, ``Retry-After``). Best
practice from the peers is the default: judge the **final answer only** (not the reasoning), a closed
label set on a parseable last line (``VERDICT: CORRECT``), temperature 0.

* Cache: each call is keyed by a hash of everything that decides the judge's output (endpoint URL and model,
  sampling, system prompt, rendered prompt); ``cache: disk`` keeps them in
  ``<cache dir>/judge/`` (the run's ``cache_dir``) so ``rollgen verify`` and ``validate`` re-runs cost nothing, and equal
  calls in flight are made once.
* Concurrency: at most ``max_concurrency`` calls at once, over the runtime's HTTP session.
* Master-key defence: an answer with no letters or digits (``":"``, ``"."``) or only an opener is scored 0
  without calling the judge (``details["skipped"]``).
* Failures: a call that fails after retries, or a reply the score pattern cannot parse, raises
  ``JudgeError``: the rollout gets status ``verifier_error`` with the reason in its ``error``, never a silent 0
  (a 0 would teach the policy that a good answer is bad; an error is left out of the dataset and re-scored by
  ``rollgen verify``). A reply that does not parse is not cached, so a re-score asks again.
* Rubric: ``{rubric}`` is the task's own criteria when it has them (``metadata.rubric``: a text, or a list of
  criteria as texts or ``{criterion, points}`` objects, one ``- `` line each), else ``params.rubric``.
* Pairwise (``pairwise: true``), the cookbook judge's swap check: a task with a reference answer is judged by
  comparing the answer with the reference twice, the reference shown first and then second; the judge names
  the better one (``A``, ``B`` or ``TIE``). When both orders agree, their outcome for the answer (win, tie,
  loss) gives the reward (``outcome_rewards``: a tie with the reference is full marks by default); when they
  disagree (position bias), ``swap_disagreement_reward`` (0.5). Both verdicts are kept in
  ``details["verdicts"]``. Tasks without a reference are scored with the rubric alone (``prompt_template``).
  ``compare(task, first, second)`` judges any two answers the same way (two rollouts of one task).
* ``rollgen validate``: ``validate_with: stub`` scores the validation cases with an in-process stand-in for
  the judge (exact match with the reference, replying in the judge's own verdict format), so validate needs
  no live judge; it checks the tasks, prompts, guards, verdict parsing and swap combination, not the judge
  model's grading (the report says so). ``validate_with: endpoint`` asks the configured judge.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from rollgen.config import ResponsesCreateParams
from rollgen.policy.client import PolicyClient, PolicyError
from rollgen.policy.openai import EndpointParams
from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.verifiers.extract import answer_region, final_answer, is_empty_answer

if TYPE_CHECKING:
    from rollgen.runtime import Runtime
    from rollgen.validation.cases import Case

__all__ = ["DEFAULT_PAIRWISE_TEMPLATE", "DEFAULT_TEMPLATE", "PAIRWISE_PATTERN", "JudgeError", "LLMJudge", "fill",
           "parse_preference", "parse_score", "task_rubric"]

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

DEFAULT_PAIRWISE_TEMPLATE = """You are comparing two answers to the same request.

Request:
{question}

Criteria:
{rubric}

[Answer A]
{first}
[End of answer A]

[Answer B]
{second}
[End of answer B]

Judge only by the criteria; the order of the answers and their length do not matter. If they are equally good
(for example, they say the same thing in other words), the verdict is TIE. Think briefly, then end with exactly
one line: "VERDICT: A", "VERDICT: B" or "VERDICT: TIE"."""

PAIRWISE_PATTERN = r"(?i)\bverdict\**\s*[:=]\s*\**\s*\[*\s*(?P<label>A|B|TIE)\b"
_OUTCOMES = {"A": ("first", "win", "loss"), "B": ("second", "loss", "win"), "TIE": ("tie", "tie", "tie")}


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


def parse_preference(text: str, pattern: re.Pattern[str]) -> str:
    """``"A"``, ``"B"`` or ``"TIE"``: the last match of ``pattern``'s ``label`` group in the judge's reply
    (``VERDICT: B``, ``**Verdict:** [[A]]``, ``verdict = tie``). Raises JudgeError."""
    matches = list(pattern.finditer(text))
    if not matches:
        raise JudgeError(f"judge reply has no verdict (pattern {pattern.pattern!r}): {text[-200:]!r}")
    label = matches[-1].group("label").strip().upper()
    if label not in _OUTCOMES:
        raise JudgeError(f"judge verdict {label!r} is not A, B or TIE")
    return label


def fill(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``{name}`` of ``values`` replaced, in one pass: text put in (an answer that
    writes ``{reference}``) is never substituted again."""
    if not values:
        return template
    rx = re.compile("|".join(re.escape("{" + k + "}") for k in values))
    return rx.sub(lambda m: values[m.group(0)[1:-1]], template)


def task_rubric(task: Task) -> str | None:
    """The task's own criteria (``metadata.rubric``: a text, or a list of texts or ``{criterion, points}``
    objects) as text, one ``- `` line per criterion; None without any."""
    given = task.metadata.get("rubric")
    if isinstance(given, str):
        return given.strip() or None
    if not isinstance(given, list):
        return None
    lines = []
    for item in given:
        if isinstance(item, dict):
            text = next((item[k] for k in ("criterion", "description", "text", "name") if item.get(k)), None)
            weight = next((item[k] for k in ("points", "weight") if k in item), None)
            if text:
                lines.append(f"- {text}" + (f" ({weight} points)" if weight is not None else ""))
        elif isinstance(item, str) and item.strip():
            lines.append(f"- {item.strip()}")
    return "\n".join(lines) or None


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
        pairwise: bool = Field(False, description="compare the answer with the task's reference answer, asked "
                                                  "twice with the order swapped (tasks without one: the rubric)")
        pairwise_template: str = DEFAULT_PAIRWISE_TEMPLATE
        pairwise_pattern: str = Field(PAIRWISE_PATTERN, description="regex with a 'label' group (A, B or TIE); "
                                                                    "the last match counts")
        outcome_rewards: dict[Literal["win", "tie", "loss"], float] = Field(
            default_factory=lambda: {"win": 1.0, "tie": 1.0, "loss": 0.0},
            description="pairwise: the answer's reward when both orders agree it beats, ties or loses to the reference")
        swap_disagreement_reward: float = Field(0.5, ge=0.0, le=1.0, description="pairwise: the reward when the two "
                                                                                 "orders disagree (position bias)")
        validate_with: Literal["endpoint", "stub"] = Field(
            "endpoint", description="rollgen validate: ask the judge endpoint, or a stand-in (exact match with the "
                                    "reference, in the judge's reply format) that checks everything but the judge")

        @field_validator("prompt_template")
        @classmethod
        def _has_response(cls, template: str) -> str:
            if "{response}" not in template:
                raise ValueError("must contain '{response}', where the answer to grade goes")
            return template

        @field_validator("score_pattern", "pairwise_pattern")
        @classmethod
        def _has_group(cls, pattern: str, info: ValidationInfo) -> str:
            group = "score" if info.field_name == "score_pattern" else "label"
            try:
                rx = re.compile(pattern)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
            if group not in rx.groupindex:
                raise ValueError(f"needs a named group (?P<{group}>...)")
            return pattern

        @field_validator("pairwise_template")
        @classmethod
        def _has_both(cls, template: str) -> str:
            if "{first}" not in template or "{second}" not in template:
                raise ValueError("must contain '{first}' and '{second}', where the two answers go")
            return template

        @field_validator("outcome_rewards")
        @classmethod
        def _outcomes(cls, rewards: dict[str, float]) -> dict[str, float]:
            if missing := {"win", "tie", "loss"} - set(rewards):
                raise ValueError(f"give a reward for each of win, tie, loss (missing: {', '.join(sorted(missing))})")
            if bad := {k: v for k, v in rewards.items() if not 0.0 <= v <= 1.0}:
                raise ValueError(f"rewards must be in [0, 1]: {bad}")
            return rewards

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
        self._pair_pattern = re.compile(params.pairwise_pattern)
        self._stub = False  # rollgen validate with validate_with=stub: no endpoint is called
        self._client: tuple[PolicyClient, asyncio.Semaphore] | None = None  # set by start()
        self._memory: dict[str, str] = {}
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self.calls = 0  # judge requests actually sent (cache misses)

    # ------------------------------------------------------------ prompt

    def answer(self, rollout: Rollout) -> str | None:
        """What the judge grades (``judge_input``), cut to its last ``max_response_chars``; None when the
        answer is empty or says nothing (nothing to judge)."""
        p = self.params
        if p.judge_input == "final_answer":
            answer, _ = final_answer(rollout.completion)
        else:
            answer = answer_region(rollout.completion).strip() or None
        if answer is None or is_empty_answer(answer):
            return None
        return answer[-p.max_response_chars:]

    @staticmethod
    def question(task: Task) -> str:
        """The request the answer replies to: ``metadata.question``, else the last user turn."""
        return str(task.metadata.get("question") or next(
            (m.get("content") for m in reversed(task.chat()) if m.get("role") == "user"), "") or "")

    @staticmethod
    def reference(task: Task) -> str | None:
        """The task's reference answer as text, None without one."""
        if task.answer is None or (isinstance(task.answer, str) and not task.answer.strip()):
            return None
        return task.answer if isinstance(task.answer, str) else json.dumps(task.answer, ensure_ascii=False)

    def render(self, task: Task, rollout: Rollout) -> str | None:
        """The judge prompt, or None when the answer is empty (nothing to judge)."""
        answer = self.answer(rollout)
        if answer is None:
            return None
        return fill(self.params.prompt_template, {"rubric": task_rubric(task) or self.params.rubric,
                                                  "question": self.question(task),
                                                  "reference": self.reference(task) or "(none)", "response": answer})

    # ------------------------------------------------------------ verify

    async def verify(self, task: Task, rollout: Rollout) -> Verdict:
        answer = self.answer(rollout)
        if answer is None:
            details = {"skipped": "no answer to judge", "decided": True}
            return Verdict(reward=0.0, details=details, verifier=self.name)
        reference = self.reference(task)
        if self.params.pairwise and reference is not None:
            return await self._versus_reference(task, answer, reference)
        prompt = self.render(task, rollout)
        assert prompt is not None
        key = self._key(prompt)
        parse = lambda text: parse_score(text, self._pattern, self.params.labels, self.params.max_score)
        reply, cached = await self._reply(key, prompt, parse, lambda: self._stub_score(answer, reference))
        reward, raw = parse(reply)
        details = {"score": raw, "judge_model": self.params.model, "cached": cached, "prompt_hash": key[:16],
                   "judge_reply": reply[-500:]}
        return Verdict(reward=reward, details=details, verifier=self.name)

    async def _versus_reference(self, task: Task, answer: str, reference: str) -> Verdict:
        p = self.params
        pair = await self.compare(task, reference, answer)
        # compare() speaks of the second answer (the rollout's) as "second": its outcome is win / tie / loss
        outcomes = [v["outcome_second"] for v in pair["verdicts"]]
        agree = outcomes[0] == outcomes[1]
        reward = p.outcome_rewards[outcomes[0]] if agree else p.swap_disagreement_reward
        verdicts = [{"order": "reference_first" if v["order"] == "as_given" else "answer_first",
                     "label": v["label"], "outcome": v["outcome_second"], "cached": v["cached"],
                     "judge_reply": v["judge_reply"]} for v in pair["verdicts"]]
        details = {"mode": "pairwise", "against": "reference", "outcome": outcomes[0] if agree else "disagree",
                   "swap_agree": agree, "verdicts": verdicts, "judge_model": p.model}
        return Verdict(reward=reward, details=details, verifier=self.name)

    async def compare(self, task: Task, first: str, second: str) -> dict[str, Any]:
        """Judge two answers to ``task`` (the reference and a rollout's, or two rollouts'), asked twice: as given
        and with the order swapped. Returns ``{"winner": "first" | "second" | "tie" | "disagree", "swap_agree",
        "verdicts": [...]}``, each verdict with its ``order`` (``as_given`` | ``swapped``), the judge's
        ``label`` (A, B, TIE), the outcome for each answer and the reply. Raises JudgeError."""
        p = self.params
        base = {"rubric": task_rubric(task) or p.rubric, "question": self.question(task)}
        reference = self.reference(task)
        orders = (("as_given", first, second), ("swapped", second, first))

        async def ask(order: str, a: str, b: str) -> dict[str, Any]:
            prompt = fill(p.pairwise_template, {**base, "first": a, "second": b})
            parse = lambda text: parse_preference(text, self._pair_pattern)
            reply, cached = await self._reply(self._key(prompt), prompt, parse, lambda: self._stub_pair(a, b, reference))
            label = parse(reply)
            winner, out_a, out_b = _OUTCOMES[label]
            if order == "swapped":  # position A showed the second answer
                winner = {"first": "second", "second": "first"}.get(winner, winner)
                out_a, out_b = out_b, out_a
            return {"order": order, "label": label, "winner": winner, "outcome_first": out_a, "outcome_second": out_b,
                    "cached": cached, "judge_reply": reply[-500:]}

        verdicts = list(await asyncio.gather(*(ask(*o) for o in orders)))
        agree = verdicts[0]["winner"] == verdicts[1]["winner"]
        return {"winner": verdicts[0]["winner"] if agree else "disagree", "swap_agree": agree, "verdicts": verdicts}

    def _key(self, prompt: str) -> str:
        p = self.params
        # the endpoint too: local servers often name every model "default", and two such judges must not share
        urls = sorted(u.rstrip("/") for u in p.base_urls) if p.base_urls else p.base_url.rstrip("/")  # replicas
        what = {"base_url": urls, "model": p.model, "api": p.api, "temperature": p.temperature, "max_output_tokens": p.max_output_tokens,
                "seed": p.seed, "system": p.system_prompt, "prompt": prompt}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()

    async def _reply(self, key: str, prompt: str, parse: Callable[[str], object] | None = None,
                     stub: Callable[[], str] | None = None) -> tuple[str, bool]:
        """The judge's reply text and whether it came from the cache; one call per key at a time
        (``cache: off``: every verification is its own call, e.g. to sample several judgements). A reply that
        ``parse`` rejects (JudgeError) is not cached. With the validation stub, ``stub()`` replies."""
        if self._stub and stub is not None:
            return stub(), False
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
                if parse is not None:
                    parse(text)  # raises JudgeError: an unparseable reply is not kept
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

    # ------------------------------------------------------------ validation

    def for_validation(self) -> tuple[LLMJudge, str]:
        """The judge ``rollgen validate`` scores its cases with, and a line saying what that checks."""
        if self.params.validate_with == "endpoint":
            return self, f"judge: the endpoint {self.params.base_url} (model {self.params.model}) graded every case"
        stub = type(self)(self.params)
        stub._stub = True
        return stub, ("judge: stub (validate_with=stub): exact match with the reference stood in for the judge, "
                      "replying in its verdict format; this checks the tasks, the judge prompts, the guards, verdict "
                      "parsing and the position-swap combination, not the judge model's grading (set "
                      "verifier.validate_with=endpoint and verifier.base_url to measure a live judge)")

    def _stub_score(self, answer: str, reference: str | None) -> str:
        """The stand-in's rubric reply: the best label or score for the reference answer, the worst otherwise."""
        good = reference is not None and _same(answer, reference)
        labels = self.params.labels
        if labels:
            label = (max if good else min)(labels, key=lambda k: labels[k])
            return f"(stub judge)\nVERDICT: {label}"
        return f"(stub judge)\nSCORE: {self.params.max_score if good else 0:g}"

    @staticmethod
    def _stub_pair(first: str, second: str, reference: str | None) -> str:
        """The stand-in's pairwise reply: TIE for the same text, else the answer that is the reference wins
        (neither: TIE)."""
        label = ("TIE" if _same(first, second) else "A" if reference is not None and _same(first, reference)
                 else "B" if reference is not None and _same(second, reference) else "TIE")
        return f"(stub judge)\nVERDICT: {label}"

    def validation_cases(self, task: Task, other: Task | None) -> list[Case] | None:
        """Cases for ``rollgen validate`` on open answers (``judge_input: full``): the reference itself, after a
        ``<think>`` block, must score 1; empty, the request repeated, another task's reference and the reference
        cut off must score 0 (a task with a rubric only gets the negatives). None when the judge grades a final
        answer: the standard renderings and perturbations of the gold apply."""
        from rollgen.validation.cases import Case

        if self.params.judge_input == "final_answer":
            return None
        reference = self.reference(task)
        question = self.question(task)
        cases = [Case("empty", False, ""), Case("question_repeated", False, question)]
        if reference is not None:
            cases += [Case("reference", True, reference),
                      Case("reference_after_thinking", True, f"<think>Let me plan the answer.</think>\n{reference}"),
                      Case("truncated", False, reference[: len(reference) // 2], finish_reason="length")]
        theirs = self.reference(other) if other is not None else None
        if theirs is not None and (reference is None or not _same(theirs, reference)):
            cases.append(Case("other_task", False, theirs))
        return cases

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


def _same(a: str, b: str) -> bool:
    """Whether two answers are the same text, case, spacing and outer punctuation aside."""
    def norm(t: str) -> str:
        return " ".join(answer_region(t).lower().split()).strip(" .!?")
    return norm(a) == norm(b)
