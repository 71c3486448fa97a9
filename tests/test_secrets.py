"""Secrets never reach data: an endpoint that echoes the key (whole and in pieces) leaves no trace in any file."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollgen import redact
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI

SECRET = "sk-live-Zq7RtW3xLmN9pKv2HsY8cBd4FgJ6"


def _pieces(secret: str, n: int = redact.MIN_PIECE) -> list[str]:
    return [secret[i:i + n] for i in range(len(secret) - n + 1)]


def _leaks(data: bytes, secret: str) -> list[str]:
    return [p for p in _pieces(secret) if p.encode() in data]


def test_redact_masks_the_secret_and_every_piece_of_eight_or_more() -> None:
    r = redact.Redactor()
    r.register("tok-ABCDEFGHIJKLMNOP", "EMPTY", None)  # a placeholder shorter than 8 is no secret
    assert r.secrets == {"tok-ABCDEFGHIJKLMNOP"}
    assert r.redact("key tok-ABCDEFGHIJKLMNOP end") == f"key {redact.MASK} end"
    assert r.redact("cut: GHIJKLMN, tail ...IJKLMNOP") == f"cut: {redact.MASK}, tail ...{redact.MASK}"
    assert r.redact("short FGHIJKL (7) stays, EMPTY too") == "short FGHIJKL (7) stays, EMPTY too"
    assert r.redact('{"a": "xtok-ABCDEFGHIJKLMNOPx"}') == f'{{"a": "x{redact.MASK}x"}}'
    assert r.redact_obj({"k": ["ABCDEFGHIJ", 3]}) == {"k": [redact.MASK, 3]}
    numeric = redact.Redactor()
    numeric.register("9876543210123")
    line = json.dumps({"latency_s": 0.98765432101, "text": "x 9876543210 y"})
    assert json.loads(numeric.redact_json(line)) == {"latency_s": 0.98765432101, "text": f"x {redact.MASK} y"}


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


_KEY_CHARS = st.characters(min_codepoint=33, max_codepoint=126)


@settings(max_examples=300, deadline=None)
@given(secret=st.text(_KEY_CHARS, min_size=redact.MIN_PIECE, max_size=80), pieces=st.lists(st.tuples(
    st.integers(0, 79), st.integers(redact.MIN_PIECE, 80), st.text(max_size=20)), max_size=4),
    prefix=st.text(max_size=20))
def test_no_piece_of_eight_survives_and_clean_text_is_untouched(secret: str, pieces: list, prefix: str) -> None:
    r = redact.Redactor()  # a registry of its own: random secrets stay out of the process-wide one
    r.register(secret)
    text = prefix + "".join(secret[i:i + n] + gap for i, n, gap in pieces)
    out = r.redact(text)
    json_safe = [p for p in _pieces(secret) if '"' not in p and "\\" not in p]  # escaped in JSON anyway
    assert not [p for p in json_safe if p in out]
    if not any(p in text for p in _pieces(secret)):
        assert out == text  # nothing of the secret: nothing changes
    line = json.dumps({"text": text, "n": [12345678, 0.123456789], "ok": True})
    assert json.loads(r.redact_json(line))["n"] == [12345678, 0.123456789]  # valid JSON, numbers kept
