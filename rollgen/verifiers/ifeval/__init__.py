"""IFEval-style verifiable instructions: the checks (``checks``), strict and loose evaluation (``evaluate``),
the text counts they rest on (``text``), and replies built to follow or break them (``reply``).
The verifier is ``rollgen.verifiers.instructions.InstructionFollowing``; the server that composes these
instructions onto prompts is ``rollgen.servers.instruction_following``."""

from __future__ import annotations

from rollgen.verifiers.ifeval.checks import CONFLICTS, INSTRUCTIONS, LANGUAGES, RELATIONS, instruction
from rollgen.verifiers.ifeval.evaluate import Followed, Mode, evaluate, instructions_of, variants
from rollgen.verifiers.ifeval.reply import broken, compliant_reply

__all__ = ["CONFLICTS", "INSTRUCTIONS", "LANGUAGES", "RELATIONS", "Followed", "Mode", "broken", "compliant_reply",
           "evaluate", "instruction", "instructions_of", "variants"]
