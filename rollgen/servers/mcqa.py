"""Multiple-choice questions (``server=mcqa``): a question, its lettered options, and the gold option.

Without ``data_path``: rollgen's own 50 questions over 14 subjects (``data/mcqa_questions.jsonl``: biology,
chemistry, physics, astronomy, geography, history, mathematics, computer science, literature, economics,
language, art, music, health; ``metadata.subject``; ``subjects`` picks some). With ``data_path``: rows with a
question, its options and the gold answer, in the shapes datasets use (``fields`` renames columns):

* options as a list (``options`` or ``choices``: MMLU, ``{"question", "choices", "answer": 2}``), as ARC's
  ``{"text": [...], "label": [...]}`` (gold: one of the labels, ``server.fields={answer: answerKey}``), as a
  ``{"A": ..., "B": ...}`` object, or as columns ``A``, ``B``, ``C``, ... of the row;
* the gold as a letter (``B``, ``(B)``), a 0-based index, a label, or the option's text.

A bare question becomes ``question``, a blank line, then one ``A) option`` line per option, then the
instruction. Rows given as chat ``messages`` are sent as they are (their options, when listed in metadata,
still let the verifier read an answer given as option text). ``conf/server/mcqa.yaml`` brings
``verifier=choice`` and ``guards=choice``.

``shuffle_choices``: each repeat of a task shows its options in its own order, ``choice_order(f"{seed}:{task
id}:{repeat}")`` (``for_repeat``), with the gold letter moved with its option; the verifier finds the same
order from the rollout's repeat, so stored rollouts re-verify as they were scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from rollgen.records import Task
from rollgen.servers.taskfile import TaskFileServer, bundled_tasks, check_selection, file_sha256
from rollgen.verifiers.choice import gold_index
from rollgen.verifiers.extract import choice_order

__all__ = ["MCQA_QUESTIONS", "McqaServer", "render"]

MCQA_QUESTIONS = Path(__file__).resolve().parent / "data" / "mcqa_questions.jsonl"
LETTERS = "ABCDEFGHIJ"
DEFAULT_INSTRUCTION = 'Answer with the letter of the correct option, as "Answer: X".'


def render(question: str, options: list[str]) -> str:
    """The question, a blank line, and one ``A) option`` line per option."""
    return question.rstrip() + "\n\n" + "\n".join(f"{LETTERS[i]}) {o}" for i, o in enumerate(options))


def _options(meta: dict[str, Any]) -> tuple[list[str], list[str] | None, list[str]]:
    """``(options, labels, metadata keys they came from)`` of a row's metadata; ValueError when there are none."""
    for key in ("options", "choices"):
        if key not in meta:
            continue
        given = meta[key]
        if isinstance(given, dict) and isinstance(given.get("text"), list):  # ARC: {text: [...], label: [...]}
            labels = given.get("label")
            return [str(o) for o in given["text"]], [str(x) for x in labels] if isinstance(labels, list) else None, [key]
        if isinstance(given, dict) and given and all(isinstance(k, str) and len(k) == 1 for k in given):
            keys = sorted(given)
            return [str(given[k]) for k in keys], keys, [key]
        if isinstance(given, list):
            return [str(o) for o in given], None, [key]
        raise ValueError(f"'{key}' must be a list of options, {{text, label}} lists or a {{letter: option}} object")
    columns = []
    for letter in LETTERS:
        if letter not in meta:
            break
        columns.append(letter)
    if len(columns) >= 2:
        return [str(meta[c]) for c in columns], None, columns
    raise ValueError("no options: give 'options' (or 'choices') as a list, or columns A, B, C, ... "
                     "(server.fields maps your column names)")


class McqaServer(TaskFileServer):
    """Multiple-choice questions: rollgen's own or ``data_path``'s; options rendered as ``A) ...`` lines."""

    class Params(TaskFileServer.Params):
        instruction: str | None = Field(
            DEFAULT_INSTRUCTION, description="appended to prompts that do not say how to answer; null: none")
        shuffle_choices: bool = Field(False, description="show each repeat the options in its own order (the "
                                                         "gold letter follows its option)")
        seed: int = Field(0, description="with shuffle_choices: the orders are drawn from (seed, task id, repeat)")
        subjects: list[str] | None = Field(None, description="the bundled questions of these subjects only; "
                                                             "null: all")

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        yield from bundled_tasks(MCQA_QUESTIONS, self.validate_task, "subject", self.params.subjects)

    def check(self) -> None:
        """Before any work: the task file has a row; the subjects named exist in the bundled set."""
        super().check()
        if not self.params.data_path:
            check_selection(MCQA_QUESTIONS, "subject", self.params.subjects, "subjects")

    def validate_task(self, task: Task) -> None:
        """A task needs a gold answer and 2 to 10 non-empty options (or chat messages with a gold answer)."""
        self._choice_task(task)

    def _choice_task(self, task: Task) -> Task:
        """``task`` with ``metadata.options`` a list, ``answer`` the gold letter and ``metadata.question`` the
        bare question. Raises ValueError when the row cannot be a multiple-choice task."""
        if task.answer is None:
            raise ValueError(f"task {task.id!r} has no gold answer: give 'answer' as a letter, a 0-based index or "
                             "the option's text")
        meta = dict(task.metadata)
        if task.messages and not any(k in meta for k in ("options", "choices", "A")):
            return task  # a prompt already written: the gold letter alone decides
        options, labels, keys = _options(meta)
        if not 2 <= len(options) <= len(LETTERS) or not all(o.strip() for o in options):
            raise ValueError(f"task {task.id!r}: {len(options)} options; give 2 to {len(LETTERS)} non-empty ones")
        letter = LETTERS[gold_index(task.answer, options, LETTERS, labels)]
        for key in keys:
            meta.pop(key, None)
        meta["options"] = options
        if task.prompt is not None:
            meta["question"] = task.prompt
        return task.model_copy(update={"answer": letter, "metadata": meta})

    def prompted(self, task: Task) -> Task:
        """The question with its options as ``A) ...`` lines, then the template and instruction."""
        task = self._choice_task(task)
        if task.messages:
            return super().prompted(task)
        meta = dict(task.metadata)
        if self.params.shuffle_choices:
            meta["choice_seed"] = self.params.seed
        bare = task.model_copy(update={"prompt": render(meta["question"], meta["options"]), "metadata": meta})
        return super().prompted(bare)

    def for_repeat(self, task: Task, repeat: int) -> Task:
        """With ``shuffle_choices``: the task with its options in this repeat's order and the gold letter moved
        with its option (``metadata.choice_order`` says which option each position shows)."""
        seed = task.metadata.get("choice_seed")
        if seed is None or "question" not in task.metadata:
            return task
        options = list(task.metadata["options"])
        order = choice_order(f"{seed}:{task.id}:{repeat}", len(options))
        gold = LETTERS[order.index(LETTERS.index(str(task.answer)))]
        meta = {k: v for k, v in task.metadata.items() if k != "choice_seed"}
        meta.update(options=[options[j] for j in order], choice_order=order)
        bare = Task(id=task.id, prompt=render(meta["question"], meta["options"]), answer=gold, metadata=meta)
        return TaskFileServer.prompted(self, bare)

    def fingerprint(self) -> dict[str, Any]:
        """The params plus the task file's hash, or the bundled questions' hash."""
        fp = super().fingerprint()
        if not self.params.data_path:
            fp["tasks_sha256"] = file_sha256(MCQA_QUESTIONS)
        else:
            fp.pop("subjects", None)
        return fp
