"""VeRL reads rollgen's export with its own code, on the CPU: ``RLHFDataset`` and ``MultiTurnSFTDataset`` load
the Parquet files, VeRL's Hydra config (``ppo_trainer``, ``sft_trainer_engine``) accepts every override in
train.sh, and VeRL's reward loading (``load_reward_manager`` → ``NaiveRewardManager.run_single``) scores a
response with our ``reward.py`` exactly as rollgen's curation did.

Skipped only when the ``verl`` extra is not installed (``pip install torch==2.13.0 && pip install -e '.[verl]'``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
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
from tests.test_integration_trl import tiny_tokenizer  # noqa: E402

CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")


def _export(tmp_path: Path, cfg: Any) -> Path:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(8)})
    build_dataset(cfg, curated, tmp_path / "run" / "dataset", seed=0)
    out = tmp_path / "run" / "export" / "verl"
    VerlIntegration(VerlIntegration.Params()).export(tmp_path / "run" / "dataset", out, cfg.kind)
    return out


def _script_args(out: Path, tmp_path: Path, program: str) -> list[str]:
    """The arguments train.sh passes to ``program`` (a stub on PATH records them)."""
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir(exist_ok=True)
    stub = stub_dir / program
    stub.write_text('#!/usr/bin/env bash\nfor a in "$@"; do echo "$a"; done > "$STUB_OUT"\n')
    stub.chmod(0o755)
    record = tmp_path / f"{program}.args"
    subprocess.run(["bash", str(out / "train.sh")], check=True, env={
        "PATH": f"{stub_dir}:/usr/bin:/bin", "STUB_OUT": str(record), "MODEL_PATH": str(tmp_path / "model"),
        "NGPUS": "1"})
    return record.read_text().splitlines()


def _compose(config_name: str, overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name=config_name, overrides=overrides)


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
def test_verls_hydra_config_accepts_every_train_sh_override(tmp_path: Path) -> None:
    out = _export(tmp_path, RlFormat())
    args = _script_args(out, tmp_path, "python3")
    assert args[:2] == ["-m", "verl.trainer.main_ppo"]
    cfg = _compose("ppo_trainer", args[2:])  # raises on any key VeRL does not have
    assert cfg.reward.custom_reward_function.path == str(out.resolve() / "reward.py")
    assert cfg.data.train_files == str(out.resolve() / "rl" / "train.parquet")
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.actor_rollout_ref.model.path == str(tmp_path / "model")

    sft_out = _export(tmp_path / "sft", SftFormat())
    sft_args = _script_args(sft_out, tmp_path, "torchrun")
    i = sft_args.index("verl.trainer.sft_trainer")
    sft_cfg = _compose("sft_trainer_engine", sft_args[i + 1:])
    assert sft_cfg.data.train_files == str(sft_out.resolve() / "sft" / "train.parquet")
    assert sft_cfg.data.messages_key == "messages" and sft_cfg.model.path == str(tmp_path / "model")


@pytest.mark.slow
def test_verls_reward_manager_scores_with_our_reward_py(tmp_path: Path) -> None:
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out = _export(tmp_path, RlFormat(validation_fraction=0.0))
    args = _script_args(out, tmp_path, "python3")
    cfg = _compose("ppo_trainer", args[2:])
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
