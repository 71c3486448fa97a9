"""rollgen: verified rollouts → SFT / DPO / RL datasets for LLM post-training."""

__version__ = "0.1.0"

from rollgen.api import compose, run  # noqa: E402

__all__ = ["__version__", "compose", "run"]
