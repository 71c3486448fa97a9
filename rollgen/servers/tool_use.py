"""Tool use (``server=tool_use``): tasks the model solves by calling tools over several turns.

The server offers and executes six tools (``rollgen.servers.tools``): ``calculator``, ``convert_units``,
``add_days``, ``weekday``, ``days_between`` and ``lookup`` in the bundled countries and elements tables. The
rollout unit runs the loop: the model's tool calls of one turn run concurrently, each result (or the error: an
unknown tool, arguments that break the tool's schema, a tool past ``sampler.tool_timeout_s``) goes back as a
``tool`` message, and every turn stays in the rollout's ``messages`` in OpenAI format, so SFT rows teach tool use.

Without ``data_path``: rollgen's own 57 tasks (``data/tool_tasks.jsonl``), each with its gold answer and the
expected calls, turn by turn, as BFCL's possible answers (``metadata.expected_calls``: ``[[{"lookup": {"table":
["countries"], "key": ["Japan", "JPN"], "field": ["area_km2"]}}], [{"convert_units": {...}}]]``). Their
``metadata.kind``: ``single`` (one call), ``chained`` (a call per turn, each using the one before),
``parallel`` (several calls in one turn) and ``parallel_chained`` (both); ``kinds`` picks some.
With ``data_path``: rollgen rows (``prompt`` or ``messages``, ``answer``, optional ``tools`` and
``metadata.expected_calls``), NeMo Gym rows (``responses_create_params.tools`` among them) or Hugging Face
rows with ``fields``; a row must have an answer or expected calls, and the tools it lists must be ones this
server executes. With ``bfcl_answers``: ``data_path`` is a BFCL question file of the ``bfcl-eval`` wheel, read
without importing it (``rollgen.servers.bfcl``): each task offers its own functions, which are not run, and is
scored on its calls alone. ``conf/server/tool_use.yaml`` brings ``verifier=tool_use`` (the final answer, and with
``calls_weight`` the calls made, by BFCL's AST rules).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from rollgen.records import Task
from rollgen.servers.bfcl import bfcl_tasks
from rollgen.servers.taskfile import TaskFileServer, bundled_tasks, check_selection, file_sha256
from rollgen.servers.tools import TABLES_PATH, TOOL_SPECS, TOOLS, ToolError, run_tool
from rollgen.verifiers.toolcalls import expected_calls

__all__ = ["TOOL_TASKS", "ToolUseServer"]

TOOL_TASKS = Path(__file__).resolve().parent / "data" / "tool_tasks.jsonl"
DEFAULT_SYSTEM = ("You can call tools. Use them for every calculation, unit conversion, date computation and table "
                  "lookup instead of working it out yourself; call independent tools together in one turn.")
DEFAULT_INSTRUCTION = "When you have the result, give the final answer in \\boxed{}."


class ToolUseServer(TaskFileServer):
    """Tasks that need tools, and the tools: rollgen's own tasks or ``data_path``'s rows."""

    class Params(TaskFileServer.Params):
        system_prompt: str | None = Field(DEFAULT_SYSTEM, description="the system turn; null: none")
        instruction: str | None = Field(
            DEFAULT_INSTRUCTION, description="appended to prompts that do not say how to answer; null: none")
        kinds: list[str] | None = Field(
            None, description="the bundled tasks of these kinds only: single, chained, parallel, parallel_chained; "
                              "null: all")
        tools: list[str] | None = Field(None, description="the tools offered (names); null: all six")
        bfcl_answers: str | None = Field(
            None, description="BFCL's possible-answer file for the BFCL questions in data_path (bfcl-eval's "
                              "data/possible_answer/BFCL_v4_<category>.json): tasks scored on their calls, not run")

        @field_validator("tools")
        @classmethod
        def _known_tools(cls, names: list[str] | None) -> list[str] | None:
            if names is not None and (unknown := sorted(set(names) - set(TOOLS))):
                raise ValueError(f"unknown tools {', '.join(unknown)}; the tools are {', '.join(TOOLS)}")
            return names

    params: Params

    def tasks(self, skipped: list[str] | None = None) -> Iterator[Task]:
        """The bundled tasks, ``data_path``'s rows, or with ``bfcl_answers`` its BFCL questions."""
        if self.params.bfcl_answers and self.params.data_path:
            yield from (self.prompted(t) for t in bfcl_tasks(self.params.data_path, self.params.bfcl_answers))
        else:
            yield from super().tasks(skipped)

    def tools(self) -> list[dict[str, Any]]:
        """The OpenAI specs of the tools offered."""
        offered = self.params.tools
        return [s for s in TOOL_SPECS if offered is None or s["function"]["name"] in offered]

    async def call_tool(self, name: str, arguments: dict[str, Any], task: Task) -> str:
        """Run one tool in a thread, off the event loop (the rollout unit has checked the arguments against its
        schema). A tool's refusal of its input (``ToolError``: an unknown unit, division by zero) is the result
        the model reads."""
        if task.metadata.get("source") == "bfcl":
            return "(not run: a BFCL task is scored on its calls)"
        if self.params.tools is not None and name not in self.params.tools:
            raise ToolError(f"tool {name!r} is not offered here; the tools are {', '.join(self.params.tools)}")
        return await asyncio.to_thread(run_tool, name, arguments)

    def own_tasks(self) -> Iterator[Task]:
        yield from bundled_tasks(TOOL_TASKS, self.validate_task, "kind", self.params.kinds)

    def check(self) -> None:
        """Before any work: the task file has a row; the kinds named exist in the bundled set."""
        super().check()
        if self.params.bfcl_answers and not self.params.data_path:
            raise ValueError("bfcl_answers: set server.data_path to the BFCL question file it answers")
        if not self.params.data_path:
            check_selection(TOOL_TASKS, "kind", self.params.kinds, "kinds")

    def validate_task(self, task: Task) -> None:
        """A task needs an answer or expected calls; its tools (when it lists them) must be ones run here; its
        expected calls must be BFCL possible answers naming those tools."""
        calls = expected_calls(task.metadata.get("expected_calls"))  # ValueError when malformed
        if task.answer is None and not calls:
            raise ValueError(f"task {task.id!r} has nothing to check: give 'answer' (the final answer) or "
                             "'metadata.expected_calls' (the calls to make), or both")
        offered = {s["function"]["name"] for s in self.tools()}
        if task.tools is not None:
            named = [str((t.get("function") or t).get("name")) for t in task.tools]
            if unknown := [n for n in named if n not in offered]:
                raise ValueError(f"task {task.id!r} lists tools server=tool_use does not run: {', '.join(unknown)}; "
                                 f"the tools are {', '.join(sorted(offered))}")
        if unknown := sorted({next(iter(c)) for c in calls} - offered):
            raise ValueError(f"task {task.id!r} expects calls to tools not offered: {', '.join(unknown)}")

    def prompted(self, task: Task) -> Task:
        """The user turn (template, instruction, system prompt), with the tools offered on the task itself, so the
        tasks file and the dataset rows carry them."""
        task = super().prompted(task)
        return task if task.tools else task.model_copy(update={"tools": self.tools()})

    def fingerprint(self) -> dict[str, Any]:
        """The params, the lookup tables' hash, and the task file's hash or the bundled tasks' hash."""
        fp = super().fingerprint()
        fp["tables_sha256"] = file_sha256(TABLES_PATH)
        if self.params.bfcl_answers:
            fp["bfcl_answers_sha256"] = file_sha256(Path(self.params.bfcl_answers))
        else:
            fp.pop("bfcl_answers", None)
        if not self.params.data_path:
            fp["tasks_sha256"] = file_sha256(TOOL_TASKS)
        else:
            fp.pop("kinds", None)
        return fp
