"""Validating verifiers (``rollgen validate``): do they mean what they say?

- ``gold``: on a task set, gold answers and equivalent renderings must score 1, perturbed answers 0
  (the cases come from ``cases`` and ``parts_cases``; a verifier may add its own with a ``cases()`` method).
- ``runcheck``: on a finished run, the reward histogram, the undecided share and Cohen's kappa between two
  verifiers.
"""

from __future__ import annotations

__all__: list[str] = []
