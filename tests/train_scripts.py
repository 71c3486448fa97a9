"""Run an export's ``train.sh`` with its framework's launcher replaced by a stub that records the arguments.

The launch-file tests feed those arguments to the framework's own start-up code, so they check what the
script really passes (after bash expanded ``$HERE``, ``$NGPUS`` and the batch sizes) instead of a copy.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LAUNCHERS", "Launch", "run_train_sh"]

LAUNCHERS = ("trl", "python3", "torchrun", "deepspeed", "uv")
_STUB = '#!/usr/bin/env bash\n{ basename "$0"; for a in "$@"; do echo "$a"; done; } > "$STUB_OUT"\n'


@dataclass
class Launch:
    program: str  # the launcher train.sh ran last (python3, torchrun, deepspeed, uv, trl)
    args: list[str]  # its arguments, one per element
    stderr: str  # what train.sh printed (batch-size warnings)
    returncode: int


def run_train_sh(script: Path, tmp_path: Path, env: dict[str, str], *extra: str, check: bool = True) -> Launch:
    """``bash script *extra`` with ``env`` (on top of a bare PATH) and every launcher stubbed."""
    stubs = tmp_path / "launcher-stubs"
    stubs.mkdir(parents=True, exist_ok=True)
    for name in LAUNCHERS:
        (stubs / name).write_text(_STUB)
        (stubs / name).chmod(0o755)
    record = tmp_path / "launcher-args.txt"
    record.unlink(missing_ok=True)
    proc = subprocess.run(["bash", str(script), *extra], env={"PATH": f"{stubs}:/usr/bin:/bin", "STUB_OUT": str(record),
                                                              **env}, capture_output=True, text=True, cwd=tmp_path)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} exited {proc.returncode}: {proc.stderr}")
    lines = record.read_text().splitlines() if record.is_file() else [""]
    return Launch(lines[0], lines[1:], proc.stderr, proc.returncode)
