"""``integration=nemo_rl``: NeMo-RL's dataset files and config snippets (SFT, DPO, GRPO) and its launch scripts.

Matched against NVIDIA-NeMo/RL 0.6.0 (commit 7ea279a, 2026-08-22): ``nemo_rl/data/datasets/response_datasets/
{oai_format_dataset,response_dataset,nemogym_dataset}.py``, ``preference_datasets/preference_dataset.py``,
``nemo_rl/data/processors.py`` (``math_hf_data_processor``), ``nemo_rl/utils/config.py`` (``defaults:`` and
``_override_``), ``examples/configs/{sft,dpo,grpo_math_1B}.yaml``, ``examples/nemo_gym/*.yaml`` and
``examples/run_{sft,dpo,grpo}.py`` (frameworks.md B.4). NeMo-RL is not on PyPI (the ``nemo-rl`` name there is
an empty 0.0.0 placeholder), so rollgen's tests check these files against that source by schema only.
Written under ``export/nemo_rl/``:

- sft → ``sft/<split>.jsonl``: ``messages`` (+ ``tools``) for ``dataset_name: openai_format``
  (``use_preserving_dataset: true`` when rows offer tools, so Arrow does not None-fill tool schemas);
- dpo → ``dpo/<split>.jsonl``: the native ``PreferenceDataset`` form ``{context, completions: [{rank: 0,
  completion}, {rank: 1, completion}]}`` (message lists, so multi-turn and tool completions survive;
  ``BinaryPreferenceDataset`` would flatten them to one assistant string);
- rl → ``grpo/<split>.jsonl``: ``{input, output}`` for ``ResponseDataset`` + ``math_hf_data_processor`` +
  ``env_name: math`` (``output`` is the ground truth), and ``gym/<split>.jsonl``: NeMo Gym rows
  ``{responses_create_params: {input, tools?}, question, expected_answer[, agent_ref]}`` for
  ``NemoGymDataset`` + ``nemo_gym_data_processor``; with ``online: true`` the gym GRPO config is scored live
  by ``rollgen serve`` (``rollgen.integrations.gym_bridge``: a NeMo Gym resources server forwarding to it is
  written to ``gym_env/``, ``env.nemo_gym.config_paths`` names its config, rows' ``agent_ref`` its agent and
  their ``id`` the served task; train.sh checks that rollgen serve answers before it starts);
- kto → nothing: NeMo-RL has no KTO algorithm;
- ``<algorithm>.yaml``: a config with ``data: {_override_: true, ...}`` (our files replace the example's
  datasets; the section keeps every key NeMo-RL's code reads, ``use_multiple_dataloader`` included, and
  ``data.train.dataset_name``, which ``sft.yaml``'s logger interpolates), plus what the export needs
  elsewhere (no validation split: validation off; the gym config: ``env.nemo_gym``, ``grpo.max_val_samples:
  null``); ``train.sh`` prepends ``defaults: $NEMO_RL_DIR/examples/configs/<base>.yaml``, derives batch sizes
  from the row counts and NGPUS, and runs ``uv run python examples/run_<algorithm>.py --config ...`` in the
  NeMo-RL checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rollgen.integrations import Integration
from rollgen.integrations.common import BATCH_FUNCTIONS, Export, micro_and_global_batch, user_text
from rollgen.integrations.gym_bridge import AGENT, NAME, write_bridge
from rollgen.jsonl import write_jsonl

__all__ = ["NemoRLIntegration"]

MATCHED = "NVIDIA-NeMo/RL 0.6.0 @ 7ea279a (nemo_rl/data/datasets/*, examples/configs/*.yaml, examples/run_*.py)"
GYM_AGENT = "math_with_judge_simple_agent"
# The NeMo Gym servers grpo_gym.yaml starts (paths inside NeMo-RL's Gym checkout, as examples/nemo_gym/*.yaml):
# the policy model for training and math_with_judge (math-verify; the LLM judge off), whose agent is GYM_AGENT.
GYM_ENV = {"should_use_nemo_gym": True, "nemo_gym": {
    "config_paths": ["responses_api_models/vllm_model/configs/vllm_model_for_training.yaml",
                     "resources_servers/math_with_judge/configs/math_with_judge.yaml"],
    "math_with_judge": {"resources_servers": {"math_with_judge": {"judge_model_server": {"name": "policy_model"},
                                                                  "should_use_judge": False}}}}}

GYM_ROOT = "gym_env"  # the bridge server package's extra root for NeMo Gym (NEMO_GYM_EXTRA_ROOTS)
# train.sh, online: rollgen serve must answer, with the token, before NeMo-RL starts its Gym servers.
ONLINE_CHECK = """if [ -z "${TOKEN_ENV:-}" ]; then
  echo "train.sh: TOKEN_ENV is not set: start \\`rollgen serve\\` first and export the token it printed" >&2; exit 2
fi
if ! curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN_ENV" -X POST "$ROLLGEN_URL/close_session" -d '{}'; then
  echo "train.sh: rollgen serve does not answer at $ROLLGEN_URL (or the token is wrong): start it first" >&2; exit 2
fi"""


def _data_section(files: dict[str, Path], dataset_name: str, default: dict[str, Any],
                  extra: dict[str, Any]) -> dict[str, Any]:
    """``data:`` replacing the base config's (``_override_``). Each dataset names its class itself: sft.yaml's
    logger interpolates ``data.train.dataset_name``."""
    data: dict[str, Any] = {"_override_": True, **extra, "shuffle": True, "num_workers": 1,
                            "train": {"dataset_name": dataset_name, "data_path": str(files["train"].resolve())}}
    val = _validation(files)
    data["validation"] = {"dataset_name": dataset_name, "data_path": str(val.resolve())} if val else None
    data["default"] = default
    return data


def _validation(files: dict[str, Path]) -> Path | None:
    return files.get("validation") or files.get("test")


class NemoRLIntegration(Integration):
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        model: str = Field("Qwen/Qwen2.5-1.5B-Instruct", description="policy.model_name in train.sh")
        nemo_rl_dir: str = Field("/opt/nemo-rl", description="default NEMO_RL_DIR (the NeMo-RL checkout; its container's path)")
        n_gpus_per_node: int = Field(8, ge=1, description="train.sh default NGPUS (cluster.gpus_per_node)")
        gym_agent: str | None = Field(GYM_AGENT, description="agent_ref.name stamped on NeMo Gym rows (NeMo-RL routes "
                                                             "each row by it; null = none)")
        rl_dataset: Literal["math", "gym"] = Field(
            "math", description="which GRPO config train.sh runs: math (ResponseDataset) | gym (NemoGymDataset)")
        online: bool = Field(False, description="GRPO scored live by `rollgen serve` (its verifier and tools, through "
                                                "a NeMo Gym server the export writes); implies rl_dataset=gym")
        serve_url: str = Field("http://127.0.0.1:8765", description="online: where `rollgen serve` listens "
                                                                     "(as seen from the NeMo Gym servers)")
        serve_token_env: str = Field("ROLLGEN_SERVE_TOKEN", description="online: the environment variable that "
                                                                        "holds rollgen serve's token")

        @model_validator(mode="after")
        def _gym_needs_an_agent(self) -> NemoRLIntegration.Params:
            if self.rl_dataset == "gym" and not self.gym_agent and not self.online:
                raise ValueError("rl_dataset=gym needs gym_agent: NeMo-RL routes every NeMo Gym row by agent_ref.name")
            return self

    params: Params

    def export(self, dataset_dir: Path, out_dir: Path, fmt: str) -> dict[str, Any]:
        ex = Export(out_dir, "nemo_rl", fmt, MATCHED)
        if fmt == "kto":
            ex.manifest["notes"].append("NeMo-RL has no KTO algorithm: nothing written. Use format=dpo.")
            return ex.finish()
        if fmt == "sft":
            return self._sft(ex, dataset_dir)
        if fmt == "dpo":
            return self._dpo(ex, dataset_dir)
        return self._rl(ex, dataset_dir)

    def _config(self, ex: Export, name: str, data: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        body = {"data": data, **(extra or {})}
        text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
        ex.write_text(f"{name}.yaml", f"# NeMo-RL {name} config from rollgen (train.sh adds `defaults:`).\n{text}")

    def _script(self, ex: Export, ours: str, base: str, script: str, setup: str, overrides: list[str],
                online: bool = False) -> None:
        """train.sh: ``ours``.yaml on top of NeMo-RL's ``base`` config, run by its example ``script``; ``online``:
        it first checks that ``rollgen serve`` answers, and lets NeMo Gym find the bridge server."""
        p = self.params
        env = {"NEMO_RL_DIR": p.nemo_rl_dir, "MODEL": p.model, "NGPUS": str(p.n_gpus_per_node)}
        header = ""
        if online:
            header = (f"Online: start `rollgen serve server=<the run's server> [its overrides]` first (it prints the\n"
                      f"token; export {p.serve_token_env}=<token>); rewards and tools come from it, at ROLLGEN_URL.\n")
            env["ROLLGEN_URL"] = p.serve_url
            setup += ("\n" + ONLINE_CHECK.replace("TOKEN_ENV", p.serve_token_env)
                      + f'\nexport NEMO_GYM_EXTRA_ROOTS="$HERE/{GYM_ROOT}${{NEMO_GYM_EXTRA_ROOTS:+:$NEMO_GYM_EXTRA_ROOTS}}"')
            overrides = [*overrides, f"env.nemo_gym.{NAME}.resources_servers.{NAME}.rollgen_url=$ROLLGEN_URL"]
        ex.write_script(
            f"NeMo-RL {ours} on rollgen's export (matched {MATCHED}).\n{header}"
            "Usage: NEMO_RL_DIR=<NeMo-RL checkout> MODEL=<hf id or path> NGPUS=<n> bash train.sh [key=value ...]\n"
            "BATCH_SIZE, MICRO_BATCH_SIZE (and for GRPO ROLLOUT_N) replace the values derived from the row counts\n"
            "and NGPUS.",
            [["cd", "$NEMO_RL_DIR"],
             ["bash", "-c", f'{{ echo "defaults: $NEMO_RL_DIR/examples/configs/{base}"; cat "$HERE/{ours}.yaml"; }} '
                            f'> "$HERE/{ours}.resolved.yaml"'],
             ["uv", "run", "python", f"examples/{script}", "--config", f"$HERE/{ours}.resolved.yaml",
              "policy.model_name=$MODEL", "policy.tokenizer.name=$MODEL", "cluster.gpus_per_node=$NGPUS",
              *overrides, f"checkpointing.checkpoint_dir=$HERE/checkpoints/{ours}"]],
            env, setup=setup)
        ex.manifest["command"] = "bash train.sh"

    def _sft(self, ex: Export, dataset_dir: Path) -> dict[str, Any]:
        tools = False

        def convert(row: dict[str, Any], split: str, i: int) -> dict[str, Any]:
            nonlocal tools
            out: dict[str, Any] = {"messages": row.get("messages") or [*row["prompt"], *row["completion"]]}
            if row.get("tools"):
                out["tools"], tools = row["tools"], True
            return out

        files = ex.write_splits(dataset_dir, "sft", convert, write_jsonl, ".jsonl")
        ex.manifest["algorithms"] = ["sft"] if files else []
        if "train" not in files:
            return ex.finish()
        default = {"chat_key": "messages", "tool_key": "tools", "use_preserving_dataset": tools, "prompt_file": None,
                   "system_prompt_file": None, "processor": "sft_processor"}
        # sft.yaml's chat_template is a plain "Question: ... Answer:" template for base models; our rows are
        # chat messages for the model's own template ("default" keeps the tokenizer's).
        extra = {"policy": {"tokenizer": {"chat_template": "default"}}, "logger": {"wandb_enabled": False},
                 **_no_validation(files, "sft")}
        self._config(ex, "sft", _data_section(files, "openai_format", default, {
            "max_input_seq_length": "${policy.max_total_sequence_length}", "add_bos": True, "add_eos": True,
            "add_generation_prompt": False}), extra)
        self._script(ex, "sft", "sft.yaml", "run_sft.py", *_batches(ex, files, "sft", micro=1, cap=32, val_cap=32))
        return ex.finish()

    def _dpo(self, ex: Export, dataset_dir: Path) -> dict[str, Any]:
        def convert(row: dict[str, Any], split: str, i: int) -> dict[str, Any]:
            return {"context": row["prompt"], "completions": [{"rank": 0, "completion": row["chosen"]},
                                                              {"rank": 1, "completion": row["rejected"]}]}

        files = ex.write_splits(dataset_dir, "dpo", convert, write_jsonl, ".jsonl")
        ex.manifest["algorithms"] = ["dpo"] if files else []
        if "train" not in files:
            return ex.finish()
        self._config(ex, "dpo", _data_section(files, "PreferenceDataset", {"prompt_file": None, "system_prompt_file": None},
                                              {"max_input_seq_length": "${policy.max_total_sequence_length}"}),
                     _no_validation(files, "dpo"))
        self._script(ex, "dpo", "dpo.yaml", "run_dpo.py", *_batches(ex, files, "dpo", micro=2, cap=128, val_cap=8))
        return ex.finish()

    def _rl(self, ex: Export, dataset_dir: Path) -> dict[str, Any]:
        p = self.params
        system_prompts: set[str] = set()
        agent = AGENT if p.online else p.gym_agent

        def math_row(row: dict[str, Any], split: str, i: int) -> dict[str, Any] | None:
            if row.get("ground_truth") is None:
                ex.skip("no ground truth: the math environment needs one")
                return None
            system_prompts.update(m["content"] for m in row["prompt"] if m.get("role") == "system")
            return {"input": user_text(row["prompt"]), "output": str(row["ground_truth"])}

        def gym_row(row: dict[str, Any], split: str, i: int) -> dict[str, Any] | None:
            if row.get("ground_truth") is None:
                return None
            params: dict[str, Any] = {"input": row["prompt"]}
            if row.get("tools"):
                params["tools"] = [_responses_tool(t) for t in row["tools"]]
            out: dict[str, Any] = {"responses_create_params": params, "question": user_text(row["prompt"]),
                                   "expected_answer": str(row["ground_truth"])}
            if p.online and row.get("task_id") is not None:
                out["id"] = str(row["task_id"])  # rollgen serve scores the served task of this id
            if agent:
                out["agent_ref"] = {"type": "responses_api_agents", "name": agent} if p.online else {"name": agent}
            return out

        files = ex.write_splits(dataset_dir, "grpo", math_row, write_jsonl, ".jsonl")
        gym_files = ex.write_splits(dataset_dir, "gym", gym_row, write_jsonl, ".jsonl")
        ex.manifest["algorithms"] = ["grpo"] if files else []
        if "train" not in files:
            return ex.finish()
        default: dict[str, Any] = {"input_key": "input", "output_key": "output", "prompt_file": None,
                                   "system_prompt_file": None, "processor": "math_hf_data_processor", "env_name": "math"}
        if len(system_prompts) == 1:
            (ex.out / "system_prompt.txt").write_text(next(iter(system_prompts)), encoding="utf-8")
            default["system_prompt_file"] = str((ex.out / "system_prompt.txt").resolve())
        elif system_prompts:
            ex.manifest["notes"].append("rows have different system prompts; math_hf_data_processor takes one "
                                        "system_prompt_file, so grpo/ rows carry none (the gym/ rows keep theirs)")
        # grpo.py reads use_multiple_dataloader unconditionally (its own _override_ examples keep it)
        extra = {"max_input_seq_length": "${policy.max_total_sequence_length}", "use_multiple_dataloader": False}
        self._config(ex, "grpo_math", _data_section(files, "ResponseDataset", default, extra),
                     _no_validation(files, "grpo"))
        if "train" in gym_files:
            # run_grpo_nemo_gym.py rejects a non-null grpo.max_val_samples and sizes validation to the whole
            # validation file itself; NeMo Gym needs its servers (env.nemo_gym) and vLLM's HTTP server.
            off = _no_validation(gym_files, "grpo")
            self._config(ex, "grpo_gym", _data_section(
                gym_files, "NemoGymDataset", {"prompt_file": None, "system_prompt_file": None,
                                              "processor": "nemo_gym_data_processor", "env_name": "nemo_gym"},
                {"max_input_seq_length": None, "use_multiple_dataloader": False}),
                {**off, "grpo": {"max_val_samples": None, "val_batch_size": None, **off.get("grpo", {})},
                 "env": self._gym_env(ex),
                 "policy": {"generation": {"vllm_cfg": {"async_engine": True, "expose_http_server": True}}}})
        if (p.rl_dataset == "gym" or p.online) and "train" in gym_files:
            self._script(ex, "grpo_gym", "grpo_math_1B.yaml", "nemo_gym/run_grpo_nemo_gym.py",
                         *_grpo_batches(ex, gym_files, validation=False), online=p.online)
        else:
            self._script(ex, "grpo_math", "grpo_math_1B.yaml", "run_grpo.py", *_grpo_batches(ex, files, validation=True))
        if p.online:
            ex.manifest["reward"] = (f"online: rollgen serve at {p.serve_url} (its verifier and tools), reached "
                                     f"through the NeMo Gym server gym_env/resources_servers/{NAME}; start "
                                     "`rollgen serve` before train.sh")
        else:
            ex.manifest["notes"].append("NeMo-RL scores GRPO with its own environment (math: hf_math_verify; nemo_gym: "
                                        "the Gym resources server); integration.nemo_rl.online=true scores it with "
                                        "rollgen's verifier through `rollgen serve`")
        return ex.finish()

    def _gym_env(self, ex: Export) -> dict[str, Any]:
        """``env:`` of the gym GRPO config: NeMo Gym's math_with_judge, or online the rollgen serve bridge."""
        p = self.params
        if not p.online:
            return GYM_ENV
        config = write_bridge(ex, GYM_ROOT, p.serve_url, p.serve_token_env)
        return {"should_use_nemo_gym": True, "nemo_gym": {
            "config_paths": [GYM_ENV["nemo_gym"]["config_paths"][0], str(config.resolve())],
            NAME: {"resources_servers": {NAME: {"rollgen_url": p.serve_url}}}}}  # train.sh overrides it (ROLLGEN_URL)


def _no_validation(files: dict[str, Path], algorithm: str) -> dict[str, Any]:
    """Without a validation file, NeMo-RL must not validate (sft/grpo assert a validation set when
    ``val_period`` > 0 or ``val_at_start``) nor rank checkpoints by a validation metric."""
    if _validation(files):
        return {}
    return {algorithm: {"val_period": 0, "val_at_start": False, "val_at_end": False},
            "checkpointing": {"metric_name": None}}


def _batches(ex: Export, files: dict[str, Path], algorithm: str, micro: int, cap: int, val_cap: int
             ) -> tuple[str, list[str]]:
    """SFT/DPO: bash that sets BATCH_SIZE (``policy.train_global_batch_size``; the train dataloader drops its
    last incomplete batch) as a multiple of MICRO_BATCH_SIZE x NGPUS, at most NeMo-RL's default ``cap`` and the
    train rows, and the overrides that pass them. ``micro`` and ``cap`` are the base config's values."""
    rows = ex.rows(files["train"])
    lines = [BATCH_FUNCTIONS, *micro_and_global_batch(rows, micro, cap, "policy.train_global_batch_size")]
    overrides = ["policy.train_global_batch_size=$BATCH_SIZE", "policy.train_micro_batch_size=$MICRO_BATCH_SIZE"]
    val = _validation(files)
    if val:
        lines.append(f'VAL_BATCH_SIZE=$(fit {ex.rows(val)} {val_cap} "$NGPUS")')
        overrides.append(f"{algorithm}.val_global_batch_size=$VAL_BATCH_SIZE")
    return "\n".join(lines), overrides


def _grpo_batches(ex: Export, files: dict[str, Path], validation: bool) -> tuple[str, list[str]]:
    """GRPO: BATCH_SIZE prompts per step (``grpo.num_prompts_per_step``; the dataloader drops the last
    incomplete batch), each with ROLLOUT_N generations; ``policy.train_global_batch_size`` = their product
    (grpo_math_1B.yaml's 32 x 16 = 512), a multiple of MICRO_BATCH_SIZE x NGPUS. ``validation``: one batch
    of up to 256 validation prompts (``grpo.val_batch_size`` = ``grpo.max_val_samples``)."""
    rows = ex.rows(files["train"])
    lines = [BATCH_FUNCTIONS, "need_int NGPUS", 'ROLLOUT_N="${ROLLOUT_N:-16}"', "need_int ROLLOUT_N",
             'MICRO_BATCH_SIZE="${MICRO_BATCH_SIZE:-4}"', "need_int MICRO_BATCH_SIZE",
             "# prompts per step: a multiple of STEP, so that BATCH_SIZE x ROLLOUT_N divides by MICRO_BATCH_SIZE x NGPUS",
             'SHARD=$(( MICRO_BATCH_SIZE * NGPUS ))', 'STEP=$(( SHARD / $(gcd "$SHARD" "$ROLLOUT_N") ))',
             f'BATCH_SIZE="${{BATCH_SIZE:-$(fit {rows} 32 "$STEP")}}"', "need_int BATCH_SIZE",
             f'small {rows} "$BATCH_SIZE" "train rows" grpo.num_prompts_per_step "no step would run"',
             "TRAIN_BATCH_SIZE=$(( BATCH_SIZE * ROLLOUT_N ))"]
    overrides = ["grpo.num_prompts_per_step=$BATCH_SIZE", "grpo.num_generations_per_prompt=$ROLLOUT_N",
                 "policy.train_global_batch_size=$TRAIN_BATCH_SIZE",
                 "policy.train_micro_batch_size=$MICRO_BATCH_SIZE"]
    val = _validation(files)
    if validation and val:
        lines.append(f"VAL_BATCH_SIZE=$(( {ex.rows(val)} < 256 ? {ex.rows(val)} : 256 ))")
        overrides += ["grpo.val_batch_size=$VAL_BATCH_SIZE", "grpo.max_val_samples=$VAL_BATCH_SIZE"]
    return "\n".join(lines), overrides


def _responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat tool ``{type, function: {name, description, parameters}}`` as a Responses API tool."""
    fn = tool.get("function")
    if tool.get("type") == "function" and isinstance(fn, dict):
        return {"type": "function", "name": fn.get("name"), "description": fn.get("description", ""),
                "parameters": fn.get("parameters", {}), "strict": False}
    return tool
