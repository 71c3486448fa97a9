"""The run directory (DESIGN.md, "Run directory") and the JSONL I/O every stage uses."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["JsonlWriter", "RunDir", "read_jsonl", "write_json", "write_jsonl"]


class RunDir:
    """Names of the files of one run; creates nothing until asked."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    config = property(lambda self: self.root / "run_config.json")
    tasks = property(lambda self: self.root / "tasks.jsonl")
    rollouts = property(lambda self: self.root / "rollouts.jsonl")
    curated = property(lambda self: self.root / "curated.jsonl")
    rejected = property(lambda self: self.root / "rejected.jsonl")
    dataset = property(lambda self: self.root / "dataset")
    export = property(lambda self: self.root / "export")
    report_json = property(lambda self: self.root / "report.json")
    report_md = property(lambda self: self.root / "report.md")

    def mkdir(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self


class JsonlWriter:
    """Appends lines from the event loop without blocking it: a thread writes and flushes each batch.

    ``write`` only appends to a list; once per event-loop iteration the lines written during that
    iteration are handed to the thread as one batch (one queue operation, not one per line, which
    would wake the thread and contend for the GIL each time). The thread writes each batch of whole
    lines with one ``write`` and flushes, so every line on disk is complete and a crash loses at most
    the batch in hand.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the thread
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


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Stream the objects of a JSONL file; a bad line raises ValueError naming file and line."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e})") from None


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any]) -> int:
    """Write rows (dicts or pydantic models) atomically: a temp file renamed into place. Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(row.model_dump_json() if hasattr(row, "model_dump_json") else json.dumps(row, ensure_ascii=False))
            f.write("\n")
            n += 1
    os.replace(tmp, path)
    return n


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
