"""NeMo Gym's OpenAI Responses-API items ⇄ rollgen's OpenAI chat messages.

NeMo Gym 0.7.0 keeps a conversation as Responses items (``nemo_gym/openai_utils.py``: input items of
``NeMoGymResponseCreateParamsNonStreaming.input``, output items of the ``NeMoGymResponseOutputItem`` union,
tagged by ``type``): ``message`` (``role`` + a string or ``input_text`` / ``output_text`` parts),
``function_call`` (``call_id``, ``name``, ``arguments`` as a JSON *string*), ``function_call_output``
(``call_id``, ``output``) and ``reasoning`` (``summary: [{type: summary_text, text}]``). rollgen keeps chat
messages: an assistant turn with ``content`` and ``tool_calls``, ``tool`` turns with ``tool_call_id``.

``chat_messages`` reads items into messages: the items of one model turn (reasoning, message, calls) become
one assistant message, reasoning as ``reasoning_content``; ``developer`` turns become ``system``.
``input_items`` / ``output_items`` write messages as items (tool history as ``function_call`` +
``function_call_output`` items, never ``role: tool``, which NeMo Gym parses as another item type).
"""

from __future__ import annotations

import json
import time
from typing import Any

__all__ = ["ItemError", "chat_messages", "chat_tools", "input_items", "output_items", "prompt_messages",
           "response_object", "responses_tools", "text_of"]

Message = dict[str, Any]
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")


class ItemError(ValueError):
    """An item rollgen cannot read; the message names where (``response.output[3]``)."""


def text_of(content: Any, where: str) -> str:
    """A message's content as text: a string, or its text parts joined (a refusal counts as text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type", "text") in _TEXT_PARTS and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part, dict) and part.get("type") == "refusal":
                out.append(str(part.get("refusal") or ""))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ItemError(f"{where}.content[{i}]: a {kind!r} part is not text (rollgen keeps text only)")
        return "".join(out)
    raise ItemError(f"{where}.content must be a string or a list of parts, got {type(content).__name__}")


def prompt_messages(params: Any) -> list[Message]:
    """The prompt of ``responses_create_params``: ``instructions`` as a system turn, then ``input``."""
    if not isinstance(params, dict):
        raise ItemError("'responses_create_params' must be an object")
    given = params.get("input")
    if isinstance(given, str):
        messages = [{"role": "user", "content": given}] if given.strip() else []
    elif isinstance(given, list):
        messages = chat_messages(given, "responses_create_params.input")
    else:
        messages = []
    if not messages:
        raise ItemError("'responses_create_params.input' must be a non-empty string or list of items")
    if isinstance(params.get("instructions"), str) and params["instructions"]:
        messages.insert(0, {"role": "system", "content": params["instructions"]})
    return messages


def chat_messages(items: list[Any], where: str) -> list[Message]:
    """Responses items (in order) → chat messages; one model turn's items → one assistant message."""
    out: list[Message] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ItemError(f"{at}: expected an object, got {type(item).__name__}")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise ItemError(f"{at}: message role must be user, assistant, system or developer, got {role!r}")
            text = text_of(item.get("content"), at)
            if role == "assistant":
                turn = _turn(out, "content")
                turn["content"] = (turn.get("content") or "") + text
            else:
                out.append({"role": "system" if role == "developer" else role, "content": text})
        elif kind == "reasoning":
            summary = item.get("summary") or []
            text = "\n".join(p.get("text", "") for p in summary if isinstance(p, dict)) if isinstance(summary, list) else ""
            if not text and item.get("content"):
                text = text_of(item.get("content"), at)
            if text:
                _turn(out, "reasoning_content")["reasoning_content"] = text
        elif kind == "function_call":
            name, args = item.get("name"), item.get("arguments")
            if not isinstance(name, str) or not name:
                raise ItemError(f"{at}: function_call without a 'name'")
            if not isinstance(args, str):
                args = json.dumps(args if args is not None else {})
            call_id = item.get("call_id") or item.get("id") or f"call_{i}"
            turn = _turn(out, "tool_calls")
            turn.setdefault("tool_calls", []).append(
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else text_of(output, at) if isinstance(output, list) else json.dumps(output)
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        else:
            raise ItemError(f"{at}: item type {kind!r} is not one rollgen reads (message, function_call, "
                            "function_call_output, reasoning)")
    for m in out:
        if m["role"] == "assistant":
            m.setdefault("content", "")
    return out


def _turn(out: list[Message], adding: str) -> Message:
    """The assistant message the next item of a model turn belongs to (a new one when it cannot be this turn's:
    after a tool or user turn, after the turn's calls, or when the turn already has what is being added)."""
    last = out[-1] if out else None
    fresh = (last is None or last.get("role") != "assistant"
             or ("tool_calls" in last and adding != "tool_calls")
             or (adding == "content" and "content" in last)
             or (adding == "reasoning_content" and ("reasoning_content" in last or "content" in last)))
    if fresh:
        last = {"role": "assistant"}
        out.append(last)
    return last


def chat_tools(tools: Any) -> list[dict[str, Any]] | None:
    """Responses function tools (flat ``name``) as chat-completions tools (nested ``function``)."""
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ItemError("'responses_create_params.tools' must be a list of objects")
    return [t if "function" in t or "name" not in t else
            {"type": "function", "function": {k: v for k, v in t.items() if k != "type" and v is not None}}
            for t in tools]


def responses_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Chat-completions tools as Responses function tools: the flat shape NeMo Gym accepts, with ``strict``, which
    its schema requires (openai's ``FunctionToolParam``: ``name``, ``parameters``, ``strict``, ``type``): the
    tool's own, else false."""
    out = []
    for tool in tools or []:
        fn = tool.get("function", tool)
        out.append({"type": "function", "name": fn["name"], "description": fn.get("description") or "",
                    "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
                    "strict": bool(fn.get("strict", tool.get("strict", False)))})
    return out


def input_items(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat messages as ``responses_create_params.input`` items."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "assistant":
            items += output_items([m])
        elif m.get("role") == "tool":
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id") or "",
                          "output": _content_text(m.get("content"))})
        else:
            items.append({"role": m.get("role"), "content": _content_text(m.get("content")), "type": "message"})
    return items


def output_items(messages: list[Message]) -> list[dict[str, Any]]:
    """Assistant and tool turns as Responses output items (what ``response.output`` holds), ids made up."""
    items: list[dict[str, Any]] = []
    for n, m in enumerate(messages):
        if m.get("role") == "tool":
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id") or "",
                          "output": _content_text(m.get("content"))})
            continue
        if m.get("role") != "assistant":
            continue
        if m.get("reasoning_content"):
            items.append({"type": "reasoning", "id": f"rs_{n}", "summary": [
                {"type": "summary_text", "text": str(m["reasoning_content"])}]})
        if m.get("content") or not m.get("tool_calls"):
            items.append({"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                          "content": [{"type": "output_text", "text": _content_text(m.get("content")),
                                       "annotations": []}]})
        for k, call in enumerate(m.get("tool_calls") or []):
            fn = call.get("function") or {}
            args = fn.get("arguments")
            items.append({"type": "function_call", "id": f"fc_{n}_{k}", "call_id": call.get("id") or f"call_{n}_{k}",
                          "name": fn.get("name", ""), "status": "completed",
                          "arguments": args if isinstance(args, str) else json.dumps(args or {})})
    return items


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else text_of(content, "message")


def response_object(messages: list[Message], *, model: str | None, tools: list[dict[str, Any]] | None,
                    usage: dict[str, Any] | None = None, truncated: bool = False, rid: str = "resp_rollgen"
                    ) -> dict[str, Any]:
    """An OpenAI ``Response`` (the fields ``NeMoGymResponse`` requires) whose ``output`` is ``messages``' model
    and tool turns, as NeMo Gym's simple_agent merges a multi-turn rollout."""
    usage = usage or {}
    inp, outp = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {
        "id": rid, "created_at": float(int(time.time())), "model": model or "unknown", "object": "response",
        "output": output_items(messages), "parallel_tool_calls": True, "tool_choice": "auto",
        "tools": responses_tools(tools), "status": "incomplete" if truncated else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "usage": {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": outp,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + outp},
    }
