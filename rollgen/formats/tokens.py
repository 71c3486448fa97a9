"""Token counting for dataset statistics: a GGUF model's vocabulary (llama.cpp) or a Hugging Face tokenizer.

``policy_tokenizer(dataset_dir)`` finds the tokenizer of the policy that produced a run's dataset: the
GGUF file of ``policy=local`` (the embedded SmolLM2 by default). Counts are of the text a reader sees,
without a chat template or special tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["TokenizerUnavailable", "load_counter", "policy_tokenizer"]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class TokenizerUnavailable(RuntimeError):
    """The tokenizer cannot be loaded here (package missing, file missing, not cached)."""


def load_counter(spec: str) -> Callable[[str], int]:
    """A function counting the tokens of a text: ``spec`` is a ``.gguf`` file or a Hugging Face tokenizer."""
    if spec.endswith(".gguf"):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise TokenizerUnavailable("a GGUF vocabulary needs llama-cpp-python (the local extra)") from None
        if not Path(spec).is_file():
            raise TokenizerUnavailable(f"{spec}: no such GGUF file")
        with _quiet_stderr():  # llama.cpp logs a context warning from C even with verbose=False
            vocab = Llama(model_path=spec, vocab_only=True, verbose=False, n_ctx=64)
        return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise TokenizerUnavailable("a Hugging Face tokenizer needs the transformers package") from None
    try:
        tok = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as e:
        raise TokenizerUnavailable(f"cannot load tokenizer {spec!r}: {str(e).splitlines()[0]}") from None
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def policy_tokenizer(dataset_path: Path) -> str | None:
    """The GGUF file of the local policy of the run that ``dataset_path`` (a run's ``dataset/``) came from."""
    folder = dataset_path if dataset_path.is_dir() else dataset_path.parent
    cfg_path = folder.parent / "run_config.json"
    if not cfg_path.is_file():
        return None
    policy = json.loads(cfg_path.read_text(encoding="utf-8")).get("policy") or {}
    if not str(policy.get("_target_", "")).endswith("LocalPolicy"):
        return None
    if policy.get("model_path"):
        return str(policy["model_path"])
    try:
        from rollgen.policy.local import default_model_path

        return str(default_model_path())
    except RuntimeError:
        return None
