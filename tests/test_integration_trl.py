"""TRL trains on rollgen's export: one real optimisation step each of SFT, DPO and GRPO (GRPO rewarded by
rollgen's reward function), on a tiny randomly initialised Qwen2 and a byte-level BPE tokenizer built here,
on the CPU, with no download. The GRPO launch script runs through TRL's own CLI as well.

Skipped only when the ``trl`` extra is not installed (``pip install torch==2.13.0 && pip install -e '.[trl]'``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets
import pytest

trl = pytest.importorskip("trl", reason="trl is not installed: pip install torch==2.13.0 && pip install -e '.[trl]'")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rollgen.config import DpoFormat, RlFormat, SftFormat  # noqa: E402
from rollgen.formats import build_dataset  # noqa: E402
from rollgen.integrations.reward import RewardScorer, completion_text  # noqa: E402
from rollgen.integrations.trl import RewardFunction, TrlIntegration, reward_function  # noqa: E402
from tests.test_formats import make_run  # noqa: E402

CHATML = (
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + (m.content or '') + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer() -> Any:
    """A byte-level BPE (any text round-trips) trained on a few sentences, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    corpus = [f"Calculate {i} + 1. Put your final answer within \\boxed{{}}. The answer is \\boxed{{{i + 1}}}."
              for i in range(50)] + ["user assistant system Repeat the answer is"]
    core.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIALS,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>",
                                                pad_token="<|endoftext|>", chat_template=CHATML)


def tiny_model(tokenizer: Any) -> Any:
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=True)
    return transformers.Qwen2ForCausalLM(config)


def _export(tmp_path: Path, cfg: Any) -> Path:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(8)})
    build_dataset(cfg, curated, tmp_path / "run" / "dataset", seed=0)
    out = tmp_path / "run" / "export" / "trl"
    TrlIntegration(TrlIntegration.Params()).export(tmp_path / "run" / "dataset", out, cfg.kind)
    return out


def _load(path: Path, tmp_path: Path) -> Any:
    return datasets.load_dataset(str(path), cache_dir=str(tmp_path / "hf"))


def _args(cls: Any, tmp_path: Path, **kw: Any) -> Any:
    return cls(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, learning_rate=1e-2,
               report_to="none", use_cpu=True, save_strategy="no", logging_steps=1, seed=0, **kw)


def _snapshot(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _changed(model: Any, before: dict[str, Any]) -> int:
    return sum(not torch.equal(before[k], v) for k, v in model.named_parameters())


def _losses(trainer: Any) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_sft_one_step_on_the_export(tmp_path: Path) -> None:
    out = _export(tmp_path, SftFormat())
    ds = _load(out / "sft", tmp_path)
    assert set(ds) == {"train", "validation"} and ds["train"].column_names == ["messages"]
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    before = _snapshot(model)
    trainer = trl.SFTTrainer(model=model, args=_args(trl.SFTConfig, tmp_path, max_length=128),
                             train_dataset=ds["train"], processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 1 and _changed(model, before) > 0
    assert all(loss > 0 and loss == loss for loss in _losses(trainer))
    # TRL tokenised our conversation with the chat template: the assistant answer is in the input ids
    ids = trainer.train_dataset[0]["input_ids"]
    assert "\\boxed{" in tok.decode(ids) and tok.decode(ids).count("<|im_end|>") == 2


def test_dpo_one_step_on_the_export(tmp_path: Path) -> None:
    out = _export(tmp_path, DpoFormat(validation_fraction=0.0))
    ds = _load(out / "dpo", tmp_path)["train"]
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) > 0
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    before = _snapshot(model)
    trainer = trl.DPOTrainer(model=model, ref_model=tiny_model(tok), args=_args(trl.DPOConfig, tmp_path, max_length=128),
                             train_dataset=ds, processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 1 and _changed(model, before) > 0
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and abs(logged[0]["loss"] - 0.6931) < 0.05  # ln 2: policy == reference at the first step


class Recording(RewardFunction):
    """rollgen's reward function, recording what TRL passed and what it returned."""

    def __init__(self, inner: RewardFunction):
        super().__init__(inner.scorer, inner.__name__)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, prompts: Any, completions: Any, **kwargs: Any) -> list[float | None]:
        rewards = super().__call__(prompts, completions, **kwargs)
        self.calls.append({"prompts": prompts, "completions": completions, "kwargs": kwargs, "rewards": rewards})
        return rewards


def test_grpo_one_step_rewarded_by_rollgen(tmp_path: Path) -> None:
    out = _export(tmp_path, RlFormat(validation_fraction=0.0))
    ds = _load(out / "grpo", tmp_path)["train"]
    assert set(ds.column_names) == {"prompt", "solution", "task_id"}
    reward = Recording(reward_function(config=out / "reward_config.json"))
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    args = _args(trl.GRPOConfig, tmp_path, num_generations=2, max_completion_length=8, temperature=1.0)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=ds, processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 1
    assert reward.calls, "TRL never called rollgen's reward function"
    call = reward.calls[0]
    rows = {r["task_id"]: r for r in ds}
    assert call["kwargs"]["solution"] == [rows[t]["solution"] for t in call["kwargs"]["task_id"]]
    # the rewards TRL got are rollgen's verdicts on TRL's own completions
    scorer = RewardScorer.from_file(out / "reward_config.json")
    expected = [scorer.score(completion_text(c), g, p)[0]
                for p, c, g in zip(call["prompts"], call["completions"], call["kwargs"]["solution"], strict=True)]
    assert call["rewards"] == expected and all(r in (0.0, 1.0) for r in expected)
    logged = [h for h in trainer.state.log_history if "rewards/rollgen_reward/mean" in h]
    assert logged and logged[0]["rewards/rollgen_reward/mean"] == pytest.approx(sum(expected) / len(expected))


def test_grpo_reward_separates_right_and_wrong_completions(tmp_path: Path) -> None:
    """TRL's own reward plumbing (GRPOTrainer._calculate_rewards) with a completion we choose."""
    out = _export(tmp_path, RlFormat(validation_fraction=0.0))
    ds = _load(out / "grpo", tmp_path)["train"]
    tok = tiny_tokenizer()
    args = _args(trl.GRPOConfig, tmp_path, num_generations=2, max_completion_length=8)
    trainer = trl.GRPOTrainer(model=tiny_model(tok), reward_funcs=reward_function(config=out / "reward_config.json"),
                              args=args, train_dataset=ds, processing_class=tok)
    row = ds[0]
    inputs = [dict(row), dict(row)]
    completions = [[{"role": "assistant", "content": f"The answer is \\boxed{{{row['solution']}}}."}],
                   [{"role": "assistant", "content": "The answer is \\boxed{-1}."}]]
    rewards = trainer._calculate_rewards(inputs, [row["prompt"]] * 2, completions, [[1], [1]])
    assert rewards[:, 0].tolist() == [1.0, 0.0]


@pytest.mark.slow
def test_grpo_train_sh_runs_through_trls_cli(tmp_path: Path) -> None:
    """export/trl/train.sh with a tiny model saved to disk: `trl grpo` loads the folder and rollgen_reward.reward."""
    out = _export(tmp_path, RlFormat(validation_fraction=0.0))
    tok = tiny_tokenizer()
    model_dir = tmp_path / "tiny"
    tiny_model(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MODEL": str(model_dir), "OUTPUT_DIR": str(tmp_path / "ckpt"), "HF_HUB_OFFLINE": "1",
           "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "WANDB_DISABLED": "true"}
    proc = subprocess.run(
        ["bash", str(out / "train.sh"), "--max_steps", "1", "--per_device_train_batch_size", "2",
         "--num_generations", "2", "--max_completion_length", "8", "--use_cpu", "true", "--report_to", "none",
         "--logging_steps", "1", "--save_strategy", "no", "--bf16", "false"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rewards/rollgen_reward/mean" in proc.stdout + proc.stderr
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["model_type"] == "qwen2"
