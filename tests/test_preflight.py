"""``preflight``: what only a run needs, checked before any work, reported by key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

import rollgen
from rollgen.build import preflight
from rollgen.errors import ConfigError
from rollgen.verifiers import Verifier


class CheckedVerifier(Verifier):
    """Needs its ``table`` file; its constructor compiles ``pattern``."""

    class Params(BaseModel):
        table: str = "table.csv"
        pattern: str = "x"

    def __init__(self, params: Params):
        super().__init__(params)
        self._rx = re.compile(params.pattern)

    def check(self) -> None:
        if not Path(self.params.table).is_file():
            raise ValueError(f"table: {self.params.table}: no such file")

    async def verify(self, task, rollout):  # noqa: ANN001, ANN201 - not called here
        return 0.0


def _cfg(tmp_path: Path, *overrides: str) -> rollgen.config.RunConfig:
    return rollgen.compose(["policy=openai", "server.data_path=t.jsonl", "verifier._target_=tests.test_preflight."
                            "CheckedVerifier", *overrides], output_dir=str(tmp_path / "run"))


def test_check_failures_are_named_by_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        preflight(_cfg(tmp_path, f"+verifier.table={tmp_path / 'missing.csv'}"))
    assert e.value.lines == [f"verifier.table: {tmp_path / 'missing.csv'}: no such file"]
    (tmp_path / "t.csv").write_text("a,b\n")
    preflight(_cfg(tmp_path, f"+verifier.table={tmp_path / 't.csv'}"))  # passes


def test_a_constructor_that_rejects_a_value_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n")
    with pytest.raises(ConfigError) as e:
        preflight(_cfg(tmp_path, f"+verifier.table={tmp_path / 't.csv'}", "+verifier.pattern='x('"))
    assert e.value.lines[0].startswith("verifier: missing ), unterminated subpattern")


def test_every_problem_at_once(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "+verifier.table=nope.csv", "policy=local", "policy.model_path=/no/model.gguf")
    with pytest.raises(ConfigError) as e:
        preflight(cfg)
    assert [line.split(":")[0] for line in e.value.lines] == ["policy.model_path", "verifier.table"]
