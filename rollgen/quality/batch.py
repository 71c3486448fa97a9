"""Text features of a batch of completions, computed together.

Hashing one completion takes a dozen numpy calls whose fixed cost (microseconds each) is most of the
work for a few hundred words; so the first pass reads rows in batches, joins their completions and
hashes words, n-grams, repetition ratios and MinHash signatures for the whole batch at once. A row's
features are slices of the batch arrays (``RowView`` asks for them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rollgen.quality.text import PROMPT_SALT, MinHasher, P, mix, shingles, skeletons, word_spans

__all__ = ["Batch"]


class Batch:
    def __init__(self, texts: list[str]):
        self.size = len(texts)
        parts = [t.lower().encode("utf-8", "surrogatepass") for t in texts]
        row_start = np.zeros(self.size, dtype=np.int64)
        if self.size > 1:
            np.cumsum([len(p) + 1 for p in parts[:-1]], out=row_start[1:])
        joined = b"\n".join(parts)
        self.tokens, token_start = word_spans(joined)  # "\n" is no word byte: rows stay apart
        self.first = np.frombuffer(joined, dtype=np.uint8)[token_start]  # each word's first byte
        self.row = (np.searchsorted(row_start, token_start, side="right") - 1).astype(np.int64)
        self.offsets = np.searchsorted(self.row, np.arange(self.size + 1))
        self._cache: dict[Any, Any] = {}

    def words(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def skeletons(self) -> np.ndarray:
        """``text.skeletons`` of every row: their numbers and math symbols."""
        if "skeletons" not in self._cache:
            self._cache["skeletons"] = skeletons(self.tokens, self.first, self.row, self.size)
        return self._cache["skeletons"]

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Mixed hashes of the word n-grams inside each row, and the row of each."""
        key = ("ngrams", n)
        if key not in self._cache:
            m = len(self.tokens) - n + 1
            if m <= 0:
                self._cache[key] = np.zeros(0, np.uint64), np.zeros(0, np.int64)
            else:
                h = self.tokens[:m].copy()
                for j in range(1, n):
                    h *= P
                    h += self.tokens[j:m + j]
                inside = self.row[:m] == self.row[n - 1:]
                self._cache[key] = mix(h[inside]), self.row[:m][inside]
        return self._cache[key]

    def shingles(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """MinHash shingles and their rows: the n-grams, plus the whole text of rows with 1..n-1 words."""
        key = ("shingles", n)
        if key not in self._cache:
            h, r = self.ngrams(n)
            counts = np.diff(self.offsets)
            short = np.flatnonzero((counts > 0) & (counts < n))
            if len(short):
                whole = np.array([shingles(self.words(i), n)[0] for i in short.tolist()], dtype=np.uint64)
                h, r = np.concatenate([h, whole]), np.concatenate([r, short])
                order = np.argsort(r, kind="stable")
                h, r = h[order], r[order]
            self._cache[key] = h, r
        return self._cache[key]

    def repetition(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row: ``1 - distinct / total`` word n-grams, and the total."""
        key = ("repetition", n)
        if key not in self._cache:
            h, r = self.ngrams(n)
            total = np.bincount(r, minlength=self.size)
            keyed = np.sort((h >> np.uint64(24)) | (r.astype(np.uint64) << np.uint64(40)))  # row, then hash
            first = np.ones(len(keyed), dtype=bool)  # each (row, hash) once; no n-grams at all in a batch of
            first[1:] = keyed[1:] != keyed[:-1]      # short replies is fine
            distinct = np.bincount((keyed[first] >> np.uint64(40)).astype(np.int64), minlength=self.size)
            ratio = np.where(total > 0, 1.0 - distinct / np.maximum(total, 1), 0.0)
            self._cache[key] = ratio, total
        return self._cache[key]

    def signatures(self, hasher: MinHasher, n: int) -> np.ndarray:
        """One MinHash signature per row (of its shingles)."""
        key = ("signatures", n, id(hasher))
        if key not in self._cache:
            h, r = self.shingles(n)
            self._cache[key] = hasher.signatures(h, r, self.size)
        return self._cache[key]

    def prompt_signatures(self, hasher: MinHasher, n: int) -> tuple[np.ndarray, np.ndarray]:
        """For rows that are prompts: the MinHash signature of each one's ``text.prompt_shingles`` (its shingles
        salted with its skeleton), and the number of distinct shingles of each."""
        key = ("prompt_signatures", n, id(hasher))
        if key not in self._cache:
            h, r = self.shingles(n)
            h = h ^ mix(self.skeletons() ^ np.uint64(PROMPT_SALT))[r]
            order = np.lexsort((h, r))  # by row, then hash
            hs, rs = h[order], r[order]
            first = np.r_[True, (hs[1:] != hs[:-1]) | (rs[1:] != rs[:-1])] if len(hs) else np.zeros(0, bool)
            sizes = np.bincount(rs[first], minlength=self.size)
            self._cache[key] = hasher.signatures(h, r, self.size), sizes
        return self._cache[key]
