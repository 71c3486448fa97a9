"""rollgen: verified rollouts → SFT / DPO / RL datasets for LLM post-training.

``rollgen.compose``, ``rollgen.run`` / ``rollgen.arun`` and ``rollgen.Runtime`` (the Python API,
``rollgen.api``) and ``rollgen.__version__`` load on first use, so importing one module of the package
(``rollgen.config``, a verifier) imports nothing else.
"""

from typing import Any

__all__ = ["Runtime", "__version__", "arun", "compose", "run"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from rollgen.version import __version__

        return __version__
    if name in __all__:
        import rollgen.api

        return getattr(rollgen.api, name)
    raise AttributeError(f"module 'rollgen' has no attribute {name!r}")
