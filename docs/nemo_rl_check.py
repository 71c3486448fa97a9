"""Check a rollgen NeMo-RL export with NeMo-RL's own code, where NeMo-RL is installed (no GPU needed).

    python docs/nemo_rl_check.py outputs/<run>/export/nemo_rl --nemo-rl-dir /opt/nemo-rl [--ngpus 8] [override ...]

It runs the export's train.sh with ``uv`` replaced by a recorder (so it checks the exact command train.sh
would run, batch sizes included), then does what that ``examples/run_*.py`` does before it starts Ray:
``load_config`` + ``parse_hydra_overrides`` + ``OmegaConf.to_container(resolve=True)`` + the algorithm's
``MasterConfig``, the run script's own config checks, and each train/validation dataset built by NeMo-RL's
loader (``load_response_dataset`` / ``load_preference_dataset`` after ``update_single_dataset_config``).
Then it checks that the train dataloader (which drops its last incomplete batch) yields a batch.
Exit 0 when all of that passed; 1 with the failing step otherwise.

rollgen's test suite cannot install NeMo-RL, so tests/test_integration_nemo_rl.py checks the same launch with
NeMo-RL's config loading copied from its source (tests/data/nemo_rl/) and every key its code reads.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ALGORITHM = {"examples/run_sft.py": "sft", "examples/run_dpo.py": "dpo", "examples/run_grpo.py": "grpo",
             "examples/nemo_gym/run_grpo_nemo_gym.py": "grpo"}


def recorded_command(export: Path, nemo_rl_dir: Path, ngpus: int, extra: list[str]) -> list[str]:
    """The arguments train.sh passes to ``uv`` (``run python examples/run_<x>.py --config ... overrides``)."""
    with tempfile.TemporaryDirectory() as tmp:
        stub, record = Path(tmp) / "uv", Path(tmp) / "args"
        stub.write_text('#!/usr/bin/env bash\nfor a in "$@"; do echo "$a"; done > "$RECORD"\n')
        stub.chmod(0o755)
        env = {**os.environ, "PATH": f"{tmp}:{os.environ.get('PATH', '/usr/bin:/bin')}", "RECORD": str(record),
               "NEMO_RL_DIR": str(nemo_rl_dir), "NGPUS": str(ngpus)}
        subprocess.run(["bash", str(export / "train.sh"), *extra], env=env, check=True)
        return record.read_text().splitlines()


def load(args: list[str]) -> tuple[str, Any]:
    """examples/run_*.py's config loading, on the recorded command."""
    from omegaconf import OmegaConf

    from nemo_rl.utils.config import load_config, parse_hydra_overrides, register_omegaconf_resolvers

    script, config_path, overrides = args[2], args[4], args[5:]
    register_omegaconf_resolvers()
    config = parse_hydra_overrides(load_config(config_path), overrides)
    config = OmegaConf.to_container(config, resolve=True)
    algorithm = ALGORITHM[script]
    module = __import__(f"nemo_rl.algorithms.{algorithm}", fromlist=["MasterConfig"])
    return script, module.MasterConfig(**config)


def datasets(script: str, config: Any) -> dict[str, int]:
    """Build every train/validation dataset with NeMo-RL's loaders; their sizes by split."""
    from nemo_rl.data.datasets import load_response_dataset, update_single_dataset_config
    from nemo_rl.data.datasets.preference_datasets import load_preference_dataset

    data, sizes = config.data, {}
    loader = load_preference_dataset if ALGORITHM[script] == "dpo" else load_response_dataset
    for split in ("train", "validation"):
        entries = data.get(split)
        for entry in ([entries] if isinstance(entries, dict) else entries or []):
            entry = dict(entry)
            if data.get("default"):
                update_single_dataset_config(entry, data["default"])
            sizes[split] = sizes.get(split, 0) + len(loader(entry).dataset)
    return sizes


def check(script: str, config: Any, sizes: dict[str, int]) -> list[str]:
    """What the run script and the algorithm's setup() check before training, that a config can fail."""
    problems, algorithm = [], ALGORITHM[script]
    if algorithm == "grpo":
        batch = config.grpo.num_prompts_per_step
        if "use_multiple_dataloader" not in config.data:
            problems.append("data.use_multiple_dataloader is missing (grpo.py reads it unconditionally)")
        if script.endswith("run_grpo_nemo_gym.py") and config.grpo.max_val_samples is not None:
            problems.append("grpo.max_val_samples must be null for run_grpo_nemo_gym.py")
        validating = config.grpo.val_period > 0 or config.grpo.val_at_start or config.grpo.val_at_end
    else:
        batch = config.policy["train_global_batch_size"]
        section = getattr(config, algorithm)
        validating = section.val_period > 0 or section.val_at_start
    if validating and not sizes.get("validation"):
        problems.append(f"{algorithm} validation is on but there is no validation dataset")
    if sizes.get("train", 0) // batch < 1:
        problems.append(f"{sizes.get('train', 0)} train rows make no batch of {batch} (the dataloader drops it)")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export", type=Path, help="the export/nemo_rl folder")
    ap.add_argument("--nemo-rl-dir", type=Path, default=Path(os.environ.get("NEMO_RL_DIR", "/opt/nemo-rl")),
                    help="the NeMo-RL checkout train.sh runs in (default $NEMO_RL_DIR or /opt/nemo-rl)")
    ap.add_argument("--ngpus", type=int, default=int(os.environ.get("NGPUS", "8")))
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides, as after train.sh")
    opts = ap.parse_args(argv)
    sys.path.insert(0, str(opts.nemo_rl_dir.resolve()))  # the checkout's nemo_rl when it is not installed
    args = recorded_command(opts.export, opts.nemo_rl_dir, opts.ngpus, opts.overrides)
    print(f"train.sh runs: {' '.join(args[:5])} ({len(args) - 5} overrides)")
    try:
        script, config = load(args)
        print(f"config: loaded, resolved and validated as {ALGORITHM[script]} MasterConfig")
        sizes = datasets(script, config)
        print(f"datasets: {sizes}")
    except Exception as e:  # NeMo-RL's own error is the finding; show it as such
        print(f"problem: {type(e).__name__}: {e}", file=sys.stderr)
        print("failed")
        return 1
    problems = check(script, config, sizes)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("ok" if not problems else "failed")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
