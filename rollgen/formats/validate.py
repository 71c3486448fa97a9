"""Check a dataset file (rollgen's or anyone's) against a format; every problem names its file and line.

Per line: JSON object; the format's required fields; message lists with known roles in a valid order
(system first, a user turn before the first assistant turn, tool turns only after an assistant tool call,
completions that start with the assistant), no empty turns, well-formed tool calls; DPO: chosen and
rejected differ, rewards and ``margin`` agree and reach ``min_margin``; KTO: a boolean ``label``; RL: a
ground truth. Across the split files of a folder: no prompt in two splits, compared as normalised text
(``split.prompt_of`` + ``quality.text.prompt_key``: case, spacing and sentence punctuation ignored), so
two tasks with the same question under different ids are caught; and no ``task_id`` in two splits.
Strings are accepted wherever TRL accepts its "standard" (non-conversational) form.
"""

from __future__ import annotations

import json
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollgen.formats.messages import same_text, text_of
from rollgen.formats.pairs import EPS
from rollgen.formats.split import prompt_of
from rollgen.formats.stats import data_files, detect_format, iter_rows
from rollgen.nemogym.taskrow import CREATE_PARAMS
from rollgen.quality.text import prompt_key
from rollgen.registry import Registry
from rollgen.taskcodes import TaskCodes

__all__ = ["CHECKS", "FORMATS", "Problem", "SplitOverlap", "Validation", "split_overlap", "validate"]

# Per format: the problems of one row (``min_margin``: DPO's ``--min-margin``).
CHECKS: Registry[Callable[[dict[str, Any], float | None], list[str]]] = Registry("dataset format")
ROLES = {"system", "developer", "user", "assistant", "tool"}
GROUND_TRUTH_KEYS = ("ground_truth", "solution", "answer")


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Validation:
    format: str | None
    rows: int = 0
    files: list[Path] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overlap: dict[str, Any] | None = None  # a folder's split overlap (``SplitOverlap.summary``)

    @property
    def ok(self) -> bool:
        return not self.errors and self.rows > 0


def _turn_problems(m: Any, i: int, where: str) -> Iterator[str]:
    if not isinstance(m, dict):
        yield f"{where}[{i}]: a message must be an object with 'role' and 'content', got {type(m).__name__}"
        return
    role = m.get("role")
    if role not in ROLES:
        yield f"{where}[{i}]: unknown role {role!r} (expected one of {', '.join(sorted(ROLES))})"
        return
    content = m.get("content")
    calls = m.get("tool_calls")
    if content is not None and not isinstance(content, (str, list)):
        yield f"{where}[{i}] ({role}): content must be a string or a list of parts, got {type(content).__name__}"
    elif not text_of([{"content": content}]).strip() and not (role == "assistant" and calls):
        yield f"{where}[{i}] ({role}): empty turn"
    if calls is not None:
        if role != "assistant" or not isinstance(calls, list) or not calls:
            yield f"{where}[{i}] ({role}): tool_calls must be a non-empty list on an assistant turn"
            return
        for j, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                yield f"{where}[{i}].tool_calls[{j}]: needs function.name"
                continue
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    yield f"{where}[{i}].tool_calls[{j}]: arguments are not valid JSON"
                    continue
            if not isinstance(args, dict):
                yield f"{where}[{i}].tool_calls[{j}]: arguments must be a JSON object (or its JSON string)"


def _order_problems(msgs: list[dict[str, Any]], where: str, start: str) -> Iterator[str]:
    """Role order. ``start``: 'user' (a conversation or prompt) or 'assistant' (a completion)."""
    roles = [m.get("role") for m in msgs]
    for i, role in enumerate(roles):
        if role in ("system", "developer") and (start == "assistant" or any(r not in ("system", "developer")
                                                                           for r in roles[:i])):
            yield f"{where}[{i}]: a {role} turn must come first"
        if role == "tool":
            prev = next((msgs[k] for k in range(i - 1, -1, -1) if roles[k] != "tool"), None)
            if prev is None or prev.get("role") != "assistant" or not prev.get("tool_calls"):
                yield f"{where}[{i}]: a tool turn must follow an assistant turn with tool_calls"
        if role == "assistant" and i > 0 and roles[i - 1] == "assistant":
            yield f"{where}[{i}]: two assistant turns in a row"
    body = [r for r in roles if r not in ("system", "developer")]
    if start == "user" and body and body[0] != "user":
        yield f"{where}: the first turn after the system prompt must be 'user', got {body[0]!r}"
    if start == "assistant" and roles and roles[0] != "assistant":
        yield f"{where}: must start with an assistant turn, got {roles[0]!r}"


def _messages(value: Any, name: str, start: str, *, ends: tuple[str, ...] = ()) -> list[str]:
    """Problems of a message list (or a non-empty string, TRL's standard form)."""
    if isinstance(value, str):
        return [] if value.strip() else [f"{name}: empty"]
    if not isinstance(value, list):
        return [f"{name}: must be a list of messages (or a string), got {type(value).__name__}"]
    if not value:
        return [f"{name}: no messages"]
    out = [p for i, m in enumerate(value) for p in _turn_problems(m, i, name)]
    if out:
        return out
    out += list(_order_problems(value, name, start))
    if ends and value[-1].get("role") not in ends:
        out.append(f"{name}: last turn is {value[-1].get('role')!r}, expected {' or '.join(ends)}")
    return out


def _tools(row: dict[str, Any]) -> list[str]:
    tools = row.get("tools")
    if tools is None:
        return []
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except ValueError:
            return ["tools: not valid JSON"]
    def named(t: Any) -> bool:
        spec = t.get("function", t) if isinstance(t, dict) else None
        return isinstance(spec, dict) and isinstance(spec.get("name"), str) and bool(spec["name"])

    if not isinstance(tools, list) or not all(named(t) for t in tools):
        return ["tools: must be a list of function specs ({'type': 'function', 'function': {'name': ...}})"]
    return []


def _same_kind(row: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    kinds = {k: isinstance(row[k], str) for k in keys if k in row}
    if len(set(kinds.values())) > 1:
        return [f"{', '.join(keys)}: mix strings and message lists"]
    return []


def _number(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@CHECKS.register("dpo")
def _dpo(row: dict[str, Any], min_margin: float | None = None) -> list[str]:
    out = [f"missing field '{k}'" for k in ("chosen", "rejected") if k not in row]
    if out:
        return out
    explicit = "prompt" in row
    start = "assistant" if explicit else "user"
    if explicit:
        out += _messages(row["prompt"], "prompt", "user", ends=("user", "tool"))
    out += _messages(row["chosen"], "chosen", start, ends=("assistant",))
    out += _messages(row["rejected"], "rejected", start, ends=("assistant",))
    out += _same_kind(row, ("prompt", "chosen", "rejected"))
    if not out and same_text(row["chosen"], row["rejected"]):
        out.append("chosen and rejected are the same text")
    for key in ("chosen_reward", "rejected_reward", "margin"):
        if key in row and row[key] is not None and _number(row, key) is None:
            out.append(f"{key}: must be a number, got {row[key]!r}")
    cr, rr, margin = _number(row, "chosen_reward"), _number(row, "rejected_reward"), _number(row, "margin")
    if cr is not None and rr is not None:
        if cr <= rr:
            out.append(f"chosen_reward {cr:g} is not above rejected_reward {rr:g}")
        if margin is not None and abs(margin - (cr - rr)) > 1e-6:
            out.append(f"margin {margin:g} is not chosen_reward - rejected_reward ({cr - rr:g})")
    if margin is None and cr is not None and rr is not None:
        margin = cr - rr
    if margin is not None and margin <= 0:
        out.append(f"margin {margin:g} is not positive")
    elif margin is not None and min_margin is not None and margin < min_margin - EPS:
        out.append(f"margin {margin:g} is below the minimum {min_margin:g}")
    elif margin is None and min_margin is not None:
        out.append("no margin (or chosen_reward and rejected_reward) to check against --min-margin")
    return out


@CHECKS.register("sft")
def _sft(row: dict[str, Any], min_margin: float | None = None) -> list[str]:
    if "messages" in row:
        return _assistant_in(row["messages"]) or _messages(row["messages"], "messages", "user", ends=("assistant",))
    if "prompt" in row and "completion" in row:
        return (_messages(row["prompt"], "prompt", "user", ends=("user", "tool"))
                + _messages(row["completion"], "completion", "assistant", ends=("assistant",))
                + _same_kind(row, ("prompt", "completion")))
    if "text" in row:
        return [] if isinstance(row["text"], str) and row["text"].strip() else ["text: must be a non-empty string"]
    return ["missing field 'messages' (or 'prompt' and 'completion', or 'text')"]


def _assistant_in(msgs: Any) -> list[str]:
    if isinstance(msgs, list) and not any(isinstance(m, dict) and m.get("role") == "assistant" for m in msgs):
        return ["messages: no assistant turn to learn from"]
    return []


@CHECKS.register("kto")
def _kto(row: dict[str, Any], min_margin: float | None = None) -> list[str]:
    out = [f"missing field '{k}'" for k in ("prompt", "completion", "label") if k not in row]
    if out:
        return out
    out += _messages(row["prompt"], "prompt", "user", ends=("user", "tool"))
    out += _messages(row["completion"], "completion", "assistant", ends=("assistant",))
    out += _same_kind(row, ("prompt", "completion"))
    if not isinstance(row["label"], bool):
        out.append(f"label: must be true or false, got {row['label']!r}")
    return out


@CHECKS.register("rl")
def _rl(row: dict[str, Any], min_margin: float | None = None) -> list[str]:
    if "prompt" not in row:
        return ["missing field 'prompt'"]
    out = _messages(row["prompt"], "prompt", "user", ends=("user", "tool"))
    if all(row.get(k) is None for k in GROUND_TRUTH_KEYS):
        out.append(f"missing ground truth (one of {', '.join(GROUND_TRUTH_KEYS)})")
    for key in ("pass_rate", "mean_reward"):
        v = _number(row, key)
        if key in row and row[key] is not None and (v is None or not 0.0 <= v <= 1.0):
            out.append(f"{key}: must be a number in [0, 1], got {row[key]!r}")
    v = _number(row, "reward_variance")
    if "reward_variance" in row and row["reward_variance"] is not None and (v is None or v < 0):
        out.append(f"reward_variance: must be a number >= 0, got {row['reward_variance']!r}")
    return out


@CHECKS.register("nemo_gym")
def _nemo_gym(row: dict[str, Any], min_margin: float | None = None) -> list[str]:
    """A NeMo Gym task row as nemo-gym 0.7.0 validates it (``BaseRunRequest``; ``responses_create_params`` is
    ``extra="forbid"``; function tools need ``name``, ``parameters``, ``strict``; a ``role: tool`` input item is
    silently read as another item type, so it is flagged)."""
    params = row.get("responses_create_params")
    if not isinstance(params, dict):
        return ["missing field 'responses_create_params' (an object)"]
    out = [f"responses_create_params.{k}: not a key NeMo Gym accepts" for k in params if k not in CREATE_PARAMS]
    given = params.get("input")
    if not (isinstance(given, str) and given.strip()) and not (isinstance(given, list) and given):
        out.append("responses_create_params.input: must be a non-empty string or list of items")
    for i, item in enumerate(given if isinstance(given, list) else []):
        if not isinstance(item, dict) or not (item.get("type") in ("function_call", "function_call_output",
                                                                   "reasoning") or "role" in item):
            out.append(f"responses_create_params.input[{i}]: not a message or function_call(_output) item")
        elif item.get("role") not in (None, "user", "assistant", "system", "developer"):
            out.append(f"responses_create_params.input[{i}].role: {item.get('role')!r} (tool results are "
                       "function_call_output items)")
    for i, tool in enumerate(params.get("tools") or []):
        missing = [k for k in ("type", "name", "parameters", "strict") if not isinstance(tool, dict) or k not in tool]
        if missing:
            out.append(f"responses_create_params.tools[{i}]: missing {', '.join(missing)} (the flat Responses shape)")
    ref = row.get("agent_ref")
    if ref is not None and not (isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"]):
        out.append("agent_ref: must be an object with a non-empty 'name'")
    return out


FORMATS = tuple(CHECKS.names())  # the formats a file can be validated as (``--format``)


def _row_problems(row: dict[str, Any], fmt: str, min_margin: float | None) -> list[str]:
    return CHECKS[fmt](row, min_margin) + _tools(row)


class _FirstSeen:
    """Key -> the (file, line) where it was first seen, in flat columns by a ``TaskCodes`` code (no tuple per key)."""

    def __init__(self) -> None:
        self.codes = TaskCodes()
        self._file = array("i")  # per code: index into the file names
        self._line = array("q")

    def first(self, key: str, file: int, line: int) -> tuple[int, int]:
        code = self.codes.code(key)
        if code == len(self._file):
            self._file.append(file)
            self._line.append(line)
        return self._file[code], self._line[code]


class SplitOverlap:
    """Rows whose prompt (normalised text) or ``task_id`` is also in another split file of a folder."""

    def __init__(self) -> None:
        self._seen = {"prompt": _FirstSeen(), "task": _FirstSeen()}  # key -> first split file and line
        self._files: dict[str, int] = {}  # split file name -> index
        self.rows: dict[str, int] = Counter()  # split file -> rows that leak
        self.checked = 0
        self._prompts: set[bytes] = set()

    def check(self, f: Path, n: int, row: dict[str, Any]) -> str | None:
        """The leak message for row ``n`` of split file ``f``, or None."""
        self.checked += 1
        here = self._files.setdefault(f.name, len(self._files))
        text = prompt_of(row)
        keys: list[tuple[str, Any]] = []
        if text is not None:
            keys.append(("prompt", prompt_key(text)))
        if "task_id" in row:
            keys.append(("task", str(row["task_id"])))
        leak = None
        for kind, key in keys:
            file, line = self._seen[kind].first(key.hex() if kind == "prompt" else key, here, n)
            if file != here and leak is None:
                what = "prompt" if kind == "prompt" else f"task {key!r}"
                leak = (f"{what} also in {list(self._files)[file]} (line {line}): splits leak (equal prompts must share "
                        "a split)")
                if kind == "prompt":
                    self._prompts.add(key)
        if leak is not None:
            self.rows[f.name] += 1
        return leak

    def summary(self) -> dict[str, Any]:
        """Rows checked, rows that leak in all and per file, distinct prompts that leak."""
        return {"rows_checked": self.checked, "leaking_rows": sum(self.rows.values()),
                "leaking_rows_by_file": dict(self.rows), "leaking_prompts": len(self._prompts)}


def split_overlap(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``SplitOverlap.summary`` of a folder's split files (unreadable lines skipped: ``validate`` reports them)."""
    check = SplitOverlap()
    for f, n, line in iter_rows(data_files(folder)):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            check.check(f, n, row)
    return check.summary()


def validate(path: str | os.PathLike[str], fmt: str | None = None, min_margin: float | None = None) -> Validation:
    """Validate a file, or every ``*.jsonl`` of a folder (plus no task in two of its split files)."""
    p = Path(path)
    if fmt is not None:
        _ = CHECKS[fmt]  # an unknown format: a ValueError naming the known ones, before any reading
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    files = data_files(p)
    result = Validation(format=fmt, files=files)
    if not files:
        result.warnings.append(f"{p}: no *.jsonl files")
        return result
    overlap = SplitOverlap() if p.is_dir() else None
    rows_in: dict[Path, int] = dict.fromkeys(files, 0)
    for f, n, line in iter_rows(files):
        try:
            row = json.loads(line)
        except ValueError as e:
            result.errors.append(Problem(f, n, f"not valid JSON ({e})"))
            continue
        if not isinstance(row, dict):
            result.errors.append(Problem(f, n, f"a row must be a JSON object, got {type(row).__name__}"))
            continue
        rows_in[f] += 1
        result.rows += 1
        if result.format is None:
            result.format = detect_format(row)
            if result.format is None:
                result.errors.append(Problem(f, n, "cannot tell the format from the keys; pass --format"))
                return result
        result.errors += [Problem(f, n, msg) for msg in _row_problems(row, result.format, min_margin)]
        if overlap is not None and (leak := overlap.check(f, n, row)) is not None:
            result.errors.append(Problem(f, n, leak))
    for f, n in rows_in.items():
        if n == 0:
            result.warnings.append(f"{f}: no rows")
    if overlap is not None:
        result.overlap = overlap.summary()
    return result
