"""rollgen's errors: one tree, so a caller can catch what rollgen raises on purpose and let its bugs crash.

```
RollgenError
├── ConfigError        a bad key or value, every problem at once (``key.path: message`` lines); exit 2
├── UserError          bad input: a task file, a run dir in use or unwritable; one line, exit 2
│   ├── TaskSourceError    the tasks cannot be produced as configured (rollgen.servers)
│   ├── RunDirBusy         another process holds the run dir (rollgen.rundir)
│   └── JsonlError         a line of a JSONL file that is not JSON, as ``file:line: ...`` (rollgen.jsonl)
└── EndpointError      the model endpoint: does not answer before the run (exit 3), or goes down during it
```

What fails for one sample (a request, a tool call, a verifier) is not an exception here: it is a rollout
with a ``status``, recorded as data.
"""

from __future__ import annotations

__all__ = ["ConfigError", "EndpointError", "RollgenError", "UserError"]


class RollgenError(Exception):
    """Something rollgen reports on purpose, as a message without a traceback."""


class ConfigError(RollgenError, ValueError):
    """Every problem of a config at once, one ``key.path: message`` line each."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


class UserError(RollgenError):
    """A mistake in the user's input (not a rollgen bug): printed as one line, no traceback."""


class EndpointError(RollgenError):
    """The policy endpoint cannot serve the run."""
