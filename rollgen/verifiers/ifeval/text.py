"""Counting text the way IFEval does: words, sentences, all-capital words, and the response's language.

* words: runs of ``\\w`` characters (IFEval's ``count_words``, NLTK's ``RegexpTokenizer(r"\\w+")``);
* sentences: IFEval's rule-based ``split_into_sentences`` (titles such as "Dr.", initials, decimals, web
  addresses and acronyms do not end a sentence). IFEval's ``count_sentences`` asks NLTK's punkt model, a
  data download; this splitter ships in the same ``instructions_util.py`` and needs none;
* all-capital words: word tokens (hyphens, apostrophes and inner dots keep a word whole: ``WELL-KNOWN``,
  ``P.S``) for which ``str.isupper()`` holds; IFEval tokenizes with NLTK's ``word_tokenize`` (punkt again);
* language: ``langdetect`` (the library IFEval uses) with a fixed seed, so a verdict never changes between
  runs; the profiles load once per process, on first use (about a second).
"""

from __future__ import annotations

import re
import threading
from typing import Any

__all__ = ["capital_words", "count_sentences", "count_words", "detect_language", "split_sentences"]

_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*")

_ALPHA = r"([A-Za-z])"
_PREFIXES = re.compile(r"(Mr|St|Mrs|Ms|Dr)[.]")
_SUFFIXES = r"(Inc|Ltd|Jr|Sr|Co)"
_STARTERS = (r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s|"
             r"This\s|Wherever)")
_ACRONYMS = r"([A-Z][.][A-Z][.](?:[A-Z][.])?)"
_WEBSITES = re.compile(r"[.](com|net|org|io|gov|edu|me)")
_DECIMAL = re.compile(r"([0-9])[.]([0-9])")
_DOTS = re.compile(r"\.{2,}")
_INITIAL = re.compile(r"\s" + _ALPHA + r"[.] ")
_ACRONYM_START = re.compile(_ACRONYMS + " " + _STARTERS)
_THREE_LETTERS = re.compile(_ALPHA + "[.]" + _ALPHA + "[.]" + _ALPHA + "[.]")
_TWO_LETTERS = re.compile(_ALPHA + "[.]" + _ALPHA + "[.]")
_SUFFIX_START = re.compile(" " + _SUFFIXES + "[.] " + _STARTERS)
_SUFFIX = re.compile(" " + _SUFFIXES + "[.]")
_LETTER_DOT = re.compile(" " + _ALPHA + "[.]")


def count_words(text: str) -> int:
    """Runs of word characters."""
    return len(_WORD.findall(text))


def split_sentences(text: str) -> list[str]:
    """IFEval's rule-based sentence splitter: ``.``, ``?`` and ``!`` end a sentence except in abbreviations,
    initials, decimals, web addresses and acronyms; a run of dots ends one once."""
    text = " " + text + "  "
    text = text.replace("\n", " ")
    text = _PREFIXES.sub("\\1<prd>", text)
    text = _WEBSITES.sub("<prd>\\1", text)
    text = _DECIMAL.sub("\\1<prd>\\2", text)
    text = _DOTS.sub(lambda m: "<prd>" * len(m.group(0)) + "<stop>", text)
    text = text.replace("Ph.D.", "Ph<prd>D<prd>")
    text = _INITIAL.sub(" \\1<prd> ", text)
    text = _ACRONYM_START.sub("\\1<stop> \\2", text)
    text = _THREE_LETTERS.sub("\\1<prd>\\2<prd>\\3<prd>", text)
    text = _TWO_LETTERS.sub("\\1<prd>\\2<prd>", text)
    text = _SUFFIX_START.sub(" \\1<stop> \\2", text)
    text = _SUFFIX.sub(" \\1<prd>", text)
    text = _LETTER_DOT.sub(" \\1<prd>", text)
    text = text.replace(".”", "”.").replace('."', '".').replace('!"', '"!').replace('?"', '"?')
    text = text.replace(".", ".<stop>").replace("?", "?<stop>").replace("!", "!<stop>").replace("<prd>", ".")
    sentences = [s.strip() for s in text.split("<stop>")]
    if sentences and not sentences[-1]:
        sentences.pop()
    return sentences


def count_sentences(text: str) -> int:
    """How many sentences ``split_sentences`` finds."""
    return len(split_sentences(text))


def capital_words(text: str) -> int:
    """How many word tokens are all capitals (``NOTE``, ``WELL-KNOWN``, ``P.S``; ``I`` too, as in IFEval)."""
    return sum(1 for token in _TOKEN.findall(text) if token.isupper())


_FACTORY: Any = None
_FACTORY_LOCK = threading.Lock()


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code langdetect gives ``text`` (seed 0: the same answer every time), or None when it
    finds no features to judge (IFEval then counts the instruction as followed)."""
    global _FACTORY
    from langdetect import DetectorFactory
    from langdetect.detector_factory import PROFILES_DIRECTORY
    from langdetect.lang_detect_exception import LangDetectException

    if _FACTORY is None:
        with _FACTORY_LOCK:
            if _FACTORY is None:
                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.set_seed(0)
                _FACTORY = factory
    detector = _FACTORY.create()
    detector.append(text)
    try:
        return str(detector.detect())
    except LangDetectException:
        return None
