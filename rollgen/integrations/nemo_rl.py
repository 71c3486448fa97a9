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
  ``NemoGymDataset`` + ``nemo_gym_data_processor``;
- kto → nothing: NeMo-RL has no KTO algorithm;
- ``<algorithm>.yaml``: a config with ``data: {_override_: true, ...}`` (our files replace the example's
  datasets); ``train.sh`` prepends ``defaults: $NEMO_RL_DIR/examples/configs/<base>.yaml`` and runs
  ``uv run python examples/run_<algorithm>.py --config ...`` in the NeMo-RL checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from rollgen.integrations import Integration
from rollgen.integrations.common import Export, user_text, write_jsonl

__all__ = ["NemoRLIntegration"]

MATCHED = "NVIDIA-NeMo/RL 0.6.0 @ 7ea279a (nemo_rl/data/datasets/*, examples/configs/*.yaml, examples/run_*.py)"


def _data_section(files: dict[str, Path], out: Path, dataset: dict[str, Any], default: dict[str, Any],
                  extra: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"_override_": True, **extra, "shuffle": True, "num_workers": 1,
                            "train": {"data_path": str(files["train"].resolve())}}
    val = files.get("validation") or files.get("test")
    data["validation"] = {"data_path": str(val.resolve())} if val else None
    data["default"] = {**dataset, **default}
    return data


class NemoRLIntegration(Integration):
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        model: str = Field("Qwen/Qwen2.5-1.5B-Instruct", description="policy.model_name in train.sh")
        nemo_rl_dir: str = Field("/opt/nemo-rl", description="default NEMO_RL_DIR (the NeMo-RL checkout; its container's path)")
        gym_agent: str | None = Field(None, description="agent_ref.name stamped on NeMo Gym rows (null = none; "
                                                        "`gym dataset collate` stamps task_source)")
        rl_dataset: str = Field("math", description="which GRPO config train.sh runs: math (ResponseDataset) | gym (NemoGymDataset)")

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
        ex.write_text(f"{name}.yaml", f"# NeMo-RL {name} data config from rollgen (train.sh adds `defaults:`).\n{text}")

    def _script(self, ex: Export, runs: list[tuple[str, str, str]]) -> None:
        """``runs``: (our config, base config in NeMo-RL, example script); the first is what train.sh runs."""
        ours, base, script = runs[0]
        ex.write_script(
            f"NeMo-RL {ours} on rollgen's export (matched {MATCHED}).\n"
            "Usage: NEMO_RL_DIR=<NeMo-RL checkout> MODEL=<hf id or path> bash train.sh [more overrides, key=value]",
            [["cd", "$NEMO_RL_DIR"],
             ["bash", "-c", f'{{ echo "defaults: $NEMO_RL_DIR/examples/configs/{base}"; cat "$HERE/{ours}.yaml"; }} '
                            f'> "$HERE/{ours}.resolved.yaml"'],
             ["uv", "run", "python", f"examples/{script}", "--config", f"$HERE/{ours}.resolved.yaml",
              "policy.model_name=$MODEL", "policy.tokenizer.name=$MODEL", f"checkpointing.checkpoint_dir=$HERE/checkpoints/{ours}"]],
            {"NEMO_RL_DIR": self.params.nemo_rl_dir, "MODEL": self.params.model})
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
        dataset = {"dataset_name": "openai_format", "chat_key": "messages", "tool_key": "tools",
                   "use_preserving_dataset": tools}
        self._config(ex, "sft", _data_section(
            files, ex.out, dataset, {"prompt_file": None, "system_prompt_file": None, "processor": "sft_processor"},
            {"max_input_seq_length": "${policy.max_total_sequence_length}", "add_bos": True, "add_eos": True,
             "add_generation_prompt": False}))
        self._script(ex, [("sft", "sft.yaml", "run_sft.py")])
        return ex.finish()

    def _dpo(self, ex: Export, dataset_dir: Path) -> dict[str, Any]:
        def convert(row: dict[str, Any], split: str, i: int) -> dict[str, Any]:
            return {"context": row["prompt"], "completions": [{"rank": 0, "completion": row["chosen"]},
                                                              {"rank": 1, "completion": row["rejected"]}]}

        files = ex.write_splits(dataset_dir, "dpo", convert, write_jsonl, ".jsonl")
        ex.manifest["algorithms"] = ["dpo"] if files else []
        if "train" not in files:
            return ex.finish()
        self._config(ex, "dpo", _data_section(
            files, ex.out, {"dataset_name": "PreferenceDataset"}, {"prompt_file": None, "system_prompt_file": None},
            {"max_input_seq_length": "${policy.max_total_sequence_length}"}))
        self._script(ex, [("dpo", "dpo.yaml", "run_dpo.py")])
        return ex.finish()

    def _rl(self, ex: Export, dataset_dir: Path) -> dict[str, Any]:
        p = self.params
        system_prompts: set[str] = set()

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
            if p.gym_agent:
                out["agent_ref"] = {"name": p.gym_agent}
            return out

        files = ex.write_splits(dataset_dir, "grpo", math_row, write_jsonl, ".jsonl")
        gym_files = ex.write_splits(dataset_dir, "gym", gym_row, write_jsonl, ".jsonl")
        ex.manifest["algorithms"] = ["grpo"] if files else []
        if "train" not in files:
            return ex.finish()
        default: dict[str, Any] = {"prompt_file": None, "system_prompt_file": None,
                                   "processor": "math_hf_data_processor", "env_name": "math"}
        if len(system_prompts) == 1:
            (ex.out / "system_prompt.txt").write_text(next(iter(system_prompts)), encoding="utf-8")
            default["system_prompt_file"] = str((ex.out / "system_prompt.txt").resolve())
        elif system_prompts:
            ex.manifest["notes"].append("rows have different system prompts; math_hf_data_processor takes one "
                                        "system_prompt_file, so grpo/ rows carry none (the gym/ rows keep theirs)")
        extra = {"max_input_seq_length": "${policy.max_total_sequence_length}"}
        self._config(ex, "grpo_math", _data_section(files, ex.out, {"dataset_name": "ResponseDataset",
                                                                    "input_key": "input", "output_key": "output"},
                                                    default, extra))
        if "train" in gym_files:
            self._config(ex, "grpo_gym", _data_section(
                gym_files, ex.out, {"dataset_name": "NemoGymDataset"},
                {"prompt_file": None, "system_prompt_file": None, "processor": "nemo_gym_data_processor",
                 "env_name": "nemo_gym"}, {"max_input_seq_length": None}), {"env": {"should_use_nemo_gym": True}})
        runs = [("grpo_math", "grpo_math_1B.yaml", "run_grpo.py")]
        if p.rl_dataset == "gym" and "train" in gym_files:
            runs = [("grpo_gym", "grpo_math_1B.yaml", "nemo_gym/run_grpo_nemo_gym.py")]
        self._script(ex, runs)
        ex.manifest["notes"].append("NeMo-RL scores GRPO with its own environment (math: hf_math_verify; nemo_gym: the "
                                    "Gym resources server); serving rollgen's verifier to it is a later issue")
        return ex.finish()


def _responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat tool ``{type, function: {name, description, parameters}}`` as a Responses API tool."""
    fn = tool.get("function")
    if tool.get("type") == "function" and isinstance(fn, dict):
        return {"type": "function", "name": fn.get("name"), "description": fn.get("description", ""),
                "parameters": fn.get("parameters", {}), "strict": False}
    return tool
