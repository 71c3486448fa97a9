"""``server=structured_output``: JSON that must match a schema and the expected values, from bundled extraction
tasks or a user's file (NeMo Gym rows too), scored by the json verifier and run against the fake endpoint."""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

import rollgen
from rollgen.build import build, build_verifier
from rollgen.commands.validate import main as validate
from rollgen.records import Rollout, Task
from rollgen.rundir import read_jsonl
from rollgen.servers.structured_output import StructuredServer
from rollgen.servers.taskfile import TaskFileError
from rollgen.verifiers import verify
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI

INSTRUCTION = "Reply with only the JSON object, in one ```json code block."


def _server(*overrides: str) -> StructuredServer:
    return build(rollgen.compose(["server=structured_output", *overrides], output_dir="x").server)


def _file_server(path: Path, **params: object) -> StructuredServer:
    return StructuredServer(StructuredServer.Params(data_path=str(path), **params))  # the preset's defaults


@functools.cache
def _verifier() -> object:
    cfg = rollgen.compose(["server=structured_output"], output_dir="x")
    return build_verifier(cfg.verifier, cfg.guards)


def _scores(pairs: list[tuple[Task, str]]) -> list[float]:
    verifier = _verifier()

    async def main() -> list[float]:
        return [(await verify(verifier, t, Rollout(id=f"{t.id}#0", task_id=t.id, repeat=0, messages=[],
                                                          completion=c, status="ok"))).reward for t, c in pairs]
    return asyncio.run(main())


def test_the_bundled_extraction_tasks() -> None:
    tasks = list(_server().tasks())
    assert len(tasks) == 35 and len({t.id for t in tasks}) == 35 and len({t.metadata["domain"] for t in tasks}) >= 20
    for task in tasks:
        schema = task.metadata["schema"]
        jsonschema.validate(task.answer, schema)  # every gold object is valid against its own schema
        prompt = task.messages[-1]["content"]
        assert json.dumps(schema, indent=2, ensure_ascii=False) in prompt and prompt.endswith(INSTRUCTION)
        assert "{schema}" not in prompt and "{question}" not in prompt
    kinds = Counter(json.dumps(t.metadata["schema"]).count(k) > 0 for t in tasks for k in ('"enum"', '"array"'))
    assert kinds[True] >= 20  # enums and arrays throughout, not flat strings only
    finance = list(_server("server.domains=[finance]").tasks())
    assert len(finance) == 3 and {t.metadata["domain"] for t in finance} == {"finance"}
    with pytest.raises(ValueError, match=r"domains: no bundled tasks with domain 'astrology'; the domains are animals, books, "):
        _server("server.domains=[astrology]").check()


def test_the_gold_scores_1_and_wrong_json_below_1() -> None:
    tasks = list(_server().tasks())
    right = [(t, f"Here you go:\n```json\n{json.dumps(t.answer, indent=2)}\n```") for t in tasks]
    assert _scores(right) == [1.0] * len(tasks)
    order = next(t for t in tasks if t.id == "so-order")
    n = len(order.answer)
    wrong = [
        {**order.answer, "customer": "Mario Rossi"},  # one field of five wrong: partial credit
        {**order.answer, "items": list(reversed(order.answer["items"]))},  # the items in another order
        {**order.answer, "order_id": "58213"},  # a string where the schema wants an integer
        {**order.answer, "note": "gift"},  # a property the schema does not allow
        {k: v for k, v in order.answer.items() if k != "paid"},  # a required property missing
    ]
    rewards = _scores([(order, json.dumps(w)) for w in wrong] + [(order, "{'order_id': 58213"), (order, "")])
    assert rewards == [(n - 1) / n, (n - 1) / n, 0.0, 0.0, 0.0, 0.0, 0.0]
    case = {**order.answer, "customer": "MARCO ROSSI", "items": [{**i, "product": i["product"].lower()}
                                                                  for i in order.answer["items"]]}
    assert _scores([(order, json.dumps(case))]) == [1.0]  # strings compare after normalisation, in lists too


def test_user_files_plain_schema_only_and_nemo_gym(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
              "required": ["city", "zip"]}
    path = tmp_path / "mine.jsonl"
    rows = [{"id": "full", "document": "Ship to Oslo, 0150.", "json_schema": json.dumps(schema),
             "expected": json.dumps({"city": "Oslo", "zip": "0150"})},
            {"id": "schema-only", "document": "Ship to Bergen.", "json_schema": schema, "expected": None}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    full, only = _file_server(path, fields={"question": "document", "schema": "json_schema", "answer": "expected"}).tasks()
    assert full.answer == {"city": "Oslo", "zip": "0150"} and full.metadata["schema"] == schema and only.answer is None
    assert full.messages[-1]["content"].startswith("Extract the information in this text into a JSON object")
    assert _scores([(full, '{"city": "Oslo", "zip": "0150"}'), (full, '{"city": "Oslo", "zip": "0151"}'),
                    (only, '{"city": "Bergen", "zip": "5003"}'), (only, '{"city": "Bergen"}')]) == [1.0, 0.5, 1.0, 0.0]
    gym = tmp_path / "gym.jsonl"
    prompt = "# Document:\nOslo 0150\n# Instructions: Format your response as JSON adhering to the schema."
    gym.write_text(json.dumps({"responses_create_params": {"input": [{"role": "user", "content": prompt}]},
                               "schema": json.dumps(schema), "schema_type": "json", "schema_fields_count": "2"}) + "\n")
    [t] = _file_server(gym).tasks()
    assert t.messages == [{"role": "user", "content": prompt}] and t.metadata["schema"] == schema
    assert _scores([(t, '```json\n{"city": "Oslo", "zip": "0150"}\n```'), (t, '{"city": 0}')]) == [1.0, 0.0]


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    rows = [{"question": "ok", "schema": {"type": "object"}},
            {"question": "yaml", "schema": "{}", "schema_type": "yaml"},
            {"question": "broken", "schema": "{not json"},
            {"question": "invalid", "schema": {"type": "bogus"}},
            {"question": "nothing to check"},
            {"question": "scalar gold", "answer": "42"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = _file_server(path)
    skipped: list[str] = []
    assert [t.id for t in server.tasks(skipped)] == ["bad-1"]
    assert [b.split(": ", 1)[1] for b in skipped] == [
        "task 'bad-2': schema_type 'yaml': only JSON output is checked here",
        "'schema' is a string that is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        "'schema' is not a valid JSON Schema: 'bogus' is not valid under any of the given schemas",
        "task 'bad-5' has nothing to check the JSON against: give 'schema' (a JSON Schema) or 'answer' (the expected "
        "object), or both",
        "'answer' must be a JSON object or array"]
    assert skipped[0].startswith(f"{path}:2: ")
    with pytest.raises(TaskFileError, match=r"bad\.jsonl:2: task 'bad-2': schema_type 'yaml'"):
        list(_file_server(path).tasks())


def test_validate_passes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "v"
    assert validate(["server=structured_output", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"] == 35 and report["kinds"]["json_fenced"]["cases"] == 35
    assert all(k["failures"] == 0 for k in report["kinds"].values()) and "PASS" in capsys.readouterr().out


def test_a_run_against_the_fake(tmp_path: Path) -> None:
    tasks = list(_server().tasks())[:8]
    pairs = {}
    for t in tasks:
        first = next(iter(t.answer))
        pairs[t.prompt or t.messages[-1]["content"][:200]] = (
            f"```json\n{json.dumps(t.answer)}\n```", json.dumps({**t.answer, first: None}))
    fake = FakeOpenAI(pairs=pairs, alternate=True)
    out = tmp_path / "run"
    with serve_in_thread(fake) as url:
        cfg = rollgen.compose(["server=structured_output", "limit=8", "sampler=dpo", "policy=openai",
                               f"policy.base_url={url}", "progress=false", "format.validation_fraction=0"],
                              output_dir=str(out))
        rollgen.run(cfg)
    rows = list(read_jsonl(out / "rollouts.jsonl"))
    assert len(rows) == 16 and sum(r["reward"] == 1.0 for r in rows) == 8 and all(r["verifier"] == "json" for r in rows)
    assert all(r["reward"] == 0.0 and r["reward_details"]["schema_valid"] is False for r in rows if r["reward"] < 1)
    dataset = list(read_jsonl(out / "dataset" / "train.jsonl"))
    assert len(dataset) == 8 and all("```json" in d["chosen"][-1]["content"] for d in dataset)
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["verifier"]["_target_"].endswith("JsonSchemaVerifier") and saved["guards"]["hedging"] is False
