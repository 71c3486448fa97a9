"""rollgen's version (also in pyproject.toml; tests/test_architecture.py keeps them equal)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
