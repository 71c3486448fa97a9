"""The quality stage's fast paths give what the plain definitions give: LSH bands without datasketch's index,
prompts hashed a batch at a time."""

from __future__ import annotations

import random

import numpy as np
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


def _densify_round_by_round(hasher: MinHasher, sigs: np.ndarray) -> np.ndarray:
    """Optimal densification as defined: each empty bin of a row with values takes the first probed bin that
    holds one, round after round."""
    full = sigs != np.uint32(0xFFFFFFFF)
    out = sigs.copy()
    rows, bins = np.nonzero(~full & full.any(axis=1)[:, None])
    rnd = 0
    while len(rows):
        cand = hasher._probe(rnd)[bins]
        ok = full[rows, cand]
        out[rows[ok], bins[ok]] = sigs[rows[ok], cand[ok]]
        rows, bins = rows[~ok], bins[~ok]
        rnd += 1
    return out


@pytest.mark.parametrize("num_perm", [16, 64, 128, 256])
def test_densify_fills_every_bin_as_the_rounds_would(num_perm: int) -> None:
    """The first-hit table gives each empty bin the value the probing rounds would reach, for texts from no
    shingle (stays empty) and one shingle (one bin filled: the table's worst case) to hundreds."""
    rng = np.random.default_rng(num_perm)
    hasher = MinHasher(num_perm, seed=int(rng.integers(1000)))
    for lo, hi in ((0, 2), (1, 2), (1, 4), (3, 12), (10, 40), (60, 200), (300, 900)):
        counts = rng.integers(lo, hi, size=300)
        shingles = rng.integers(0, 2**63, size=int(counts.sum()), dtype=np.uint64)
        rows = np.repeat(np.arange(len(counts)), counts)
        raw = hasher.signatures(shingles, rows, len(counts))
        dense = hasher.densify(raw)
        assert (dense == _densify_round_by_round(hasher, raw)).all(), (lo, hi)
        assert ((dense == np.uint32(0xFFFFFFFF)).all(axis=1) == (counts == 0)).all()  # only rows with no shingle stay empty
