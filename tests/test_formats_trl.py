"""TRL's own data utilities (``trl.data_utils``, CPU-only) accept rollgen's SFT, DPO, KTO and RL rows.

Rows are rendered with a real ``transformers`` tokenizer built here (no download): a word-level vocabulary
and a ChatML chat template that renders tools and ``tool_calls[].function.arguments | tojson`` the way
Qwen-style templates do. Skipped only when ``trl`` is not installed (the ``trl`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest

data_utils = pytest.importorskip(
    "trl.data_utils", reason="trl is not installed: pip install torch==2.13.0 && pip install -e '.[trl]'")
transformers = pytest.importorskip("transformers", reason="transformers comes with trl")

from rollgen.config import DpoFormat, KtoFormat, RlFormat, SftFormat  # noqa: E402
from rollgen.formats import build_dataset  # noqa: E402
from tests.test_formats import make_run  # noqa: E402

CHATML = (
    "{%- if tools %}{{ '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content + '\\n' }}{%- endif %}"
    "{{ 'Tools:\\n' }}{%- for tool in tools %}{{ tool | tojson }}{{ '\\n' }}{%- endfor %}{{ '<|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}{{ '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}{{ '<|im_start|>assistant\\n' + m.content }}"
    "{%- for call in m.tool_calls or [] %}{{ '<tool_call>{\"name\": \"' + call.function.name + '\", \"arguments\": ' }}"
    "{{ call.function.arguments | tojson }}{{ '}</tool_call>' }}{%- endfor %}{{ '<|im_end|>\\n' }}"
    "{%- elif m.role != 'system' %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers

    core = Tokenizer(models.WordLevel({"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="<|im_end|>",
                                                 chat_template=CHATML)


def _dataset(tmp_path: Path, cfg: Any, tools: bool = True) -> datasets.Dataset:
    curated = make_run(tmp_path / "run", {i: [1.0, 0.0, 0.5] for i in range(6)}, tools=tools)
    build_dataset(cfg, curated, tmp_path / "ds", seed=0)
    return datasets.load_dataset("json", data_dir=str(tmp_path / "ds"), cache_dir=str(tmp_path / "hf"))["train"]


def test_sft_messages_with_tools_render_with_the_arguments_as_json(tmp_path: Path, tokenizer: Any) -> None:
    ds = _dataset(tmp_path, SftFormat(system_prompt="You are a math tutor."))
    row = ds[0]
    assert data_utils.is_conversational(row)
    out = data_utils.maybe_apply_chat_template(row, tokenizer, tools=row["tools"])
    n = row["task_id"][1:]
    text = out["text"]
    assert text.startswith("<|im_start|>system\nYou are a math tutor.\nTools:\n")
    assert json.dumps(row["tools"][0]) in text
    assert f'<tool_call>{{"name": "calculator", "arguments": {{"expression": "{n} + 1"}}}}</tool_call>' in text
    assert f"<|im_start|>tool\n{int(n) + 1}<|im_end|>" in text
    assert text.endswith("<|im_end|>\n") and "<|im_end|><|im_end|>" not in text  # no EOS of our own (TRL #4481)
    rendered = ds.map(lambda r: data_utils.maybe_apply_chat_template(r, tokenizer, tools=r["tools"]))
    assert len(rendered) == len(ds) and all(t.endswith("<|im_end|>\n") for t in rendered["text"])


def test_string_arguments_are_what_a_tojson_template_double_encodes(tmp_path: Path, tokenizer: Any) -> None:
    """Why ``tool_arguments: dict`` is the default (frameworks.md B.6)."""
    row = _dataset(tmp_path, SftFormat(tool_arguments="string"))[0]
    text = data_utils.apply_chat_template(row, tokenizer, tools=row["tools"])["text"]
    assert '"arguments": "{\\"expression\\"' in text


def test_sft_prompt_completion_rows(tmp_path: Path, tokenizer: Any) -> None:
    row = _dataset(tmp_path, SftFormat(style="prompt_completion"), tools=False)[0]
    assert data_utils.is_conversational(row)
    out = data_utils.apply_chat_template(row, tokenizer)
    assert out["prompt"] == f"<|im_start|>user\nCalculate {row['task_id'][1:]} + 1.<|im_end|>\n<|im_start|>assistant\n"
    assert out["completion"] == row["completion"][0]["content"] + "<|im_end|>\n"


def test_dpo_rows_render_and_unpair(tmp_path: Path, tokenizer: Any) -> None:
    ds = _dataset(tmp_path, DpoFormat(strategy="all_pairs"))
    row = ds[0]
    assert data_utils.is_conversational(row)
    out = data_utils.maybe_apply_chat_template(row, tokenizer, tools=row["tools"])
    assert out["prompt"].endswith("<|im_start|>assistant\n")
    assert out["chosen"] != out["rejected"]
    for side in ("chosen", "rejected"):
        assert out[side].endswith("<|im_end|>\n") and "<|im_end|><|im_end|>" not in out[side]
        whole = tokenizer.apply_chat_template(row["prompt"] + row[side], tools=row["tools"], tokenize=False)
        assert out["prompt"] + out[side] == whole  # TRL's split of prompt and completion is exact
    unpaired = data_utils.unpair_preference_dataset(ds)
    assert len(unpaired) == 2 * len(ds) and sum(unpaired["label"]) == len(ds)
    assert set(unpaired.column_names) >= {"prompt", "completion", "label"}


def test_kto_and_rl_rows(tmp_path: Path, tokenizer: Any) -> None:
    kto = _dataset(tmp_path / "kto", KtoFormat(), tools=False)
    out = data_utils.apply_chat_template(kto[0], tokenizer)
    assert out["label"] is kto[0]["label"] and out["completion"].endswith("<|im_end|>\n")
    rl = _dataset(tmp_path / "rl", RlFormat(), tools=False)
    assert data_utils.is_conversational(rl[0])
    prompt = data_utils.apply_chat_template({"prompt": rl[0]["prompt"]}, tokenizer)["prompt"]
    assert prompt.endswith("<|im_start|>assistant\n") and rl[0]["ground_truth"] == str(int(rl[0]["task_id"][1:]) + 1)
