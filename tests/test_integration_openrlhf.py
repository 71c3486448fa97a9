"""OpenRLHF reads rollgen's export with its own code, on the CPU: ``blending_datasets`` loads the files,
``SFTDataset`` / ``RewardDataset`` (DPO) / ``PromptDataset`` build their prompts and responses from our keys,
OpenRLHF's own reward client (``SingleTurnAgentExecutor``) gets rollgen's rewards both from ``reward_func.py``
and from rollgen's token-protected HTTP server, and every flag in train.sh is one OpenRLHF's CLI defines.

openrlhf 0.11.2 pins flash-attn and deepspeed, which do not build without CUDA, so the ``openrlhf`` extra
installs its import-time dependencies and CI adds ``pip install --no-deps openrlhf==0.11.2``. Skipped only
when openrlhf is not installed.
"""

from __future__ import annotations

import ast
import asyncio
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

openrlhf = pytest.importorskip(
    "openrlhf", reason="openrlhf is not installed: pip install -e '.[openrlhf]' && pip install --no-deps openrlhf==0.11.2")

import datasets  # noqa: E402

from rollgen.config import DpoFormat, RlFormat, SftFormat  # noqa: E402
from rollgen.formats import build_dataset  # noqa: E402
from rollgen.integrations.openrlhf import OpenRLHFIntegration, make_app  # noqa: E402
from rollgen.integrations.reward import RewardScorer  # noqa: E402
from tests.test_formats import make_run  # noqa: E402
from tests.test_integration_trl import tiny_tokenizer  # noqa: E402

CLI = Path(openrlhf.__file__).parent / "cli"


def _export(tmp_path: Path, cfg: Any, tools: bool = False) -> Path:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(8)}, tools=tools)
    build_dataset(cfg, curated, tmp_path / "run" / "dataset", seed=0)
    out = tmp_path / "run" / "export" / "openrlhf"
    OpenRLHFIntegration(OpenRLHFIntegration.Params()).export(tmp_path / "run" / "dataset", out, cfg.kind)
    return out


def _script_args(out: Path, tmp_path: Path) -> list[str]:
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir(exist_ok=True)
    for program in ("deepspeed", "python3"):
        (stub_dir / program).write_text('#!/usr/bin/env bash\nfor a in "$@"; do echo "$a"; done > "$STUB_OUT"\n')
        (stub_dir / program).chmod(0o755)
    record = tmp_path / "args"
    subprocess.run(["bash", str(out / "train.sh")], check=True,
                   env={"PATH": f"{stub_dir}:/usr/bin:/bin", "STUB_OUT": str(record), "MODEL": "m", "NGPUS": "1"})
    return record.read_text().splitlines()


def _strategy(args: list[str]) -> Any:
    """OpenRLHF's strategy as its datasets see it: ``args.data.<key>`` from train.sh's ``--data.*`` flags."""
    data: dict[str, Any] = {}
    i = 0
    while i < len(args):
        if args[i].startswith("--data."):
            key = args[i].removeprefix("--data.")
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                data[key], i = args[i + 1], i + 2
                continue
            data[key] = True
        i += 1
    return SimpleNamespace(args=SimpleNamespace(data=SimpleNamespace(**data), use_ms=False),
                           print=lambda *a, **k: None, is_rank_0=lambda: True)


def _cli_flags(script: str) -> set[str]:
    tree = ast.parse((CLI / script).read_text())
    return {a.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "add_argument"
            for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")}


def _train_data(args: list[str], strategy: Any, key: str) -> Any:
    from openrlhf.datasets.utils import blending_datasets

    return blending_datasets(args[args.index(key) + 1], None, strategy, dataset_split="train")


def test_sft_dataset_reads_the_sft_export(tmp_path: Path) -> None:
    from openrlhf.datasets import SFTDataset

    out = _export(tmp_path, SftFormat())
    args = _script_args(out, tmp_path)
    assert args[:2] == ["--module", "openrlhf.cli.train_sft"]
    assert {a for a in args if a.startswith("--")} <= _cli_flags("train_sft.py") | {"--module"}
    strategy = _strategy(args)
    tok = tiny_tokenizer()
    ds = SFTDataset(_train_data(args, strategy, "--data.dataset"), tok, 256, strategy, input_template=None,
                    num_processors=1, multiturn=bool(getattr(strategy.args.data, "multiturn", False)))
    assert len(ds) == len(list((out / "sft" / "train.jsonl").open()))  # nothing filtered out
    assert ds.prompts[0].endswith("<|im_start|>assistant\n") and "Calculate" in ds.prompts[0]
    assert "\\boxed{" in ds.responses[0] and ds.responses[0].rstrip().endswith("<|im_end|>")
    input_ids, _, loss_mask = ds[0]
    assert "\\boxed{" in tok.decode(input_ids[0][1:][loss_mask[0][:-1].bool()])


def test_sft_tool_conversations_use_multiturn(tmp_path: Path) -> None:
    from openrlhf.datasets import SFTDataset

    out = _export(tmp_path, SftFormat(), tools=True)
    args = _script_args(out, tmp_path)
    assert "--data.multiturn" in args
    strategy = _strategy(args)
    ds = SFTDataset(_train_data(args, strategy, "--data.dataset"), tiny_tokenizer(), 512, strategy,
                    input_template=None, num_processors=1, multiturn=True)
    assert len(ds) > 0 and len(ds.response_ranges[0]) >= 2  # every assistant turn is trained on


def test_reward_dataset_reads_the_dpo_export(tmp_path: Path) -> None:
    from openrlhf.datasets import RewardDataset

    out = _export(tmp_path, DpoFormat(validation_fraction=0.0))
    args = _script_args(out, tmp_path)
    assert args[:2] == ["--module", "openrlhf.cli.train_dpo"]
    assert {a for a in args if a.startswith("--")} <= _cli_flags("train_dpo.py") | {"--module"}
    strategy = _strategy(args)
    data = _train_data(args, strategy, "--data.dataset")
    ds = RewardDataset(data, tiny_tokenizer(), 256, strategy, input_template=None, is_dpo=True, num_processors=1)
    assert len(ds) == len(data) > 0
    row = data[0]
    assert "Calculate" in ds.prompts[0] and ds.prompts[0].endswith("<|im_start|>assistant\n")
    assert ds.chosens[0].startswith(row["chosen"][0]["content"]) and ds.rejects[0].startswith(row["rejected"][0]["content"])
    assert ds.chosens[0] != ds.rejects[0]


class FakeEngine:
    """What SingleTurnAgentExecutor needs from vLLM: ``generate(token_ids, sampling_params)``."""

    def __init__(self, tok: Any, text: str):
        self.tok, self.text = tok, text

    async def generate(self, prompt_token_ids: list[int], params: Any, multi_modal_data: Any = None) -> Any:
        ids = self.tok(self.text + "<|im_end|>", add_special_tokens=False)["input_ids"]
        return SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids, text=self.text, finish_reason="stop",
                                                        logprobs=None)])


def test_prompt_dataset_and_openrlhfs_reward_client_score_like_rollgen(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestServer
    from openrlhf.datasets import PromptDataset
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    out = _export(tmp_path, RlFormat(validation_fraction=0.0))
    args = _script_args(out, tmp_path)
    assert args[:2] == ["-m", "openrlhf.cli.train_ppo_ray"]
    assert {a for a in args if a.startswith("--")} <= _cli_flags("train_ppo_ray.py")
    strategy = _strategy(args)
    tok = tiny_tokenizer()
    ds = PromptDataset(_train_data(args, strategy, "--data.prompt_dataset"), tok, strategy)
    datasource, prompt, label, _ = ds[0]
    assert datasource == "rollgen/math" and prompt.endswith("<|im_start|>assistant\n") and label.isdigit()
    remote = args[args.index("--reward.remote_url") + 1]
    assert remote == str(out.resolve() / "reward_func.py")
    scorer = RewardScorer.from_file(out / "reward_config.json")
    responses = [f"The answer is \\boxed{{{label}}}.", "The answer is \\boxed{-9}.",
                 f"\\boxed{{{label}}} or \\boxed{{{int(label) + 1}}}"]
    params = SimpleNamespace(max_tokens=64, logprobs=None)

    async def rewards(url: str) -> list[float]:
        executor = SingleTurnAgentExecutor(remote_rm_url=url)
        got = []
        for text in responses:
            result = await executor.execute(prompt, label, params, 512, tok, FakeEngine(tok, text))
            got.append(result["reward"])
        return got

    async def over_http() -> list[float]:
        server = TestServer(make_app(scorer, "tok3n"), host="127.0.0.1")
        await server.start_server()
        try:
            return await rewards(f"http://127.0.0.1:{server.port}/get_reward?token=tok3n")
        finally:
            await server.close()

    want = [[scorer.score(r, label, prompt)[0]] for r in responses]
    assert [w[0] for w in want] == [1.0, 0.0, 0.0]
    assert asyncio.run(rewards(remote)) == want  # reward_func.py, loaded by OpenRLHF's executor
    assert asyncio.run(over_http()) == want  # rollgen's HTTP server, called by OpenRLHF's client
