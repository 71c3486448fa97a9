"""Tool calls: read them from a conversation, check them against the tools' specs, and match them with the
expected calls by the rules of BFCL's AST checker.

* ``parse_call(call, specs)``: the name and arguments of one OpenAI ``tool_calls`` item, checked: a tool that
  is offered (when any are), arguments that are a JSON object and valid against the tool's JSON Schema. Raises
  ``ToolCallError`` with a message for the model (the rollout unit sends it back as the tool's result).
  ``await ready(specs)`` first on an event loop (jsonschema reads its meta-schemas from disk once).
* ``calls_made(messages)``: every call of the assistant turns, in order.
* ``match_calls(expected, made, specs)``: which expected calls were made, in any order (BFCL's
  ``parallel_function_checker_no_order``), each by ``match_call``.

Expected calls are written as BFCL's possible answers: ``{"name": {"param": [accepted values]}}``, where
``""`` among a parameter's values marks it optional. ``match_call`` follows BFCL's ``simple_function_checker``
(bfcl-eval 2026.3.23, ``eval_checker/ast_eval/ast_checker.py``, Python rules): every required parameter
present; no parameter the spec or the expected call does not list; the value's type as the spec's ``type``
says (an integer is accepted where a ``number``/``float`` is wanted, a boolean is not an integer); strings
compared after BFCL's ``standardize_string`` (case, spaces and ``,./-_*^`` ignored), lists item by item,
objects key by key; an optional parameter left out only when ``""`` is among its values; accepted values of
another type than the spec's are BFCL's "variables" (``"data['x']"`` for an array), compared as they are.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ToolCallError", "calls_made", "expected_calls", "find_spec", "match_call", "match_calls", "parse_call",
           "ready", "standardize"]


class ToolCallError(ValueError):
    """A tool call that cannot be run as made: unknown tool, arguments not JSON, or not valid for the tool."""


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call as made: its name, raw argument text, and its parsed arguments (None when unreadable)."""

    name: str
    raw: str
    arguments: dict[str, Any] | None


def find_spec(specs: list[dict[str, Any]] | None, name: str) -> dict[str, Any] | None:
    """The ``function`` part of the tool named ``name`` among OpenAI tool specs (flat specs too); None if absent."""
    for spec in specs or []:
        fn = spec.get("function", spec)
        if isinstance(fn, dict) and fn.get("name") == name:
            return fn
    return None


_VALIDATORS: dict[str, Any] = {}  # a tool's parameters schema (JSON text) -> its validator
_MAX_VALIDATORS = 256


def _validator(schema_json: str) -> Any:
    """The (cached) validator of a parameters schema; the first one imports jsonschema and loads its
    meta-schemas from disk, so on an event loop ``await ready(specs)`` first."""
    validator = _VALIDATORS.get(schema_json)
    if validator is None:
        import jsonschema

        schema = json.loads(schema_json)
        validator = jsonschema.validators.validator_for(schema)(schema)
        if len(_VALIDATORS) >= _MAX_VALIDATORS:
            _VALIDATORS.pop(next(iter(_VALIDATORS)))
        _VALIDATORS[schema_json] = validator
    return validator


async def ready(specs: list[dict[str, Any]] | None) -> None:
    """Build the validators of ``specs``' parameters in a thread (file reads, imports), so that ``parse_call``
    on the event loop only validates."""
    keys = [json.dumps(fn["parameters"], sort_keys=True) for spec in specs or []
            if isinstance(fn := spec.get("function", spec), dict) and fn.get("parameters")]
    if missing := [k for k in keys if k not in _VALIDATORS]:
        await asyncio.to_thread(lambda: [_validator(k) for k in missing])


def schema_errors(arguments: dict[str, Any], parameters: dict[str, Any] | None) -> list[str]:
    """The ways ``arguments`` break a tool's ``parameters`` JSON Schema (none: valid, or no schema)."""
    if not parameters:
        return []
    validator = _validator(json.dumps(parameters, sort_keys=True))
    return [f"{'/'.join(map(str, e.path)) or 'arguments'}: {e.message}"
            for e in sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))][:3]


def parse_call(call: dict[str, Any], specs: list[dict[str, Any]] | None) -> tuple[str, dict[str, Any]]:
    """``(name, arguments)`` of an OpenAI ``tool_calls`` item, checked against ``specs`` when there are any."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ToolCallError("the tool call has no function name")
    name, raw = fn["name"], fn.get("arguments")
    spec = find_spec(specs, name)
    if specs and spec is None:
        names = ", ".join(str(s.get("function", s).get("name")) for s in specs)
        raise ToolCallError(f"unknown tool {name!r}; the tools are {names}")
    if isinstance(raw, dict):  # some servers send the object itself
        arguments = raw
    else:
        try:
            arguments = json.loads(raw) if raw not in (None, "") else {}
        except (TypeError, ValueError) as e:
            raise ToolCallError(f"the arguments of {name} are not valid JSON ({e}): {str(raw)[:200]!r}") from None
    if not isinstance(arguments, dict):
        raise ToolCallError(f"the arguments of {name} must be a JSON object, got {type(arguments).__name__}")
    if spec is not None and (errors := schema_errors(arguments, spec.get("parameters"))):
        raise ToolCallError(f"the arguments of {name} do not match its parameters: {'; '.join(errors)}")
    return name, arguments


def calls_made(messages: list[dict[str, Any]]) -> list[Call]:
    """Every tool call of the assistant turns of ``messages``, in order."""
    out = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        for call in m.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            fn = fn if isinstance(fn, dict) else {}
            raw = fn.get("arguments")
            try:
                args = raw if isinstance(raw, dict) else json.loads(raw) if raw else {}
            except (TypeError, ValueError):
                args = None
            out.append(Call(str(fn.get("name", "")), raw if isinstance(raw, str) else json.dumps(raw),
                            args if isinstance(args, dict) else None))
    return out


def expected_calls(value: Any) -> list[dict[str, dict[str, list[Any]]]]:
    """The expected calls of a task as one flat list, from a list of calls or a list of turns (lists of calls);
    None: none. Each is ``{"name": {"param": [accepted values]}}``. ValueError when malformed."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"'expected_calls' must be a list of calls or of turns, got {type(value).__name__}")
    flat = [c for item in value for c in (item if isinstance(item, list) else [item])]
    for i, call in enumerate(flat):
        if not (isinstance(call, dict) and len(call) == 1 and isinstance(next(iter(call.values())), dict)):
            raise ValueError(f"'expected_calls' call {i + 1}: must be {{\"tool name\": {{\"param\": [accepted "
                             f"values]}}}}, got {json.dumps(call)[:120]}")
        for param, values in next(iter(call.values())).items():
            if not isinstance(values, list):
                raise ValueError(f"'expected_calls' call {i + 1}: the accepted values of {param!r} must be a list")
    return flat


# --- BFCL's AST rules -------------------------------------------------------------------------------------------

_STANDARDIZE = re.compile(r"[ \,\.\/\-\_\*\^]")
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "float": (int, float), "boolean": (bool,),
    "array": (list,), "tuple": (list,), "object": (dict,), "dict": (dict,)}


def standardize(text: str) -> str:
    """BFCL's ``standardize_string``: no spaces or ``,./-_*^``, lower case, ``'`` as ``"``."""
    return _STANDARDIZE.sub("", text).lower().replace("'", '"')


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return standardize(value)
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _type_ok(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, list) else [kind]
    for k in kinds:
        allowed = _TYPES.get(str(k))
        if allowed is None or (isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)):
            return True
    return False


def match_call(expected: dict[str, dict[str, list[Any]]], name: str, arguments: dict[str, Any] | None,
               spec: dict[str, Any] | None) -> str | None:
    """None when the call ``name(arguments)`` matches the expected call, else why not (BFCL's rules)."""
    [(want, possible)] = expected.items()
    if name != want:
        return f"called {name!r}, expected {want!r}"
    if arguments is None:
        return f"{name}: arguments are not a JSON object"
    params = ((spec or {}).get("parameters") or {})
    properties, required = params.get("properties") or {}, params.get("required") or []
    for p in required:
        if p not in arguments:
            return f"{name}: missing required parameter {p!r}"
    for p, value in arguments.items():
        if (spec is not None and p not in properties) or p not in possible:
            return f"{name}: unexpected parameter {p!r}"
        kind = (properties.get(p) or {}).get("type")
        given = [v for v in possible[p] if v != ""]
        # BFCL's "variable": accepted values of another type than the spec's (a name where a list is wanted)
        variable = kind is not None and bool(given) and not _type_ok(given[0], kind)
        if kind is not None and not _type_ok(value, kind) and not (variable and type(value) is type(given[0])):
            return f"{name}: parameter {p!r} should be of type {kind}, got {type(value).__name__} ({value!r})"
        if (value not in given) if variable else (_norm(value) not in [_norm(v) for v in given]):
            return f"{name}: {p}={value!r} is not one of {possible[p]}"
    for p, values in possible.items():
        if p not in arguments and "" not in values:
            return f"{name}: parameter {p!r} not given and not optional"
    return None


def match_calls(expected: list[dict[str, dict[str, list[Any]]]], made: list[Call],
                specs: list[dict[str, Any]] | None) -> tuple[int, list[str]]:
    """How many expected calls a distinct made call matches (in any order), and why the others did not."""
    used: set[int] = set()
    errors = []
    for want in expected:
        name = next(iter(want))
        spec = find_spec(specs, name)
        why = []
        for i, call in enumerate(made):
            if i in used:
                continue
            error = match_call(want, call.name, call.arguments, spec)
            if error is None:
                used.add(i)
                break
            why.append(error)
        else:
            close = next((w for w in why if not w.startswith("called ")), None)
            errors.append(close or f"no call to {name!r}")
    return len(used), errors
