"""The answer instruction once: reasoning-gym's own instructions and user prompts that ask for \\boxed{} get no
second one; `server.instruction` (null for none); `rollgen tasks preview` shows the exact messages sent and
`rollgen validate` warns of a doubled instruction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollgen.commands import SUBCOMMANDS
from rollgen.commands import tasks as tasks_cmd
from rollgen.commands import validate as validate_cmd
from rollgen.servers.math import MathServer
from rollgen.servers.prompts import answer_instruction, instruction_twice, prompt_checks, with_instruction

ROOT = Path(__file__).resolve().parents[1]
BOXED = "Put your final answer within \\boxed{}."
# reasoning-gym generators whose questions carry their own final-answer instruction, and some that do not
OWN = ["chain_sum", "gsm_symbolic", "gcd", "products", "fraction_simplification", "decimal_arithmetic",
       "time_intervals", "caesar_cipher", "zebra_puzzles", "color_cube_rotation", "bitwise_arithmetic", "maze",
       "syllogism", "word_sorting", "simple_geometry"]
NONE = ["basic_arithmetic", "leg_counting", "lcm", "simple_equations", "count_bits", "letter_counting",
        "complex_arithmetic", "aiw", "coin_flip", "number_sequence"]
MIXED = ["calendar_arithmetic", "family_relationships"]  # some question templates carry one, some do not


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROLLGEN_CACHE_DIR", str(tmp_path_factory.mktemp("rg-cache")))
        server = MathServer(MathServer.Params(generators=OWN + NONE + MIXED, generator_config={}, size=6, seed=3))
        out: dict[str, list] = {}
        for t in server.tasks():
            out.setdefault(t.metadata["source_dataset"], []).append(t)
        return out


@pytest.mark.parametrize("generator", OWN + NONE + MIXED)
def test_every_generated_prompt_has_exactly_one_answer_instruction(generated: dict[str, list], generator: str) -> None:
    for task in generated[generator]:
        sent, question = task.messages[-1]["content"], task.metadata["question"]
        own = answer_instruction(question) is not None
        assert own == (generator in OWN) or generator in MIXED, question
        assert sent == (question if own else question.rstrip() + "\n" + BOXED)
        assert answer_instruction(sent) is not None and not instruction_twice(sent, [BOXED])


@pytest.mark.parametrize("text", [
    "What is 2+2? Put your final answer in \\boxed{}.", "Solve x + 1 = 3. Return the answer as \\boxed{x}.",
    "How many apples? End your reply with 'Answer: <number>'.", "Compute 7*6.\nAnswer:",
    "Give the result inside <answer></answer> tags.", "Respond only with the number.",
    "What is the total? Your final answer should be a single integer.", "Reply with just the weekday name.",
    "Is 7 prime? (Answer Yes or No)", "What time is it? Answer in HH:MM:SS.",
    "Solve it. Write your answer after ####.", "Provide your answer as a comma-separated list.",
])
def test_user_prompts_with_their_own_instruction_get_none_added(text: str) -> None:
    assert answer_instruction(text) is not None
    assert with_instruction(text, BOXED) == text


@pytest.mark.parametrize("text", [
    "Calculate 5 + 9.", "What is the final state of the program?", "Answer the phone, then count the rings: 3, 4.",
    "Return True if the strings are isomorphic, or False otherwise.", "How many legs do 3 spiders have?",
])
def test_prompts_without_one_get_the_instruction_once(text: str) -> None:
    assert answer_instruction(text) is None
    sent = with_instruction(text, BOXED)
    assert sent == text + "\n" + BOXED and with_instruction(sent, BOXED) == sent
    assert with_instruction(text, None) == text


def test_instruction_is_configurable_and_files_keep_their_own(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "boxed", "question": "What is 2+2? Put your final answer within \\boxed{}.", "answer": "4"},
        {"id": "plain", "question": "What is 3+3?", "answer": "6"},
        {"id": "chat", "messages": [{"role": "user", "content": "What is 4+4?"}], "answer": "8"}]))
    sent = {t.id: t.messages[-1]["content"] for t in MathServer(MathServer.Params(data_path=str(path))).tasks()}
    assert sent == {"boxed": "What is 2+2? Put your final answer within \\boxed{}.",
                    "plain": "What is 3+3?\n" + BOXED, "chat": "What is 4+4?"}  # chats are sent as they are
    none = MathServer(MathServer.Params(data_path=str(path), instruction=None))
    assert {t.id: t.messages[-1]["content"] for t in none.tasks()}["plain"] == "What is 3+3?"
    mine = MathServer(MathServer.Params(data_path=str(path), instruction="End with 'Answer: X'."))
    assert {t.id: t.messages[-1]["content"] for t in mine.tasks()}["plain"] == "What is 3+3?\nEnd with 'Answer: X'."


def test_prompt_checks_count_a_doubled_instruction(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"id": i, "question": q, "answer": "1"}) + "\n" for i, q in enumerate(
        ["State the final answer: 1 + 0 =", "Calculate 1 * 1.", "calculate 1*1", "Give only the result: 0 + 1."])))
    template = "{question}\n" + BOXED  # the pre-0.2 default: every prompt got the instruction appended
    server = MathServer(MathServer.Params(data_path=str(path), prompt_template=template, instruction=None))
    checks = prompt_checks(server.tasks(), server.added_text())
    assert checks == {"tasks": 4, "distinct_prompts": 3, "tasks_repeating_a_prompt": 1, "with_server_instruction": 4,
                      "instruction_twice": 2, "no_answer_instruction": 0,
                      "examples": {"tasks_repeating_a_prompt": ["2"], "instruction_twice": ["0", "3"]}}
    fixed = MathServer(MathServer.Params(data_path=str(path)))
    assert prompt_checks(fixed.tasks(), fixed.added_text())["instruction_twice"] == 0


def test_tasks_preview_prints_the_exact_messages(capsys: pytest.CaptureFixture[str]) -> None:
    assert "tasks" in SUBCOMMANDS
    code = tasks_cmd.main(["preview", "server.generators=[chain_sum,basic_arithmetic]", "server.size=2",
                           "server.system_prompt=Be brief.", "-n", "4"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("--- task ") == 4 and "--- task chain_sum-42-0 (answer: \"7\") ---" in out
    assert "[system]\nBe brief.\n[user]\nState the final answer to the following arithmetic problem: 4 + 3 =\n\n" in out
    assert "[user]\nCalculate -5 * -6.\n" + BOXED + "\n" in out
    assert "4 tasks shown: 2 with the server's instruction" in out and "0 with a final-answer instruction twice" in out


def test_tasks_preview_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"id": "q", "question": "What is 2+2?", "answer": "4"}) + "\n")
    assert tasks_cmd.main(["preview", f"server.data_path={path}", "server.instruction=null", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"id": "q", "messages": [{"role": "user", "content": "What is 2+2?"}], "tools": None, "answer": "4"}
    assert lines[1]["summary"]["no_answer_instruction"] == 1
    assert tasks_cmd.main(["preview", "server.sizee=3"]) == 2
    assert "server.sizee" in capsys.readouterr().err
    assert tasks_cmd.main(["preview", f"server.data_path={tmp_path / 'missing.jsonl'}"]) == 2
    assert "no such task file" in capsys.readouterr().err


def test_tasks_preview_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"id": "q", "question": "What is 2+2?", "answer": "4"}) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "rollgen", "tasks", "preview", f"server.data_path={path}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[user]\nWhat is 2+2?\n" + BOXED in proc.stdout
    helped = subprocess.run([sys.executable, "-m", "rollgen", "--help"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert "rollgen tasks preview" in helped.stdout


def test_validate_warns_of_a_doubled_instruction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, (q, a) in enumerate(
        [("State the final answer: 1 + 2 =", "3"), ("Calculate 2 * 3.", "6")])))
    args = [f"server.data_path={path}", f"server.prompt_template='{{question}} {BOXED}'", "--out", str(tmp_path / "v")]
    assert validate_cmd.main(args) == 0
    out = capsys.readouterr().out
    assert "warning: 1 of 2 prompts carry a final-answer instruction twice (e.g. 0)" in out
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert report["prompts"]["instruction_twice"] == 1 and report["warnings"]
    assert validate_cmd.main([f"server.data_path={path}", "--out", str(tmp_path / "w")]) == 0
    assert "warning" not in capsys.readouterr().out
