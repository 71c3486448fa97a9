"""JSON output: parses, is valid against a JSON Schema, and its fields match the gold object.

The JSON is the last fenced ```json block, else the outermost ``{...}`` / ``[...]``, else the whole answer.
The schema comes from the params or from ``task.metadata[schema_key]``; ``strict`` also forbids extra
properties and requires every listed one (NeMo Gym's structured-outputs "strict mode").

Reward: an answer that does not parse, or breaks the schema, scores 0. A valid one scores 1 when there is
nothing to compare with, else the share of gold fields that match (partial credit, ``details["fields"]``
says which). ``fields`` picks the dotted paths compared (default: every leaf of ``task.answer``).
"""

from __future__ import annotations

import copy
import json
import math
import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rollgen.records import Rollout, Task, Verdict
from rollgen.verifiers import Verifier
from rollgen.validation.cases import Case
from rollgen.verifiers.extract import answer_region, normalize_text

__all__ = ["JsonSchemaVerifier", "extract_json"]

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_MAX_ERRORS = 3


def extract_json(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` for the JSON in ``text``, or ``(None, reason)`` when there is none that parses."""
    region = answer_region(text).strip()
    candidates = [m.group(1) for m in _FENCE.finditer(region)][::-1]
    for open_, close in (("{", "}"), ("[", "]")):
        i, j = region.find(open_), region.rfind(close)
        if 0 <= i < j:
            candidates.append(region[i : j + 1])
    candidates.append(region)
    reason = "no JSON found"
    for cand in candidates:
        try:
            return json.loads(cand), None
        except ValueError as e:
            reason = f"invalid JSON: {e}"
    return None, reason


def _strict(schema: Any) -> Any:
    """``additionalProperties: false`` and every property required, at every object level."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" or "properties" in out:
            out.setdefault("additionalProperties", False)
            out["required"] = sorted(set(out.get("required", [])) | set(out.get("properties", {})))
        return out
    if isinstance(schema, list):
        return [_strict(x) for x in schema]
    return schema


@lru_cache(maxsize=256)
def _validator(schema_json: str, strict: bool) -> Any:
    import jsonschema

    schema = json.loads(schema_json)
    if strict:
        schema = _strict(copy.deepcopy(schema))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj} if prefix else {}


_MISSING = object()


def _get(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return _MISSING
    return obj


def _equal(a: Any, b: Any, normalize: bool) -> bool:
    """Equal as JSON values: numbers by value (``12`` is ``12.0``), strings after ``normalize_text``, lists item by
    item in order and objects key by key, by the same rules."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if normalize and isinstance(a, str) and isinstance(b, str):
        return normalize_text(a) == normalize_text(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y, normalize) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k], normalize) for k in a)
    return a == b


class JsonSchemaVerifier(Verifier):
    """JSON that parses, validates against a JSON Schema, and matches the gold object field by field."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        json_schema: dict[str, Any] | None = Field(None, alias="schema", description="a JSON Schema; "
                                                   "null = task.metadata[schema_key] (or no schema check)")
        schema_key: str = "schema"
        strict: bool = Field(False, description="no extra properties; every property required")
        fields: list[str] | None = Field(None, description="dotted paths compared with task.answer; null = all leaves")
        normalize_strings: bool = Field(True, description="compare strings after normalize_text")

        @field_validator("json_schema")
        @classmethod
        def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
            if schema is not None:
                import jsonschema

                try:
                    jsonschema.validators.validator_for(schema).check_schema(schema)
                except jsonschema.SchemaError as e:
                    raise ValueError(f"not a valid JSON Schema: {e.message}") from None
            return schema

    params: Params
    name = "json"

    def validation_cases(self, task: Task, other: Task | None) -> list[Case] | None:
        """Cases for ``rollgen validate`` when the gold answer is a JSON object (else the standard ones)."""
        def parsed(answer: Any) -> Any:
            if isinstance(answer, str):
                try:
                    return json.loads(answer)
                except ValueError:
                    return None
            return answer

        question = next((m.get("content") for m in reversed(task.chat()) if m.get("role") == "user"), "") or ""
        return json_cases(parsed(task.answer), parsed(other.answer) if other else None, str(question))

    def verify(self, task: Task, rollout: Rollout) -> Verdict:
        p = self.params
        value, reason = extract_json(rollout.completion)
        details: dict[str, Any] = {"parsed": reason is None, "decided": True}
        if reason is not None:
            details["error"] = reason
            return Verdict(reward=0.0, details=details, verifier=self.name)
        schema = p.json_schema if p.json_schema is not None else task.metadata.get(p.schema_key)
        if schema is not None:
            errors = sorted(_validator(json.dumps(schema, sort_keys=True), p.strict).iter_errors(value),
                            key=lambda e: list(e.path))
            details["schema_valid"] = not errors
            if errors:
                details["schema_errors"] = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}"
                                            for e in errors[:_MAX_ERRORS]]
                return Verdict(reward=0.0, details=details, verifier=self.name)
        gold = task.answer
        if isinstance(gold, str):
            try:
                gold = json.loads(gold)
            except ValueError:
                gold = None
        if not isinstance(gold, (dict, list)) or not gold:
            return Verdict(reward=1.0, details=details, verifier=self.name)
        expected = _leaves(gold) if p.fields is None else {f: _get(gold, f) for f in p.fields}
        fields = {path: want is not _MISSING and _equal(_get(value, path), want, p.normalize_strings)
                  for path, want in expected.items()}
        details["fields"] = fields
        details["field_score"] = sum(fields.values()) / len(fields) if fields else 1.0
        return Verdict(reward=details["field_score"], details=details, verifier=self.name)


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + " (changed)"
    return None if value is not None else "changed"


def json_cases(gold: Any, other: Any, question: str) -> list[Case] | None:
    """``rollgen validate`` cases for a gold JSON object: renderings that must score 1, breakages that must not."""
    if not isinstance(gold, dict) or not gold:
        return None
    text = json.dumps(gold, ensure_ascii=False)
    cases = [
        Case("json_compact", True, json.dumps(gold, ensure_ascii=False, separators=(",", ":"))),
        Case("json_fenced", True, "Here is the JSON:\n```json\n" + json.dumps(gold, ensure_ascii=False, indent=2) + "\n```"),
        Case("json_reordered", True, json.dumps(dict(reversed(list(gold.items()))), ensure_ascii=False)),
        Case("json_with_prose", True, f"Sure! {text} Let me know if you need anything else."),
        Case("empty", False, ""),
        Case("question_repeated", False, question),
        Case("invalid_json", False, text[: max(1, len(text) // 2)]),
        Case("truncated", False, text[: max(1, len(text) // 2)], finish_reason="length"),
    ]
    leaves = _leaves(gold)
    first = next(iter(leaves))
    if len(gold) > 1:  # a required field may be missing: the schema, or the field score, must notice
        missing = dict(list(gold.items())[1:])
        cases.append(Case("field_missing", False, json.dumps(missing), bound=len(_leaves(missing)) / len(leaves)))
    wrong = copy.deepcopy(gold)
    node, *path = first.split(".")
    target = wrong
    for key in path:
        target = target[node]
        node = key
    target[node] = _changed(target[node])
    cases.append(Case("field_changed", False, json.dumps(wrong), bound=(len(leaves) - 1) / len(leaves)))
    if isinstance(other, dict) and other != gold:
        share = sum(_get(other, p) == v for p, v in leaves.items()) / len(leaves)
        cases.append(Case("other_task", False, json.dumps(other), bound=share))
    return cases
