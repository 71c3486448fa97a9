"""Rewards on realistic replies (``tests/data/math_replies.jsonl``, labelled by hand): rollgen's math verifier
behind its guards against plain math-verify, category by category (issue 12, item 5).

The corpus holds replies written in the style of a 135M model and of larger models' worked solutions for every
category of the issue (the question's own quantity restated, ``original = ???``, no stated answer, hedges in
prose, truncations, copies of the question; a check or a clause after the answer, multi-part answers, units
after the math, prose lists, thousands separators and scientific notation, an answer sentence, mixed numbers,
intervals as inequalities, intermediate and retracted boxes), replies written after the rules were fixed
(``heldout``), and real SmolLM2-135M replies to reasoning-gym tasks (``smollm2-135m``). ``bench/rewards.py``
prints the same numbers.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bench.rewards import evaluate, load

ENTRIES = load()
# Replies rollgen still scores against their label, and why.
KNOWN_MISSES = {
    "smollm2-b-33": "a real 135M reply that states the GCD of two other numbers ('the GCD of 360 and 360, which is 1'), "
    "then stops mid-word; the sentence is about what the question asks (a GCD), so it reads as the answer",
}
ISSUE_CATEGORIES = {"restated_quantity", "unparseable_rhs", "no_statement", "hedge", "truncated", "question_copy",
                    "after_answer", "multi_part", "units_after", "prose_list", "thousands", "answer_sentence",
                    "mixed_number", "interval", "intermediate_box", "retracted_box"}


@pytest.fixture(scope="module")
def results() -> dict:
    return evaluate(ENTRIES)


def test_the_corpus_covers_every_category_in_both_styles_with_real_replies() -> None:
    categories = Counter(e["category"] for e in ENTRIES)
    assert ISSUE_CATEGORIES <= set(categories)
    assert {e["style"] for e in ENTRIES} == {"small", "large", "smollm2-135m"}
    assert categories["smollm2_sample"] >= 200 and sum(bool(e.get("heldout")) for e in ENTRIES) >= 140
    labels = {c: {e["label"] for e in ENTRIES if e["category"] == c} for c in ISSUE_CATEGORIES}
    one_sided = {"truncated", "question_copy", "interval", "intermediate_box", "mixed_number"}
    assert all(labels[c] == {0, 1} for c in ISSUE_CATEGORIES - one_sided), labels
    assert {e["id"] for e in ENTRIES} == {e["id"] for e in ENTRIES if e["reply"] and e["answer"]}
    assert len({e["id"] for e in ENTRIES}) == len(ENTRIES)


def test_fewer_false_positives_and_fewer_false_negatives_than_plain_math_verify(results: dict) -> None:
    plain, ours = results["math_verify"], results["rollgen_guarded"]
    assert ours["false_positives"] < plain["false_positives"] and ours["false_negatives"] < plain["false_negatives"]
    # The verifier alone, without the guards, is already better on both counts.
    alone = results["rollgen_verifier"]
    assert alone["false_positives"] < plain["false_positives"] and alone["false_negatives"] < plain["false_negatives"]


def test_hedges_truncations_and_copies_of_the_question_always_score_0(results: dict) -> None:
    always_0 = {e["id"] for e in ENTRIES if not e["label"] and (
        e["category"] in ("hedge", "truncated", "question_copy") or e["finish_reason"] == "length")}
    assert len(always_0) >= 20
    assert always_0.isdisjoint(results["rollgen_guarded"]["fp_ids"])
    # Plain math-verify rewards some of each.
    category = {e["id"]: e["category"] for e in ENTRIES}
    assert {category[i] for i in always_0 & set(results["math_verify"]["fp_ids"])} >= {"hedge", "truncated",
                                                                                         "question_copy"}


def test_every_reply_scores_as_labelled_but_the_known_misses(results: dict) -> None:
    ours = results["rollgen_guarded"]
    assert set(ours["fp_ids"]) | set(ours["fn_ids"]) == set(KNOWN_MISSES)
