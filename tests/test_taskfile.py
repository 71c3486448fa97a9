"""The task-file server base: a domain server that adds only its prompt gets file formats, bad rows, repeated
prompts, the user turn, the pre-run check and the fingerprint from ``TaskFileServer``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rollgen.records import Task
from rollgen.servers import TaskSourceError
from rollgen.servers.math import MathServer
from rollgen.servers.taskfile import TaskFileError, TaskFileServer, read_tasks


class Riddles(TaskFileServer):
    """A domain server as small as the seam allows: two bundled tasks and its own instruction."""

    class Params(TaskFileServer.Params):
        instruction: str | None = "Reply with one word."

    params: Params

    def own_tasks(self) -> Iterator[Task]:
        yield Task(id="r1", prompt="What has keys but opens no locks?", answer="piano")
        yield Task(id="r2", prompt="What runs but never walks?", answer="river")


def _server(**params: object) -> Riddles:
    return Riddles(Riddles.Params(**params))


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_own_tasks_get_the_template_instruction_and_system_prompt() -> None:
    tasks = list(_server(prompt_template="Riddle: {question}", system_prompt="Be brief.").tasks())
    assert [t.id for t in tasks] == ["r1", "r2"] and all(t.prompt is None for t in tasks)
    assert tasks[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Riddle: What has keys but opens no locks?\nReply with one word."}]
    assert _server().added_text() == ["Reply with one word."]


def test_a_server_without_own_tasks_asks_for_a_file() -> None:
    with pytest.raises(TaskSourceError, match="set server.data_path"):
        list(TaskFileServer(TaskFileServer.Params()).tasks())


def test_data_path_reads_the_three_shapes_and_keeps_chats_as_they_are(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "mixed.jsonl", [
        {"id": "a", "prompt": "2+2?", "answer": "4"},
        {"responses_create_params": {"input": [{"role": "user", "content": "Capital of France?"}]},
         "expected_answer": "Paris"},
        {"question": "Opposite of hot?", "answer": "cold", "source": "hf"},
    ])
    a, nemo, plain = _server(data_path=str(path)).tasks()
    assert a.messages == [{"role": "user", "content": "2+2?\nReply with one word."}]
    assert nemo.messages == [{"role": "user", "content": "Capital of France?"}] and nemo.answer == "Paris"
    assert plain.id == "mixed-3" and plain.metadata == {"source": "hf"} and plain.answer == "cold"


def test_json_arrays_and_parquet_with_a_field_mapping(tmp_path: Path) -> None:
    rows = [{"instruction": "Name a colour.", "output": "red", "level": 1},
            {"instruction": "Name a fruit.", "output": "apple", "level": 2}]
    (tmp_path / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    fields = {"question": "instruction", "answer": "output"}
    for name in ("rows.json", "rows.parquet"):
        tasks = list(_server(data_path=str(tmp_path / name), fields=fields).tasks())
        assert [(t.id, t.answer, t.metadata) for t in tasks] == [("rows-1", "red", {"level": 1}),
                                                                  ("rows-2", "apple", {"level": 2})], name
        assert tasks[1].messages[-1]["content"] == "Name a fruit.\nReply with one word."
    with pytest.raises(TaskFileError, match=r"rows\.json:1: no column 'prompt_text'"):
        list(read_tasks(tmp_path / "rows.json", fields={"question": "prompt_text"}))


def test_bad_rows_stop_the_run_or_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok?", "answer": "yes"}\n{"prompt": \n{"answer": "no input"}\n', encoding="utf-8")
    with pytest.raises(TaskFileError, match=r"bad\.jsonl:2: invalid JSON"):
        list(_server(data_path=str(path)).tasks())
    skipped: list[str] = []
    assert [t.id for t in _server(data_path=str(path)).tasks(skipped)] == ["bad-1"]
    assert [row.split(": ", 1)[0] for row in skipped] == [f"{path}:2", f"{path}:3"]
    broken = tmp_path / "broken.json"
    broken.write_text('[{"prompt": "a"},\n {"prompt": ]', encoding="utf-8")
    with pytest.raises(TaskFileError, match=r"broken\.json:2: invalid JSON"):
        list(_server(data_path=str(broken)).tasks())


def test_repeated_prompts_are_kept_unless_asked(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "rep.jsonl", [{"prompt": "Same  question?"}, {"prompt": "same question?"},
                                           {"prompt": "Other?"}])
    assert len(list(_server(data_path=str(path)).tasks())) == 3
    assert [t.id for t in _server(data_path=str(path), unique_prompts=True).tasks()] == ["rep-1", "rep-3"]


def test_check_and_fingerprint_follow_the_file(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "t.jsonl", [{"prompt": "a?"}])
    server = _server(data_path=str(path))
    server.check()
    first = server.fingerprint()
    assert first["target"].endswith("Riddles") and "fields" not in first  # unset: hashes from before it existed hold
    _jsonl(path, [{"prompt": "b?"}])
    assert server.fingerprint()["data_sha256"] != first["data_sha256"]
    assert _server(data_path=str(path), fields={"question": "q"}).fingerprint()["fields"] == {"question": "q"}
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="data_path: .*the file is empty"):
        server.check()


def test_the_math_server_is_a_task_file_server_with_generators(tmp_path: Path) -> None:
    assert issubclass(MathServer, TaskFileServer)
    path = _jsonl(tmp_path / "m.jsonl", [{"question": "1+1?", "answer": "2"}])
    fp = MathServer(MathServer.Params(data_path=str(path))).fingerprint()
    # The keys a math run's collection hash was built from before the base existed, and no more.
    assert set(fp) == {"target", "generators", "generator_config", "size", "seed", "data_path", "system_prompt",
                       "prompt_template", "instruction", "unique_prompts", "data_sha256"}
