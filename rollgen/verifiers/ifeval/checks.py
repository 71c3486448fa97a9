"""IFEval's verifiable instructions: one check per instruction id, with IFEval's arguments and its rules.

Matched to google-research ``instruction_following_eval`` (``instructions.py`` at commit 3f357bde,
``instructions_registry.py`` at 1d49f2c0, ``evaluation_lib.py`` at 4c429948): the same ids, the same kwargs
names (so IFEval's ``input_data.jsonl`` and NeMo Gym's instruction-following rows load as they are), and the
same rules, quirks included (keywords are regexes matched anywhere, case-insensitively; "less than" is
strict; a bullet is a line starting with ``*`` or ``-``; language detection that finds nothing counts as
followed). Two counts differ where IFEval needs NLTK data downloads (see ``rollgen.verifiers.ifeval.text``).
``multi-turn:constrained_start`` is IFEval's ``ConstrainedStartChecker`` (unregistered there): a line must
start with the phrase.

``instruction(id, kwargs)`` builds a check from a row's ``instruction_id_list[i]`` and ``kwargs[i]`` (None
values dropped, as NeMo Gym does, since Hugging Face's IFEval rows carry every key); a bad id or argument
raises ``ValueError`` naming it. A check is called with the response text and returns whether it is followed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from rollgen.verifiers.ifeval.text import capital_words, count_sentences, count_words, detect_language

__all__ = ["CONFLICTS", "INSTRUCTIONS", "LANGUAGES", "RELATIONS", "Check", "instruction"]

RELATIONS = ("less than", "at least")
LANGUAGES = {"en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi", "fr": "French",
             "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian", "bn": "Bengali", "uk": "Ukrainian",
             "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu", "bg": "Bulgarian", "ko": "Korean",
             "pl": "Polish", "he": "Hebrew", "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili",
             "kn": "Kannada", "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish"}
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

Check = Callable[[str], bool]


class _Args:
    """A row's kwargs for one instruction, read with the instruction id in every error."""

    def __init__(self, iid: str, kwargs: Mapping[str, Any] | None):
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ValueError(f"{iid}: kwargs must be an object, got {type(kwargs).__name__}")
        self.iid, self.kw = iid, {k: v for k, v in (kwargs or {}).items() if v is not None}

    def int(self, key: str, minimum: int = 0) -> int:
        value = self.kw.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{self.iid}: kwargs.{key} must be an integer >= {minimum}, got {value!r}")
        return value

    def str(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.kw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{self.iid}: kwargs.{key} must be a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise ValueError(f"{self.iid}: kwargs.{key} must be one of {list(choices)}, got {value!r}")
        return value.strip() if choices is None else value

    def words(self, key: str) -> list[str]:
        value = self.kw.get(key)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(w, str) and w.strip() for w in value):
            raise ValueError(f"{self.iid}: kwargs.{key} must be a non-empty list of strings, got {value!r}")
        return sorted({w.strip() for w in value})


def _compiled(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """IFEval reads keywords as regexes; one that is not a valid regex is matched literally."""
    try:
        return re.compile(pattern, flags)
    except re.error:
        return re.compile(re.escape(pattern), flags)


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == RELATIONS[0] else count >= threshold


def _keywords_existence(a: _Args) -> Check:
    patterns = [_compiled(k, re.IGNORECASE) for k in a.words("keywords")]
    return lambda text: all(p.search(text) for p in patterns)


def _keywords_frequency(a: _Args) -> Check:
    pattern, n, rel = _compiled(a.str("keyword"), re.IGNORECASE), a.int("frequency"), a.str("relation", RELATIONS)
    return lambda text: _compare(len(pattern.findall(text)), rel, n)


def _forbidden_words(a: _Args) -> Check:
    patterns = [_compiled(r"\b" + w + r"\b", re.IGNORECASE) for w in a.words("forbidden_words")]
    return lambda text: not any(p.search(text) for p in patterns)


def _letter_frequency(a: _Args) -> Check:
    letter = a.str("letter").lower()
    if len(letter) != 1:
        raise ValueError(f"{a.iid}: kwargs.letter must be one letter, got {letter!r}")
    n, rel = a.int("let_frequency"), a.str("let_relation", RELATIONS)
    return lambda text: _compare(Counter(text.lower())[letter], rel, n)


def _language(a: _Args) -> Check:
    language = a.str("language", tuple(LANGUAGES))
    return lambda text: detect_language(text) in (language, None)


def _number_sentences(a: _Args) -> Check:
    n, rel = a.int("num_sentences"), a.str("relation", RELATIONS)
    return lambda text: _compare(count_sentences(text), rel, n)


_DIVIDER = re.compile(r"\s?\*\*\*\s?")


def _number_paragraphs(a: _Args) -> Check:
    n = a.int("num_paragraphs", 1)

    def check(text: str) -> bool:
        parts = _DIVIDER.split(text)
        count = len(parts)
        for i, part in enumerate(parts):
            if not part.strip():
                if i not in (0, len(parts) - 1):
                    return False  # an empty paragraph between two dividers
                count -= 1
        return count == n
    return check


def _number_words(a: _Args) -> Check:
    n, rel = a.int("num_words"), a.str("relation", RELATIONS)
    return lambda text: _compare(count_words(text), rel, n)


def first_word(paragraph: str) -> str:
    """A paragraph's first word as IFEval reads it: quotes stripped in front, cut at ``. , ? ! ' "``, lowercased."""
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    return re.split(r"""[.,?!'"]""", word, maxsplit=1)[0].lower()


def _nth_paragraph_first_word(a: _Args) -> Check:
    n, nth, word = a.int("num_paragraphs", 1), a.int("nth_paragraph", 1), a.str("first_word").lower()

    def check(text: str) -> bool:
        parts = text.split("\n\n")
        count = sum(1 for p in parts if p.strip())
        if nth > count or not (paragraph := parts[nth - 1].strip()):
            return False
        return count == n and first_word(paragraph) == word
    return check


_PLACEHOLDER = re.compile(r"\[.*?\]")


def _placeholders(a: _Args) -> Check:
    n = a.int("num_placeholders")
    return lambda text: len(_PLACEHOLDER.findall(text)) >= n


def _postscript(a: _Args) -> Check:
    marker = a.str("postscript_marker")
    if marker == "P.P.S":
        pattern = re.compile(r"\s*p\.\s?p\.\s?s.*$", re.MULTILINE)
    elif marker == "P.S.":
        pattern = re.compile(r"\s*p\.\s?s\..*$", re.MULTILINE)
    else:
        pattern = _compiled(r"\s*" + marker.lower() + r".*$", re.MULTILINE)
    return lambda text: pattern.search(text.lower()) is not None


_STAR_BULLET = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_DASH_BULLET = re.compile(r"^\s*-.*$", re.MULTILINE)


def bullet_count(text: str) -> int:
    """Lines starting with ``*`` (not ``**``) or ``-``, as IFEval counts bullets."""
    return len(_STAR_BULLET.findall(text)) + len(_DASH_BULLET.findall(text))


def _bullets(a: _Args) -> Check:
    n = a.int("num_bullets")
    return lambda text: bullet_count(text) == n


def _constrained_response(a: _Args) -> Check:
    return lambda text: any(option in text.strip() for option in CONSTRAINED_RESPONSES)


_HIGHLIGHT = re.compile(r"\*[^\n\*]*\*")
_BOLD = re.compile(r"\*\*[^\n\*]*\*\*")


def highlight_count(text: str) -> int:
    """``*x*`` and ``**x**`` spans with text inside (``**x**`` once: its ``*x*`` reading finds only ``**``)."""
    return (sum(1 for h in _HIGHLIGHT.findall(text) if h.strip("*").strip())
            + sum(1 for h in _BOLD.findall(text) if h[2:-2].strip()))


def _highlights(a: _Args) -> Check:
    n = a.int("num_highlights")
    return lambda text: highlight_count(text) >= n


def _sections(a: _Args) -> Check:
    n, splitter = a.int("num_sections"), a.str("section_spliter")
    pattern = _compiled(r"\s?" + splitter + r"\s?\d+\s?")
    return lambda text: len(pattern.split(text)) - 1 >= n


def _json(a: _Args) -> Check:
    def check(text: str) -> bool:
        value = text.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            value = value.removeprefix(fence)
        value = value.removesuffix("```").strip()
        try:
            json.loads(value)
        except ValueError:
            return False
        return True
    return check


_TITLE = re.compile(r"<<[^\n]+>>")


def _title(a: _Args) -> Check:
    return lambda text: any(t.lstrip("<").rstrip(">").strip() for t in _TITLE.findall(text))


def _two_responses(a: _Args) -> Check:
    def check(text: str) -> bool:
        parts = text.split("******")
        responses = []
        for i, part in enumerate(parts):
            if part.strip():
                responses.append(part.strip())
            elif i not in (0, len(parts) - 1):
                return False
        return len(responses) == 2 and responses[0] != responses[1]
    return check


def _repeat_prompt(a: _Args) -> Check:
    prompt = a.str("prompt_to_repeat").lower()
    return lambda text: text.strip().lower().startswith(prompt)


def _end_checker(a: _Args) -> Check:
    phrase = a.str("end_phrase").lower()
    return lambda text: text.strip().strip('"').lower().endswith(phrase)


def _capital_word_frequency(a: _Args) -> Check:
    n, rel = a.int("capital_frequency"), a.str("capital_relation", RELATIONS)
    return lambda text: _compare(capital_words(text), rel, n)


def _english_capital(a: _Args) -> Check:
    return lambda text: text.isupper() and detect_language(text) in ("en", None)


def _english_lowercase(a: _Args) -> Check:
    return lambda text: text.islower() and detect_language(text) in ("en", None)


def _no_comma(a: _Args) -> Check:
    return lambda text: "," not in text


def _quotation(a: _Args) -> Check:
    def check(text: str) -> bool:
        value = text.strip()
        return len(value) > 1 and value[0] == '"' and value[-1] == '"'
    return check


def _constrained_start(a: _Args) -> Check:
    pattern = _compiled(r"^\s*" + a.str("starter") + r".*$", re.MULTILINE)
    return lambda text: pattern.search(text) is not None


INSTRUCTIONS: dict[str, Callable[[_Args], Check]] = {
    "keywords:existence": _keywords_existence,
    "keywords:frequency": _keywords_frequency,
    "keywords:forbidden_words": _forbidden_words,
    "keywords:letter_frequency": _letter_frequency,
    "language:response_language": _language,
    "length_constraints:number_sentences": _number_sentences,
    "length_constraints:number_paragraphs": _number_paragraphs,
    "length_constraints:number_words": _number_words,
    "length_constraints:nth_paragraph_first_word": _nth_paragraph_first_word,
    "detectable_content:number_placeholders": _placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:constrained_response": _constrained_response,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:json_format": _json,
    "detectable_format:title": _title,
    "combination:two_responses": _two_responses,
    "combination:repeat_prompt": _repeat_prompt,
    "startend:end_checker": _end_checker,
    "change_case:capital_word_frequency": _capital_word_frequency,
    "change_case:english_capital": _english_capital,
    "change_case:english_lowercase": _english_lowercase,
    "punctuation:no_comma": _no_comma,
    "startend:quotation": _quotation,
    "multi-turn:constrained_start": _constrained_start,
}


def instruction(iid: str, kwargs: Mapping[str, Any] | None = None) -> Check:
    """The check for instruction ``iid`` with a row's ``kwargs``. Raises ``ValueError`` naming a bad id or argument."""
    build = INSTRUCTIONS.get(iid)
    if build is None:
        raise ValueError(f"unknown instruction id {iid!r}; known: {', '.join(sorted(INSTRUCTIONS))}")
    return build(_Args(iid, kwargs))


def _conflicts() -> dict[str, set[str]]:
    """IFEval's ``INSTRUCTION_CONFLICTS``, made symmetric (``conflict_make``): instructions never given together
    (``constrained_start`` counts among "every instruction" where IFEval's table says so)."""
    every = set(INSTRUCTIONS)
    table: dict[str, set[str]] = {iid: {iid} for iid in INSTRUCTIONS}
    table["language:response_language"] |= {
        "detectable_format:multiple_sections", "keywords:existence", "keywords:frequency", "keywords:forbidden_words",
        "startend:end_checker", "change_case:english_capital", "change_case:english_lowercase"}
    table["length_constraints:number_paragraphs"] |= {"length_constraints:nth_paragraph_first_word",
                                                      "length_constraints:number_sentences"}
    table["detectable_format:constrained_response"] |= every
    table["detectable_format:multiple_sections"] |= {"detectable_format:number_highlighted_sections"}
    table["detectable_format:json_format"] |= every - {"keywords:forbidden_words", "keywords:existence"}
    table["combination:two_responses"] |= every - {"keywords:forbidden_words", "keywords:existence",
                                                   "language:response_language", "detectable_format:title",
                                                   "punctuation:no_comma"}
    table["combination:repeat_prompt"] |= every - {"keywords:existence", "detectable_format:title",
                                                  "punctuation:no_comma"}
    table["change_case:capital_word_frequency"] |= {"change_case:english_lowercase", "change_case:english_capital"}
    table["change_case:english_lowercase"] |= {"change_case:english_capital"}
    table["startend:quotation"] |= {"detectable_format:title"}
    for iid, others in list(table.items()):
        for other in others:
            table[other].add(iid)
    return table


CONFLICTS = _conflicts()
