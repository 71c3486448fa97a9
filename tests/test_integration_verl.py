"""VeRL reads rollgen's export with its own code, on the CPU: ``RLHFDataset`` and ``MultiTurnSFTDataset`` load
the Parquet files; train.sh's launch (its arguments, recorded by a stub launcher) passes verl's own start-up
code as far as it runs without a GPU: ``ppo_trainer`` composed with every override, ``validate_config`` (what
``main_ppo.main`` runs first), the v1 ``PPOTrainer`` built from that config with its tokenizer and
dataloaders, and for SFT ``SFTTrainer``'s config, dataset and dataloader construction; and VeRL's reward
loading (``load_reward_manager`` → ``NaiveRewardManager.run_single``) scores a response with our ``reward.py``
exactly as rollgen's curation did.

Skipped only when the ``verl`` extra is not installed (``pip install torch==2.13.0 && pip install -e '.[verl]'``).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

verl = pytest.importorskip("verl", reason="verl is not installed: pip install torch==2.13.0 && pip install -e '.[verl]'")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from rollgen.config import RlFormat, SftFormat  # noqa: E402
from rollgen.formats import build_dataset  # noqa: E402
from rollgen.integrations.reward import RewardScorer  # noqa: E402
from rollgen.integrations.verl import VerlIntegration  # noqa: E402
from tests.test_formats import make_run  # noqa: E402
from tests.test_integration_trl import tiny_model, tiny_tokenizer  # noqa: E402
from tests.train_scripts import run_train_sh  # noqa: E402

CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")


def _export(tmp_path: Path, cfg: Any, n_tasks: int = 8, **params: Any) -> Path:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(n_tasks)})
    build_dataset(cfg, curated, tmp_path / "run" / "dataset", seed=0)
    out = tmp_path / "run" / "export" / "verl"
    VerlIntegration(VerlIntegration.Params(**params)).export(tmp_path / "run" / "dataset", out, cfg.kind)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 and its tokenizer on disk: what MODEL_PATH names (verl's HFModelConfig loads both)."""
    path = tmp_path_factory.mktemp("tiny-qwen2")
    tok = tiny_tokenizer()
    tok.save_pretrained(path)
    tiny_model(tok).save_pretrained(path)
    return path


def _rows(out: Path, name: str) -> int:
    return int(json.loads((out / "manifest.json").read_text())["files"][name])


def _launch(out: Path, tmp_path: Path, model: Path, ngpus: int, *extra: str, **env: str) -> Any:
    return run_train_sh(out / "train.sh", tmp_path, {"MODEL_PATH": str(model), "NGPUS": str(ngpus), **env}, *extra)


def _compose(config_name: str, overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name=config_name, overrides=overrides)


def _ppo_config(args: list[str]) -> Any:
    """What ``python3 -m verl.trainer.main_ppo <args>`` composes, after main()'s own validation."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    assert args[:2] == ["-m", "verl.trainer.main_ppo"]
    cfg = _compose("ppo_trainer", args[2:])  # raises on any key VeRL does not have
    auto_set_device(cfg)
    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    return cfg


def test_rlhf_dataset_reads_the_rl_parquet(tmp_path: Path) -> None:
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out = _export(tmp_path, RlFormat(validation_fraction=0.0))
    tok = tiny_tokenizer()
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 256, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": 1, "truncation": "error",
                               "cache_dir": str(tmp_path / "verl-cache")})
    ds = RLHFDataset(str(out / "rl" / "train.parquet"), tok, config)
    assert len(ds) == 8  # no prompt was filtered as too long or unreadable
    item = ds[3]
    assert item["data_source"] == "rollgen/math" and item["ability"] == "math"
    assert item["raw_prompt"][-1]["role"] == "user" and item["raw_prompt"][-1]["content"].startswith("Calculate")
    task = int(item["extra_info"]["task_id"][1:])
    assert item["reward_model"] == {"style": "rule", "ground_truth": str(task + 1)}
    assert item["index"] == item["extra_info"]["index"] == 3


def test_multiturn_sft_dataset_reads_the_sft_parquet(tmp_path: Path) -> None:
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    out = _export(tmp_path, SftFormat())
    tok = tiny_tokenizer()
    ds = MultiTurnSFTDataset(str(out / "sft" / "train.parquet"), tok,
                             OmegaConf.create({"messages_key": "messages", "max_length": 256, "pad_mode": "right",
                                               "truncation": "error"}))
    item = ds[0]
    ids, mask = item["input_ids"], item["loss_mask"]
    trained = tok.decode(ids[mask.bool()])
    assert "\\boxed{" in trained and "Calculate" not in trained  # loss on the answer, not on the prompt
    assert "Calculate" in tok.decode(ids[item["attention_mask"].bool()])


@pytest.mark.slow
@pytest.mark.parametrize("ngpus", [1, 2, 8])
def test_grpo_and_ppo_launches_pass_verls_validate_config(tmp_path: Path, model_dir: Path, ngpus: int) -> None:
    out = _export(tmp_path, RlFormat(), n_tasks=24)
    rows = _rows(out, "rl/train.parquet")
    for extra in ([], ["algorithm.adv_estimator=gae"]):  # GRPO, then PPO with a critic (train.sh's header)
        launch = _launch(out, tmp_path, model_dir, ngpus, *extra)
        assert launch.program == "python3" and "warning" not in launch.stderr, launch.stderr
        cfg = _ppo_config(launch.args)
        actor, n = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout.n
        assert cfg.trainer.n_gpus_per_node == ngpus and cfg.critic.model.path == str(model_dir)
        assert 0 < cfg.data.train_batch_size <= rows  # the dataloader (drop_last) yields a batch
        # engine_workers.py: a mini-batch's responses split over the data-parallel ranks, then into micro-batches
        assert actor.ppo_mini_batch_size * n % ngpus == 0
        assert actor.ppo_mini_batch_size * n // ngpus % actor.ppo_micro_batch_size_per_gpu == 0
        assert cfg.data.train_batch_size % actor.ppo_mini_batch_size == 0
        if extra:
            assert cfg.algorithm.adv_estimator == "gae" and cfg.critic.ppo_micro_batch_size_per_gpu > 0


@pytest.mark.slow
def test_verls_trainer_builds_its_dataloaders_from_the_launch(tmp_path: Path, model_dir: Path) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    out = _export(tmp_path, RlFormat(), n_tasks=12)
    cfg = _ppo_config(_launch(out, tmp_path, model_dir, 2).args)
    OmegaConf.resolve(cfg)  # as TaskRunnerV1.run does before building the trainer
    trainer = get_trainer_cls(cfg.trainer.v1.trainer_mode)(config=cfg)
    trainer._init_tokenizer()
    trainer._init_dataloader()
    assert len(trainer.train_dataset) == _rows(out, "rl/train.parquet")
    assert trainer.steps_per_epoch >= 1 and len(trainer.train_dataloader) >= 1 and trainer.total_training_steps >= 1
    assert len(trainer.val_dataset) >= 1


@pytest.mark.slow
def test_a_small_export_warns_that_nothing_would_train(tmp_path: Path, model_dir: Path) -> None:
    out = _export(tmp_path, RlFormat(validation_fraction=0.0), n_tasks=3)
    launch = _launch(out, tmp_path, model_dir, 8)  # 5 responses per prompt over 8 GPUs: 8 prompts per step
    assert "warning: train rows: 3, fewer than one batch (data.train_batch_size=8 with NGPUS=8)" in launch.stderr
    assert _ppo_config(launch.args).data.train_batch_size == 8  # still a config verl accepts
    fewer = _launch(out, tmp_path, model_dir, 1)
    assert "warning" not in fewer.stderr and _ppo_config(fewer.args).data.train_batch_size == 3


@pytest.mark.slow
def test_batch_sizes_can_be_overridden(tmp_path: Path, model_dir: Path) -> None:
    out = _export(tmp_path, RlFormat(), n_tasks=24)
    launch = _launch(out, tmp_path, model_dir, 2, "trainer.total_epochs=2", BATCH_SIZE="4", MICRO_BATCH_SIZE="2",
                     ROLLOUT_N="4")
    cfg = _ppo_config(launch.args)
    assert (cfg.data.train_batch_size, cfg.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu) == (4, 2)
    assert cfg.actor_rollout_ref.rollout.n == 4 and cfg.trainer.total_epochs == 2
    # A Hydra override after train.sh comes last and wins; the batch sizes derived from BATCH_SIZE stay put,
    # so overriding one of them alone can contradict the others (verl says so), which is what BATCH_SIZE is for.
    later = _launch(out, tmp_path, model_dir, 2, "data.train_batch_size=6")
    with pytest.raises(ValueError, match=r"train_batch_size \(6\) must be >= actor.ppo_mini_batch_size"):
        _ppo_config(later.args)
    both = _launch(out, tmp_path, model_dir, 2, "data.train_batch_size=6", "actor_rollout_ref.actor.ppo_mini_batch_size=6")
    assert _ppo_config(both.args).data.train_batch_size == 6
    bad = run_train_sh(out / "train.sh", tmp_path, {"NGPUS": "0"}, check=False)
    assert bad.returncode == 2 and "NGPUS must be a positive integer (got '0')" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("ngpus", [1, 4])
def test_sft_launch_builds_verls_sft_trainer_config_dataset_and_dataloader(tmp_path: Path, model_dir: Path,
                                                                            ngpus: int) -> None:
    from verl.trainer.sft_trainer import SFTTrainer
    from verl.utils.device import auto_set_device

    out = _export(tmp_path, SftFormat(validation_fraction=0.25), n_tasks=24)
    launch = _launch(out, tmp_path, model_dir, ngpus)
    assert launch.program == "torchrun" and f"--nproc_per_node={ngpus}" in launch.args
    i = launch.args.index("verl.trainer.sft_trainer")
    cfg = _compose("sft_trainer_engine", launch.args[i + 1:])
    auto_set_device(cfg)
    assert cfg.data.train_files == str(out.resolve() / "sft" / "train.parquet")
    assert cfg.data.messages_key == "messages" and cfg.model.path == str(model_dir)
    trainer = SFTTrainer.__new__(SFTTrainer)  # __init__ needs torch.distributed; run its CPU steps in order
    trainer.config = cfg
    trainer._build_config()
    trainer._build_dataset()
    trainer.engine = SimpleNamespace(get_data_parallel_rank=lambda: 0, get_data_parallel_size=lambda: ngpus)
    trainer._build_dataloader()
    assert len(trainer.train_dataloader) >= 1 and cfg.data.train_batch_size % ngpus == 0
    assert len(trainer.val_dataloader) >= 1 and "warning" not in launch.stderr, launch.stderr


@pytest.mark.slow
def test_verls_reward_manager_scores_with_our_reward_py(tmp_path: Path) -> None:
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out = _export(tmp_path, RlFormat(validation_fraction=0.0))
    cfg = _compose("ppo_trainer", run_train_sh(out / "train.sh", tmp_path, {"NGPUS": "1"}).args[2:])
    tok = tiny_tokenizer()
    ds = RLHFDataset(cfg.data.train_files, tok, OmegaConf.create(
        {"prompt_key": "prompt", "max_prompt_length": 256, "filter_overlong_prompts_workers": 1,
         "cache_dir": str(tmp_path / "verl-cache")}))
    item = ds[0]
    gold = item["reward_model"]["ground_truth"]
    scorer = RewardScorer.from_file(out / "reward_config.json")

    async def score(response: str) -> dict[str, Any]:
        manager = load_reward_manager(cfg, tok)  # VeRL loads reward.py from custom_reward_function.path
        prompt_ids = tok.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=True,
                                             return_dict=False)
        response_ids = tok(response + "<|im_end|>", add_special_tokens=False)["input_ids"]
        response_ids = response_ids + [tok.pad_token_id] * 3  # right padding, masked out
        attention = [1] * (len(prompt_ids) + len(response_ids) - 3) + [0] * 3
        data = DataProto.from_dict(
            tensors={"responses": torch.tensor([response_ids]), "attention_mask": torch.tensor([attention])},
            non_tensors={k: np.array([item[k]], dtype=object) for k in ("data_source", "reward_model", "extra_info")})
        return await manager.run_single(data)

    for response in (f"So the answer is \\boxed{{{gold}}}.", "So the answer is \\boxed{-3}.",
                     f"It is \\boxed{{{gold}}} or maybe \\boxed{{{int(gold) + 1}}}."):
        got = asyncio.run(score(response))
        want = scorer.score(response, gold, prompt=item["extra_info"]["prompt_text"])[0]
        assert got["reward_score"] == want, response
        assert got["reward_extra_info"]["score"] == want and got["reward_extra_info"]["verifier_error"] == 0.0
    assert asyncio.run(score(f"\\boxed{{{gold}}}"))["reward_score"] == 1.0
    assert os.path.samefile(cfg.reward.custom_reward_function.path, out / "reward.py")
