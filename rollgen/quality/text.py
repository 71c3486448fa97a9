"""Text features, vectorised with numpy: word hashes, n-gram hashes, exact-duplicate keys, MinHash signatures.

Words are runs of ASCII letters, digits, ``_`` and any non-ASCII bytes, after ``str.lower()``; so
"The answer, is 42!" and "the answer is 42" have the same words. Hashes are deterministic across
processes (no ``hash()``), so a re-run of ``rollgen curate`` makes the same decisions.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["MinHasher", "exact_key", "mix", "ngram_hashes", "words"]

_WORD = np.zeros(256, dtype=np.int8)
_WORD[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789_", dtype=np.uint8)] = 1
_WORD[128:] = 1
_BYTE = np.arange(1, 257, dtype=np.uint64)  # byte b counts as b + 1, so NUL bytes still change a hash
_P = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2**64
_P_INV = np.uint64(pow(0x100000001B3, -1, 1 << 64))
_pow = np.ones(1, dtype=np.uint64)
_pow_inv = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i (mod 2**64) for i < n, grown by doubling and kept."""
    global _pow, _pow_inv
    if len(_pow) < n:
        size = max(n, 2 * len(_pow))
        with np.errstate(over="ignore"):
            _pow = np.cumprod(np.concatenate(([np.uint64(1)], np.full(size - 1, _P, dtype=np.uint64))))
            _pow_inv = np.cumprod(np.concatenate(([np.uint64(1)], np.full(size - 1, _P_INV, dtype=np.uint64))))
    return _pow, _pow_inv


def words(text: str) -> np.ndarray:
    """One uint64 hash per word of ``text``, in order (a polynomial hash of the word's bytes)."""
    data = np.frombuffer(text.lower().encode("utf-8", "surrogatepass"), dtype=np.uint8)
    n = len(data)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    is_word = _WORD[data]
    edges = np.empty(n + 1, dtype=np.int8)
    edges[0], edges[n] = is_word[0], -is_word[-1]
    np.subtract(is_word[1:], is_word[:-1], out=edges[1:n])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    pw, pw_inv = _powers(n + 1)
    prefix = np.empty(n + 1, dtype=np.uint64)
    prefix[0] = 0
    with np.errstate(over="ignore"):
        np.cumsum(_BYTE[data] * pw[:n], out=prefix[1:])
        return (prefix[ends] - prefix[starts]) * pw_inv[starts]


def mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every output bit depends on every input bit."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """One mixed uint64 hash per run of ``n`` consecutive words (none when there are fewer words)."""
    m = len(tokens) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    out = tokens[:m].copy()
    with np.errstate(over="ignore"):
        for j in range(1, n):
            out *= _P
            out += tokens[j:m + j]
    return mix(out)


def exact_key(*parts: np.ndarray) -> bytes:
    """An 8-byte key equal for texts with the same words (in the same parts)."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(part.tobytes())
        h.update(b"\x00|")
    return h.digest()


class MinHasher:
    """MinHash signatures with datasketch's affine32 permutations, computed for a whole set at once.

    ``signature`` takes mixed 64-bit shingle hashes and returns ``num_perm`` uint32 minima; the
    union of two sets has the element-wise minimum of their signatures. ``lean`` wraps one for
    datasketch's ``MinHashLSH``.
    """

    def __init__(self, num_perm: int, seed: int):
        from datasketch import MinHash

        self.num_perm, self.seed = num_perm, seed
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        self._a, self._b = a.astype(np.uint32), b.astype(np.uint32)
        self.empty = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        if len(shingles) == 0:
            return self.empty
        hv = (shingles >> np.uint64(32)).astype(np.uint32)[:, None]
        with np.errstate(over="ignore"):
            return (hv * self._a + self._b).min(axis=0)

    def lean(self, signature: np.ndarray) -> Any:
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme="affine32")

    @staticmethod
    def jaccard(a: np.ndarray, b: np.ndarray) -> float:
        """Estimated Jaccard similarity: the share of equal minima."""
        return float(np.count_nonzero(a == b)) / len(a)
