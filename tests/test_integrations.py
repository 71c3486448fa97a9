"""Integrations (TRL, VeRL, OpenRLHF, NeMo-RL): several at once from one run, exact schemas, rewards equal to curation.

These tests need only the dev extra (datasets, pyarrow). The frameworks' own code reads the files in
test_integration_{trl,verl,openrlhf}.py; NeMo-RL is not installable from PyPI, so its rows are checked here
against the schema its dataset classes read (nemo_rl/data/datasets/*, commit 7ea279a).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import datasets
import pyarrow.parquet as pq
import pytest

import rollgen
from rollgen.build import component_params
from rollgen.config import DpoFormat, KtoFormat, RlFormat, SftFormat
from rollgen.errors import ConfigError
from rollgen.formats import build_dataset
from rollgen.integrations.nemo_rl import NemoRLIntegration
from rollgen.integrations.openrlhf import OpenRLHFIntegration, make_app, make_reward_func, response_of
from rollgen.integrations.reward import RewardScorer
from rollgen.integrations.trl import TrlIntegration, reward_function
from rollgen.integrations.verl import VerlIntegration, make_compute_score
from rollgen.rundir import read_jsonl
from tests.conftest import serve_in_thread, write_arith_tasks
from tests.fakes import FakeOpenAI
from tests.test_formats import make_run
from tests.train_scripts import run_train_sh

FRAMEWORKS = ["trl", "verl", "openrlhf", "nemo_rl"]
ALL = "integration=[trl,verl,openrlhf,nemo_rl,jsonl]"


def engine_run(root: Path, fmt: str, *extra: str, n_tasks: int = 10, correct_rate: float = 0.5) -> dict[str, Any]:
    """A real run against the fake OpenAI server: 4 repeats per task, about half of them right."""
    tasks = write_arith_tasks(root / "tasks_in.jsonl", n_tasks)
    sampler = {"rl": "ppo", "sft": "sft", "dpo": "dpo", "kto": "dpo"}[fmt]
    with serve_in_thread(FakeOpenAI(correct_rate=correct_rate, seed=5)) as url:
        cfg = rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                               "progress=false", f"sampler={sampler}", "sampler.num_repeats=4", f"format={fmt}",
                               "quality.min_reward_threshold=0", ALL, *extra], output_dir=str(root / "run"))
        return rollgen.run(cfg)


@pytest.fixture(scope="module")
def rl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rl")
    mp = pytest.MonkeyPatch()
    mp.setenv("ROLLGEN_CACHE_DIR", str(root / "cache"))
    try:
        engine_run(root, "rl")
    finally:
        mp.undo()
    return root / "run"


# ---------------------------------------------------------------- config


def test_several_integrations_compose_and_bad_keys_are_named() -> None:
    cfg = rollgen.compose(["integration=[trl,verl]", "integration.verl.rollout_n=3"], output_dir="x")
    assert list(cfg.integration) == ["trl", "verl"]
    assert component_params(cfg.integration["verl"]).rollout_n == 3
    assert list(rollgen.compose([], output_dir="x").integration) == ["jsonl"]
    with pytest.raises(ConfigError) as e:
        rollgen.compose(["integration=[trl,openrlhf]", "integration.openrlhf.n_samples_per_prompt=0"], output_dir="x")
    assert e.value.lines == ["integration.openrlhf.n_samples_per_prompt: Input should be greater than or equal to 1 (got 0)"]


def test_a_bare_integration_component_is_still_accepted() -> None:
    from rollgen.build import validate_run_config

    data = rollgen.compose([], output_dir="x").model_dump(mode="json", by_alias=True)
    data["integration"] = {"_target_": "rollgen.integrations.verl.VerlIntegration", "rollout_n": 2}
    cfg = validate_run_config(data)
    assert list(cfg.integration) == ["verlintegration"] and component_params(cfg.integration["verlintegration"]).rollout_n == 2


# ---------------------------------------------------------------- one run, four frameworks


def test_one_run_exports_every_framework_with_its_own_files(rl_run: Path) -> None:
    report = json.loads((rl_run / "report.json").read_text())
    assert sorted(report["export"]) == sorted([*FRAMEWORKS, "jsonl"])
    export = rl_run / "export"
    expected = {"trl": ["grpo/train.jsonl", "rollgen_reward.py", "reward_config.json", "train.sh"],
                "verl": ["rl/train.parquet", "reward.py", "reward_config.json", "train.sh"],
                "openrlhf": ["rl/train.jsonl", "reward_func.py", "reward_config.json", "train.sh"],
                "nemo_rl": ["grpo/train.jsonl", "gym/train.jsonl", "grpo_math.yaml", "grpo_gym.yaml", "train.sh"]}
    n_train = report["dataset"]["train"]
    for fw, names in expected.items():
        for name in names:
            assert (export / fw / name).is_file(), f"{fw}/{name}"
        manifest = json.loads((export / fw / "manifest.json").read_text())
        assert manifest == report["export"][fw] and manifest["framework"] == fw and manifest["algorithms"]
        script = export / fw / "train.sh"
        assert script.stat().st_mode & 0o111
        subprocess.run(["bash", "-n", str(script)], check=True)  # valid bash
    assert report["export"]["verl"]["files"]["rl/train.parquet"] == n_train
    assert report["export"]["openrlhf"]["files"]["rl/train.jsonl"] == n_train


def test_train_scripts_fill_in_the_paths_and_pass_extra_flags(rl_run: Path, tmp_path: Path) -> None:
    """Run each train.sh with its framework's command replaced by a stub that prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("trl", "python3", "uv"):
        stub = bin_dir / name
        stub.write_text('#!/usr/bin/env bash\nfor a in "$@"; do echo "$a"; done > "$STUB_OUT"\n')
        stub.chmod(0o755)
    export = rl_run / "export"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "MODEL": "tiny", "MODEL_PATH": "tiny", "NGPUS": "2",
           "NEMO_RL_DIR": str(tmp_path)}
    args: dict[str, list[str]] = {}
    for fw in FRAMEWORKS:
        out = tmp_path / f"{fw}.args"
        subprocess.run(["bash", str(export / fw / "train.sh"), "--extra-flag"], check=True,
                       env={**env, "STUB_OUT": str(out)}, cwd=tmp_path)
        args[fw] = out.read_text().splitlines()
        assert args[fw][-1] == "--extra-flag"
    here = {fw: str((export / fw).resolve()) for fw in FRAMEWORKS}
    assert args["trl"][:3] == ["grpo", "--model_name_or_path", "tiny"]
    assert f"{here['trl']}/grpo" in args["trl"] and "rollgen_reward.reward" in args["trl"]
    assert f"data.train_files={here['verl']}/rl/train.parquet" in args["verl"]
    assert f"reward.custom_reward_function.path={here['verl']}/reward.py" in args["verl"]
    assert "trainer.n_gpus_per_node=2" in args["verl"] and "actor_rollout_ref.model.path=tiny" in args["verl"]
    i = args["openrlhf"].index("--reward.remote_url")
    assert args["openrlhf"][i + 1] == f"{here['openrlhf']}/reward_func.py"
    assert args["nemo_rl"][:3] == ["run", "python", "examples/run_grpo.py"]
    resolved = Path(here["nemo_rl"]) / "grpo_math.resolved.yaml"
    assert resolved.read_text().startswith(f"defaults: {tmp_path}/examples/configs/grpo_math_1B.yaml\n")


def test_verl_parquet_has_verls_columns_and_types(rl_run: Path) -> None:
    table = pq.read_table(rl_run / "export/verl/rl/train.parquet")
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    rows = table.to_pylist()
    tasks = {t["id"]: t for t in read_jsonl(rl_run / "tasks.jsonl")}
    for row in rows:
        assert row["data_source"] == "rollgen/math" and row["ability"] == "math"
        assert row["reward_model"]["style"] == "rule"
        task = tasks[row["extra_info"]["task_id"]]
        assert row["reward_model"]["ground_truth"] == task["answer"] and isinstance(task["answer"], str)
        assert row["prompt"] == task["messages"] and row["prompt"][-1]["role"] == "user"
        assert row["extra_info"]["split"] == "train" and row["extra_info"]["n_rollouts"] == 4
        assert json.loads(row["extra_info"]["metadata"]) == task["metadata"]
    assert sorted(r["extra_info"]["index"] for r in rows) == list(range(len(rows)))


def test_every_export_loads_with_datasets(rl_run: Path, tmp_path: Path) -> None:
    export = rl_run / "export"
    for path in [*export.glob("*/*/train.jsonl"), *export.glob("*/*/train.parquet")]:
        kind = "parquet" if path.suffix == ".parquet" else "json"
        ds = datasets.load_dataset(kind, data_files=str(path), cache_dir=str(tmp_path / "hf"))["train"]
        assert len(ds) > 0, path
    grpo = datasets.load_dataset(str(export / "trl/grpo"), cache_dir=str(tmp_path / "hf2"))
    assert set(grpo) == {"train", "validation"} and set(grpo["train"].column_names) == {"prompt", "solution", "task_id"}


def test_nemo_rl_rows_match_the_classes_that_read_them(rl_run: Path) -> None:
    nemo = rl_run / "export/nemo_rl"
    math_rows = list(read_jsonl(nemo / "grpo/train.jsonl"))
    gym_rows = list(read_jsonl(nemo / "gym/train.jsonl"))
    tasks = {t["messages"][0]["content"]: t for t in read_jsonl(rl_run / "tasks.jsonl")}
    # ResponseDataset(input_key=input, output_key=output) -> messages [user, assistant];
    # math_hf_data_processor: messages[0].content is the problem, messages[1].content the ground truth.
    for row in math_rows:
        assert set(row) == {"input", "output"} and row["output"] == tasks[row["input"]]["answer"]
    # NemoGymDataset keeps raw lines; the Gym row needs responses_create_params.input + the verifier's fields.
    for row in gym_rows:
        assert row["responses_create_params"]["input"] == tasks[row["question"]]["messages"]
        assert row["expected_answer"] == tasks[row["question"]]["answer"]
    import yaml

    cfg = yaml.safe_load((nemo / "grpo_math.yaml").read_text())["data"]
    assert cfg["_override_"] is True and cfg["use_multiple_dataloader"] is False
    assert cfg["train"]["dataset_name"] == cfg["validation"]["dataset_name"] == "ResponseDataset"
    assert cfg["default"]["processor"] == "math_hf_data_processor" and cfg["default"]["env_name"] == "math"
    assert Path(cfg["train"]["data_path"]) == (nemo / "grpo/train.jsonl").resolve()
    gym = yaml.safe_load((nemo / "grpo_gym.yaml").read_text())
    assert gym["data"]["default"]["processor"] == "nemo_gym_data_processor" and gym["env"]["should_use_nemo_gym"]


# ---------------------------------------------------------------- rewards equal curation rewards


def test_every_framework_reward_equals_the_curation_reward(rl_run: Path) -> None:
    rollouts = [r for r in read_jsonl(rl_run / "rollouts.jsonl") if r["status"] == "ok"]
    tasks = {t["id"]: t for t in read_jsonl(rl_run / "tasks.jsonl")}
    stored = [r["reward"] for r in rollouts]
    assert 0.0 in stored and 1.0 in stored  # both outcomes present, so equality means something
    prompts = [tasks[r["task_id"]]["messages"] for r in rollouts]
    golds = [tasks[r["task_id"]]["answer"] for r in rollouts]
    completions = [[{"role": "assistant", "content": r["completion"]}] for r in rollouts]

    trl_reward = reward_function(config=rl_run / "export/trl/reward_config.json")
    assert trl_reward(prompts, completions, solution=golds, task_id=["x"] * len(golds)) == stored
    assert reward_function(run_dir=rl_run)(prompts, completions, solution=golds) == stored

    compute_score = make_compute_score(rl_run / "export/verl/reward_config.json")
    verl_rows = {r["extra_info"]["task_id"]: r for r in pq.read_table(rl_run / "export/verl/rl/train.parquet").to_pylist()}
    for r, gold, want in zip(rollouts, golds, stored, strict=True):
        extra = verl_rows[r["task_id"]]["extra_info"] if r["task_id"] in verl_rows else {}
        assert compute_score("rollgen/math", r["completion"], gold, extra)["score"] == want

    reward_func = make_reward_func(rl_run / "export/openrlhf/reward_config.json")
    templated = [f"<|im_start|>user\n{p[0]['content']}<|im_end|>\n<|im_start|>assistant\n" for p in prompts]
    queries = [t + r["completion"] + "<|im_end|>" for t, r in zip(templated, rollouts, strict=True)]
    out = reward_func(queries, templated, golds)
    assert out["rewards"] == stored and out["scores"] == stored


def test_rewards_apply_the_runs_guards() -> None:
    scorer = RewardScorer.from_server("math")
    assert scorer.score("It is \\boxed{7} or maybe \\boxed{8}.", "7")[0] == 0.0  # a hedged answer
    assert scorer.score("The answer is \\boxed{7}.", "7")[0] == 1.0
    assert scorer.score("The answer is \\boxed{7}.", "7", finish_reason="length")[0] == 0.0  # truncated
    # guards=off: the same cut-off completion is the verifier's alone to score
    off = RewardScorer.from_server("math", ["guards=off"])
    assert off.score("The answer is \\boxed{7}.", "7", finish_reason="length")[0] == 1.0


def test_trl_reward_returns_none_for_rows_it_cannot_score() -> None:
    fn = reward_function("math")
    rewards = fn(["What is 2+2?", "What is 3+3?"], ["\\boxed{4}", "\\boxed{6}"], solution=["4", None])
    assert rewards == [1.0, None] and fn.__name__ == "rollgen_math"
    import pickle

    clone = pickle.loads(pickle.dumps(fn))
    assert clone(["q"], ["\\boxed{5}"], ground_truth=["5"]) == [1.0]


# ---------------------------------------------------------------- OpenRLHF remote reward server


@pytest.mark.parametrize(("query", "prompt", "expected"), [
    ("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA is 5<|im_end|>",
     "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n", "A is 5"),
    ("User: Q\nAssistant: 42</s>", "User: Q\nAssistant: ", "42"),
    ("<s>[INST] Q [/INST] 7<eos>", "[INST] Q [/INST]", "7"),  # decoded prompt differs: cut after its last line
])
def test_response_is_the_query_without_prompt_and_end_tokens(query: str, prompt: str, expected: str) -> None:
    assert response_of(query, prompt) == expected


def test_reward_server_needs_the_token_and_scores_openrlhf_requests() -> None:
    scorer = RewardScorer.from_server("math")  # composes rollgen's config (reads YAML): before the loop

    async def go() -> None:
        from aiohttp.test_utils import TestServer

        server = TestServer(make_app(scorer, "s3cret"), host="127.0.0.1")
        await server.start_server()
        base = f"http://127.0.0.1:{server.port}/get_reward"
        body = {"query": ["P: 2+2?\nA: \\boxed{4}<|im_end|>", "P: 2+3?\nA: \\boxed{6}"],
                "prompts": ["P: 2+2?\nA: ", "P: 2+3?\nA: "], "labels": ["4", "5"]}
        try:
            async with aiohttp.ClientSession() as s:
                async with s.post(base, json=body) as r:
                    assert r.status == 401
                async with s.post(base + "?token=wrong", json=body) as r:
                    assert r.status == 401
                async with s.post(base + "?token=s3cret", json={"query": "x"}) as r:
                    assert r.status == 400
                async with s.post(base + "?token=s3cret", json={**body, "labels": ["4"]}) as r:
                    assert r.status == 400
                async with s.post(base, json=body, headers={"Authorization": "Bearer s3cret"}) as r:
                    assert r.status == 200
                    got = await r.json()
            assert got["rewards"] == [1.0, 0.0] and got["scores"] == [1.0, 0.0]
            assert got["extra_logs"]["rollgen_verifier_error"] == [0.0, 0.0]
        finally:
            await server.close()

    asyncio.run(go())


# ---------------------------------------------------------------- SFT, DPO, KTO rows


def _dataset(tmp_path: Path, cfg: Any, tools: bool = False) -> Path:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(8)}, tools=tools)
    build_dataset(cfg, curated, tmp_path / "run" / "dataset", seed=0)
    return tmp_path / "run" / "dataset"


def _export(cls: Any, ds: Path, fmt: str, **params: Any) -> tuple[Path, dict[str, Any]]:
    out = ds.parent / "export" / cls.__name__
    return out, cls(cls.Params(**params)).export(ds, out, fmt)


def test_sft_rows_per_framework(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, SftFormat(), tools=True)
    source = list(read_jsonl(ds / "train.jsonl"))
    out, m = _export(TrlIntegration, ds, "sft")
    rows = list(read_jsonl(out / "sft/train.jsonl"))
    assert [r["messages"] for r in rows] == [s["messages"] for s in source] and all("tools" in r for r in rows)
    assert not any("task_id" in r or "reward" in r for r in rows)
    out, m = _export(VerlIntegration, ds, "sft")
    table = pq.read_table(out / "sft/train.parquet")
    assert table.column_names == ["messages", "tools"] and m["algorithms"] == ["sft"]
    out, m = _export(OpenRLHFIntegration, ds, "sft")
    assert list(read_jsonl(out / "sft/train.jsonl"))[0] == {"messages": source[0]["messages"]}
    assert "--data.multiturn" in (out / "train.sh").read_text()  # tool conversations: several assistant turns
    out, m = _export(NemoRLIntegration, ds, "sft")
    rows = list(read_jsonl(out / "sft/train.jsonl"))
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)  # OpenAIFormatDataset asserts it
    import yaml

    data = yaml.safe_load((out / "sft.yaml").read_text())["data"]
    assert data["train"]["dataset_name"] == "openai_format" and data["default"]["use_preserving_dataset"] is True


def test_dpo_rows_per_framework(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, DpoFormat(validation_fraction=0.0))
    source = list(read_jsonl(ds / "train.jsonl"))
    assert source
    out, _ = _export(TrlIntegration, ds, "dpo")
    assert list(read_jsonl(out / "dpo/train.jsonl"))[0] == {k: source[0][k] for k in ("prompt", "chosen", "rejected")}
    out, _ = _export(OpenRLHFIntegration, ds, "dpo")
    row = list(read_jsonl(out / "dpo/train.jsonl"))[0]
    assert row["margin"] == source[0]["margin"] and row["chosen"][0]["role"] == "assistant"
    assert "--data.prompt_key prompt" in (out / "train.sh").read_text()
    out, _ = _export(NemoRLIntegration, ds, "dpo")
    row = list(read_jsonl(out / "dpo/train.jsonl"))[0]
    assert row["context"] == source[0]["prompt"]
    assert row["completions"] == [{"rank": 0, "completion": source[0]["chosen"]},
                                  {"rank": 1, "completion": source[0]["rejected"]}]
    out, m = _export(VerlIntegration, ds, "dpo")
    assert m["algorithms"] == [] and "no offline DPO" in m["notes"][0] and not list(out.glob("*/*"))


def test_kto_goes_to_trl_only(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, KtoFormat(validation_fraction=0.0))
    out, m = _export(TrlIntegration, ds, "kto")
    rows = list(read_jsonl(out / "kto/train.jsonl"))
    assert {tuple(sorted(r)) for r in rows} == {("completion", "label", "prompt")}
    assert {r["label"] for r in rows} == {True, False}
    assert "trl kto" in (out / "train.sh").read_text().replace(" \\\n  ", " ")
    for cls in (VerlIntegration, OpenRLHFIntegration, NemoRLIntegration):
        _, m = _export(cls, ds, "kto")
        assert m["algorithms"] == [] and m["files"] == {} and m["notes"], cls.__name__


def test_rl_rows_without_ground_truth_are_counted_not_exported(tmp_path: Path) -> None:
    ds = tmp_path / "dataset"
    ds.mkdir()
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}], "ground_truth": None if i == 1 else str(i),
             "verifier": "math", "task_id": f"t{i}", "metadata": {}} for i in range(3)]
    (ds / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    exact = {"_target_": "rollgen.verifiers.text.ExactMatch"}
    (tmp_path / "run_config.json").write_text(json.dumps({"verifier": exact, "guards": {}}))  # the run's reward
    for cls in (TrlIntegration, VerlIntegration, OpenRLHFIntegration, NemoRLIntegration):
        out, m = _export(cls, ds, "rl")
        assert sum(m["files"][k] for k in m["files"] if k.endswith(("train.jsonl", "train.parquet"))
                   and not k.startswith("gym")) == 2, cls.__name__
        assert m["skipped"] == [{"reason": m["skipped"][0]["reason"], "rows": 1}], cls.__name__
    cfg = json.loads((tmp_path / "export/VerlIntegration/reward_config.json").read_text())
    assert cfg["source"] == str(tmp_path / "run_config.json") and cfg["verifier"] == exact and cfg["guards"] == {}
    verl_rows = pq.read_table(tmp_path / "export/VerlIntegration/rl/train.parquet").to_pylist()
    assert {r["ability"] for r in verl_rows} == {"exactmatch"} and {r["data_source"] for r in verl_rows} == {
        "rollgen/exactmatch"}  # named after the run's verifier, not a guess


def test_an_rl_export_without_a_known_reward_says_so_and_the_run_hands_its_own(tmp_path: Path) -> None:
    from rollgen.errors import UserError
    from rollgen.integrations import RunReward

    ds = tmp_path / "dataset"  # no run_config.json beside it: which verifier scored these rows is unknown
    ds.mkdir()
    row = {"prompt": [{"role": "user", "content": "q"}], "ground_truth": "1", "task_id": "t0", "metadata": {}}
    (ds / "train.jsonl").write_text(json.dumps(row) + "\n")
    for cls in (TrlIntegration, VerlIntegration, OpenRLHFIntegration):
        with pytest.raises(UserError, match=rf"^{ds}: the reward is unknown"):
            _export(cls, ds, "rl")
    reward = RunReward(verifier={"_target_": "rollgen.verifiers.numeric.NumericTolerance"}, guards={},
                       source="/runs/a/run_config.json")
    for cls in (TrlIntegration, VerlIntegration, OpenRLHFIntegration):
        out = tmp_path / "export" / cls.__name__
        m = cls(cls.Params()).export_for(ds, out, "rl", reward)
        assert "reward_config.json" in m["files"], cls.__name__
        written = json.loads((out / "reward_config.json").read_text())
        assert (written["verifier"], written["guards"], written["source"]) == (
            reward.verifier, reward.guards, reward.source), cls.__name__
    with pytest.raises(ValueError, match="which reward"):
        reward_function()
    with pytest.raises(UserError, match="no reward_config.json"):
        make_compute_score()("rollgen/math", "The answer is 1.", "1")
    with pytest.raises(UserError, match="no reward_config.json"):
        make_reward_func()(["q 1"], ["q"], ["1"])


@pytest.mark.parametrize(("cls", "fmt"), [(VerlIntegration, "sft"), (VerlIntegration, "rl"),
                                          (OpenRLHFIntegration, "sft"), (OpenRLHFIntegration, "dpo"),
                                          (OpenRLHFIntegration, "rl"), (NemoRLIntegration, "sft"),
                                          (NemoRLIntegration, "dpo"), (NemoRLIntegration, "rl")])
def test_train_sh_names_a_bad_gpu_or_batch_count_and_launches_nothing(tmp_path: Path, cls: Any, fmt: str) -> None:
    ds = _dataset(tmp_path, {"sft": SftFormat(), "dpo": DpoFormat(), "rl": RlFormat()}[fmt])
    out, manifest = _export(cls, ds, fmt)
    assert manifest["algorithms"]
    for env, name in (({"NGPUS": "two"}, "NGPUS"), ({"NGPUS": "2", "BATCH_SIZE": "0"}, "BATCH_SIZE"),
                      ({"NGPUS": "2", "MICRO_BATCH_SIZE": "-1"}, "MICRO_BATCH_SIZE")):
        if name == "MICRO_BATCH_SIZE" and (cls, fmt) == (VerlIntegration, "sft"):
            continue  # VeRL's SFT batches by tokens; its train.sh sets no micro-batch
        launch = run_train_sh(out / "train.sh", tmp_path, {**env, "NEMO_RL_DIR": str(tmp_path)}, check=False)
        assert launch.returncode == 2 and launch.program == ""  # the launcher never ran
        assert launch.stderr.strip() == f"train.sh: {name} must be a positive integer (got '{env[name]}')"
    ok = run_train_sh(out / "train.sh", tmp_path, {"NGPUS": "1", "NEMO_RL_DIR": str(tmp_path)})
    assert ok.program in {"python3", "torchrun", "deepspeed", "uv"} and "warning" not in ok.stderr, ok.stderr


def test_a_re_export_replaces_the_previous_files_and_keeps_checkpoints(tmp_path: Path) -> None:
    sft = _dataset(tmp_path / "a", SftFormat())
    dpo = _dataset(tmp_path / "b", DpoFormat(validation_fraction=0.0))
    out = tmp_path / "export"
    TrlIntegration(TrlIntegration.Params()).export(sft, out, "sft")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "model.safetensors").write_text("weights")
    m = TrlIntegration(TrlIntegration.Params()).export(dpo, out, "dpo")
    assert not (out / "sft").exists() and (out / "dpo/train.jsonl").is_file()
    assert (out / "checkpoints/model.safetensors").read_text() == "weights"
    assert sorted(m["files"]) == ["dpo/train.jsonl", "train.sh"]


@pytest.mark.slow
def test_reward_server_command_serves_on_loopback_with_a_token(rl_run: Path) -> None:
    import os
    import signal
    import sys

    env = {**os.environ, "ROLLGEN_REWARD_TOKEN": "t0ken"}
    proc = subprocess.Popen([sys.executable, "-m", "rollgen.integrations.openrlhf", "--config",
                             str(rl_run / "export/openrlhf/reward_config.json"), "--port", "0"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "token=$ROLLGEN_REWARD_TOKEN" in line and "http://127.0.0.1:" in line  # the secret is not printed
        url = line.split("'")[1].replace("$ROLLGEN_REWARD_TOKEN", "t0ken")

        async def post(target: str) -> tuple[int, Any]:
            async with aiohttp.ClientSession() as s, s.post(target, json={
                    "query": ["Q: 1+1?\nA: \\boxed{2}</s>"], "prompts": ["Q: 1+1?\nA: "], "labels": ["2"]}) as r:
                return r.status, await r.json()

        assert asyncio.run(post(url)) == (200, {"rewards": [1.0], "scores": [1.0],
                                                "extra_logs": {"rollgen_verifier_error": [0.0]}})
        assert asyncio.run(post(url.split("?")[0]))[0] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_integration_modules_have_a_small_public_surface() -> None:
    import importlib

    expected = {
        "common": {"BATCH_FUNCTIONS", "SPLITS", "Export", "micro_and_global_batch", "split_files", "user_text",
                   "write_parquet"},
        "reward": {"CONFIG_NAME", "AsyncRewardScorer", "RewardScorer", "completion_text", "prompt_text", "verifier_label",
                   "write_reward_config"},
        "trl": {"RewardFunction", "TrlIntegration", "reward_function"},
        "verl": {"VerlIntegration", "compute_score", "make_compute_score"},
        "openrlhf": {"OpenRLHFIntegration", "make_app", "make_reward_func", "response_of", "reward_body",
                     "reward_items"},  # the last two: rollgen serve's /get_reward reads and answers OpenRLHF's shape
        "nemo_rl": {"NemoRLIntegration"},
        "gym_bridge": {"AGENT", "NAME", "write_bridge"},
    }
    for name, names in expected.items():
        module = importlib.import_module(f"rollgen.integrations.{name}")
        assert set(module.__all__) == names and all(hasattr(module, n) for n in names), name


def test_curate_re_exports_a_finished_run_to_other_frameworks(tmp_path: Path) -> None:
    import shutil

    from rollgen.commands.curate import recurate

    run = tmp_path / "run"
    tasks = write_arith_tasks(tmp_path / "tasks_in.jsonl", 6)
    with serve_in_thread(FakeOpenAI(correct_rate=0.5, seed=5)) as url:
        rollgen.run(rollgen.compose(["policy=openai", f"policy.base_url={url}", f"server.data_path={tasks}",
                                     "progress=false", "sampler=ppo", "sampler.num_repeats=4",
                                     "quality.min_reward_threshold=0"], output_dir=str(run)))
    assert sorted(p.name for p in (run / "export").iterdir()) == ["jsonl"]
    shutil.rmtree(run / "export")
    report = recurate(run, ["integration=[verl,openrlhf]", "integration.verl.rollout_n=3"])
    assert sorted(report["export"]) == ["openrlhf", "verl"]
    assert 'ROLLOUT_N="${ROLLOUT_N:-3}"' in (run / "export/verl/train.sh").read_text()
    assert (run / "export/openrlhf/rl/train.jsonl").is_file()
