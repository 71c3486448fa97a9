"""Open-ended requests scored by an LLM judge (``server=llm_judge``): explanations, advice, summaries, short writing.

Without ``data_path``: rollgen's own 44 requests (``data/judge_prompts.jsonl``), 11 in each of four domains
(``metadata.domain``: explanation, advice, summarisation, writing; ``domains`` picks some), each with a
reference answer and a rubric of three criteria. With ``data_path``: rows with a request and a reference answer
(``answer``, NeMo Gym's ``expected_answer``), a rubric (``rubric``: a text, or a list of criteria as texts or
``{criterion, points}`` objects), or both; ``fields`` renames columns (``server.fields={question: instruction,
answer: output, rubric: criteria}``). A row with neither is a bad row (``file:line``).

``conf/server/llm_judge.yaml`` brings ``verifier=open_judge`` (``rollgen.verifiers.judge.LLMJudge``: the answer
compared with the reference twice, the order swapped; rubric scoring for tasks without a reference) and
``guards=prose``. The judge endpoint is ``verifier.base_url`` / ``verifier.model``, its key read from
``verifier.api_key_env``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from rollgen.records import Task
from rollgen.servers.taskfile import TaskFileServer, bundled_tasks, check_selection, file_sha256
from rollgen.verifiers.judge import task_rubric

__all__ = ["JUDGE_PROMPTS", "JudgeServer"]

JUDGE_PROMPTS = Path(__file__).resolve().parent / "data" / "judge_prompts.jsonl"


class JudgeServer(TaskFileServer):
    """Open-ended requests with a reference answer and/or a rubric: rollgen's own or ``data_path``'s."""

    class Params(TaskFileServer.Params):
        domains: list[str] | None = Field(None, description="the bundled requests of these domains only; null: all")

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        yield from bundled_tasks(JUDGE_PROMPTS, self.validate_task, "domain", self.params.domains)

    def check(self) -> None:
        """Before any work: the task file has a row; the domains named exist in the bundled set."""
        super().check()
        if not self.params.data_path:
            check_selection(JUDGE_PROMPTS, "domain", self.params.domains, "domains")

    def validate_task(self, task: Task) -> None:
        """A task needs a reference answer or a rubric for the judge to grade against."""
        reference = task.answer
        has_reference = reference is not None and not (isinstance(reference, str) and not reference.strip())
        rubric = task.metadata.get("rubric")
        if rubric is not None and task_rubric(task) is None:
            raise ValueError(f"task {task.id!r}: 'rubric' must be a text or a list of criteria (texts or "
                             "{criterion, points} objects)")
        if not has_reference and rubric is None:
            raise ValueError(f"task {task.id!r} has neither a reference answer ('answer') nor a 'rubric' for the "
                             "judge to grade against (server.fields maps your column names)")

    def fingerprint(self) -> dict[str, Any]:
        """The params plus the task file's hash, or the bundled requests' hash."""
        fp = super().fingerprint()
        if not self.params.data_path:
            fp["tasks_sha256"] = file_sha256(JUDGE_PROMPTS)
        else:
            fp.pop("domains", None)
        return fp
