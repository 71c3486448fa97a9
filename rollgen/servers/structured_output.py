"""Structured output (``server=structured_output``): JSON that must match a JSON Schema and the expected values.

Without ``data_path``: rollgen's own 35 extraction tasks (``data/structured_tasks.jsonl``): a short text (an
order, an invoice, a flight, a lab report, ...; ``metadata.domain``), a schema with types, enums, patterns,
nested objects and arrays, and the gold object. With ``data_path``: rows with a text, a ``schema`` (an object
or a JSON string) and, optionally, the expected object as ``answer`` (an object or a JSON string; without
one the schema alone decides), or NeMo Gym structured-outputs rows (``responses_create_params.input`` with
the schema in the prompt, ``schema`` as a string, ``schema_type: json``) as they are. ``fields`` renames
columns (``server.fields={question: document, schema: json_schema, answer: expected}``).

A bare text becomes the user turn through ``prompt_template``, whose ``{schema}`` is the schema as indented
JSON; then the instruction. ``conf/server/structured_output.yaml`` brings ``verifier=json`` (parses, validates
with ``jsonschema``, partial credit per expected field) and ``guards=json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from rollgen.records import Task
from rollgen.servers.prompts import answer_instruction
from rollgen.servers.taskfile import TaskFileServer, bundled_tasks, check_selection, file_sha256

__all__ = ["STRUCTURED_TASKS", "StructuredServer"]

STRUCTURED_TASKS = Path(__file__).resolve().parent / "data" / "structured_tasks.jsonl"
DEFAULT_TEMPLATE = ("Extract the information in this text into a JSON object that matches the JSON Schema below."
                    "\n\nText:\n{question}\n\nJSON Schema:\n```json\n{schema}\n```")
DEFAULT_INSTRUCTION = "Reply with only the JSON object, in one ```json code block."
_SCHEMA_SLOT = "\x00schema\x00"  # where the schema goes once the text is in (a text's own "{schema}" stays)


def _json_value(value: Any, key: str, kinds: tuple[type, ...]) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise ValueError(f"'{key}' is a string that is not JSON ({e})") from None
    if not isinstance(value, kinds):
        raise ValueError(f"'{key}' must be a JSON {' or '.join(k.__name__.replace('dict', 'object').replace('list', 'array') for k in kinds)}")
    return value


def _check_schema(schema: dict[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ValueError(f"'schema' is not a valid JSON Schema: {e.message}") from None


class StructuredServer(TaskFileServer):
    """Texts to extract into JSON of a given schema: rollgen's own, or ``data_path``'s rows with a schema."""

    class Params(TaskFileServer.Params):
        prompt_template: str = Field(DEFAULT_TEMPLATE, description="the user turn: {question} is the text, {schema} "
                                                                   "the schema as indented JSON")
        instruction: str | None = Field(
            DEFAULT_INSTRUCTION, description="appended to prompts that do not say how to answer; null: none")
        domains: list[str] | None = Field(None, description="the bundled tasks of these domains only; null: all")

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        yield from bundled_tasks(STRUCTURED_TASKS, self.validate_task, "domain", self.params.domains)

    def check(self) -> None:
        """Before any work: the task file has a row; the domains named exist in the bundled set."""
        super().check()
        if not self.params.data_path:
            check_selection(STRUCTURED_TASKS, "domain", self.params.domains, "domains")

    def validate_task(self, task: Task) -> None:
        """A task needs a valid JSON Schema or an expected object (JSON strings are read); only JSON schemas."""
        self._structured(task)

    def _structured(self, task: Task) -> Task:
        """``task`` with ``metadata.schema`` and ``answer`` as JSON values (not strings). ValueError if unusable."""
        meta = dict(task.metadata)
        kind = str(meta.get("schema_type", "json")).lower()
        if kind != "json":
            raise ValueError(f"task {task.id!r}: schema_type {kind!r}: only JSON output is checked here")
        answer = task.answer
        if answer is not None:
            answer = _json_value(answer, "answer", (dict, list))
        if meta.get("schema") is not None:
            meta["schema"] = _json_value(meta["schema"], "schema", (dict,))
            _check_schema(meta["schema"])
        elif answer is None:
            raise ValueError(f"task {task.id!r} has nothing to check the JSON against: give 'schema' (a JSON "
                             "Schema) or 'answer' (the expected object), or both")
        return task.model_copy(update={"answer": answer, "metadata": meta})

    def prompted(self, task: Task) -> Task:
        """The template with the text and the schema, then the instruction (unless the text or template already
        says how to answer); chat messages are sent as they are."""
        task = self._structured(task)
        if task.messages:
            return super().prompted(task)
        p = self.params
        schema = task.metadata.get("schema")
        shown = json.dumps(schema, indent=2, ensure_ascii=False) if schema is not None else "(none given)"
        template = p.prompt_template.replace("{schema}", _SCHEMA_SLOT)
        text = template.replace("{question}", task.prompt or "")
        if p.instruction and answer_instruction(text) is None:
            text = f"{text.rstrip()}\n{p.instruction}"
        user = {"role": "user", "content": text.replace(_SCHEMA_SLOT, shown)}
        return super().prompted(task.model_copy(update={"messages": [user], "prompt": None}))

    def added_text(self) -> list[str]:
        """The prompt template's fixed parts (around ``{question}`` and ``{schema}``) and the instruction."""
        parts = [piece for part in self.params.prompt_template.split("{question}") for piece in part.split("{schema}")]
        return [p for p in (*parts, self.params.instruction) if p and p.strip()]

    def fingerprint(self) -> dict[str, Any]:
        """The params plus the task file's hash, or the bundled tasks' hash."""
        fp = super().fingerprint()
        if not self.params.data_path:
            fp["tasks_sha256"] = file_sha256(STRUCTURED_TASKS)
        else:
            fp.pop("domains", None)
        return fp
