"""Chat messages as training frameworks take them: prompt/completion split, tool calls, system prompt.

Rollouts hold the OpenAI API's messages: assistant ``content`` may be ``null`` beside ``tool_calls``, tool-call
``arguments`` are JSON *strings*, and tool turns carry ``tool_call_id`` but no ``name``. TRL and NeMo-RL
examples use an arguments *dict* and a ``name`` on tool turns, and Hugging Face chat templates vary in
whether they ``tojson`` the arguments (frameworks.md B.6), so ``normalize`` rewrites them for the target.
Nothing here appends an EOS token: chat templates close turns themselves (TRL #4481).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

__all__ = ["BadToolCall", "normalize", "prompt_len", "same_text", "text_key", "text_of", "with_system"]

Message = dict[str, Any]


class BadToolCall(ValueError):
    """A tool call whose ``arguments`` are not a JSON object: not a demonstration to train on."""


def prompt_len(messages: list[Message]) -> int:
    """Messages before the first assistant turn form the prompt; returns their count."""
    for i, m in enumerate(messages):
        if m.get("role") == "assistant":
            return i
    return len(messages)


def with_system(messages: list[Message], system_prompt: str | None) -> list[Message]:
    """``messages`` with a leading system turn, unless there is no prompt to add or one is there already."""
    if not system_prompt or (messages and messages[0].get("role") in ("system", "developer")):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def _arguments(raw: Any, target: Literal["dict", "string"]) -> dict[str, Any] | str:
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            raise BadToolCall(f"tool-call arguments are not JSON ({e.msg}): {raw[:80]!r}") from None
    else:
        parsed = raw
    if not isinstance(parsed, dict):
        raise BadToolCall(f"tool-call arguments are not a JSON object: {str(raw)[:80]!r}")
    return parsed if target == "dict" else json.dumps(parsed, ensure_ascii=False)


def normalize(messages: list[Message], tool_arguments: Literal["dict", "string"] = "dict") -> list[Message]:
    """Fresh copies of ``messages``: ``null`` content → ``""``, keys with ``null`` values dropped, tool-call
    arguments as ``tool_arguments`` says, and each tool turn named after the call it answers.

    Raises ``BadToolCall`` when a call's arguments are not a JSON object.
    """
    out: list[Message] = []
    names: dict[str, str] = {}  # tool_call_id -> function name
    pending: list[str] = []  # names of the last assistant turn's calls, for tool turns without an id
    for m in messages:
        msg = {"role": m.get("role"), "content": m.get("content") if m.get("content") is not None else "",
               **{k: v for k, v in m.items() if v is not None and k not in ("role", "content")}}
        if msg.get("role") == "assistant" and m.get("tool_calls"):
            calls = []
            for call in m["tool_calls"]:
                fn = call.get("function") or {}
                name = fn.get("name", "")
                calls.append({**({"id": call["id"]} if call.get("id") else {}), "type": call.get("type", "function"),
                              "function": {"name": name, "arguments": _arguments(fn.get("arguments"), tool_arguments)}})
                if call.get("id"):
                    names[call["id"]] = name
            msg["tool_calls"] = calls
            pending = [c["function"]["name"] for c in calls]
        elif msg.get("role") == "tool" and "name" not in msg:
            name = names.get(msg.get("tool_call_id", "")) or (pending[0] if pending else None)
            if name:
                msg["name"] = name
            if pending:
                pending = pending[1:]
        out.append(msg)
    return out


def text_of(messages: list[Message] | str) -> str:
    """Everything a reader sees in ``messages``: contents, tool-call names and arguments (for lengths)."""
    if isinstance(messages, str):
        return messages
    parts: list[str] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # multimodal parts
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            args = fn.get("arguments")
            parts.append(f"{fn.get('name', '')}({args if isinstance(args, str) else json.dumps(args)})")
    return "\n".join(p for p in parts if p)


_SPACE = re.compile(r"\s+")


def text_key(messages: list[Message] | str) -> str:
    """The text of ``messages`` with runs of whitespace made one space: equal keys read the same."""
    return _SPACE.sub(" ", text_of(messages)).strip()


def same_text(a: list[Message] | str, b: list[Message] | str) -> bool:
    """True when two completions read the same up to whitespace (a DPO pair of them teaches nothing)."""
    return text_key(a) == text_key(b)
