"""Replies built to follow, or to break, a task's instructions: the cases ``rollgen validate`` scores, and the
proof that a generated task can be followed at all.

``compliant_reply(ids, kwargs, words)`` assembles a reply from plain filler sentences (English, or the
language a ``language:response_language`` instruction asks for), with the parts each instruction needs
(a title, sections, bullets, highlights, placeholders, keywords, a postscript, an ending phrase, ...),
adding filler until every instruction holds under the strict rules; None when it cannot (instructions that
contradict each other, or a language it has no filler for). ``broken(iid, kwargs, reply)`` changes a
following reply so that instruction ``iid`` no longer holds, under strict and loose rules alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rollgen.verifiers.ifeval.checks import CONSTRAINED_RESPONSES, instruction
from rollgen.verifiers.ifeval.text import count_sentences, count_words

__all__ = ["broken", "compliant_reply"]

_FILLER = {
    "en": ("This reply keeps to the point and stays clear.", "Small steps often lead to steady progress.",
           "Good planning saves time later in the week.", "Clear notes help everyone follow along.",
           "Simple habits tend to last longer than grand plans.", "Each idea here can be tried on its own.",
           "Most people find that practice makes the work easier.", "The details matter more than they first seem.",
           "Patience pays off when results take a while.", "Sharing what works helps the whole group.",
           "Quiet moments give room to think things through.", "Useful advice is short and easy to remember.",
           "Trying again after a setback builds real skill.", "A calm approach keeps mistakes to a minimum.",
           "Looking back on the day shows what went well."),
    "es": ("La casa está cerca del río y tiene un jardín muy bonito.", "Me gusta caminar por la ciudad los domingos.",
           "El tiempo pasa rápido cuando trabajamos juntos.", "Los niños juegan en el parque después de la escuela.",
           "Siempre es mejor pensar antes de hablar.", "La comida de mi abuela es la mejor del mundo.",
           "Cada día aprendemos algo nuevo sobre la vida."),
    "fr": ("La maison est près de la rivière et elle a un beau jardin.", "Nous aimons marcher dans la ville le dimanche.",
           "Le temps passe vite quand nous travaillons ensemble.", "Les enfants jouent dans le parc après l'école.",
           "Il est toujours mieux de réfléchir avant de parler.", "La cuisine de ma grand-mère est la meilleure du monde.",
           "Chaque jour nous apprenons quelque chose de nouveau."),
    "de": ("Das Haus liegt nahe am Fluss und hat einen schönen Garten.", "Wir gehen am Sonntag gern durch die Stadt.",
           "Die Zeit vergeht schnell wenn wir zusammen arbeiten.", "Die Kinder spielen nach der Schule im Park.",
           "Es ist immer besser zuerst nachzudenken und dann zu sprechen.",
           "Das Essen meiner Großmutter ist das beste der Welt.", "Jeden Tag lernen wir etwas Neues über das Leben."),
    "it": ("La casa è vicino al fiume e ha un bel giardino.", "Ci piace camminare per la città la domenica.",
           "Il tempo passa in fretta quando lavoriamo insieme.", "I bambini giocano nel parco dopo la scuola.",
           "È sempre meglio pensare prima di parlare.", "La cucina di mia nonna è la migliore del mondo.",
           "Ogni giorno impariamo qualcosa di nuovo sulla vita."),
    "pt": ("A casa fica perto do rio e tem um jardim muito bonito.", "Nós gostamos de caminhar pela cidade aos domingos.",
           "O tempo passa depressa quando trabalhamos juntos.", "As crianças brincam no parque depois da escola.",
           "É sempre melhor pensar antes de falar.", "A comida da minha avó é a melhor do mundo.",
           "Todos os dias aprendemos alguma coisa nova sobre a vida."),
}
_LETTER_WORDS = dict(zip("abcdefghijklmnopqrstuvwxyz", (
    "area", "baby", "cocoa", "added", "eye", "fluff", "egg", "hush", "idea", "joy", "kick", "lily", "mom", "noon",
    "zoo", "pop", "quiet", "error", "sense", "tent", "union", "very", "wow", "box", "yes", "zone")))
_PLACEHOLDERS = ("name", "place", "date", "address", "time", "city", "phone", "email", "company", "topic")
_MAX_FILLER = 160

Spec = dict[str, dict[str, Any]]


class _Builder:
    def __init__(self, spec: Spec, words: Sequence[str], variant: int):
        self.spec, self.variant = spec, variant
        lang = spec.get("language:response_language", {}).get("language", "en")
        self.lang = lang if lang in _FILLER else None
        self.words = [w for w in words if w.strip()] if self.lang == "en" else []

    def has(self, iid: str) -> bool:
        return iid in self.spec

    def arg(self, iid: str, key: str, default: Any = None) -> Any:
        return self.spec.get(iid, {}).get(key, default)

    def sentences(self, n: int, offset: int = 0) -> list[str]:
        pool = _FILLER[self.lang or "en"]
        start = offset + 5 * self.variant
        return [pool[(start + i) % len(pool)] for i in range(n)]

    def build(self, extra: int) -> str:
        if self.has("detectable_format:constrained_response"):
            return CONSTRAINED_RESPONSES[self.variant % len(CONSTRAINED_RESPONSES)]
        if self.has("detectable_format:json_format"):
            body = {"answer": " ".join(self._content(extra)), "keywords": self.words[:3]}
            return "```json\n" + json.dumps(body, ensure_ascii=False, indent=2) + "\n```"
        if self.has("combination:two_responses"):
            first, second = self._response(extra), _Builder(self.spec, self.words, self.variant + 1)._response(extra)
            return f"{first}\n******\n{second}"
        return self._cased(self._response(extra))

    def _content(self, extra: int) -> list[str]:
        """Filler plus the sentences that carry keywords, repeated keywords and capital words."""
        out = self.sentences(2 + extra)
        for kw in self.arg("keywords:existence", "keywords", []):
            out.append(f"This part is about {kw}.")
        if (kw := self.arg("keywords:frequency", "keyword")) and self.arg("keywords:frequency", "relation") == "at least":
            out += [f"Think about {kw} once more."] * int(self.arg("keywords:frequency", "frequency", 0))
        if self.arg("change_case:capital_word_frequency", "capital_relation") == "at least":
            n = int(self.arg("change_case:capital_word_frequency", "capital_frequency", 0))
            caps = " ".join(w.upper() for w in re.findall(r"\w+", " ".join(self.sentences(n + 2, 7))) if len(w) > 1)
            out.append(" ".join(caps.split()[:n]) + ".")
        return out

    def _response(self, extra: int) -> str:
        content = self._content(extra)
        n_highlights = int(self.arg("detectable_format:number_highlighted_sections", "num_highlights", 0))
        for i in range(min(n_highlights, len(content))):
            content[i] = re.sub(r"(\w+)([.!?])$", r"*\1*\2", content[i])
        for i in range(len(content), n_highlights):
            content.append(f"Here is *point {i + 1}*.")
        for i in range(int(self.arg("detectable_content:number_placeholders", "num_placeholders", 0))):
            j = i % len(content)
            content[j] = content[j][:-1] + f" [{_PLACEHOLDERS[i % len(_PLACEHOLDERS)]}]" + content[j][-1]
        paragraphs, divider = self._paragraphs(content)
        text = divider.join(paragraphs)
        if self.has("combination:repeat_prompt"):
            text = self.arg("combination:repeat_prompt", "prompt_to_repeat") + "\n\n" + text
        tail = []
        if marker := self.arg("detectable_content:postscript", "postscript_marker"):
            tail.append(f"{marker} {self.sentences(1, 3)[0]}")
        if phrase := self.arg("startend:end_checker", "end_phrase"):
            tail.append(phrase)
        text = "\n\n".join([text, *tail]) if not self.has("length_constraints:nth_paragraph_first_word") else \
            "\n".join([text, *tail])
        if self.has("startend:quotation"):
            text = f'"{text}"'
        return text

    def _paragraphs(self, content: list[str]) -> tuple[list[str], str]:
        nth_word = self.has("length_constraints:nth_paragraph_first_word")
        if nth_word:
            n, divider = int(self.arg("length_constraints:nth_paragraph_first_word", "num_paragraphs", 1)), "\n\n"
        elif self.has("length_constraints:number_paragraphs"):
            n, divider = int(self.arg("length_constraints:number_paragraphs", "num_paragraphs", 1)), "\n***\n"
        else:
            n, divider = 1, "\n\n"
        sections = int(self.arg("detectable_format:multiple_sections", "num_sections", 0))
        n_bullets = int(self.arg("detectable_format:number_bullet_lists", "num_bullets", 0))
        blocks: list[list[str]] = [[] for _ in range(max(n, 1))]
        while len(content) < len(blocks):
            content.append(self.sentences(1, len(content))[0])
        for i, sentence in enumerate(content):
            blocks[i * len(blocks) // len(content)].append(sentence)
        lines_of = [[" ".join(b)] for b in blocks]
        if n_bullets:
            items = [f"* {s}" for s in self.sentences(n_bullets, 4)]
            lines_of[-1] = lines_of[-1] + items if len(blocks) > 1 or not self.has("startend:quotation") else \
                lines_of[-1][:1] + items + [self.sentences(1, 9)[0]]
        for k in range(sections):
            splitter = self.arg("detectable_format:multiple_sections", "section_spliter", "SECTION")
            at = k * len(blocks) // sections
            lines_of[at].insert(0 if not (nth_word or self.has("startend:quotation")) else 1, f"{splitter} {k + 1}")
        if nth_word:
            nth = int(self.arg("length_constraints:nth_paragraph_first_word", "nth_paragraph", 1))
            word = str(self.arg("length_constraints:nth_paragraph_first_word", "first_word", ""))
            if 1 <= nth <= len(lines_of):
                first = lines_of[nth - 1][0]
                lines_of[nth - 1][0] = f"{word.capitalize()} {first[0].lower()}{first[1:]}"
        if starter := self.arg("multi-turn:constrained_start", "starter"):
            first = lines_of[0][0]
            lines_of[0][0] = f"{starter} {first[0].lower()}{first[1:]}"
        if self.has("detectable_format:title"):
            title = "<<" + " ".join(re.findall(r"\w+", self.sentences(1, 11)[0])[:3]).title() + ">>"
            top = not (nth_word or self.has("combination:repeat_prompt") or self.has("startend:quotation"))
            lines_of[0].insert(0 if top else len(lines_of[0]), title)
        return ["\n".join(lines) for lines in lines_of], divider

    def _cased(self, text: str) -> str:
        if self.has("change_case:english_lowercase"):
            return text.lower()
        if self.has("change_case:english_capital"):
            return text.upper()
        return text

    def letter_padding(self, text: str) -> str:
        """``text`` with a sentence that brings an "at least" letter up to its count."""
        letter = self.arg("keywords:letter_frequency", "letter")
        if not letter or self.arg("keywords:letter_frequency", "let_relation") != "at least":
            return text
        missing = int(self.arg("keywords:letter_frequency", "let_frequency", 0)) - text.lower().count(letter.lower())
        if missing <= 0:
            return text
        word = _LETTER_WORDS.get(letter.lower(), letter.lower() * 3)
        per = max(word.count(letter.lower()), 1)
        padding = " ".join([word] * (-(-missing // per)))
        return self._cased(f"{text}\n\n{padding[0].upper()}{padding[1:]}.") if not self.has(
            "startend:end_checker") and not self.has("startend:quotation") else text


_AT_MOST = ("length_constraints:number_words", "length_constraints:number_sentences", "keywords:frequency",
            "keywords:letter_frequency", "change_case:capital_word_frequency")
_SLOW = ("language:response_language", "change_case:english_capital", "change_case:english_lowercase")


def compliant_reply(ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]], words: Sequence[str] = (),
                    variant: int = 0) -> str | None:
    """A reply following every instruction strictly, or None when this builder cannot make one. ``words``:
    topic words the filler may mention (a task's keywords); ``variant`` picks other filler."""
    spec: Spec = {iid: {k: v for k, v in dict(kw or {}).items() if v is not None} for iid, kw in zip(ids, kwargs)}
    builder = _Builder(spec, words, variant)
    if builder.lang is None:
        return None
    checks = [(iid, instruction(iid, kw)) for iid, kw in spec.items()]
    fast = [(iid, c) for iid, c in checks if iid not in _SLOW]
    slow = [c for iid, c in checks if iid in _SLOW]
    extra = 0
    while extra <= _MAX_FILLER:
        text = builder.letter_padding(builder.build(extra))
        failed = [iid for iid, c in fast if not c(text)]
        if not failed:
            return text if all(c(text) for c in slow) else None
        if extra and any(iid in _AT_MOST and spec[iid].get("relation", spec[iid].get("let_relation", spec[iid].get(
                "capital_relation"))) == "less than" for iid in failed):
            return None  # more filler only adds to a count that is already too high
        extra += _step(spec, text)
    return None


def _step(spec: Spec, text: str) -> int:
    """How much filler to add next: enough to close a word or sentence shortfall at once, else one sentence."""
    step = 1
    if (kw := spec.get("length_constraints:number_words")) and kw.get("relation") == "at least":
        step = max(step, (int(kw["num_words"]) - count_words(text)) // 9)
    if (kw := spec.get("length_constraints:number_sentences")) and kw.get("relation") == "at least":
        step = max(step, int(kw["num_sentences"]) - count_sentences(text))
    return step


def broken(iid: str, kwargs: Mapping[str, Any], reply: str) -> str:
    """``reply`` changed so that instruction ``iid`` no longer holds (strict and loose): the case a verifier
    must not give full marks."""
    kw = {k: v for k, v in dict(kwargs or {}).items() if v is not None}
    lines = reply.split("\n")

    def middle(extra: str) -> str:  # loose evaluation drops the first and last line: change the middle
        at = max(1, len(lines) // 2)
        return "\n".join([*lines[:at], extra, *lines[at:]]) if len(lines) > 2 else f"x\n{reply}\n{extra}\nx"

    relation = kw.get("relation", kw.get("let_relation", kw.get("capital_relation")))
    if iid == "keywords:existence":
        return re.sub(re.escape(sorted(kw["keywords"])[0]), "", reply, flags=re.IGNORECASE)
    if iid == "keywords:frequency":
        if relation == "at least":
            return re.sub(re.escape(kw["keyword"]), "", reply, flags=re.IGNORECASE)
        return middle(" ".join([kw["keyword"]] * int(kw["frequency"])))
    if iid == "keywords:forbidden_words":
        return middle(f"This mentions {kw['forbidden_words'][0]} anyway.")
    if iid == "keywords:letter_frequency":
        if relation == "at least":
            return re.sub(re.escape(kw["letter"]), "", reply, flags=re.IGNORECASE)
        return middle(" ".join([kw["letter"]] * int(kw["let_frequency"])))
    if iid in ("language:response_language", "change_case:english_capital", "change_case:english_lowercase"):
        english = " ".join(_FILLER["en"][:6])
        other = " ".join(_FILLER["de"])  # upper- or lower-cased, but not English
        if iid == "language:response_language":
            return other if kw.get("language") == "en" else english
        return (other.upper() if iid.endswith("capital") else other.lower()) if "\n" not in reply else \
            "\n".join([lines[0], english, lines[-1]])
    if iid == "length_constraints:number_sentences":
        if relation == "at least":
            return "One short line"
        return middle(" ".join(list(_FILLER["en"]) * (1 + int(kw["num_sentences"]) // len(_FILLER["en"]))))
    if iid == "length_constraints:number_paragraphs":
        if "\n***\n" in reply:  # an empty paragraph between two dividers (loose rules drop '*': then one paragraph)
            return reply.replace("\n***\n", "\n***\n***\n")
        return middle("***\nOne more paragraph.")
    if iid == "length_constraints:number_words":
        if relation == "at least":
            return "Too short."
        return middle(" ".join(["word"] * int(kw["num_words"])))
    if iid == "length_constraints:nth_paragraph_first_word":
        return "\n\n".join(f"Also {p}" for p in reply.split("\n\n")) + "\n\nExtra paragraph.\n\nAnd one more."
    if iid == "detectable_content:number_placeholders":
        return reply.replace("[", "(").replace("]", ")")
    if iid == "detectable_content:postscript":
        return re.sub(r"p\.\s?(?:p\.\s?)?s\.?", "Note", reply, flags=re.IGNORECASE)
    if iid == "detectable_format:number_bullet_lists":
        return middle("* one more point\n* and another\n* and a third")  # loose rules may drop two
    if iid == "detectable_format:constrained_response":
        return "I cannot tell."
    if iid == "detectable_format:number_highlighted_sections":
        return reply.replace("*", "")
    if iid == "detectable_format:multiple_sections":
        return re.sub(re.escape(kw["section_spliter"]) + r"\s?\d+", "Part", reply)
    if iid == "detectable_format:json_format":
        return reply.replace("}", "", 1) if "}" in reply else reply + "{"
    if iid == "detectable_format:title":
        return reply.replace("<<", "").replace(">>", "")
    if iid == "combination:two_responses":
        return reply.replace("******", "")
    if iid == "combination:repeat_prompt":
        return "Sure. " + reply
    if iid == "startend:end_checker":
        return reply.rstrip().rstrip('"') + " Thanks for reading." + ('"' if reply.rstrip().endswith('"') else "")
    if iid == "change_case:capital_word_frequency":
        if relation == "at least":
            return reply.lower()
        return middle(" ".join(["NOTE"] * int(kw["capital_frequency"])))
    if iid == "punctuation:no_comma":
        return "\n".join(line.replace(" ", ", ", 1) if " " in line else line + "," for line in lines)
    if iid == "startend:quotation":
        return reply.strip().strip('"')
    if iid == "multi-turn:constrained_start":
        return re.sub(re.escape(kw["starter"]), "Well", reply)
    raise ValueError(f"no way to break {iid!r}")
