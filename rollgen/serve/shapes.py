"""Request bodies of the served environment, read into rollgen's records: a task, and the policy's turns.

* NeMo Gym (0.7.0, ``nemo_gym/openai_utils.py``): ``response`` is an OpenAI Responses object whose ``output``
  holds every turn's items in order (``message``, ``function_call``, ``function_call_output``, ``reasoning``).
  They become chat messages as the batch engine writes them (``rollgen.nemogym.items``): an assistant turn
  with ``tool_calls``, a ``tool`` turn per result, the final assistant text.
* plain: ``completion`` (the answer text) or ``messages`` (the turns after the prompt, or the whole
  conversation when it starts with the prompt's system/user turns).

Every reader raises ``RequestError`` naming the field at fault.
"""

from __future__ import annotations

from typing import Any

from rollgen.integrations.reward import completion_text
from rollgen.records import Rollout, Task, rollout_id

__all__ = ["RequestError", "gym_turns", "plain_turns", "rollout_of", "task_of_row"]


class RequestError(Exception):
    """A request the server answers with ``status`` and a JSON ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def task_of_row(row: dict[str, Any], field: str) -> Task:
    """A task row in any shape a task file takes (rollgen, NeMo Gym, question/answer) as a ``Task``."""
    from rollgen.servers.taskrows import _task_from_row  # the task-file reader's own row parser

    try:
        return _task_from_row(row, "request")
    except ValueError as e:
        raise RequestError(400, f"{field}: {e}") from None


def gym_turns(response: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The chat turns of a NeMo Gym ``response`` (``rollgen.nemogym.items.chat_messages``: one model turn's
    items → one assistant message) and its finish reason (``length`` when it stopped at ``max_output_tokens``)."""
    from rollgen.nemogym.items import ItemError, chat_messages

    if not isinstance(response, dict):
        raise RequestError(400, "response: expected an OpenAI Responses object")
    output = response.get("output")
    if not isinstance(output, list):
        raise RequestError(400, "response.output: missing, or not a list of output items")
    try:
        turns = chat_messages(output, "response.output")
    except ItemError as e:
        raise RequestError(400, str(e)) from None
    incomplete = response.get("incomplete_details") or {}
    stopped = response.get("status") == "incomplete" and incomplete.get("reason") == "max_output_tokens"
    return turns, "length" if stopped else "stop"


def plain_turns(body: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The turns of a plain ``/verify`` body, and whether they are the whole conversation (prompt included)."""
    if "completion" in body:
        if not isinstance(body["completion"], str):
            raise RequestError(400, "completion: expected a string")
        return [{"role": "assistant", "content": body["completion"]}], False
    messages = body.get("messages")
    if messages is None:
        raise RequestError(400, "completion or messages: missing (the answer text, or the policy's chat turns)")
    if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                 for m in messages):
        raise RequestError(400, "messages: expected a list of {role, content} objects")
    whole = bool(messages) and messages[0]["role"] in ("system", "user", "developer")
    return [dict(m) for m in messages], whole


def rollout_of(task: Task, turns: list[dict[str, Any]], whole: bool, finish_reason: str | None) -> Rollout:
    """The rollout the batch engine would have written for these turns of ``task`` (status ``ok``, unscored)."""
    messages = turns if whole else [*task.chat(), *turns]
    if not isinstance(finish_reason, (str, type(None))):
        raise RequestError(400, "finish_reason: expected a string or null")
    return Rollout(id=rollout_id(task.id, 0), task_id=task.id, repeat=0, messages=messages,
                   completion=completion_text(messages), status="ok", finish_reason=finish_reason,
                   turns=sum(m.get("role") == "assistant" for m in turns))
