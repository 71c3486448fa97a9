"""rollgen.jsonl, the one JSONL reader and the writers: file:line errors, blank lines, a torn last line, atomic
replacement, and the streaming writer."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from pydantic import BaseModel

from rollgen import jsonl
from rollgen.errors import UserError
from rollgen.jsonl import JsonlError, JsonlWriter, atomic_file, lines, read_jsonl, write_json, write_jsonl


def test_reader_skips_blank_lines_and_numbers_lines_as_the_file_does(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"a": 2}\r\n{"a": "\xc3\xa9"}\n')
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}, {"a": "é"}]
    got = list(lines(path))
    assert [ln.number for ln in got] == [1, 4, 5]
    raw = path.read_bytes()
    assert all(raw[ln.offset:].startswith(ln.raw) for ln in got)  # offsets point at each line's start


@pytest.mark.parametrize("bad", [b"{not json", b'{"a": 1', b"\xff\xfe{}"])
def test_a_bad_line_names_file_and_line(tmp_path: Path, bad: bytes) -> None:
    path = tmp_path / "rollouts.jsonl"
    path.write_bytes(b'{"a": 1}\n\n' + bad + b'\n{"a": 3}\n')
    rows = read_jsonl(path)
    assert next(rows) == {"a": 1}
    with pytest.raises(JsonlError, match=rf"^{path}:3: not valid JSON") as e:
        next(rows)
    assert e.value.line == 3 and e.value.path == path
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)  # exit 2 in the CLI; ValueError as before


def test_torn_tail_leaves_out_only_a_cut_short_last_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rollouts.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "cut sh')
    with caplog.at_level(logging.WARNING, logger="rollgen"):
        assert list(read_jsonl(path, torn_tail=True)) == [{"a": 1}, {"a": 2}]
    assert f"{path}:3: left out a torn last line" in caplog.text
    with pytest.raises(JsonlError, match=":3:"):
        list(read_jsonl(path))  # not asked: the bad line is an error

    path.write_bytes(b'{"a": 1}\n{"a": 2}')  # a last line without a newline that is whole JSON is kept
    assert list(read_jsonl(path, torn_tail=True)) == [{"a": 1}, {"a": 2}]
    path.write_bytes(b'{"a": 1}\n{"a": 2\n')  # ends in a newline: not torn, a bad line
    with pytest.raises(JsonlError, match=":2:"):
        list(read_jsonl(path, torn_tail=True))
    path.write_bytes(b'{"a": 1\n{"a": 2}\n{"a"')  # a bad line before the end is never skipped
    with pytest.raises(JsonlError, match=":1:"):
        list(read_jsonl(path, torn_tail=True))


class _Row(BaseModel):
    id: str
    text: str


def test_write_jsonl_is_atomic_and_takes_models_and_dicts(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "rows.jsonl"
    assert write_jsonl(path, [_Row(id="x", text="é"), {"id": "y", "text": "ü"}]) == 2
    assert path.read_text(encoding="utf-8") == '{"id":"x","text":"é"}\n{"id": "y", "text": "ü"}\n'

    def rows():
        yield {"id": "z"}
        raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert list(read_jsonl(path)) == [{"id": "x", "text": "é"}, {"id": "y", "text": "ü"}]  # the old file stays
    assert sorted(p.name for p in path.parent.iterdir()) == ["rows.jsonl"]  # no temp file left


def test_atomic_file_binary_and_write_json(tmp_path: Path) -> None:
    with atomic_file(tmp_path / "b.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    write_json(tmp_path / "r.json", {"é": 1, "p": Path("x")})
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == {"é": 1, "p": "x"}


def test_jsonl_writer_appends_from_a_loop_and_without_one(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"n": -1}\n')
    writer = JsonlWriter(path)
    writer.write('{"n": 0}\n')  # no loop: handed over at once

    async def many() -> None:
        for n in range(1, 200):
            writer.write(json.dumps({"n": n}) + "\n")
            if n % 50 == 0:
                await asyncio.sleep(0)
        await asyncio.to_thread(writer.close)

    asyncio.run(many())
    assert [r["n"] for r in read_jsonl(path)] == list(range(-1, 200))


def test_the_run_dir_module_hands_out_the_same_functions() -> None:
    from rollgen import rundir
    from rollgen.integrations import common

    for name in ("JsonlWriter", "atomic_file", "read_jsonl", "write_json", "write_jsonl"):
        assert getattr(rundir, name) is getattr(jsonl, name), name  # older imports keep working, one implementation
    assert not hasattr(common, "write_jsonl") and not hasattr(common, "iter_rows")


_EDGE_TEXTS = [
    b'{"a": 1, "b": [1.5, -0.0, 1e308, 2.5e-308], "c": null, "d": true, "e": "\\u00e9\\n"}',
    b'{"nan": NaN, "inf": Infinity, "ninf": -Infinity}',  # the standard library takes these; orjson does not
    b'{"big": 123456789012345678901234567890}',  # past 64 bits
    b'{"s": "\\ud800"}',  # a lone surrogate
    b'{"a": 1, "a": 2}',  # duplicate keys: the last one
    '{"utf16": "x"}'.encode("utf-16"),  # json.loads detects UTF-16/32 in bytes
    b'{"deep": ' + b"[" * 200 + b"]" * 200 + b"}",
    b"  [1, 2]  ",
]
_BAD_TEXTS = [b"", b"   ", b"{", b"{not json", b"\xff\xfe{}", b'{"a": 1}x', b"[1,]", b"'a'", b"\xc3\x28"]


@pytest.mark.parametrize("raw", _EDGE_TEXTS)
def test_loads_parses_what_the_standard_library_parses_to_the_same_values(raw: bytes) -> None:
    expected = json.loads(raw)
    got = jsonl.loads(raw)
    assert repr(got) == repr(expected)  # repr: NaN != NaN, and -0.0 == 0.0 would hide a difference
    assert jsonl.loads(raw.decode(json.detect_encoding(raw))) == got or "nan" in raw.decode("latin-1")


@pytest.mark.parametrize("raw", _BAD_TEXTS)
def test_loads_fails_where_the_standard_library_fails_with_its_error(raw: bytes) -> None:
    with pytest.raises(ValueError) as std:
        json.loads(raw)
    with pytest.raises(ValueError) as ours:
        jsonl.loads(raw)
    assert type(ours.value) is type(std.value) and str(ours.value) == str(std.value)


def test_dumps_bytes_is_compact_json_that_reads_back_the_same() -> None:
    body = {"model": "m", "temperature": 0.7, "messages": [{"role": "user", "content": "é ✓ \u2028 \"q\" \\"}],
            "n": 2**70, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
    raw = jsonl.dumps_bytes(body)
    assert json.loads(raw) == body and b": " not in raw and b", " not in raw
    assert json.loads(jsonl.dumps_bytes({1: "non-str key"})) == {"1": "non-str key"}  # as json.dumps writes it
    assert json.loads(jsonl.dumps_bytes({"s": "\ud800"})) == {"s": "\ud800"}  # not UTF-8: escaped, as json.dumps does
    assert json.loads(jsonl.dumps_bytes({"t": float("nan")})) == {"t": None}  # valid JSON, not NaN
    with pytest.raises(TypeError):
        jsonl.dumps_bytes({"x": object()})
