"""A rollgen task as a NeMo Gym task row (what ``gym eval run`` reads, ``/seed_session`` and ``/verify`` take).

``{"responses_create_params": {"input": [...], "tools": [...]}, "expected_answer": ..., <verifier fields>}``
(NeMo Gym 0.7.0 ``resources_servers/*/data/example.jsonl``; schema ``NeMoGymResponseCreateParamsNonStreaming``,
``nemo_gym/openai_utils.py`` l.776-835, ``extra="forbid"``). The prompt goes in as ``input`` items (tool history
as ``function_call`` / ``function_call_output`` items), the tools in the flat Responses shape, the task's answer
as ``expected_answer`` and its metadata (the verifier fields a NeMo Gym row had: ``extraction_mode``, ``question``,
...) at the top level. Sampling settings a row carried (``metadata.responses_create_params``) go back inside
``responses_create_params``, limited to the keys that schema allows.
"""

from __future__ import annotations

from typing import Any, Literal

from rollgen.nemogym.items import input_items, responses_tools

__all__ = ["CREATE_PARAMS", "task_row"]

CREATE_PARAMS = frozenset({
    "background", "context_management", "conversation", "include", "input", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls", "previous_response_id", "prompt",
    "prompt_cache_key", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream",
    "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user"})
"""The keys of ``NeMoGymResponseCreateParamsNonStreaming`` (nemo-gym 0.7.0, ``nemo_gym/openai_utils.py``
l.776-835; ``extra="forbid"``: any other key is a 422)."""

ROLLGEN_KEYS = ("responses_create_params", "env")
"""Task metadata rollgen keeps for itself: the row's sampling settings, the environment a rollout came from."""


def task_row(task: dict[str, Any], *, metadata: Literal["top_level", "key", "drop"] = "top_level"
             ) -> dict[str, Any]:
    """The NeMo Gym row of ``task`` (a ``Task`` as a dict): prompt and tools in ``responses_create_params``,
    ``expected_answer``, and the metadata at the top level (``key``: under ``metadata``; ``drop``: left out)."""
    meta = dict(task.get("metadata") or {})
    given = meta.get("responses_create_params")
    params: dict[str, Any] = {k: v for k, v in (given if isinstance(given, dict) else {}).items()
                              if k in CREATE_PARAMS and k not in ("input", "tools", "instructions") and v is not None}
    messages = task.get("messages") or [{"role": "user", "content": task.get("prompt") or ""}]
    params["input"] = input_items(messages)
    if task.get("tools"):
        params["tools"] = responses_tools(task["tools"])
    row: dict[str, Any] = {"responses_create_params": params}
    rest = {k: v for k, v in meta.items() if k not in ROLLGEN_KEYS}
    if metadata == "top_level":
        row.update({k: v for k, v in rest.items() if k not in ("responses_create_params", "response", "reward")})
    elif metadata == "key" and rest:
        row["metadata"] = rest
    answer = task.get("answer")
    if answer is not None:  # NeMo Gym's servers declare ``expected_answer: str``: a number goes as its text
        row["expected_answer"] = str(answer) if isinstance(answer, (int, float)) and not isinstance(answer, bool) \
            else answer
    return row
