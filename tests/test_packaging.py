"""Packaging: the wheel ships conf/ inside the package and runs from a non-editable install."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    return next(out.glob("rollgen-*.whl"))


def test_wheel_contains_conf(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for group in ["server/math.yaml", "sampler/dpo.yaml", "policy/local.yaml", "config.yaml"]:
        assert f"rollgen/conf/{group}" in names
    assert "rollgen/servers/data/instruction_prompts.json" in names  # server=instruction_following's requests
    assert not any(n.startswith("tests/") for n in names)
    bundled = ["HumanEval.jsonl.gz", "HumanEval.LICENSE", "code_tasks.jsonl", "mcqa_questions.jsonl",
               "structured_tasks.jsonl", "judge_prompts.jsonl"]  # the servers' own tasks
    for data in bundled:
        assert f"rollgen/servers/data/{data}" in names


def test_non_editable_install_runs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import rollgen, rollgen.api as a; print(rollgen.__file__); print(a.conf_dir())"
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    module_file, conf = p.stdout.split()
    assert module_file.startswith(str(target)) and conf == str(target / "rollgen" / "conf")
    p = subprocess.run([sys.executable, "-m", "rollgen", "--cfg", "job", "sampler=dpo"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "num_repeats: 2" in p.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "rollgen"
    assert script.exists(), "the `rollgen` console script is missing; reinstall with pip install -e ."
    p = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "sampler: dpo, ppo, sft" in p.stdout
