"""``integration=jsonl``: the dataset as plain JSONL files plus a manifest, for any trainer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from rollgen.integrations import Integration

__all__ = ["JsonlIntegration"]


class JsonlIntegration(Integration):
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    def export(self, dataset_dir: Path, out_dir: Path, fmt: str) -> dict[str, Any]:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {}
        for src in sorted(dataset_dir.glob("*.jsonl")):
            shutil.copyfile(src, out_dir / src.name)
            with open(src, "rb") as f:
                files[src.name] = sum(1 for _ in f)
        manifest = {"format": fmt, "files": files,
                    "load_with": f"datasets.load_dataset('json', data_dir='{out_dir}')"}
        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest
