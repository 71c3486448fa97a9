"""NeMo-RL's own config loading on rollgen's NeMo-RL launch files, and every key its code reads.

NeMo-RL is not installable here (not on PyPI: ``nemo-rl`` there is an empty 0.0.0), so this checks what does
not need it, against its source at NVIDIA-NeMo/RL @ 7ea279abfbeb698b092856d0dab61e7cf39bc909 (2026-08-22):

- tests/data/nemo_rl/{sft,dpo,grpo_math_1B}.yaml are its base configs and nemo_rl_config.py its
  ``nemo_rl/utils/config.py``, verbatim from that commit (it needs only hydra and omegaconf);
- train.sh runs with ``uv`` stubbed (tests/train_scripts.py) and NEMO_RL_DIR pointing at those configs; the
  recorded command is loaded as ``examples/run_*.py`` load it: ``load_config`` (``defaults:`` + ``_override_``),
  ``parse_hydra_overrides`` (struct mode: an override of a key the config lacks fails), then
  ``OmegaConf.to_container(resolve=True)`` (every interpolation, ours and the base config's, resolves);
- every key READS lists (what NeMo-RL's code reads for that algorithm, with the line it is read at) is there,
  including in each dataset entry after ``update_single_dataset_config`` fills it from ``data.default``;
- the batch sizes make at least one training step (the train dataloaders drop the last incomplete batch).

docs/nemo_rl_check.py runs NeMo-RL's real loading and dataset classes where NeMo-RL is installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationKeyError

from rollgen.config import DpoFormat, RlFormat, SftFormat
from rollgen.formats import build_dataset
from rollgen.integrations.nemo_rl import NemoRLIntegration
from rollgen.rundir import read_jsonl
from tests.test_formats import make_run
from tests.train_scripts import Launch, run_train_sh

DATA = Path(__file__).parent / "data" / "nemo_rl"

# What NeMo-RL's code reads, per launch (our config name), at 7ea279a: key -> where it is read.
READS: dict[str, dict[str, str]] = {
    "sft": {
        "data.train": "examples/run_sft.py:72", "data.default": "examples/run_sft.py:77",
        "data.validation": "examples/run_sft.py:121", "data.add_bos": "examples/run_sft.py:84",
        "data.add_eos": "examples/run_sft.py:85", "data.add_generation_prompt": "examples/run_sft.py:86",
        "data.max_input_seq_length": "examples/run_sft.py:99", "data.shuffle": "nemo_rl/algorithms/sft.py:162",
        "data.num_workers": "nemo_rl/algorithms/sft.py:165",
        "policy.train_global_batch_size": "nemo_rl/algorithms/sft.py:161",
        "sft.val_global_batch_size": "nemo_rl/algorithms/sft.py:174",
        "data.train.dataset_name": "examples/configs/sft.yaml:299 (logger.wandb.name interpolates it)",
    },
    "dpo": {
        "data.train": "nemo_rl/data/utils.py:316 (setup_preference_data)", "data.default": "nemo_rl/data/utils.py:314",
        "data.validation": "nemo_rl/data/utils.py:368", "data.max_input_seq_length": "nemo_rl/data/utils.py:328",
        "data.shuffle": "nemo_rl/algorithms/dpo.py:204", "data.num_workers": "nemo_rl/algorithms/dpo.py:214",
        "policy.train_global_batch_size": "nemo_rl/algorithms/dpo.py:203",
        "dpo.val_global_batch_size": "nemo_rl/algorithms/dpo.py:223",
    },
    "grpo_math": {
        "data.train": "nemo_rl/data/utils.py:171 (setup_response_data)", "data.default": "nemo_rl/data/utils.py:176",
        "data.validation": "nemo_rl/data/utils.py:248", "data.max_input_seq_length": "nemo_rl/data/utils.py:217",
        "data.use_multiple_dataloader": "nemo_rl/algorithms/grpo.py:560", "data.shuffle": "nemo_rl/algorithms/grpo.py:596",
        "data.num_workers": "nemo_rl/algorithms/grpo.py:599", "grpo.num_prompts_per_step": "nemo_rl/algorithms/grpo.py:559",
        "grpo.val_batch_size": "nemo_rl/algorithms/grpo.py:644", "grpo.max_val_samples": "nemo_rl/algorithms/grpo.py:3853",
        "env.math": "nemo_rl/data/utils.py:159 (env_configs[env_name] for each data env_name)",
    },
    "grpo_gym": {
        "data.train": "nemo_rl/data/utils.py:171", "data.default": "nemo_rl/data/utils.py:176",
        "data.validation": "nemo_rl/data/utils.py:248", "data.max_input_seq_length": "nemo_rl/data/utils.py:217",
        "data.use_multiple_dataloader": "examples/nemo_gym/run_grpo_nemo_gym.py:302, nemo_rl/algorithms/grpo.py:560",
        "data.shuffle": "nemo_rl/algorithms/grpo.py:596", "data.num_workers": "nemo_rl/algorithms/grpo.py:599",
        "grpo.num_prompts_per_step": "nemo_rl/algorithms/grpo.py:559",
        "env.should_use_nemo_gym": "nemo_rl/environments/nemo_gym.py:85",
        "env.nemo_gym": "examples/nemo_gym/run_grpo_nemo_gym.py:233, nemo_rl/environments/nemo_gym.py:1165",
        "env.nemo_gym.config_paths": "NeMo Gym's global config (examples/nemo_gym/*.yaml)",
    },
}
# What the dataset classes read from each data.train / data.validation entry once data.default filled it.
DATASET_READS: dict[str, dict[str, str]] = {
    "sft": {"dataset_name": "nemo_rl/data/datasets/response_datasets/__init__.py:111",
            "data_path": "response_datasets/oai_format_dataset.py:124", "chat_key": "oai_format_dataset.py:125",
            "tool_key": "oai_format_dataset.py:128", "use_preserving_dataset": "oai_format_dataset.py:129",
            "processor": "nemo_rl/data/datasets/raw_dataset.py:53"},
    "dpo": {"dataset_name": "nemo_rl/data/datasets/preference_datasets/__init__.py:51",
            "data_path": "preference_datasets/preference_dataset.py:49"},
    "grpo_math": {"dataset_name": "response_datasets/__init__.py:111", "data_path": "response_dataset.py:44",
                  "input_key": "response_dataset.py:45", "output_key": "response_dataset.py:46",
                  "processor": "raw_dataset.py:53", "env_name": "nemo_rl/data/utils.py:189"},
    "grpo_gym": {"dataset_name": "response_datasets/__init__.py:111", "data_path": "nemogym_dataset.py:28",
                 "processor": "raw_dataset.py:53"},
}
# The base config each launch names in `defaults:`, and the processor/dataset class its rows need.
EXPECTED = {"sft": ("sft.yaml", "openai_format", "sft_processor"),
            "dpo": ("dpo.yaml", "PreferenceDataset", None),
            "grpo_math": ("grpo_math_1B.yaml", "ResponseDataset", "math_hf_data_processor"),
            "grpo_gym": ("grpo_math_1B.yaml", "NemoGymDataset", "nemo_gym_data_processor")}
# NVIDIA-NeMo/Gym @ 05a4377b4b35c044bcb0aeb2bd9810ba18ec9c22, resources_servers/math_with_judge/configs/
# math_with_judge.yaml: the agent that config starts (rows are routed by agent_ref.name, nemo_gym.py:676).
GYM_AGENT = "math_with_judge_simple_agent"


def _nemo_rl_config() -> Any:
    spec = importlib.util.spec_from_file_location("nemo_rl_config", DATA / "nemo_rl_config.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.register_omegaconf_resolvers()
    return module


NEMO = _nemo_rl_config()


@pytest.fixture
def nemo_rl_dir(tmp_path: Path) -> Path:
    """A stand-in NeMo-RL checkout: its examples/configs/ base configs at 7ea279a."""
    configs = tmp_path / "nemo-rl" / "examples" / "configs"
    configs.mkdir(parents=True)
    for name in ("sft.yaml", "dpo.yaml", "grpo_math_1B.yaml"):
        shutil.copy(DATA / name, configs / name)
    return tmp_path / "nemo-rl"


def _export(tmp_path: Path, cfg: Any, n_tasks: int, **params: Any) -> Path:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(n_tasks)})
    build_dataset(cfg, curated, tmp_path / "run" / "dataset", seed=0)
    out = tmp_path / "run" / "export" / "nemo_rl"
    NemoRLIntegration(NemoRLIntegration.Params(**params)).export(tmp_path / "run" / "dataset", out, cfg.kind)
    return out


def _launch(out: Path, tmp_path: Path, nemo_rl_dir: Path, ngpus: int, *extra: str, **env: str) -> Launch:
    return run_train_sh(out / "train.sh", tmp_path, {"NEMO_RL_DIR": str(nemo_rl_dir), "MODEL": "Qwen/Qwen2.5-0.5B",
                                                     "NGPUS": str(ngpus), **env}, *extra)


def _load(launch: Launch) -> dict[str, Any]:
    """examples/run_*.py's config loading on the launch's own command line."""
    assert launch.program == "uv" and launch.args[:2] == ["run", "python"] and launch.args[3] == "--config"
    config = NEMO.load_config(launch.args[4])
    config = NEMO.parse_hydra_overrides(config, launch.args[5:])
    return OmegaConf.to_container(config, resolve=True)


def _get(config: dict[str, Any], dotted: str, where: str = "") -> Any:
    node: Any = config
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"{dotted} is missing; NeMo-RL reads it at {where}"
        node = node[part]
    return node


def _datasets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """data.train and data.validation entries as the loaders see them: update_single_dataset_config
    (nemo_rl/data/datasets/utils.py:263) fills every key an entry lacks from data.default."""
    entries = [e for key in ("train", "validation") for e in ([data[key]] if isinstance(data[key], dict) else
                                                               (data[key] or []))]
    return [{**(data.get("default") or {}), **entry} for entry in entries]


def _rows(out: Path, name: str) -> int:
    return int(json.loads((out / "manifest.json").read_text())["files"][name])


def _check(name: str, out: Path, config: dict[str, Any], sub: str) -> None:
    for key, where in READS[name].items():
        _get(config, key, where)  # present (a null is what NeMo-RL's own configs use for "none" there)
    base, dataset_name, processor = EXPECTED[name]
    entries = _datasets(config["data"])
    assert entries and len(entries) == (2 if config["data"]["validation"] else 1)
    for entry in entries:
        for key, where in DATASET_READS[name].items():
            assert key in entry, f"data.train/validation.{key} ({where})"
        assert entry["dataset_name"] == dataset_name and entry.get("processor") == processor
        assert Path(entry["data_path"]).is_file() and Path(entry["data_path"]).parent == (out / sub).resolve()
        if name == "grpo_math":
            assert entry["env_name"] in config["env"]


@pytest.mark.parametrize("ngpus", [1, 8])
def test_sft_launch_loads_resolves_and_has_every_key(tmp_path: Path, nemo_rl_dir: Path, ngpus: int) -> None:
    out = _export(tmp_path, SftFormat(validation_fraction=0.25), n_tasks=24)
    launch = _launch(out, tmp_path, nemo_rl_dir, ngpus)
    assert launch.args[2] == "examples/run_sft.py" and "warning" not in launch.stderr, launch.stderr
    config = _load(launch)
    _check("sft", out, config, "sft")
    assert config["logger"]["wandb"]["name"] == "sft-dev-openai_format"  # sft.yaml's interpolation resolved
    assert config["policy"]["tokenizer"]["chat_template"] == "default"  # the model's own template, not sft.yaml's
    assert config["cluster"]["gpus_per_node"] == ngpus and config["policy"]["model_name"] == "Qwen/Qwen2.5-0.5B"
    policy = config["policy"]
    assert policy["train_global_batch_size"] % (policy["train_micro_batch_size"] * ngpus) == 0
    assert _rows(out, "sft/train.jsonl") // policy["train_global_batch_size"] >= 1  # sft.py:159-166, drop_last
    # validation keeps its last partial batch and pads it to the data-parallel size (sft.py:170-179, 318-321)
    assert config["sft"]["val_global_batch_size"] % ngpus == 0
    assert config["sft"]["val_period"] > 0 and config["checkpointing"]["metric_name"] == "val:val_loss"


def test_the_interpolation_check_has_teeth(tmp_path: Path, nemo_rl_dir: Path) -> None:
    """The SFT config used to name its dataset only under data.default: sft.yaml's logger then fails to resolve."""
    out = _export(tmp_path, SftFormat(), n_tasks=8)
    launch = _launch(out, tmp_path, nemo_rl_dir, 1)
    config = NEMO.load_config(launch.args[4])
    del config.data.train["dataset_name"]
    config.data.default["dataset_name"] = "openai_format"
    with pytest.raises(InterpolationKeyError, match="data.train.dataset_name"):
        OmegaConf.to_container(config, resolve=True)
    with pytest.raises(NEMO.OverridesError):  # struct mode: an override of a key the config lacks
        NEMO.parse_hydra_overrides(NEMO.load_config(launch.args[4]), ["policy.no_such_key=1"])


@pytest.mark.parametrize("ngpus", [1, 8])
def test_dpo_launch_loads_resolves_and_has_every_key(tmp_path: Path, nemo_rl_dir: Path, ngpus: int) -> None:
    out = _export(tmp_path, DpoFormat(validation_fraction=0.25), n_tasks=24)
    launch = _launch(out, tmp_path, nemo_rl_dir, ngpus)
    assert launch.args[2] == "examples/run_dpo.py" and "warning" not in launch.stderr, launch.stderr
    config = _load(launch)
    _check("dpo", out, config, "dpo")
    policy = config["policy"]
    assert policy["train_global_batch_size"] % (policy["train_micro_batch_size"] * ngpus) == 0
    assert _rows(out, "dpo/train.jsonl") // policy["train_global_batch_size"] >= 1  # dpo.py:201-215, drop_last
    assert config["dpo"]["val_global_batch_size"] % ngpus == 0  # validation keeps its partial batch (dpo.py:221-236)


@pytest.mark.parametrize("ngpus", [1, 8])
def test_grpo_math_launch_loads_resolves_and_has_every_key(tmp_path: Path, nemo_rl_dir: Path, ngpus: int) -> None:
    out = _export(tmp_path, RlFormat(validation_fraction=0.25), n_tasks=48)
    launch = _launch(out, tmp_path, nemo_rl_dir, ngpus)
    assert launch.args[2] == "examples/run_grpo.py" and "warning" not in launch.stderr, launch.stderr
    config = _load(launch)
    _check("grpo_math", out, config, "grpo")
    grpo, policy = config["grpo"], config["policy"]
    assert config["data"]["use_multiple_dataloader"] is False
    assert _rows(out, "grpo/train.jsonl") // grpo["num_prompts_per_step"] >= 1  # grpo.py:592-600, drop_last
    assert policy["train_global_batch_size"] == grpo["num_prompts_per_step"] * grpo["num_generations_per_prompt"]
    assert policy["train_global_batch_size"] % (policy["train_micro_batch_size"] * ngpus) == 0
    assert grpo["max_val_samples"] // grpo["val_batch_size"] == 1  # grpo.py:3853: one validation batch
    assert grpo["val_batch_size"] == min(256, _rows(out, "grpo/validation.jsonl"))


def test_grpo_gym_launch_has_what_the_gym_runner_needs(tmp_path: Path, nemo_rl_dir: Path) -> None:
    out = _export(tmp_path, RlFormat(validation_fraction=0.25), n_tasks=48, rl_dataset="gym")
    launch = _launch(out, tmp_path, nemo_rl_dir, 8)
    assert launch.args[2] == "examples/nemo_gym/run_grpo_nemo_gym.py"
    config = _load(launch)
    _check("grpo_gym", out, config, "gym")
    assert config["grpo"]["max_val_samples"] is None  # run_grpo_nemo_gym.py:206 raises ValueError otherwise
    assert config["env"]["should_use_nemo_gym"] is True and config["data"]["max_input_seq_length"] is None
    assert "resources_servers/math_with_judge/configs/math_with_judge.yaml" in config["env"]["nemo_gym"]["config_paths"]
    vllm = config["policy"]["generation"]["vllm_cfg"]
    assert vllm["async_engine"] and vllm["expose_http_server"]  # should_use_nemo_gym asserts both
    for split in ("train", "validation"):
        rows = list(read_jsonl(out / "gym" / f"{split}.jsonl"))
        assert rows and all(row["agent_ref"]["name"] == GYM_AGENT for row in rows)  # nemo_gym.py:676
    with pytest.raises(ValueError, match="gym_agent"):
        NemoRLIntegration.Params(rl_dataset="gym", gym_agent=None)


@pytest.mark.parametrize("kind", ["sft", "grpo_math"])
def test_without_a_validation_split_validation_is_off(tmp_path: Path, nemo_rl_dir: Path, kind: str) -> None:
    """sft.py:273 and grpo.py:638 assert a validation set while validation is on."""
    fmt = SftFormat(validation_fraction=0.0) if kind == "sft" else RlFormat(validation_fraction=0.0)
    out = _export(tmp_path, fmt, n_tasks=24)
    config = _load(_launch(out, tmp_path, nemo_rl_dir, 2))
    algorithm = "sft" if kind == "sft" else "grpo"
    assert config["data"]["validation"] is None
    assert config[algorithm]["val_period"] == 0 and not config[algorithm]["val_at_start"]
    assert not config[algorithm]["val_at_end"] and config["checkpointing"]["metric_name"] is None


def test_a_small_export_warns_and_batch_sizes_can_be_overridden(tmp_path: Path, nemo_rl_dir: Path) -> None:
    out = _export(tmp_path, DpoFormat(validation_fraction=0.0), n_tasks=4)
    rows = _rows(out, "dpo/train.jsonl")
    launch = _launch(out, tmp_path, nemo_rl_dir, 8)
    assert (f"warning: train rows: {rows}, fewer than one batch (policy.train_global_batch_size=8 with NGPUS=8)"
            in launch.stderr)
    config = _load(_launch(out, tmp_path, nemo_rl_dir, 8, "dpo.max_num_steps=3", BATCH_SIZE="2", MICRO_BATCH_SIZE="1"))
    assert config["policy"]["train_global_batch_size"] == 2 and config["dpo"]["max_num_steps"] == 3


def test_online_grpo_points_at_rollgen_serve(tmp_path: Path, nemo_rl_dir: Path) -> None:
    """integration.nemo_rl.online=true: the gym GRPO config starts the bridge server (a NeMo Gym resources server
    forwarding to `rollgen serve`) and its agent; rows are routed to that agent; train.sh checks the server first."""
    import py_compile

    import yaml

    from rollgen.integrations.gym_bridge import AGENT, NAME
    from tests.test_serve import TOKEN, _cfg, serving

    out = _export(tmp_path, RlFormat(validation_fraction=0.25), n_tasks=16, online=True,
                  serve_url="http://127.0.0.1:1")
    (tmp_path / "serve").mkdir()
    with serving(_cfg(tmp_path / "serve")) as (url, _, _):
        launch = _launch(out, tmp_path, nemo_rl_dir, 8, ROLLGEN_URL=url, ROLLGEN_SERVE_TOKEN=TOKEN)
        base = {"NEMO_RL_DIR": str(nemo_rl_dir), "NGPUS": "8", "ROLLGEN_URL": url}
        refused = run_train_sh(out / "train.sh", tmp_path, {**base, "ROLLGEN_SERVE_TOKEN": "wrong-token-123456"},
                               check=False)
    assert refused.returncode == 2 and "rollgen serve does not answer" in refused.stderr
    missing = run_train_sh(out / "train.sh", tmp_path, base, check=False)
    assert missing.returncode == 2 and "ROLLGEN_SERVE_TOKEN is not set" in missing.stderr
    assert launch.args[2] == "examples/nemo_gym/run_grpo_nemo_gym.py"
    config = _load(launch)
    _check("grpo_gym", out, config, "gym")
    gym = config["env"]["nemo_gym"]
    assert config["env"]["should_use_nemo_gym"] is True
    assert gym["config_paths"][0] == "responses_api_models/vllm_model/configs/vllm_model_for_training.yaml"
    bridge_config = Path(gym["config_paths"][1])
    assert bridge_config.is_absolute() and bridge_config.is_file()
    assert gym[NAME]["resources_servers"][NAME]["rollgen_url"] == url  # train.sh's ROLLGEN_URL reached the server
    servers = yaml.safe_load(bridge_config.read_text())
    block = servers[NAME]["resources_servers"][NAME]
    assert block["entrypoint"] == "app.py" and block["rollgen_token_env"] == "ROLLGEN_SERVE_TOKEN"
    agent = servers[AGENT]["responses_api_agents"]["simple_agent"]
    assert agent["resources_server"] == {"type": "resources_servers", "name": NAME}
    package = bridge_config.parent.parent
    assert package.parent.name == "resources_servers" and (package / "requirements.txt").is_file()
    py_compile.compile(str(package / "app.py"), doraise=True)
    assert f'NEMO_GYM_EXTRA_ROOTS="$HERE/{package.parent.parent.name}' in (out / "train.sh").read_text()
    assert "start `rollgen serve" in (out / "train.sh").read_text()
    for split in ("train", "validation"):
        rows = list(read_jsonl(out / "gym" / f"{split}.jsonl"))
        assert rows and all(r["agent_ref"] == {"type": "responses_api_agents", "name": AGENT} and r["id"]
                            for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"gym_env/resources_servers/{NAME}/app.py" in manifest["files"] and "rollgen serve" in manifest["reward"]
