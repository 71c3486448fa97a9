"""OpenRLHF reads rollgen's export with its own code, on the CPU, exactly as train.sh launches it: train.sh runs
with its launcher stubbed; the recorded arguments go through the trainer script's own ``__main__`` block
(its argparse parser, ``hierarchize`` and its checks, with ``train`` replaced by a recorder); the datasets are
then built the way that script's ``train()`` builds them, for the train AND the eval split
(``blending_datasets`` + ``SFTDataset`` / ``RewardDataset(is_dpo=True)`` / ``PromptDataset``), and the batch
sizes give at least one optimizer step (``num_update_steps_per_epoch``, DeepSpeed's gradient accumulation).
OpenRLHF's own reward client (``SingleTurnAgentExecutor``) gets rollgen's rewards both from ``reward_func.py``
and from rollgen's token-protected HTTP server.

openrlhf 0.11.2 pins flash-attn and deepspeed, which do not build without CUDA, so the ``openrlhf`` extra
installs its import-time dependencies and CI adds ``pip install --no-deps openrlhf==0.11.2``. Skipped only
when openrlhf is not installed.
"""

from __future__ import annotations

import ast
import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

openrlhf = pytest.importorskip(
    "openrlhf", reason="openrlhf is not installed: pip install -e '.[openrlhf]' && pip install --no-deps openrlhf==0.11.2")

from rollgen.config import DpoFormat, RlFormat, SftFormat  # noqa: E402
from rollgen.formats import build_dataset  # noqa: E402
from rollgen.integrations.openrlhf import OpenRLHFIntegration, make_app  # noqa: E402
from rollgen.integrations.reward import RewardScorer  # noqa: E402
from tests.test_formats import make_run  # noqa: E402
from tests.test_integration_trl import tiny_tokenizer  # noqa: E402
from tests.train_scripts import Launch, run_train_sh  # noqa: E402

CLI = Path(openrlhf.__file__).parent / "cli"


def _export(tmp_path: Path, cfg: Any, tools: bool = False, n_tasks: int = 8) -> Path:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(n_tasks)}, tools=tools)
    build_dataset(cfg, curated, tmp_path / "run" / "dataset", seed=0)
    out = tmp_path / "run" / "export" / "openrlhf"
    OpenRLHFIntegration(OpenRLHFIntegration.Params()).export(tmp_path / "run" / "dataset", out, cfg.kind)
    return out


def _launch(out: Path, tmp_path: Path, ngpus: int = 1, **env: str) -> Launch:
    return run_train_sh(out / "train.sh", tmp_path, {"MODEL": "m", "NGPUS": str(ngpus), **env})


def _cli_args(launch: Launch) -> Any:
    """The arguments OpenRLHF's trainer gets: run the trainer script's own ``if __name__ == "__main__":``
    block (parser, ``hierarchize``, its assertions) on the launch's arguments, with ``train`` recorded.
    Imports the parser does not need (deepspeed, flash_attn, vllm: ``train()``'s) are left out."""
    if launch.program == "deepspeed":
        assert launch.args[:4] == ["--num_gpus", launch.args[1], "--module", launch.args[3]]
        module, argv = launch.args[3], launch.args[4:]
    else:
        assert launch.program == "python3" and launch.args[0] == "-m"
        module, argv = launch.args[1], launch.args[2:]
    path = CLI / f"{module.rsplit('.', 1)[1]}.py"
    assert module.startswith("openrlhf.cli.") and path.is_file(), module
    tree = ast.parse(path.read_text())
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(path)}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            try:
                exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
            except ImportError:
                pass
    main = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "__name__ == '__main__'")
    recorded: list[Any] = []
    namespace["train"] = recorded.append
    saved = sys.argv
    sys.argv = [str(path), *argv]
    try:
        exec(compile(ast.Module(main.body, []), str(path), "exec"), namespace)
    finally:
        sys.argv = saved
    assert len(recorded) == 1
    return recorded[0]


def _strategy(args: Any) -> Any:
    """What OpenRLHF's datasets use of DeepspeedStrategy (which needs deepspeed): its args and printing."""
    return SimpleNamespace(args=args, print=lambda *a, **k: None, is_rank_0=lambda: True)


def _split(args: Any, path: str, split: str, **kw: Any) -> Any:
    """``blending_datasets`` as the trainers call it for one split."""
    from openrlhf.datasets.utils import blending_datasets

    return blending_datasets(path, None, _strategy(args), dataset_split=split, **kw)


def _steps_per_epoch(args: Any, rows: int, ngpus: int) -> int:
    """train_dpo.py: ``len(train_dataset) // args.train.batch_size`` optimizer steps per epoch; DeepSpeed
    accumulates ``batch_size // (micro_batch_size * world_size)`` micro-batches (deepspeed.py), so the batch
    must be a whole number of micro-batches on every GPU."""
    assert args.train.batch_size % (args.train.micro_batch_size * ngpus) == 0
    assert args.train.batch_size // (args.train.micro_batch_size * ngpus) >= 1
    return rows // args.train.batch_size


@pytest.mark.parametrize("ngpus", [1, 8])
def test_sft_launch_parses_and_builds_train_and_eval_datasets(tmp_path: Path, ngpus: int) -> None:
    from openrlhf.datasets import SFTDataset

    out = _export(tmp_path, SftFormat(validation_fraction=0.25), n_tasks=24)
    launch = _launch(out, tmp_path, ngpus)
    assert launch.program == "deepspeed" and launch.args[:2] == ["--num_gpus", str(ngpus)]
    args = _cli_args(launch)
    tok = tiny_tokenizer()

    def dataset(path: str, split: str) -> Any:
        data = _split(args, path, split)
        return SFTDataset(data, tok, args.data.max_len, _strategy(args), pretrain_mode=args.model.pretrain_mode_enable,
                          input_template=args.data.input_template, multiturn=args.data.multiturn, num_processors=1)

    train = dataset(args.data.dataset, args.data.dataset_split)
    evaluation = dataset(args.eval.dataset, args.eval.split)
    assert len(train) == len(list((out / "sft" / "train.jsonl").open())) > 0  # nothing filtered out
    assert len(evaluation) == len(list((out / "sft" / "validation.jsonl").open())) > 0
    assert train.prompts[0].endswith("<|im_start|>assistant\n") and "Calculate" in train.prompts[0]
    assert "\\boxed{" in train.responses[0] and train.responses[0].rstrip().endswith("<|im_end|>")
    input_ids, _, loss_mask = train[0]
    assert "\\boxed{" in tok.decode(input_ids[0][1:][loss_mask[0][:-1].bool()])
    assert _steps_per_epoch(args, len(train), ngpus) >= 1 and "warning" not in launch.stderr


def test_sft_tool_conversations_use_multiturn(tmp_path: Path) -> None:
    from openrlhf.datasets import SFTDataset

    out = _export(tmp_path, SftFormat(), tools=True)
    args = _cli_args(_launch(out, tmp_path))
    assert args.data.multiturn and args.data.apply_chat_template  # the script asserts the pair too
    ds = SFTDataset(_split(args, args.data.dataset, args.data.dataset_split), tiny_tokenizer(), 512, _strategy(args),
                    input_template=None, num_processors=1, multiturn=True)
    assert len(ds) > 0 and len(ds.response_ranges[0]) >= 2  # every assistant turn is trained on


@pytest.mark.parametrize("ngpus", [1, 8])
def test_dpo_launch_parses_and_builds_train_and_eval_datasets(tmp_path: Path, ngpus: int) -> None:
    from openrlhf.datasets import RewardDataset

    out = _export(tmp_path, DpoFormat(validation_fraction=0.25), n_tasks=24)
    launch = _launch(out, tmp_path, ngpus)
    args = _cli_args(launch)
    assert args.eval.split == "train"  # a JSON file loads as one split named "train"
    tok = tiny_tokenizer()

    def dataset(path: str, split: str) -> Any:
        data = _split(args, path, split)
        return data, RewardDataset(data, tok, args.data.max_len, _strategy(args), input_template=args.data.input_template,
                                   is_dpo=True, num_processors=1)

    data, train = dataset(args.data.dataset, args.data.dataset_split)
    _, evaluation = dataset(args.eval.dataset, args.eval.split)
    assert len(train) == len(data) > 0 and len(evaluation) == len(list((out / "dpo/validation.jsonl").open())) > 0
    row = data[0]
    assert "Calculate" in train.prompts[0] and train.prompts[0].endswith("<|im_start|>assistant\n")
    assert train.chosens[0].startswith(row["chosen"][0]["content"])
    assert train.rejects[0].startswith(row["rejected"][0]["content"]) and train.chosens[0] != train.rejects[0]
    assert _steps_per_epoch(args, len(train), ngpus) >= 1 and "warning" not in launch.stderr
    # train_dpo's own default (--eval.split test) is what failed: the file has no "test" split
    with pytest.raises(AttributeError, match="select"):
        _split(args, args.eval.dataset, "test")


def test_a_small_export_warns_and_override_flags_reach_openrlhf(tmp_path: Path) -> None:
    out = _export(tmp_path, DpoFormat(validation_fraction=0.0), n_tasks=4)
    rows = len(list((out / "dpo/train.jsonl").open()))
    launch = _launch(out, tmp_path, 8)
    assert f"warning: train rows: {rows}, fewer than one batch (--train.batch_size=8 with NGPUS=8)" in launch.stderr
    assert _steps_per_epoch(_cli_args(launch), rows, 8) == 0  # what the warning says
    args = _cli_args(_launch(out, tmp_path, 1, BATCH_SIZE="2", MICRO_BATCH_SIZE="1"))
    assert (args.train.batch_size, args.train.micro_batch_size) == (2, 1)
    assert _steps_per_epoch(args, rows, 1) >= 1


@pytest.mark.parametrize("ngpus", [1, 8])
def test_ppo_launch_passes_the_scripts_checks_and_builds_prompt_datasets(tmp_path: Path, ngpus: int) -> None:
    from openrlhf.datasets import PromptDataset

    out = _export(tmp_path, RlFormat(validation_fraction=0.25), n_tasks=24)
    launch = _launch(out, tmp_path, ngpus)
    args = _cli_args(launch)  # train_ppo_ray's checks: samples per step >= actor GPUs, group_norm needs n > 1, ...
    assert args.reward.remote_url == [str(out.resolve() / "reward_func.py")]
    assert args.actor.num_gpus_per_node == args.vllm.num_engines == ngpus
    tok = tiny_tokenizer()
    # ppo_trainer.prepare_datasets: the train prompts, the eval prompts, and max_steps
    train = PromptDataset(_split(args, args.data.prompt_dataset, args.data.prompt_split, max_count=args.data.max_samples),
                          tok, _strategy(args), input_template=args.data.input_template)
    evaluation = PromptDataset(_split(args, args.eval.dataset, args.eval.split), tok, _strategy(args),
                               input_template=args.data.input_template)
    assert len(train) == len(list((out / "rl/train.jsonl").open())) and len(evaluation) > 0
    datasource, prompt, label, _ = train[0]
    assert datasource == "rollgen/math" and prompt.endswith("<|im_start|>assistant\n") and label.isdigit()
    max_steps = (len(train) * args.rollout.n_samples_per_prompt // args.train.batch_size * args.train.num_episodes
                 * args.train.max_epochs)
    assert max_steps >= 1
    # replay_buffer.py: a rollout step's samples make this many optimizer steps
    assert args.rollout.batch_size * args.rollout.n_samples_per_prompt // args.train.batch_size >= 1
    assert args.train.batch_size % (args.train.micro_batch_size * ngpus) == 0 and "warning" not in launch.stderr
    assert args.eval.steps == -(-len(train) // args.rollout.batch_size)  # once per pass over the prompts


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
    args = _cli_args(_launch(out, tmp_path))
    tok = tiny_tokenizer()
    ds = PromptDataset(_split(args, args.data.prompt_dataset, args.data.prompt_split), tok, _strategy(args))
    _, prompt, label, _ = ds[0]
    remote = args.reward.remote_url[0]
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
