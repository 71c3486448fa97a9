"""IFEval's strict and loose evaluation of one response against a task's instructions.

Strict: the response as given must follow the instruction (an empty response follows none). Loose (an upper
bound, IFEval's ``test_instruction_following_loose``): the instruction counts as followed when any of eight
variants follows it: the response, without its first line, without its last line, without both, and each of
these with every ``*`` removed (so "Sure, here it is:" before a JSON reply, or markdown bold around a title,
is forgiven).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rollgen.verifiers.ifeval.checks import instruction

__all__ = ["Followed", "Mode", "evaluate", "instructions_of", "variants"]

Mode = Literal["strict", "loose"]


@dataclass(frozen=True, slots=True)
class Followed:
    """One instruction's verdict: strict and loose."""

    id: str
    strict: bool
    loose: bool


def variants(text: str, mode: Mode) -> list[str]:
    """The texts an instruction is checked against: the response alone (strict), or IFEval's eight (loose)."""
    if mode == "strict":
        return [text]
    lines = text.split("\n")
    cut = [text, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [cut[0], cut[0].replace("*", ""), cut[1], cut[2], cut[3],
            cut[1].replace("*", ""), cut[2].replace("*", ""), cut[3].replace("*", "")]


def instructions_of(metadata: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """A task's ``instruction_id_list`` and ``kwargs`` (one object per id; missing kwargs are ``{}``).
    Raises ``ValueError`` when they are absent or do not line up, or an id or argument is bad."""
    ids = metadata.get("instruction_id_list")
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError("no instructions: metadata.instruction_id_list must be a non-empty list of IFEval "
                         "instruction ids (e.g. ['punctuation:no_comma'])")
    kwargs = metadata.get("kwargs")
    if kwargs is None:
        kwargs = [{} for _ in ids]
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise ValueError(f"metadata.kwargs must be a list of {len(ids)} objects, one per instruction id, got "
                         f"{kwargs!r:.120}")
    kwargs = [dict(k or {}) for k in kwargs]
    for iid, kw in zip(ids, kwargs):
        instruction(iid, kw)  # a bad id or argument raises here, naming it
    return ids, kwargs


def evaluate(ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]], text: str) -> list[Followed]:
    """Each instruction's strict and loose verdict on ``text``."""
    strict_text = text if text.strip() else None
    loose_texts = [v for v in variants(text, "loose") if v.strip()]
    out = []
    for iid, kw in zip(ids, kwargs):
        check = instruction(iid, kw)
        strict = strict_text is not None and check(strict_text)
        loose = strict or any(check(v) for v in loose_texts)
        out.append(Followed(iid, strict, loose))
    return out
