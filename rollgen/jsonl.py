"""JSON Lines, the one reader and the writers every stage uses.

Reading: ``lines`` yields the non-blank lines of a file (stripped bytes, with their line number and byte
offset); ``read_jsonl`` parses them, and a line that is not JSON raises ``JsonlError`` naming
``file:line``; with ``torn_tail=True`` a last line cut short (not JSON, no newline at its end, as a process
killed mid-write leaves it) is left out instead. Writing: ``atomic_file`` / ``write_jsonl`` / ``write_json``
replace a file through a uniquely named temp file beside it (removed again if writing fails), and
``JsonlWriter`` appends lines from the event loop without blocking it. ``loads`` / ``dumps_bytes`` are the
fast JSON codec (msgspec) with the standard library's behaviour where the two differ.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

import msgspec
from pydantic import BaseModel

from rollgen.errors import UserError

__all__ = ["JsonlError", "JsonlWriter", "Line", "aread_jsonl", "atomic_file", "dumps", "dumps_bytes", "follow", "lines",
           "loads", "parse", "read_jsonl", "read_jsonl_batches", "write_json", "write_jsonl"]

log = logging.getLogger("rollgen")


class JsonlError(UserError, ValueError):
    """A line that is not valid JSON; the message starts with ``<path>:<line>: ``."""

    def __init__(self, path: str | os.PathLike[str], line: int, problem: str):
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line = Path(path), line


class Line(NamedTuple):
    """One non-blank line: its number in the file (from 1), the byte offset of its start, its bytes stripped."""

    number: int
    offset: int
    raw: bytes


def lines(path: str | os.PathLike[str], *, torn_tail: bool = False) -> Iterator[Line]:
    """The non-blank lines of ``path``, in order, streamed.

    ``torn_tail``: leave out a last line that is not valid JSON and does not end in a newline (a write cut
    short by a kill); it is logged. Without it such a line is yielded like any other.
    """
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            at, offset = offset, offset + len(raw)
            line = raw.strip()
            if not line:
                continue
            if torn_tail and not raw.endswith(b"\n") and not _is_json(line):
                log.warning("%s:%d: left out a torn last line (a write cut short)", path, number)
                return
            yield Line(number, at, line)


def follow(path: str | os.PathLike[str], more: Callable[[], bool], chunk: int = 1 << 20) -> Iterator[Line]:
    """The lines of ``path`` while another process appends whole lines to it, as ``lines`` numbers them.

    At the end of what is there, ``more()`` is asked: it returns True to look again (after waiting a moment
    for the writer) and False once the writer has closed the file; then the rest is read and the iteration
    ends. Bytes after the last newline are held back until their newline comes; a last line without one,
    left when the writer is done, is treated as ``lines(torn_tail=True)`` treats it.
    """
    number = offset = 0
    rest = b""
    writing = True
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk)
            if not data:
                if not writing:
                    break
                writing = more()
                continue
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            for raw in data[:cut].split(b"\n")[:-1]:
                number += 1
                at, offset = offset, offset + len(raw) + 1
                if line := raw.strip():
                    yield Line(number, at, line)
    if line := rest.strip():
        if not _is_json(line):
            log.warning("%s:%d: left out a torn last line (a write cut short)", path, number + 1)
            return
        yield Line(number + 1, offset, line)


_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def loads(raw: bytes | str) -> Any:
    """``json.loads``, about four times faster: msgspec (exact integers of any size, as the standard library), and
    the standard library for what msgspec refuses and it takes (``NaN``/``Infinity``, ``1e400``, lone surrogates,
    UTF-16 bytes), so the same texts parse to the same values and fail with the same errors as before."""
    try:
        return _decode(raw)
    except msgspec.DecodeError:
        return json.loads(raw)


def dumps_bytes(obj: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (a request body): msgspec, or ``json.dumps`` for what it cannot write (a lone
    surrogate, a type it does not know). A float NaN or infinity is written ``null``, valid JSON, where
    ``json.dumps`` writes ``NaN``, which servers refuse."""
    try:
        return _encode(obj)
    except (TypeError, ValueError):
        return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def _is_json(raw: bytes) -> bool:
    try:
        loads(raw)
    except ValueError:
        return False
    return True


def parse(path: str | os.PathLike[str], line: Line) -> Any:
    """``line`` parsed; ``JsonlError`` naming ``path`` and the line number when it is not JSON."""
    try:
        return loads(line.raw)
    except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        raise JsonlError(path, line.number, f"not valid JSON ({e})") from None


def read_jsonl(path: str | os.PathLike[str], *, torn_tail: bool = False) -> Iterator[Any]:
    """Stream the values of a JSONL file (blank lines skipped); a bad line raises ``JsonlError`` (file:line).

    ``torn_tail``: a bad last line without a newline at its end is left out (``lines``).
    """
    for line in lines(path, torn_tail=torn_tail):
        yield parse(path, line)


async def read_jsonl_batches(path: str | os.PathLike[str], batch_bytes: int = 1 << 16) -> AsyncIterator[list[Any]]:
    """``read_jsonl`` for an event loop: lists of values, about ``batch_bytes`` of lines each, read and parsed
    in a worker thread so the loop never waits on the disk."""
    f = await asyncio.to_thread(open, path, "rb")
    number = 0
    offset = 0

    def batch() -> list[Any] | None:
        nonlocal number, offset
        raws = f.readlines(batch_bytes)
        if not raws:
            return None
        out = []
        for raw in raws:
            number += 1
            at, offset = offset, offset + len(raw)
            if line := raw.strip():
                out.append(parse(path, Line(number, at, line)))
        return out

    try:
        while (rows := await asyncio.to_thread(batch)) is not None:
            if rows:
                yield rows
    finally:
        f.close()


async def aread_jsonl(path: str | os.PathLike[str]) -> AsyncIterator[Any]:
    """The values of a JSONL file, one by one, for an event loop (read in batches by ``read_jsonl_batches``)."""
    async for rows in read_jsonl_batches(path):
        for row in rows:
            yield row


def dumps(row: Any) -> str:
    """One row as a JSON line's text (no newline): a pydantic model by its own serialiser, else ``json.dumps``."""
    return row.model_dump_json() if isinstance(row, BaseModel) else json.dumps(row, ensure_ascii=False)


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a uniquely named temp file beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # like mkstemp, but the file gets the usual permissions (0666 less the umask), not 0600
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any]) -> int:
    """Write rows (dicts or pydantic models) atomically: a temp file renamed into place. Returns the count."""
    n = 0
    with atomic_file(path) as f:
        for row in rows:
            f.write(dumps(row))
            f.write("\n")
            n += 1
    return n


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """One JSON document, indented, written atomically."""
    with atomic_file(path) as f:
        f.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


class JsonlWriter:
    """Appends lines from the event loop without blocking it: a thread writes and flushes each batch.

    ``write`` only appends to a list; once per event-loop iteration the lines written during that
    iteration are handed to the thread as one batch (one queue operation, not one per line, which
    would wake the thread and contend for the GIL each time). The thread writes each batch of whole
    lines with one ``write`` and flushes, so every line on disk is complete and a crash loses at most
    the batch in hand.
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "a"):
        """Open ``path`` (``mode`` "a" appends, "w" starts afresh). Blocking: on a loop, make it in a thread."""
        self.path = Path(path)
        self._file = open(self.path, mode, encoding="utf-8")  # noqa: SIM115 - closed by the thread
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._pending: list[str] = []
        self._thread = threading.Thread(target=self._run, name=f"writer:{self.path.name}", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        if self._error is not None:
            raise OSError(f"writing {self.path} failed: {self._error}") from self._error
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self._handoff)
            except RuntimeError:  # no loop: hand over at once
                self._queue.put(line)
                return
        self._pending.append(line)

    def _handoff(self) -> None:
        if self._pending:
            self._queue.put("".join(self._pending))
            self._pending = []

    def _run(self) -> None:
        done = False
        try:
            while not done:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if None in batch:
                    done = True
                    batch = [b for b in batch if b is not None]
                if batch:
                    self._file.write("".join(batch))
                    self._file.flush()
        except BaseException as e:  # surfaced on the next write() / close()
            self._error = e
        finally:
            self._file.close()

    def close(self) -> None:
        """Write what is queued, flush, close. Blocks: call it through ``asyncio.to_thread`` on a loop."""
        self._handoff()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise OSError(f"writing {self.path} failed: {self._error}") from self._error
