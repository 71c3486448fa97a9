"""The quality stage's fast paths give what the plain definitions give: LSH bands without datasketch's index,
prompts hashed a batch at a time."""

from __future__ import annotations

import random

import pytest
from datasketch.lsh import _optimal_param  # what MinHashLSH(threshold, num_perm, weights) sets b, r with

from rollgen.quality.batch import Batch
from rollgen.quality.lsh import lsh_params
from rollgen.quality.text import MinHasher, prompt_shingles


@pytest.mark.parametrize("num_perm", [16, 64, 128, 256])
@pytest.mark.parametrize("weights", [(0.1, 0.9), (0.5, 0.5)])
def test_lsh_bands_are_datasketchs(num_perm: int, weights: tuple[float, float]) -> None:
    for threshold in (0.1, 0.3, 0.5, 0.65, 0.8, 0.9, 0.95):
        assert lsh_params(threshold, num_perm, weights) == _optimal_param(threshold, num_perm, *weights), threshold


@pytest.mark.parametrize("scheme", ["oph", "classic"])
def test_prompts_hashed_together_as_one_by_one(scheme: str) -> None:
    rng = random.Random(7)
    vocab = ["Calculate", "5", "+", "-9", "x", "the", "of", "(", ")", "apple", "é", "\\frac", "{", "}", "ünï", "3rd"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30))) for _ in range(300)]
    texts += ["", "a", "a b", "1 2 3 4", "Calculate 5 + 9.\nCalculate 5 + 9."]
    hasher = MinHasher(128, 1, scheme)
    sigs, sizes = Batch(texts).prompt_signatures(hasher, 5)
    for i, text in enumerate(texts):
        sh = prompt_shingles(text, 5)
        assert (hasher.signature(sh) == sigs[i]).all(), text
        assert sizes[i] == len(set(sh.tolist())), text
