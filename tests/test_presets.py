"""A server option is a preset: it brings the verifier and guards that fit its domain (Hydra defaults-list
overrides in ``conf/server/<name>.yaml``), and the command line still wins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rollgen import compose
from rollgen.composer import conf_dir
from rollgen.config import GuardsConfig
from rollgen.records import Rollout, Task
from rollgen.verifiers.guards import check

ROOT = Path(__file__).resolve().parent.parent


def test_server_code_brings_the_code_verifier_and_guards() -> None:
    cfg = compose(["server=code"], output_dir="x")
    assert cfg.server.target == "rollgen.servers.code.CodeServer"
    assert cfg.verifier.target == "rollgen.verifiers.code.CodeTests"
    assert cfg.guards == GuardsConfig.model_validate(yaml.safe_load((conf_dir() / "guards" / "code.yaml").read_text()))
    assert not cfg.guards.hedging and not cfg.guards.copied_from_prompt and cfg.guards.empty and cfg.guards.truncated


@pytest.mark.parametrize("order", [["server=code", "verifier=exact", "guards=default"],
                                   ["verifier=exact", "guards=default", "server=code"]])
def test_the_command_line_beats_the_preset(order: list[str]) -> None:
    cfg = compose([*order, "guards.max_chars=100"], output_dir="x")
    assert cfg.server.target.endswith("CodeServer") and cfg.verifier.target == "rollgen.verifiers.text.ExactMatch"
    assert cfg.guards.hedging and cfg.guards.copied_from_prompt and cfg.guards.max_chars == 100
    assert not compose(["server=code", "guards=off"], output_dir="x").guards.enabled
    key = compose(["server=code", "verifier.timeout_s=3"], output_dir="x")
    assert key.verifier.target.endswith("CodeTests") and key.verifier.model_extra["timeout_s"] == 3


def test_server_math_keeps_the_math_verifier_and_default_guards() -> None:
    for overrides in ([], ["server=math"]):
        cfg = compose(overrides, output_dir="x")
        assert cfg.server.target.endswith("MathServer") and cfg.verifier.target.endswith("MathVerifier")
        assert cfg.guards == GuardsConfig()  # conf/guards/default.yaml, which the pydantic defaults mirror
    assert compose(["server=math", "sampler=dpo"], output_dir="x").format.kind == "dpo"  # presets compose


def test_every_guards_option_lists_every_field() -> None:
    for path in sorted((conf_dir() / "guards").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        GuardsConfig.model_validate(data)
        if data.get("enabled", True):
            assert set(data) == set(GuardsConfig.model_fields), path.name


@pytest.mark.parametrize(("completion", "guard"), [
    # A HumanEval-style solution repeats the signature and docstring the prompt gives.
    ('```python\ndef add(a, b):\n    """Return the sum of the two numbers a and b."""\n    return a + b\n```',
     "copied_from_prompt"),
    # An explanation with "or" after the code is no hedge between two answers.
    ("```python\ndef add(a, b):\n    return a + b\n```\nThe answer is the sum of a and b, or an error for strings.",
     "hedging"),
])
def test_code_guards_accept_what_math_guards_wrongly_reject(completion: str, guard: str) -> None:
    prompt = 'Complete this function:\n\n```python\ndef add(a, b):\n    """Return the sum of the two numbers a and b."""\n```'
    task = Task(id="t", messages=[{"role": "user", "content": prompt}])
    rollout = Rollout(id="t#0", task_id="t", repeat=0, messages=[], completion=completion, status="ok")
    code_guards = compose(["server=code"], output_dir="x").guards
    assert [g for g, _ in check(GuardsConfig(), task, rollout)] == [guard]
    assert check(code_guards, task, rollout) == []


@pytest.mark.slow
def test_cfg_job_shows_the_presets_choice() -> None:
    def job(*overrides: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "rollgen", *overrides, "--cfg", "job"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        return yaml.safe_load(out)

    code = job("server=code")
    assert code["verifier"]["_target_"] == "rollgen.verifiers.code.CodeTests" and code["guards"]["hedging"] is False
    assert job("server=code", "verifier=exact")["verifier"]["_target_"] == "rollgen.verifiers.text.ExactMatch"
    assert job("server=math")["verifier"]["_target_"] == "rollgen.verifiers.math.MathVerifier"
