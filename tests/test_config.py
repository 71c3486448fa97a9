"""Config: every group option composes and validates; presets carry the seed's numbers; bad keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollgen import compose
from rollgen.composer import conf_dir
from rollgen.config import RunConfig
from rollgen.errors import ConfigError

GROUPS = ["server", "sampler", "policy", "verifier", "quality", "format", "integration"]


def _options() -> list[tuple[str, str]]:
    return [(g, p.stem) for g in GROUPS for p in sorted((conf_dir() / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), _options())
def test_every_option_composes(group: str, option: str) -> None:
    cfg = compose([f"{group}={option}"], output_dir="x")
    assert isinstance(cfg, RunConfig)


def test_every_group_has_a_default() -> None:
    cfg = compose([], output_dir="x")
    assert cfg.server.target.endswith("MathServer")
    assert cfg.policy.target.endswith("LocalPolicy")
    assert cfg.verifier.target.endswith("MathVerifier")
    assert cfg.format.kind == "sft" and cfg.quality.kind == "sft"  # the default sampler preset picks both


def test_sft_preset_has_seed_numbers() -> None:
    cfg = compose(["sampler=sft"], output_dir="x")
    assert cfg.sampler.num_samples_in_parallel == 20
    assert cfg.sampler.responses_create_params.temperature == 0.2
    assert cfg.quality.min_reward_threshold == 0.8
    assert cfg.format.kind == "sft"


def test_dpo_preset_has_seed_numbers() -> None:
    cfg = compose(["sampler=dpo"], output_dir="x")
    assert cfg.sampler.num_repeats == 2
    assert cfg.sampler.responses_create_params.temperature == 0.7
    assert cfg.format.kind == "dpo" and cfg.format.min_quality_difference == 0.1
    assert cfg.quality.min_reward_threshold == 0.0 and cfg.quality.kind == "dpo"


def test_ppo_preset_has_seed_numbers() -> None:
    cfg = compose(["sampler=ppo"], output_dir="x")
    assert cfg.sampler.num_samples_in_parallel == 10
    assert cfg.sampler.responses_create_params.temperature == 0.5


def test_command_line_beats_preset() -> None:
    cfg = compose(["sampler=dpo", "quality.min_reward_threshold=0.6", "sampler.responses_create_params.temperature=0.3"],
                  output_dir="x")
    assert cfg.quality.min_reward_threshold == 0.6
    assert cfg.sampler.responses_create_params.temperature == 0.3
    assert cfg.format.kind == "dpo"


@pytest.mark.parametrize(("override", "key"), [
    ("sampler.responses_create_params.temperature=hot", "sampler.responses_create_params.temperature:"),
    ("sampler.responses_create_params.temperature=5", "sampler.responses_create_params.temperature:"),
    ("sampler.num_repeats=0", "sampler.num_repeats:"),
    ("sampler.tempreature=0.3", "sampler.tempreature:"),
    ("+sampler.tempreature=0.3", "sampler.tempreature:"),
    ("server.size=-1", "server.size:"),
    ("+server.sizee=3", "server.sizee:"),
    ("server._target_=no_such_module.Server", "server._target_:"),
    ("policy.api=grpc", "policy.api:"),
    ("server=nope", "server=nope:"),
])
def test_bad_config_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        compose(["policy=openai", override] if override.startswith("policy.") else [override], output_dir="x")
    assert any(line.startswith(key) for line in e.value.lines), e.value.lines


@pytest.mark.parametrize(("setting", "name", "off"), [
    ("quality.min_reward_threshold=0.5", "reward", "set it to 0"),
    ("+quality.filters.reward.criteria.format=1.0", "reward", "leave it empty"),
    ("quality.filters.decontaminate.eval_files=[{tmp}/aime.jsonl]", "decontaminate", "leave it empty"),
    ("+quality.filters.stratify.targets.easy=1.0", "stratify", "leave it empty"),
])
def test_a_setting_for_a_filter_outside_the_chain_is_an_error(tmp_path: Path, setting: str, name: str, off: str) -> None:
    (tmp_path / "aime.jsonl").write_text('{"question": "What is 1 + 1?", "answer": "2"}\n')
    setting = setting.format(tmp=tmp_path)
    base = ["quality.chain=[status,near_dedup]", "quality.min_reward_threshold=0"]  # sampler=sft sets 0.8
    with pytest.raises(ConfigError) as e:  # it would do nothing: e.g. the eval files would not be checked
        compose([*base, setting], output_dir="x")
    [line] = e.value.lines
    key = setting.lstrip("+").split("=")[0].removeprefix("quality.").removesuffix(".format").removesuffix(".easy")
    assert line.startswith(f"quality: {key}=") and line.endswith(f" has no effect: add `{name}` to quality.chain or {off}")
    compose([*base, setting, f"quality.chain=[status,near_dedup,{name}]"], output_dir="x")  # with the filter: fine


def test_all_errors_reported_at_once() -> None:
    with pytest.raises(ConfigError) as e:
        compose(["sampler.num_repeats=0", "sampler.responses_create_params.top_p=3"], output_dir="x")
    assert len(e.value.lines) == 2


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError) as e:
        compose(["sampler.num_repeat=3"], output_dir="x")
    assert "did you mean sampler.num_repeats" in e.value.lines[0]


# Deliberate values of example presets: the YAML option exists to show them.
PRESET_VALUES = {("verifier", "penalized.yaml"): {"max_chars", "required"},
                 ("verifier", "weighted.yaml"): {"weights", "gate"},
                 ("verifier", "open_judge.yaml"): {"judge_input", "max_response_chars", "prompt_template", "rubric",
                                                   "labels", "max_score", "pairwise", "validate_with"},
                 ("verifier", "remote.yaml"): {"base_url"}}  # ${server.base_url}: the server=remote preset's URL


def _drift(model: type, data: dict, where: str) -> list[str]:
    """Keys whose YAML value differs from the type's default (recursing into nested models)."""
    from pydantic import BaseModel

    out = []
    for key, value in data.items():
        field = model.model_fields.get(key) or next(
            (f for f in model.model_fields.values() if f.alias == key), None)
        if field is None or field.is_required():
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel) and isinstance(value, dict):
            out += _drift(type(default), value, f"{where}.{key}")
        elif isinstance(default, BaseModel) or default != value:
            out.append(f"{where}.{key}: YAML {value!r}, type default {default!r}")
    return out


def test_yaml_defaults_equal_the_types_defaults() -> None:
    """A default lives in two places (the YAML a run composes, the type a Python caller gets): they must agree,
    or a run and `RewardScorer`/`QualityConfig()` in a script would silently differ."""
    import yaml

    from rollgen.build import target_class
    from rollgen.config import GuardsConfig, QualityConfig, ServeConfig, ValidateConfig

    drift = []
    for group, model in (("quality", QualityConfig), ("guards", GuardsConfig), ("validate", ValidateConfig),
                         ("serve", ServeConfig)):
        drift += _drift(model, yaml.safe_load((conf_dir() / group / "default.yaml").read_text()), group)
    checked = 0
    for group in ("server", "policy", "verifier", "integration"):
        for path in sorted((conf_dir() / group).glob("*.yaml")):
            data = yaml.safe_load(path.read_text()) or {}
            for comp in ([v for v in data.values() if isinstance(v, dict)] if group == "integration" else [data]):
                if "_target_" not in comp:
                    continue
                skip = PRESET_VALUES.get((group, path.name), set())
                params = {k: v for k, v in comp.items() if not k.startswith("_") and k not in skip}
                drift += _drift(target_class(comp["_target_"]).Params, params, f"{group}/{path.name}")
                checked += 1
    assert checked >= 20 and drift == []


def test_the_drift_check_sees_a_drifted_default() -> None:
    from rollgen.config import GuardsConfig

    assert _drift(GuardsConfig, {"max_chars": 100, "hedging": True}, "guards") == [
        "guards.max_chars: YAML 100, type default 32000"]
