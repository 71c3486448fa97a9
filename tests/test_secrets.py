"""Secrets never reach data: an endpoint that echoes the key (whole and in pieces) leaves no trace in any file."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollgen import redact
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI

SECRET = "sk-live-Zq7RtW3xLmN9pKv2HsY8cBd4FgJ6"


def _pieces(secret: str, n: int = redact.MIN_PIECE) -> list[str]:
    return [secret[i:i + n] for i in range(len(secret) - n + 1)]


def _leaks(data: bytes, secret: str) -> list[str]:
    return [p for p in _pieces(secret) if p.encode() in data]


def test_redact_masks_the_secret_and_every_piece_of_eight_or_more() -> None:
    redact.register("tok-ABCDEFGHIJKLMNOP")
    assert redact.redact("key tok-ABCDEFGHIJKLMNOP end") == f"key {redact.MASK} end"
    assert redact.redact("cut: GHIJKLMN, tail ...IJKLMNOP") == f"cut: {redact.MASK}, tail ...{redact.MASK}"
    assert redact.redact("short FGHIJKL (7) stays") == "short FGHIJKL (7) stays"
    assert redact.redact('{"a": "xtok-ABCDEFGHIJKLMNOPx"}') == f'{{"a": "x{redact.MASK}x"}}'
    assert redact.redact_obj({"k": ["ABCDEFGHIJ", 3]}) == {"k": [redact.MASK, 3]}


def test_secrets_are_found_wherever_the_config_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import rollgen

    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", "judge-SECRET-5e6f7a8b9c0d")
    cfg = rollgen.compose(["verifier=cascade", "+verifier.stages.1.api_key_env=JUDGE_KEY_FOR_TEST"], output_dir="x")
    found = dict(redact.secret_keys(cfg.model_dump(mode="json", by_alias=True)))
    assert found["verifier.stages.1.api_key_env"] == "judge-SECRET-5e6f7a8b9c0d"
    assert dict(redact.secret_keys({"my": {"api_key": "literal-key-123456", "token_env": "NOT_SET_ANYWHERE"}})) == {
        "my.api_key": "literal-key-123456"}
    redact.register_config(cfg.model_dump(mode="json", by_alias=True))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        redact.install_log_filter()
        logging.getLogger("some.library").warning("judge said %s", "SECRET-5e6f7a8b9c0d!")
        try:
            raise ValueError("judge-SECRET-5e6f7a8b9c0d")
        except ValueError:
            logging.getLogger("rollgen.x").exception("failed")
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert "5e6f7a8b" not in text and text.count(redact.MASK) >= 2 and "ValueError: [redacted]" in text


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["sft", "dpo", "ppo"])
def test_echoed_key_reaches_no_file_and_no_output(tmp_path: Path, sampler: str) -> None:
    tasks = write_arith_tasks(tmp_path / "tasks.jsonl", 12)
    fake = FakeOpenAI(api_key=SECRET, echo_key=True, error_rate=0.2, correct_rate=0.6, seed=1)
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "ROLLGEN_CACHE_DIR": str(tmp_path / "cache")}
    with serve_in_thread(fake) as url:
        p = subprocess.run(
            [sys.executable, "-m", "rollgen", "policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
             f"sampler={sampler}", "sampler.num_repeats=2", "integration=[jsonl,trl,openrlhf,nemo_rl,verl]",
             "policy.max_retries=0", "hydra.run.dir=run", "hydra.verbose=true"],
            cwd=tmp_path, env=env, capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert fake.auth_failures == 0 and fake.requests == 24  # the key was sent, and echoed in every answer and 500
    run = tmp_path / "run"
    files = [f for f in run.rglob("*") if f.is_file()]
    assert {"rollouts.jsonl", "rollgen.log", "report.json", "report.md", "run_config.json"} <= {f.name for f in files}
    assert any("export" in f.parts for f in files)
    assert any(f.suffix == ".parquet" for f in files) == (sampler != "dpo")  # VeRL takes SFT and RL data
    rollouts = (run / "rollouts.jsonl").read_text()
    assert rollouts.count(redact.MASK) >= 24 * 4  # the header and three pieces per answer, masked
    assert "injected failure" in rollouts  # the echoing 500s became rollouts too
    for f in files:
        assert not _leaks(f.read_bytes(), SECRET), f
    assert not _leaks(p.stdout + p.stderr, SECRET)
    for f in (tmp_path / "cache").rglob("*"):
        if f.is_file():
            assert not _leaks(f.read_bytes(), SECRET), f
