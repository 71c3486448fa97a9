"""Nested verifiers: a composition lists its parts as ``_target_`` dicts, validated like a top-level verifier.

```yaml
verifiers:
  - {_target_: rollgen.verifiers.math.MathVerifier, _name_: correct}
  - {_target_: rollgen.verifiers.text.RegexMatch, pattern: '\\\\boxed', _name_: format}
```

A wrong ``_target_`` or a bad parameter fails at config validation, naming the key
(``verifier.verifiers.1.pattern: ...``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from rollgen.build import build, component_params, target_class
from rollgen.config import Component

__all__ = ["VerifierSpec", "build_all"]


class VerifierSpec(Component):
    """``{_target_: dotted.Class, _name_: optional label, **params}``."""

    # Only the underscored spellings are rollgen's; every other key is the target's parameter.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=False)
    label: str | None = Field(None, alias="_name_", description="the criterion's name in reward_details")

    @field_validator("target")
    @classmethod
    def _check_target(cls, target: str) -> str:
        target_class(target)  # a wrong _target_ is reported under verifier....._target_
        return target

    @model_validator(mode="after")
    def _check_params(self) -> VerifierSpec:
        component_params(self)  # a bad target or parameter fails here; errors carry the nested key path
        return self


def build_all(specs: list[VerifierSpec]) -> list[tuple[str, Any]]:
    """Build each spec: ``(label, verifier)``, labels defaulting to the verifier's name, made unique."""
    from rollgen.verifiers import verifier_name

    out: list[tuple[str, Any]] = []
    seen: dict[str, int] = {}
    for spec in specs:
        verifier = build(spec)
        label = spec.label or verifier_name(verifier)
        seen[label] = seen.get(label, 0) + 1
        out.append((label if seen[label] == 1 else f"{label}_{seen[label]}", verifier))
    return out
