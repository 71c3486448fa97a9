"""Quality filters and dataset formats are found in explicit registries by their YAML names; an unknown name
is an error that lists the known ones."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from rollgen.config import FilterName, FormatConfig, QualityConfig
from rollgen.formats.rows import FORMATS
from rollgen.formats.validate import CHECKS, validate
from rollgen.quality import chain  # noqa: F401 - imports every filter module, which registers its filters
from rollgen.quality.registry import FILTERS, GroupFilter, Inputs, RowFilter, make
from rollgen.registry import Registry


def _format_kinds() -> set[str]:
    union = typing.get_args(FormatConfig)[0]
    return {typing.get_args(m.model_fields["kind"].annotation)[0] for m in typing.get_args(union)}


def test_every_chain_name_the_config_accepts_is_a_registered_filter() -> None:
    assert set(FILTERS) == set(typing.get_args(FilterName))
    for name in FILTERS:
        assert issubclass(FILTERS[name], (RowFilter, GroupFilter)), name
    assert {n for n in FILTERS if issubclass(FILTERS[n], GroupFilter) and FILTERS[n].observes} == {
        "exact_dedup", "near_dedup"}


def test_filters_are_built_from_their_parameters_and_inputs() -> None:
    cfg = QualityConfig(min_reward_threshold=0.7, chain=["reward", "stratify", "exact_dedup"])
    inputs = Inputs(task_meta={"t": {"difficulty": "easy"}}, answers={"t": 5})
    reward, stratify, dedup = (make(name, cfg, inputs) for name in cfg.chain)
    assert reward.min == 0.7 and stratify.stratum("t") == "easy" and dedup.answers == {"t": 5}


def test_an_unknown_filter_or_format_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown quality filter 'dedupe'; known: answer_format, cap_per_task, "):
        make("dedupe", QualityConfig(), Inputs())
    with pytest.raises(ValueError, match=r"^unknown dataset format 'orpo'; known: dpo, kto, nemo_gym, rl, sft$"):
        FORMATS["orpo"]
    (tmp_path / "rows.jsonl").write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    with pytest.raises(ValueError, match=r"unknown dataset format 'orpo'; known: dpo, kto, nemo_gym, rl, sft"):
        validate(tmp_path / "rows.jsonl", "orpo")


def test_every_format_kind_has_rows_a_card_text_stats_fields_and_a_check() -> None:
    assert set(FORMATS) == set(CHECKS) == _format_kinds() == {"sft", "dpo", "kto", "rl", "nemo_gym"}
    for kind in FORMATS:
        fmt = FORMATS[kind]
        assert callable(fmt.rows) and fmt.description and "prompt" in fmt.text_fields
        assert fmt.number_fields or kind == "nemo_gym"  # NeMo Gym task rows carry no numbers of rollgen's


def test_a_registry_takes_a_name_once() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        reg.register("a")(2)
    assert reg["a"] == 1 and "a" in reg and reg.names() == ["a"] and len(reg) == 1
