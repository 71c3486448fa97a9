"""Composing verifiable instructions onto a prompt: which kinds go together, their arguments, their wording.

``compose(rng, base, kinds, low, high)`` draws between ``low`` and ``high`` instruction kinds that IFEval does not
list as conflicting (``rollgen.verifiers.ifeval.CONFLICTS``), draws each one's arguments the way IFEval's
generator does (within ranges that a reply can meet alongside the others), and returns the user turn with
the instructions written after the request, plus IFEval's ``instruction_id_list`` and ``kwargs``.
``constrained_response`` (answer "My answer is yes/no/maybe.") is drawn only for yes-or-no questions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rollgen.verifiers.ifeval import CONFLICTS, INSTRUCTIONS, LANGUAGES

__all__ = ["KINDS", "Base", "Composed", "compose", "resolve_kinds"]


@dataclass(frozen=True, slots=True)
class Base:
    """A bundled request: its text, topic keywords (drawn for keyword instructions) and whether it is a
    yes-or-no question."""

    id: str
    prompt: str
    keywords: tuple[str, ...]
    yes_no: bool = False


@dataclass(frozen=True, slots=True)
class Composed:
    prompt: str
    ids: list[str]
    kwargs: list[dict[str, Any]]


_ENDINGS = ("Is there anything else I can help with?", "Any other questions?", "That is all for now.",
            "Let me know if you have further questions.", "Thank you for reading.")
_STARTERS = ("I would say", "In my opinion", "From my perspective", "As I see it", "To my understanding")
_FIRST_WORDS = ("first", "however", "today", "imagine", "finally", "meanwhile", "overall", "remember", "next")
_GEN_LANGUAGES = ("es", "fr", "de", "it", "pt")  # languages whose replies rollgen can build for `validate`
_RARE_LETTERS = "qxzj"
_COMMON_LETTERS = "etaoinsrhl"

Draw = Callable[[random.Random, Base, dict[str, Any]], tuple[dict[str, Any], str]]


def _relation(rng: random.Random) -> str:
    return rng.choice(("less than", "at least"))


def _unused(rng: random.Random, base: Base, used: dict[str, Any], k: int) -> list[str]:
    taken = set(used.get("words", ()))
    free = [w for w in base.keywords if w not in taken] or list(base.keywords)
    chosen = rng.sample(free, min(k, len(free)))
    used.setdefault("words", set()).update(chosen)
    return sorted(chosen)


def _existence(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    words = _unused(rng, base, used, 2)
    return {"keywords": words}, f"Include the keywords {' and '.join(repr(w) for w in words)} in your response."


def _frequency(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    word, n, rel = _unused(rng, base, used, 1)[0], rng.randint(2, 4), _relation(rng)
    return ({"keyword": word, "frequency": n, "relation": rel},
            f"In your response, the word {word!r} should appear {rel} {n} times.")


def _forbidden(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    words = _unused(rng, base, used, 2)
    return ({"forbidden_words": words},
            f"Do not include the words {' or '.join(repr(w) for w in words)} anywhere in your response.")


def _letter(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    rel = _relation(rng)
    letter, n = (rng.choice(_RARE_LETTERS), rng.randint(2, 4)) if rel == "less than" else \
        (rng.choice(_COMMON_LETTERS), rng.randint(5, 15))
    return ({"letter": letter, "let_frequency": n, "let_relation": rel},
            f"In your response, the letter {letter!r} should appear {rel} {n} times.")


def _language(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    code = rng.choice(_GEN_LANGUAGES)
    return ({"language": code},
            f"Your entire response should be in {LANGUAGES[code]}; no other language is allowed.")


def _sentences(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    rel = _relation(rng)
    n = rng.randint(8, 20) if rel == "less than" else rng.randint(3, 12)
    return {"num_sentences": n, "relation": rel}, f"Your response should contain {rel} {n} sentences."


def _paragraphs(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    n = rng.randint(2, 5)
    return ({"num_paragraphs": n},
            f"Write exactly {n} paragraphs, separated from each other by the markdown divider: ***")


def _words(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    rel = _relation(rng)
    n = rng.randint(150, 400) if rel == "less than" else rng.randint(50, 300)
    return {"num_words": n, "relation": rel}, f"Answer with {rel} {n} words."


def _nth_first_word(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    n = rng.randint(2, 5)
    nth, word = rng.randint(1, n), rng.choice(_FIRST_WORDS)
    return ({"num_paragraphs": n, "nth_paragraph": nth, "first_word": word},
            f"Write exactly {n} paragraphs, separated from each other by one blank line (two new lines). "
            f"Paragraph {nth} must start with the word {word!r}.")


def _placeholders(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    n = rng.randint(1, 4)
    return ({"num_placeholders": n},
            f"Include at least {n} placeholder{'s' if n > 1 else ''} in square brackets, such as [address].")


def _postscript(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    marker = rng.choice(("P.S.", "P.P.S"))
    return {"postscript_marker": marker}, f"At the end of your response, add a postscript starting with {marker}"


def _bullets(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    n = rng.randint(2, 5)
    return ({"num_bullets": n},
            f"Your answer must contain exactly {n} markdown bullet points, written like:\n* This is one point.\n"
            "* This is another point.")


def _constrained(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {}, ("Answer with one of the following options only: 'My answer is yes.', 'My answer is no.', "
                "'My answer is maybe.'")


def _highlights(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    n = rng.randint(1, 4)
    return ({"num_highlights": n},
            f"Highlight at least {n} section{'s' if n > 1 else ''} of your answer with markdown, "
            "i.e. *highlighted section*.")


def _sections(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    splitter, n = rng.choice(("SECTION", "Section")), rng.randint(2, 5)
    return ({"section_spliter": splitter, "num_sections": n},
            f"Divide your response into {n} sections, and mark the start of each with {splitter} X, where X is "
            f"its number ({splitter} 1, {splitter} 2, ...).")


def _json(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {}, "Your entire output should be in JSON format; you may wrap it in markdown code fences (```)."


def _title(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {}, "Give your answer a title wrapped in double angular brackets, such as <<my title>>."


def _two_responses(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {}, ("Give two different responses, separated by six asterisks: ******. Write nothing but the two "
                "responses and the separator.")


def _repeat(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {"prompt_to_repeat": used["request"]}, (
        "First repeat the request above word for word without change, then give your answer (say nothing before "
        "the repeated request; the request to repeat does not include this sentence).")


def _end(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    phrase = rng.choice(_ENDINGS)
    return ({"end_phrase": phrase},
            f"Finish your response with this exact phrase: {phrase} No other words should follow it.")


def _capital_words(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    rel = _relation(rng)
    n = rng.randint(3, 10) if rel == "less than" else rng.randint(2, 10)
    return ({"capital_frequency": n, "capital_relation": rel},
            f"In your response, words written entirely in capital letters should appear {rel} {n} times.")


def _capital(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {}, "Your entire response should be in English, and in capital letters only."


def _lowercase(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {}, "Your entire response should be in English, and in lowercase letters only. No capital letters."


def _no_comma(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {}, "Do not use any commas anywhere in your response."


def _quotation(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return {}, "Wrap your entire response in double quotation marks."


def _start(rng: random.Random, base: Base, used: dict[str, Any]) -> tuple[dict[str, Any], str]:
    starter = rng.choice(_STARTERS)
    return {"starter": starter}, f"Begin your response with the phrase '{starter}'."


KINDS: dict[str, Draw] = {
    "keywords:existence": _existence,
    "keywords:frequency": _frequency,
    "keywords:forbidden_words": _forbidden,
    "keywords:letter_frequency": _letter,
    "language:response_language": _language,
    "length_constraints:number_sentences": _sentences,
    "length_constraints:number_paragraphs": _paragraphs,
    "length_constraints:number_words": _words,
    "length_constraints:nth_paragraph_first_word": _nth_first_word,
    "detectable_content:number_placeholders": _placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:constrained_response": _constrained,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:json_format": _json,
    "detectable_format:title": _title,
    "combination:two_responses": _two_responses,
    "combination:repeat_prompt": _repeat,
    "startend:end_checker": _end,
    "change_case:capital_word_frequency": _capital_words,
    "change_case:english_capital": _capital,
    "change_case:english_lowercase": _lowercase,
    "punctuation:no_comma": _no_comma,
    "startend:quotation": _quotation,
    "multi-turn:constrained_start": _start,
}
assert set(KINDS) == set(INSTRUCTIONS)


def resolve_kinds(names: Sequence[str] | None) -> list[str]:
    """Instruction ids from full ids or their part after the colon (``no_comma``); None: every kind.
    Raises ``ValueError`` naming an unknown or ambiguous name."""
    if names is None:
        return list(KINDS)
    out = []
    for name in names:
        matches = [k for k in KINDS if k == name or k.split(":", 1)[1] == name]
        if len(matches) != 1:
            raise ValueError(f"unknown instruction kind {name!r}; the kinds are: {', '.join(KINDS)}")
        if matches[0] not in out:
            out.append(matches[0])
    return out


def compose(rng: random.Random, base: Base, kinds: Sequence[str], low: int, high: int) -> Composed:
    """``base`` with between ``low`` and ``high`` non-conflicting instructions from ``kinds`` (fewer when the
    kinds allow no more). ``repeat_prompt`` goes last: the request to repeat is everything before it."""
    want = rng.randint(low, high)
    chosen: list[str] = []
    pool = [k for k in kinds if base.yes_no or k != "detectable_format:constrained_response"]
    while len(chosen) < want:
        free = [k for k in pool if not any(k in CONFLICTS[c] for c in chosen)]
        if not free:
            break
        chosen.append(rng.choice(free))
    chosen.sort(key=lambda k: k == "combination:repeat_prompt")
    used: dict[str, Any] = {}
    kwargs, texts = [], [base.prompt]
    for kind in chosen:
        used["request"] = " ".join(texts)
        kw, text = KINDS[kind](rng, base, used)
        kwargs.append(kw)
        texts.append(text)
    return Composed(prompt=" ".join(texts), ids=chosen, kwargs=kwargs)
