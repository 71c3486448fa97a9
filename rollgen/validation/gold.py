"""``rollgen validate`` on a task set: does the verifier (behind the guards) score gold answers and their
equivalent renderings 1, and perturbed answers 0?

Every case is scored as a run would score it: guards first, then the verifier. With
``validate.verifier_alone`` the verifier also scores the cases a guard caught, so the report shows what
each guard saves. Output: ``report.json`` and ``report.md`` (a confusion matrix, false-positive and
false-negative rates per kind, up to ``validate.examples`` failures per kind, guard catches).

A verifier that calls a model (the LLM judge) may offer ``for_validation() -> (verifier, note)``: the verifier
the cases are scored with (itself, or a stand-in that needs no endpoint) and a line, printed and written to the
report, saying what that checks.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollgen.build import build_verifier
from rollgen.config import RunConfig
from rollgen.records import Rollout, Task
from rollgen.runtime import Runtime
from rollgen.verifiers import verify
from rollgen.verifiers.extract import extract_answer, gold_answers, task_question
from rollgen.verifiers.source import scorer_is_built, source_score, source_scorer
from rollgen.validation.cases import (
    PERTURBATIONS,
    RENDERINGS,
    Case,
    equivalent,
    perturbations,
    renderings,
)
from rollgen.verifiers.guards import Guarded, check

__all__ = ["run_gold_validation", "write_gold_report"]

_OTHER_LOOKAHEAD = 50


@dataclass(slots=True)
class Scored:
    task_id: str
    gold: str
    case: Case
    guards: list[str]
    reward: float | None  # the verifier's, None when not run or it raised
    error: str | None
    details: dict[str, Any] | None

    @property
    def pipeline(self) -> float | None:
        """The reward a run would record: 0 when a guard trips, else the verifier's (None: verifier_error)."""
        return 0.0 if self.guards else self.reward

    def failed(self) -> bool:
        return self.case.failed(self.pipeline)


def _gold(task: Task) -> str | None:
    """The gold answer the cases are made from: the first acceptable one; None without one."""
    return next(iter(gold_answers(task.answer)), None) if task.answer is not None else None


def _other(golds: Sequence[str | None], i: int) -> str | None:
    gold = golds[i]
    n = len(golds)
    for k in range(1, min(n, _OTHER_LOOKAHEAD)):
        cand = golds[(i + k) % n]
        if cand is not None and gold is not None and not equivalent(cand, gold):
            return cand
    return None


async def _source_accepts(task: Task, cases: list[Case], skipped: Counter[str]) -> list[Case]:
    """``cases`` without the renderings the task's own source scorer rejects: equivalence is the source's to
    define (a decimal is not an answer to "simplify to lowest terms"). Counted in ``skipped`` by kind."""
    scorer = source_scorer(task) if scorer_is_built(task) else await asyncio.to_thread(source_scorer, task)
    if scorer is None:
        return cases
    question = task_question(task)
    kept = []
    for case in cases:
        answer = extract_answer(case.completion, question)[0] if case.positive else None
        try:
            rejected = answer is not None and source_score(scorer, answer) < 1.0
        except Exception:  # noqa: BLE001 - a scorer that cannot read it: the verifier decides, as in a run
            rejected = False
        if rejected:
            skipped[case.kind] += 1
        else:
            kept.append(case)
    return kept


async def _score_all(cfg: RunConfig, tasks: list[Task], verifier: Any,
                     skipped: Counter[str] | None = None) -> list[Scored]:
    v = cfg.validation
    render_kinds = set(v.renderings) if v.renderings is not None else None
    perturb_kinds = set(v.perturbations) if v.perturbations is not None else None
    golds = [_gold(t) for t in tasks]
    slots = asyncio.Semaphore(v.concurrency)
    results: list[Scored] = []

    async def one(task: Task, gold: str, case: Case, repeat: int) -> None:
        try:
            rollout = Rollout(id=f"{task.id}#{repeat}", task_id=task.id, repeat=repeat,
                              messages=[*task.chat(), {"role": "assistant", "content": case.completion}],
                              completion=case.completion, finish_reason=case.finish_reason,
                              status="truncated" if case.finish_reason == "length" else "ok")
            trips = [g for g, _ in check(cfg.guards, task, rollout)]
            reward = error = details = None
            if not trips or v.verifier_alone:
                try:
                    verdict = await verify(verifier, task, rollout)
                    reward, details = verdict.reward, verdict.details
                except Exception as e:  # noqa: BLE001 - a verifier error is a result here
                    error = f"{type(e).__name__}: {e}"[:300]
            results.append(Scored(task.id, gold, case, trips, reward, error, details))
        finally:
            slots.release()

    own_cases = getattr(verifier, "validation_cases", None)
    known = set(RENDERINGS) | set(PERTURBATIONS)
    async with asyncio.TaskGroup() as tg:
        for i, (task, gold) in enumerate(zip(tasks, golds)):
            cases = own_cases(task, tasks[(i + 1) % len(tasks)] if len(tasks) > 1 else None) if own_cases else None
            if cases is not None:  # the verifier's own cases; the kind filters apply to the standard kinds
                wanted = (render_kinds or set(RENDERINGS)) | (perturb_kinds or set(PERTURBATIONS))
                cases = [c for c in cases if c.kind not in known or c.kind in wanted]
                gold = gold or "(see the verifier's cases)"
            elif gold is None:
                continue
            else:
                cases = renderings(gold, render_kinds, task_question(task)) + perturbations(
                    task, gold, _other(golds, i), perturb_kinds, v.rambling_chars)
                cases = await _source_accepts(task, cases, skipped if skipped is not None else Counter())
            for j, case in enumerate(cases):
                await slots.acquire()
                tg.create_task(one(task, gold, case, j))
    return results


async def run_gold_validation(cfg: RunConfig, tasks: list[Task], runtime: Runtime) -> dict[str, Any]:
    """Score every case of ``tasks`` with the verifier, started on ``runtime``; return the report (see
    ``write_gold_report``)."""
    t0 = time.perf_counter()
    built = build_verifier(cfg.verifier, cfg.guards)
    verifier = built.inner if isinstance(built, Guarded) else built
    note = None
    if (for_validation := getattr(verifier, "for_validation", None)) is not None:
        verifier, note = for_validation()  # a judge: itself, or a stand-in that needs no endpoint
    verifier = await runtime.attach(verifier)
    skipped: Counter[str] = Counter()
    scored = await _score_all(cfg, tasks, verifier, skipped)
    report = summarize(cfg, scored)
    report["tasks"] = len(tasks)
    report["tasks_without_gold"] = sum(_gold(t) is None for t in tasks)
    report["renderings_the_source_rejects"] = dict(sorted(skipped.items()))
    report["elapsed_s"] = round(time.perf_counter() - t0, 3)
    if note:
        report["verifier_note"] = note
    return report


def _example(s: Scored) -> dict[str, Any]:
    text = s.case.completion
    shown = text if len(text) <= 300 else f"{text[:150]} …[{len(text) - 250} chars]… {text[-100:]}"
    out: dict[str, Any] = {"task_id": s.task_id, "gold": s.gold, "completion": shown, "reward": s.pipeline,
                           "verifier_reward": s.reward}
    if s.guards:
        out["guards"] = s.guards
    if s.error:
        out["error"] = s.error
    if s.details:
        out["details"] = {k: v for k, v in s.details.items() if k in ("extracted", "rule", "method", "decided_by",
                                                                       "score", "hedged", "match")}
    return out


def summarize(cfg: RunConfig, scored: list[Scored]) -> dict[str, Any]:
    v = cfg.validation
    kinds: dict[str, dict[str, Any]] = {}
    confusion = {side: Counter() for side in ("positive", "negative")}
    guard_catches: dict[str, Counter[str]] = {}
    guard_saves: dict[str, Counter[str]] = {}
    for s in sorted(scored, key=lambda s: (s.task_id, s.case.kind)):
        k = kinds.setdefault(s.case.kind, {"positive": s.case.positive, "cases": 0, "failures": 0, "errors": 0,
                                           "caught_by_guards": 0, "verifier_alone_failures": 0, "examples": []})
        k["cases"] += 1
        r = s.pipeline
        bucket = "error" if r is None else "reward_1" if r >= 1.0 else "reward_0" if r <= 0.0 else "partial"
        confusion["positive" if s.case.positive else "negative"][bucket] += 1
        if s.error:
            k["errors"] += 1
        if s.guards:
            k["caught_by_guards"] += 1
            for g in s.guards:
                guard_catches.setdefault(g, Counter())[s.case.kind] += 1
            if not s.case.positive and s.case.failed(s.reward):
                k["verifier_alone_failures"] += 1
                guard_saves.setdefault(s.guards[0], Counter())[s.case.kind] += 1
        if s.failed():
            k["failures"] += 1
            if len(k["examples"]) < v.examples:
                k["examples"].append(_example(s))
    problems: list[str] = []
    for name, k in kinds.items():
        k["rate"] = round(k["failures"] / k["cases"], 6) if k["cases"] else 0.0
        limit = v.max_false_negative_rate if k["positive"] else v.max_false_positive_rate
        if k["rate"] > limit:
            what = "false-negative" if k["positive"] else "false-positive"
            problems.append(f"{name}: {what} rate {k['rate']:.4f} > {limit:g} ({k['failures']} of {k['cases']})")
    pos, neg = confusion["positive"], confusion["negative"]
    n_pos, n_neg = sum(pos.values()), sum(neg.values())
    fn = sum(k["failures"] for k in kinds.values() if k["positive"])  # a case's own bound decides
    fp = sum(k["failures"] for k in kinds.values() if not k["positive"])
    return {
        "mode": "gold",
        "passed": not problems,
        "problems": problems,
        "verifier": cfg.verifier.model_dump(mode="json", by_alias=True),
        "guards": cfg.guards.model_dump(mode="json"),
        "thresholds": {"max_false_positive_rate": v.max_false_positive_rate,
                       "max_false_negative_rate": v.max_false_negative_rate},
        "cases": len(scored),
        "confusion": {side: {b: c[b] for b in ("reward_1", "partial", "reward_0", "error")}
                      for side, c in confusion.items()},
        "false_positive_rate": round(fp / n_neg, 6) if n_neg else None,
        "false_negative_rate": round(fn / n_pos, 6) if n_pos else None,
        "kinds": dict(sorted(kinds.items(), key=lambda kv: (not kv[1]["positive"], kv[0]))),
        "guard_catches": {g: dict(c) for g, c in sorted(guard_catches.items())},
        "guard_saves": {g: dict(c) for g, c in sorted(guard_saves.items())},
    }


def _md_code(text: str) -> str:
    text = text.replace("\n", "⏎").replace("|", "\\|")
    return f"`{text}`" if "`" not in text else text


def write_gold_report(report: dict[str, Any], out: Path) -> None:
    """``report.json`` and ``report.md`` in ``out``."""
    from rollgen.jsonl import write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", report)
    c = report["confusion"]
    target = report["verifier"].get("_target_")
    lines = [
        f"# rollgen validate: `{target}`", "",
        (f"**{'PASS' if report['passed'] else 'FAIL'}** · {report['tasks']} tasks, {report['cases']} cases, "
         f"{report['elapsed_s']} s · thresholds: false-positive rate ≤ "
         f"{report['thresholds']['max_false_positive_rate']:g}, false-negative rate ≤ "
         f"{report['thresholds']['max_false_negative_rate']:g} per kind"), "",
        *(f"- {p}" for p in report["problems"]), "",
        *([report["verifier_note"], ""] if report.get("verifier_note") else []),
        "## Confusion matrix (guards, then the verifier, as in a run)", "",
        "| cases | reward 1 | partial | reward 0 | verifier_error |", "|---|---|---|---|---|",
        "| gold and equivalent renderings (should be 1) | " + " | ".join(str(c["positive"][b]) for b in
                                                                        ("reward_1", "partial", "reward_0", "error")) + " |",
        "| perturbed answers (should be 0) | " + " | ".join(str(c["negative"][b]) for b in
                                                           ("reward_1", "partial", "reward_0", "error")) + " |", "",
        f"False-positive rate {report['false_positive_rate']}, false-negative rate {report['false_negative_rate']}.", "",
        *([("Renderings left out because the task's own scorer (reasoning-gym) does not accept that form: "
            + ", ".join(f"{k} {n}" for k, n in report["renderings_the_source_rejects"].items()) + "."), ""]
          if report.get("renderings_the_source_rejects") else []),
        "## By kind", "",
        "| kind | should score | cases | failures | rate | verifier errors | caught by guards | verifier alone would accept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, k in report["kinds"].items():
        alone = "" if k["positive"] else str(k["verifier_alone_failures"])
        lines.append(f"| {name} | {1 if k['positive'] else 0} | {k['cases']} | {k['failures']} | {k['rate']:.4f} "
                     f"| {k['errors']} | {k['caught_by_guards']} | {alone} |")
    lines += ["", "## Guards", "", ("Each guard's catches by kind; in brackets, how many of them the verifier alone "
                                    "would have rewarded (what the guard saves)."), "", "| guard | catches |", "|---|---|"]
    for g, kinds in report["guard_catches"].items():
        saves = report["guard_saves"].get(g, {})
        cells = ", ".join(f"{k} {n}" + (f" [{saves[k]}]" if saves.get(k) else "") for k, n in sorted(kinds.items()))
        lines.append(f"| {g} | {cells} |")
    if not report["guard_catches"]:
        lines.append("| (none) | guards are off or caught nothing |")
    failing = {n: k for n, k in report["kinds"].items() if k["examples"]}
    if failing:
        lines += ["", "## Failures", ""]
        for name, k in failing.items():
            what = "should score 1" if k["positive"] else "should score 0"
            lines += [f"### {name} ({what}; {k['failures']} of {k['cases']})", ""]
            for ex in k["examples"]:
                extra = f", guards {ex['guards']}" if ex.get("guards") else ""
                extra += f", error {ex['error']!r}" if ex.get("error") else ""
                extra += f", details {ex['details']}" if ex.get("details") else ""
                lines.append(f"- task `{ex['task_id']}`, gold `{ex['gold']}`: {_md_code(ex['completion'])} → "
                             f"reward {ex['reward']}{extra}")
            lines.append("")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
