"""MinHash LSH for near-duplicate search, with memory that grows by band keys, not signatures.

``lsh_params`` picks the bands (datasketch's choice, without importing datasketch and scipy). ``SignatureStore``
takes densified signatures as pass 1 makes them, a block at a time: it keeps each unit's ``b`` band keys in
memory (8 bytes each) and writes the signature itself to an unlinked temp file, from which the few candidates
that LSH proposes are read back for their estimate. ``BandIndex`` walks the units in order: only a unit that
shares a band key with another unit can have a candidate, so the buckets hold those units alone (found by
sorting each band's keys), and a run where no band key repeats keeps no per-unit Python objects at all.
"""

from __future__ import annotations

import functools
import math
import mmap
import tempfile
from array import array
from collections.abc import Iterator
from typing import IO

import numpy as np

from rollgen.quality.text import MinHasher, mix

__all__ = ["BandIndex", "SignatureStore", "lsh_params", "near_groups", "slack"]

BLOCK = 256  # signatures densified, keyed and written together
WALK_CHUNK = 1 << 14  # units of a walk turned into Python ints at a time
RELEASE = 1 << 12  # reads of the signature file between two releases of its mapped pages


@functools.lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int, weights: tuple[float, float] = (0.1, 0.9)) -> tuple[int, int]:
    """``(b, r)``: the bands and rows per band that datasketch's ``MinHashLSH`` picks for ``threshold`` and ``weights``
    (false positive, false negative): the minimum of the weighted areas under the LSH S-curve
    ``1 - (1 - s**r)**b`` below the threshold and above it. The curve is a polynomial of degree ``b * r <=
    num_perm``, so Gauss-Legendre quadrature with ``num_perm // 2 + 2`` nodes integrates it exactly (datasketch
    2.0 uses scipy's adaptive ``quad``, and importing scipy costs seconds)."""
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 2)
    lo = threshold / 2 * (x + 1)  # nodes on [0, threshold] and on [threshold, 1]
    hi = threshold + (1 - threshold) / 2 * (x + 1)
    best, opt = math.inf, (0, 0)
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1, dtype=np.float64)[:, None]
        fp = threshold / 2 * ((1 - (1 - lo ** r) ** b) @ w)
        fn = (1 - threshold) / 2 * (((1 - hi ** r) ** b) @ w)
        err = fp * weights[0] + fn * weights[1]
        k = int(np.argmin(err))  # the first minimum, as datasketch's strict ``<`` keeps the first
        if err[k] < best:
            best, opt = float(err[k]), (b, k + 1)
    return opt


def slack(threshold: float, num_perm: int) -> float:
    """Three standard errors of a MinHash estimate at ``threshold``: candidates are confirmed from there up."""
    return 3.0 * math.sqrt(threshold * (1.0 - threshold) / num_perm)


class BandIndex:
    """MinHash LSH: ``b`` bands of ``r`` values; a unit is a candidate of another when one whole band matches.

    ``b`` and ``r`` are datasketch's for the threshold (``lsh_params``), weighted for recall (datasketch's equal
    weights find only ~40% of the pairs right at the threshold; a false hit costs one signature comparison).
    A band's key is a mixed hash of its ``r`` values (64 bits).
    """

    def __init__(self, threshold: float, num_perm: int):
        self.b, self.r = lsh_params(threshold, num_perm)
        self._weights = mix(np.arange(1, self.r + 1, dtype=np.uint64))
        self._salt = mix(np.arange(1000, 1000 + self.b, dtype=np.uint64))
        self._members: list[np.ndarray] = []  # during a walk: per band, the units of shared keys, by run then unit
        self._member_runs: list[np.ndarray] = []  # their runs
        self._inserted = np.zeros(0, dtype=bool)  # per unit: inserted

    def keys(self, sigs: np.ndarray) -> np.ndarray:
        """``(len(sigs), b)`` band keys of densified signatures."""
        bands = sigs[:, : self.b * self.r].reshape(-1, self.b, self.r).astype(np.uint64)
        return mix((bands * self._weights).sum(axis=2) + self._salt)

    def walk(self, keys: np.ndarray, order: np.ndarray | None = None) -> Iterator[tuple[int, list[int]]]:
        """``(u, slots)`` for each unit ``u`` (0, 1, ... in ``order``: row ``order[u]`` of ``keys``) that shares a band
        key with another unit, in increasing ``u``; ``slots`` name its shared keys. A unit not yielded has no
        candidate and needs no slot. ``query(slots)`` gives the units ``insert``-ed so far under any of them."""
        n = len(keys) if order is None else len(order)
        runs = np.full((n, self.b), -1, dtype=np.int32)  # per unit and band: its run of equal keys (from 1), -1: alone
        self._members, self._member_runs = [], []  # per band: the units in runs of two or more, by run then unit
        self._inserted = np.zeros(n, dtype=bool)
        for band in range(self.b):
            col = keys[:, band] if order is None else keys[order, band]
            at = np.argsort(col, kind="stable")
            sorted_keys = col[at]
            same = sorted_keys[1:] == sorted_keys[:-1]
            shared = np.r_[False, same] | np.r_[same, False]  # in a run of two or more
            run = np.cumsum(np.r_[True, ~same])[shared] if shared.any() else np.zeros(0, np.int64)
            runs[at[shared], band] = run
            self._members.append(at[shared].astype(np.int32))
            self._member_runs.append(run.astype(np.int32))
        hot = np.flatnonzero((runs >= 0).any(axis=1))
        bands = np.arange(self.b, dtype=np.int64)
        for c in range(0, len(hot), WALK_CHUNK):  # a chunk of units at a time as Python ints, not all of them
            units = hot[c:c + WALK_CHUNK]
            run = runs[units].astype(np.int64)
            slots = np.where(run >= 0, run * self.b + bands, np.iinfo(np.int64).max)  # slot: run and band
            slots.sort(axis=1)
            for u, row, k in zip(units.tolist(), slots.tolist(), (run >= 0).sum(axis=1).tolist()):
                yield u, row[:k]
        self._members, self._member_runs = [], []

    def query(self, slots: list[int]) -> set[int]:
        """The units ``insert``-ed so far under any of ``slots`` (during a ``walk``)."""
        found: set[int] = set()
        for s in slots:
            band, run = s % self.b, s // self.b
            runs = self._member_runs[band]
            members = self._members[band][np.searchsorted(runs, run, "left"):np.searchsorted(runs, run, "right")]
            found.update(members[self._inserted[members]].tolist())
        return found

    def insert(self, unit: int, slots: list[int]) -> None:
        """``unit`` is now found under its ``slots`` (all of them: a unit's slots are those ``walk`` gave it)."""
        self._inserted[unit] = True


class _Mapped:
    """Rows of a read-only memory map, copied out; every ``RELEASE`` reads the mapped pages are let go
    (``MADV_DONTNEED``: they stay in the page cache, but not in this process's resident set, which otherwise grows
    to the whole file as candidates are read from all over it)."""

    def __init__(self, mapped: np.memmap):
        self._mapped, self._reads = mapped, 0
        self.shape = mapped.shape

    def __len__(self) -> int:
        return len(self._mapped)

    def __getitem__(self, index: object) -> np.ndarray:
        rows = np.array(self._mapped[index])
        self._reads += 1
        if self._reads % RELEASE == 0 and hasattr(mmap, "MADV_DONTNEED"):
            self._mapped._mmap.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]
        return rows


class SignatureStore:
    """Densified MinHash signatures, ``add``-ed one at a time: band keys in memory, signatures in a temp file.

    ``keys()`` (``(n, b)`` uint64) and ``signatures()`` (rows of a read-only memory map of ``(n, num_perm)`` uint32) once
    every signature is in; ``close()`` drops the file (unlinked from the start, so it never outlives the process).
    """

    def __init__(self, hasher: MinHasher, index: BandIndex):
        self.hasher, self.index = hasher, index
        self._pending: list[np.ndarray] = []
        self._keys = array("Q")
        self._file: IO[bytes] | None = None
        self.n = 0

    def add(self, sig: np.ndarray) -> None:
        """One raw (undensified) signature; returns at once, keyed and written with its block."""
        self._pending.append(sig)
        self.n += 1
        if len(self._pending) >= BLOCK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        sigs = self.hasher.densify(np.stack(self._pending))
        self._pending = []
        self._keys.frombytes(self.index.keys(sigs).tobytes())
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="rollgen-minhash-")  # noqa: SIM115 - closed by close()
        self._file.write(np.ascontiguousarray(sigs, dtype=np.uint32).tobytes())

    def keys(self) -> np.ndarray:
        self._flush()
        return np.frombuffer(self._keys, dtype=np.uint64).reshape(-1, self.index.b)

    def signatures(self) -> np.ndarray | _Mapped:
        self._flush()
        if self._file is None or not self.n:
            return np.zeros((0, self.hasher.num_perm), dtype=np.uint32)
        self._file.flush()
        return _Mapped(np.memmap(self._file, dtype=np.uint32, mode="r", shape=(self.n, self.hasher.num_perm)))

    def close(self) -> None:
        self._keys = array("Q")
        if self._file is not None:
            self._file.close()
            self._file = None


def near_groups(sigs: np.ndarray, threshold: float, num_perm: int) -> np.ndarray:
    """A group number per (densified) signature: signatures whose estimated Jaccard with one of a group's
    is within ``slack`` of ``threshold`` join it (generous on purpose: for keeping near duplicates together,
    not for dropping them)."""
    floor = threshold - slack(threshold, num_perm)
    index = BandIndex(threshold, num_perm)
    group = np.arange(len(sigs), dtype=np.int64)
    for u, slots in index.walk(index.keys(sigs)):
        best = max(((MinHasher.jaccard(sigs[u], sigs[k]), -k) for k in index.query(slots)), default=None)
        if best is not None and best[0] >= floor:
            group[u] = group[-best[1]]
        else:
            index.insert(u, slots)
    return group
