"""The CLI in a subprocess, as a user runs it: errors, --help, --cfg job, a whole run, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import serve_in_thread, wait_for_lines, write_arith_tasks
from tests.fakes import FakeOpenAI

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def OPTIONS(group: str) -> str:  # noqa: N802 - reads like the constant it stands for
    """A config group's options as rollgen lists them: the YAML files in conf/<group>/, sorted."""
    return ", ".join(sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")))


def rollgen(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rollgen", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("overrides", "line"), [
    (["sampler.responses_create_params.temperature=hot"], "sampler.responses_create_params.temperature: "),
    (["sampler.num_repeats=0"], "sampler.num_repeats: "),
    (["sampler.tempreature=0.3"], "sampler.tempreature: unknown key; did you mean "
                                  "sampler.responses_create_params.temperature?"),
    (["server=nope"], f"server=nope: no such option; available: {OPTIONS('server')}"),  # the options, not Hydra's search path
    (["sampler.num_repeats=[1,2"], "sampler.num_repeats: cannot parse 'sampler.num_repeats=[1,2'"),
    (["verifier=judge", "verifier.score_pattern=x"], "verifier.score_pattern: unknown key; it is a valid key the "
                                                     "YAML does not list: add it with a leading +, "
                                                     "+verifier.score_pattern=x"),
    # failures that used to come at build or generation time, after the run dir was made, as tracebacks
    (["policy=local", "policy.model_path=/nonexistent.gguf"], "policy.model_path: /nonexistent.gguf: no such file"),
    (["policy=local", "policy.model_path={tmp}/model.gguf"], "policy.model_path: {tmp}/model.gguf is not a GGUF file"),
    (["server.generators=[nosuch_gen]"], "server.generators: unknown reasoning-gym generators ['nosuch_gen']"),
    (["server.generators=[chain_sum]", "+server.generator_config.chain_sum.nosuch=1"],
     "server.generator_config.chain_sum {{'nosuch': 1}}: "),
    (["server.generators=[chain_sum]", "server.generator_config.chain_sum.min_terms=3"],
     "server.generator_config.chain_sum: unknown key; it is a valid key the YAML does not list: add it with a "
     "leading +, +server.generator_config.chain_sum.min_terms=3"),
    (["server.data_path={tmp}/empty.jsonl"], "server.data_path: {tmp}/empty.jsonl: no tasks: the file is empty"),
])
def test_bad_config_is_one_line_no_traceback_no_run_dir(tmp_path: Path, overrides: list[str], line: str) -> None:
    (tmp_path / "model.gguf").write_bytes(b"PK\x03\x04 a zip file, say a safetensors checkpoint folder zipped")
    (tmp_path / "empty.jsonl").write_text("\n")
    p = rollgen(*(o.format(tmp=tmp_path) for o in overrides), cwd=tmp_path)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rollgen: config error: {line.format(tmp=tmp_path)}"), p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(("word", "line"), [
    ("currate", "rollgen: 'currate' is not a command; did you mean 'rollgen curate'? (commands: validate, verify, "
                "curate, merge, dataset, compare, tasks, ray-run, serve; a run takes overrides: key=value or group=option)"),
    ("datset", "rollgen: 'datset' is not a command; did you mean 'rollgen dataset'?"),
    ("hello", "rollgen: 'hello' is not a command (commands: "),
])
def test_a_word_that_is_not_a_command_is_named(tmp_path: Path, word: str, line: str) -> None:
    p = rollgen(word, "outputs/x", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith(line) and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "outputs").exists()


def test_help_lists_groups_and_options(tmp_path: Path) -> None:
    p = rollgen("--help", cwd=tmp_path)
    assert p.returncode == 0
    assert {"code", "instruction_following", "math", "mcqa", "reasoning_gym", "structured_output"} <= set(
        OPTIONS("server").split(", "))
    for line in ["sampler: dpo, ppo, sft", "policy: local, openai", f"server: {OPTIONS('server')}",
                 f"guards: {OPTIONS('guards')}", "format: dpo, kto, nemo_gym, rl, sft"]:
        assert line in p.stdout, p.stdout


def test_cfg_job_prints_effective_config(tmp_path: Path) -> None:
    p = rollgen("--cfg", "job", "sampler=dpo", cwd=tmp_path)
    assert p.returncode == 0
    assert "num_repeats: 2" in p.stdout and "kind: dpo" in p.stdout and "temperature: 0.7" in p.stdout


def test_end_to_end_run_against_fake(tmp_path: Path) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 20)
    secret = "sk-cli-SECRET-abcdef0123456789"
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, api_key=secret)) as url:
        p = rollgen("server=math", "sampler=dpo", "policy=openai", f"policy.base_url={url}",
                    f"server.data_path={tasks}", "hydra.run.dir=run", cwd=tmp_path, env={"OPENAI_API_KEY": secret})
    assert p.returncode == 0, p.stderr
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["collection"]["rollouts"] == 40 and report["collection"]["by_status"] == {"ok": 40}
    assert report["format"] == "dpo" and report["kept"]["dataset_rows"] > 0
    assert "Collecting rollouts" in p.stderr  # the progress bar
    for path in run.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace")
    assert secret not in p.stdout + p.stderr


HELD_AFTER = 9  # the fake answers this many requests and holds the rest: the run is certainly still going


def _start_held_run(tmp_path: Path, url: str) -> tuple[subprocess.Popen, Path]:
    """A run against ``FakeOpenAI(hold_after=HELD_AFTER)``, returned once those rollouts are on disk."""
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 200)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollgen", "policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
         "sampler.num_samples_in_parallel=4", "hydra.run.dir=run"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = tmp_path / "run" / "rollouts.jsonl"
    wait_for_lines(proc, path, HELD_AFTER)
    return proc, path


def _all_lines_valid(path: Path) -> int:
    lines = path.read_text().splitlines()
    for line in lines:
        assert json.loads(line)["status"] in ("ok", "error", "timeout")
    return len(lines)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_with_an_interrupted_report(tmp_path: Path, sig: signal.Signals) -> None:
    with serve_in_thread(FakeOpenAI(hold_after=HELD_AFTER)) as url:
        proc, path = _start_held_run(tmp_path, url)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    n = _all_lines_valid(path)
    assert n == HELD_AFTER  # the held requests were cancelled, not written
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["status"] == "interrupted" and report["collection"]["rollouts"] == n


def test_second_ctrl_c_exits_at_once_with_valid_files(tmp_path: Path) -> None:
    with serve_in_thread(FakeOpenAI(hold_after=HELD_AFTER)) as url:
        proc, path = _start_held_run(tmp_path, url)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    assert proc.returncode == 130 and elapsed < 10
    assert _all_lines_valid(path) == HELD_AFTER
