"""Text features, vectorised with numpy: word hashes, n-gram hashes, exact-duplicate keys, MinHash signatures.

Words are runs of ASCII letters, digits, ``_`` and any non-ASCII bytes, after ``str.lower()``, and
each math or code symbol (``+ - * / = < > ^ % $ \\ { } ( ) [ ] | & ~ # @``) on its own; sentence
punctuation and whitespace only separate them. So "The answer, is 42!" and "the answer is 42" have
the same words, and "6 - 2" and "6 + 2" do not. Hashes are deterministic across
processes (no ``hash()``), so a re-run of ``rollgen curate`` makes the same decisions.

Prompts of templated problems differ only in their numbers ("Calculate 5 + 9." / "Calculate -9 + 9."),
so for prompts the numbers and math symbols are made significant: ``prompt_shingles`` salts every
shingle with the prompt's ``skeleton`` (its numbers and symbols in order), and two prompts whose
skeletons differ share no shingle at all. ``prompt_key`` is the exact key of a normalised prompt (Unicode NFKC,
case, whitespace and sentence punctuation ignored) that splits and split checks group by.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata

import numpy as np

__all__ = ["PROMPT_SALT", "MinHasher", "P", "answer_key", "exact_key", "mix", "ngram_hashes", "prompt_key", "prompt_shingles",
           "shingles", "skeleton", "skeletons", "sorted_common", "sorted_set", "text_words", "word_spans", "words"]

_WORD = np.zeros(256, dtype=np.int8)  # 1: part of a word, 2: a symbol that is a word by itself, 0: separator
_WORD[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789_", dtype=np.uint8)] = 1
_WORD[128:] = 1
_WORD[np.frombuffer(b"+-*/=<>^%$\\{}()[]|&~#@", dtype=np.uint8)] = 2
_ONE = np.uint64(1)
_MAX32 = np.uint32(0xFFFFFFFF)
_ROUNDS_BY_PROBE = 16  # densify: rounds probed one by one before the first-hit table takes the bins left
_FIRST_HIT_ROUNDS = 1 << 15  # rounds the first-hit table spans (256 bins need ~4,000 to reach every pair)
_PAIRS_AT_ONCE = 8192  # (row, bin) pairs looked up in the table at once, against their rows' filled bins
P = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2**64
_P_INV = np.uint64(pow(0x100000001B3, -1, 1 << 64))
_S27, _S30, _S31, _S32 = (np.uint64(k) for k in (27, 30, 31, 32))
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_pow = np.ones(1, dtype=np.uint64)
_pow_inv = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i (mod 2**64) for i < n, grown by doubling and kept."""
    global _pow, _pow_inv
    if len(_pow) < n:
        size = max(n, 2 * len(_pow))
        with np.errstate(over="ignore"):
            _pow = np.cumprod(np.concatenate(([np.uint64(1)], np.full(size - 1, P, dtype=np.uint64))))
            _pow_inv = np.cumprod(np.concatenate(([np.uint64(1)], np.full(size - 1, _P_INV, dtype=np.uint64))))
    return _pow, _pow_inv


def word_spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """For lower-cased UTF-8 ``data``: one uint64 hash per word, and the byte offset where each word starts."""
    b = np.frombuffer(data, dtype=np.uint8)
    n = len(b)
    if n == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    kind = np.zeros(n + 2, dtype=np.int8)
    np.take(_WORD, b, out=kind[1:-1])
    letter, symbol = kind == 1, (kind == 2)[1:-1]
    starts = ((letter[1:-1] & ~letter[:-2]) | symbol).nonzero()[0]  # a run of letters begins, or a symbol
    ends = ((letter[1:-1] & ~letter[2:]) | symbol).nonzero()[0] + 1
    pw, pw_inv = _powers(n + 1)
    prefix = np.empty(n + 1, dtype=np.uint64)
    prefix[0] = 0
    x = b.astype(np.uint64)
    x += _ONE  # byte b counts as b + 1, so NUL bytes still change a hash
    x *= pw[:n]  # array arithmetic wraps modulo 2**64 silently
    np.cumsum(x, out=prefix[1:])
    return (prefix[ends] - prefix[starts]) * pw_inv[starts], starts


def words(text: str) -> np.ndarray:
    """One uint64 hash per word of ``text``, in order (a polynomial hash of the word's bytes)."""
    return word_spans(text.lower().encode("utf-8", "surrogatepass"))[0]


def mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every output bit depends on every input bit."""
    h = h ^ (h >> _S30)
    h *= _M1
    h ^= h >> _S27
    h *= _M2
    h ^= h >> _S31
    return h


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """One mixed uint64 hash per run of ``n`` consecutive words (none when there are fewer words)."""
    m = len(tokens) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    out = tokens[:m].copy()
    for j in range(1, n):
        out *= P
        out += tokens[j:m + j]
    return mix(out)


def shingles(tokens: np.ndarray, n: int) -> np.ndarray:
    """MinHash shingles: the word n-grams, or for a text of 1..n-1 words the whole text as one shingle
    (else every short text would have the same, empty, set)."""
    if 0 < len(tokens) < n:
        return ngram_hashes(tokens, len(tokens))
    return ngram_hashes(tokens, n)


_SKELETON_SALT = np.uint64(0x5CE1E7)
PROMPT_SALT = 0x9E3779B97F4A7C15  # prompt shingles are xor-ed with mix(skeleton ^ this)
_SIGNIFICANT = np.zeros(256, dtype=bool)  # first bytes of significant words: digits and math symbols
_SIGNIFICANT[np.frombuffer(b"0123456789+-*/=<>^%$\\{}()[]|&~#@", dtype=np.uint8)] = True


def text_words(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``words(text)`` and the first byte of each word."""
    data = text.lower().encode("utf-8", "surrogatepass")
    tokens, starts = word_spans(data)
    return tokens, np.frombuffer(data, dtype=np.uint8)[starts]


def skeletons(tokens: np.ndarray, first: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Per row 0..n_rows-1 (``rows``: each word's row, sorted), a 64-bit key of its significant words in
    order: numbers (words that start with a digit: "12", "3rd") and math symbols; ``first`` holds each
    word's first byte. 0 for a row without any. The sum of position-salted word hashes, vectorised."""
    out = np.zeros(n_rows, dtype=np.uint64)
    keep = _SIGNIFICANT[first]
    tok, row = tokens[keep], rows[keep]
    if not len(tok):
        return out
    start = np.searchsorted(row, row, side="left")  # index of the row's first significant word
    pos = np.arange(len(tok), dtype=np.uint64) - start.astype(np.uint64)
    h = mix(tok ^ mix(pos + _SKELETON_SALT))
    heads = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    out[row[heads]] = np.add.reduceat(h, heads)
    out[row[heads][out[row[heads]] == 0]] = 1
    return out


def skeleton(tokens: np.ndarray, first: np.ndarray) -> int:
    """``skeletons`` of one text."""
    return int(skeletons(tokens, first, np.zeros(len(tokens), dtype=np.int64), 1)[0])


def prompt_shingles(text: str, n: int, tokens: np.ndarray | None = None, skel: int | None = None) -> np.ndarray:
    """Shingles of a prompt whose numbers and math symbols are significant: the word n-grams xor-salted with
    the prompt's ``skeleton`` (``tokens`` and ``skel`` when already computed, else from ``text``). The salt
    also keeps prompt shingles apart from completion shingles (``prompt_completion`` dedup)."""
    if tokens is None or skel is None:
        tokens, first = text_words(text)
        skel = skeleton(tokens, first)
    sh = shingles(tokens, n)
    sh ^= np.uint64(_mix_int(skel ^ PROMPT_SALT))
    return sh


def _mix_int(h: int) -> int:
    """``mix`` of one Python int (no numpy call for a single value)."""
    m = (1 << 64) - 1
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & m
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & m
    return h ^ (h >> 31)


def prompt_key(text: str) -> bytes:
    """An 8-byte key equal for prompts with the same words after NFKC (case, spacing and sentence
    punctuation ignored; numbers and math symbols kept)."""
    return exact_key(words(unicodedata.normalize("NFKC", text)))


def answer_key(answer: object) -> int:
    """A non-zero 64-bit key of a gold answer (NFKC, case and runs of whitespace ignored); 0 for none."""
    if answer is None:
        return 0
    if isinstance(answer, str):
        text = " ".join(unicodedata.normalize("NFKC", answer).casefold().split())
    else:
        text = json.dumps(answer, sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little") or 1


def sorted_set(x: np.ndarray) -> np.ndarray:
    """``x`` sorted without repeats (``np.unique`` hashes in numpy 2, many times slower for a few hundred values)."""
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def sorted_common(a: np.ndarray, b: np.ndarray) -> int:
    """How many values two ``sorted_set`` arrays share."""
    if a is b:
        return len(a)
    if not len(a) or not len(b):
        return 0
    at = np.searchsorted(b, a)
    return int(np.count_nonzero(b[np.minimum(at, len(b) - 1)] == a))


def exact_key(*parts: np.ndarray) -> bytes:
    """An 8-byte key equal for texts with the same words (in the same parts)."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(part.tobytes())
        h.update(b"\x00|")
    return h.digest()


class MinHasher:
    """MinHash signatures of ``num_perm`` uint32 values, for many sets at once.

    ``scheme="oph"`` (default): one-permutation hashing (Li, Owen & Zhang 2012): each shingle's hash
    picks one of ``num_perm`` bins and the bin keeps its smallest value; O(shingles) instead of
    O(shingles x num_perm), ~15x faster. Bins left empty (short texts) are filled by ``densify`` just
    before comparing (optimal densification, Shrivastava 2017).
    ``scheme="classic"``: ``num_perm`` independent permutations, datasketch's affine32 scheme and seeds.
    For both, the union of two sets has the element-wise minimum of their (undensified) signatures.
    """

    def __init__(self, num_perm: int, seed: int, scheme: str = "oph"):
        self.num_perm, self.seed, self.scheme = num_perm, seed, scheme
        self.empty = np.full(num_perm, _MAX32, dtype=np.uint32)
        if scheme == "classic":
            from datasketch import MinHash

            a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
            self._a, self._b = a.astype(np.uint32), b.astype(np.uint32)
        else:
            self._salt = mix(np.array([seed + 0x5EED], dtype=np.uint64))[0]
            self._probes: list[np.ndarray] = []
            self._first: np.ndarray | None = None

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        return self.signatures(shingles, np.zeros(len(shingles), dtype=np.int64), 1)[0]

    def signatures(self, shingles: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
        """One signature per row 0..n_rows-1 for shingles grouped by ``rows`` (sorted); no shingles: ``empty``."""
        out = np.tile(self.empty, (n_rows, 1))
        if len(shingles) == 0:
            return out
        if self.scheme == "classic":
            return self._classic(shingles, rows, out)
        h = mix(shingles ^ self._salt)
        cell = rows * self.num_perm + (h % np.uint64(self.num_perm)).astype(np.int64)
        np.minimum.at(out.reshape(-1), cell, (h >> _S32).astype(np.uint32))
        return out

    def _classic(self, shingles: np.ndarray, rows: np.ndarray, out: np.ndarray, chunk: int = 1024) -> np.ndarray:
        hv = (shingles >> _S32).astype(np.uint32)[:, None]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # first shingle of each row that has any
        lo = 0
        while lo < len(starts):  # whole rows at a time, about ``chunk`` shingles per product (stays in cache)
            hi = max(int(np.searchsorted(starts, starts[lo] + chunk, side="right")), lo + 1)
            a, b = starts[lo], (starts[hi] if hi < len(starts) else len(shingles))
            block = hv[a:b] * self._a
            block += self._b
            out[rows[starts[lo:hi]]] = np.minimum.reduceat(block, starts[lo:hi] - a, axis=0)
            lo = hi
        return out

    def densify(self, sigs: np.ndarray) -> np.ndarray:
        """Fill the empty bins of ``oph`` signatures (optimal densification, Shrivastava 2017).

        An empty bin j takes the value of bin ``probe(j, 1)``, else ``probe(j, 2)``... the first
        probed bin that holds a value; probes depend on the bin and the round only, so two sets agree
        on a filled bin with probability equal to their Jaccard similarity, as for a real bin. Rows
        without any shingle stay ``empty``. Returns a copy (``classic`` signatures are returned as is).

        The first ``_ROUNDS_BY_PROBE`` rounds are probed one by one (they fill nearly every empty bin of a
        row with many values); a bin still empty after them (a short text: few filled bins, so many rounds)
        takes its source from ``_first_hits``, the first round that probes bin j to bin f, as the smallest
        over the row's filled bins f: the same bin the rounds would reach, without walking them.
        """
        if self.scheme == "classic" or len(sigs) == 0:
            return sigs
        full = sigs != _MAX32
        out = sigs.copy()
        rows, bins = np.nonzero(~full & full.any(axis=1)[:, None])
        for rnd in range(_ROUNDS_BY_PROBE):
            if not len(rows):
                return out
            rows, bins = self._probe_round(rnd, sigs, full, out, rows, bins)
        if not len(rows):
            return out
        first, limit = self._first_hits()
        n = self.num_perm
        left = np.unique(rows)  # the rows with empty bins left: few filled bins each
        k = full[left].sum(axis=1)
        filled = np.argsort(~full[left], axis=1, kind="stable")  # each row's filled bins first, in bin order
        at = np.searchsorted(left, rows)
        order = np.argsort(k[at], kind="stable")  # pairs by their row's filled count: small tables first
        for lo in range(0, len(order), _PAIRS_AT_ONCE):
            sel = order[lo : lo + _PAIRS_AT_ONCE]
            r, b, a = rows[sel], bins[sel], at[sel]
            width = int(k[a].max())
            srcs = np.where(np.arange(width) < k[a][:, None], filled[a, :width], n)  # n: no bin (padding)
            rounds = first[srcs, b[:, None]]  # (pair, its row's filled bin f): the first round that reaches f
            pick = rounds.argmin(axis=1)
            idx = np.arange(len(r))
            found = rounds[idx, pick] < limit
            out[r[found], b[found]] = sigs[r[found], srcs[idx, pick][found]]
            left_r, left_b, rnd = r[~found], b[~found], limit
            while len(left_r):  # not reached within the table's rounds (none for 16-256 bins): probe on
                left_r, left_b = self._probe_round(rnd, sigs, full, out, left_r, left_b)
                rnd += 1
        return out

    def _probe_round(self, rnd: int, sigs: np.ndarray, full: np.ndarray, out: np.ndarray, rows: np.ndarray,
                     bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One round for the (row, bin) pairs still empty: fill those whose probe holds a value; the rest."""
        cand = self._probe(rnd)[bins]
        ok = full[rows, cand]
        out[rows[ok], bins[ok]] = sigs[rows[ok], cand[ok]]
        return rows[~ok], bins[~ok]

    def _first_hits(self) -> tuple[np.ndarray, int]:
        """``(first, limit)``: ``first[f, j]`` is the first round whose probe sends bin j to bin f, ``limit`` where
        no round below ``limit`` does (a coupon collector: every pair is reached after ~n ln n² rounds)."""
        if self._first is None:
            n = self.num_perm
            first = np.full((n + 1, n), _FIRST_HIT_ROUNDS, dtype=np.int32)  # row n: padding, never reached
            j = np.arange(n)
            for rnd in range(_FIRST_HIT_ROUNDS):
                p = self._probe_key(rnd)
                unseen = first[p, j] == _FIRST_HIT_ROUNDS
                first[p[unseen], j[unseen]] = rnd
                if rnd % 64 == 63 and not (first[:n] == _FIRST_HIT_ROUNDS).any():
                    break
            self._first = first
        return self._first, _FIRST_HIT_ROUNDS

    def _probe(self, rnd: int) -> np.ndarray:
        """Round ``rnd``'s probe: bin j -> another bin, the same for every signature."""
        while len(self._probes) <= rnd:
            self._probes.append(self._probe_key(len(self._probes)))
        return self._probes[rnd]

    def _probe_key(self, rnd: int) -> np.ndarray:
        j = np.arange(self.num_perm, dtype=np.uint64)
        key = j + np.uint64(self.num_perm) * np.uint64(rnd + 1) + self._salt
        return (mix(key) % np.uint64(self.num_perm)).astype(np.int64)

    @staticmethod
    def jaccard(a: np.ndarray, b: np.ndarray) -> float:
        """Estimated Jaccard similarity: the share of equal minima."""
        return float(np.count_nonzero(a == b)) / len(a)
