"""Integrations: hand a dataset to a training framework (files it loads + the command that trains)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

__all__ = ["Integration"]


class Integration(ABC):
    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: BaseModel):
        self.params = params

    @abstractmethod
    def export(self, dataset_dir: Path, out_dir: Path, fmt: str) -> dict[str, Any]:
        """Write ``out_dir`` from ``dataset_dir`` (rows of format ``fmt``); return what was written."""
