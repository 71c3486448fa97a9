"""Python API: rerun_config keeps a run's sections except the ones overridden."""

from __future__ import annotations

from pathlib import Path

import pytest

import rollgen
from rollgen.composer import rerun_config
from rollgen.errors import ConfigError
from tests.conftest import serve_in_thread
from tests.fakes import FakeOpenAI


def test_rerun_config_overrides_only_named_sections(tmp_path: Path, tasks_file: Path) -> None:
    with serve_in_thread(FakeOpenAI()) as url:
        cfg = rollgen.compose(["sampler=dpo", "policy=openai", f"policy.base_url={url}", f"server.data_path={tasks_file}",
                               "progress=false", "quality.min_reward_threshold=0.3"], output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    again = rerun_config(tmp_path / "run", ["quality.min_reward_threshold=0.9"])
    assert again.quality.min_reward_threshold == 0.9
    assert again.sampler.num_repeats == 2 and again.format.kind == "dpo"  # kept from the run, not the defaults
    assert again.policy.target.endswith("OpenAIPolicy") and again.output_dir == str(tmp_path / "run")


def test_a_server_choice_on_rerun_brings_its_verifier_and_guards(tmp_path: Path, tasks_file: Path) -> None:
    with serve_in_thread(FakeOpenAI()) as url:
        cfg = rollgen.compose(["sampler=dpo", "policy=openai", f"policy.base_url={url}", f"server.data_path={tasks_file}",
                               "progress=false"], output_dir=str(tmp_path / "run"))
        rollgen.run(cfg)
    plain = rerun_config(tmp_path / "run")
    assert plain.verifier == rollgen.compose([], output_dir="x").verifier  # the run's (math) verifier
    again = rerun_config(tmp_path / "run", ["server=code"])
    code = rollgen.compose(["server=code"], output_dir="x")
    assert again.server == code.server and again.verifier == code.verifier and again.guards == code.guards
    assert again.verifier != plain.verifier  # not scored by the math verifier with math-shaped guards
    assert again.format.kind == "dpo" and again.sampler.num_repeats == 2  # sections the choice does not set: kept
    chosen = rerun_config(tmp_path / "run", ["server=code", "verifier=exact"])  # an explicit choice still wins
    assert chosen.verifier == rollgen.compose(["verifier=exact"], output_dir="x").verifier
    assert chosen.guards == code.guards


def test_rerun_config_needs_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a rollgen run directory"):
        rerun_config(tmp_path)


def test_public_surface() -> None:
    assert set(rollgen.__all__) == {"Runtime", "__version__", "arun", "compose", "run"}
    assert all(getattr(rollgen, name) is not None for name in rollgen.__all__)
