"""Secrets never reach data: the configured API keys and tokens are redacted from every text rollgen writes.

A process-wide registry holds the secrets in memory only: the values of the environment variables the
config names (every ``*_env`` key, e.g. ``policy.api_key_env``, a judge's ``api_key_env``), string values of
keys named like a secret (``api_key``, ``token``, ``password``, ``secret``), and the keys of the endpoints a
run talks to (the embedded policy's random token). ``redact(text)`` replaces each occurrence of a secret,
and of any piece of 8 or more characters of one (a truncated error message, a key cut by a proxy), with
``[redacted]``.

Redaction happens where outside text enters rollgen (the policy client's parsed responses and error
messages, the line each rollout is written as), so everything derived downstream is clean; a logging
filter (``install_log_filter``) covers log records.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "MIN_PIECE", "RedactingFilter", "install_log_filter", "redact", "redact_obj", "register",
           "register_config", "secret_keys"]

MASK = "[redacted]"
MIN_PIECE = 8  # pieces of a secret this long or longer are redacted too
_SECRET_KEY = re.compile(r"(?i)(?:^|_)(?:api_?key|token|password|secret)$")

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(*secrets: str | None) -> None:
    """Add secrets (None and empty strings are ignored). Secrets are never removed for the process' life."""
    global _pattern
    new = {s for s in secrets if s and s not in _secrets}
    if not new:
        return
    _secrets.update(new)
    pieces = {s[i:i + MIN_PIECE] for s in _secrets if len(s) >= MIN_PIECE for i in range(len(s) - MIN_PIECE + 1)}
    pieces |= {s for s in _secrets if len(s) < MIN_PIECE}
    _pattern = re.compile("|".join(re.escape(p) for p in sorted(pieces, key=lambda p: (-len(p), p))))


def secret_keys(config: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    """``(dotted key, secret)`` for every secret a config names: ``*_env`` keys whose variable is set, and
    string values of keys named like a secret (``api_key``, ``token``, ...)."""
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from secret_keys(value, f"{path}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from secret_keys(item, f"{path}.{i}.")
        elif isinstance(value, str) and value:
            if str(key).endswith("_env") and os.environ.get(value):
                yield path, os.environ[value]
            elif _SECRET_KEY.search(str(key)):
                yield path, value


def register_config(config: Mapping[str, Any]) -> None:
    """Register every secret ``config`` (a plain-container run config) names."""
    register(*(secret for _, secret in secret_keys(config)))


def redact(text: str) -> str:
    """``text`` with every registered secret, and every piece of one of ``MIN_PIECE`` or more characters, masked.

    A match is extended to the right as long as the text stays a piece of a secret, so a leaked key is
    masked whole. Quotes and backslashes are never swallowed, so redacting a JSON line keeps it valid JSON.
    """
    if _pattern is None or not text:
        return text
    m = _pattern.search(text)
    if m is None:
        return text
    out, pos = [], 0
    while m is not None:
        start, end = m.span()
        while end < len(text) and text[end] not in '"\\' and any(text[start:end + 1] in s for s in _secrets):
            end += 1
        out += [text[pos:start], MASK]
        pos = end
        m = _pattern.search(text, pos)
    out.append(text[pos:])
    return "".join(out)


def redact_obj(obj: Any) -> Any:
    """``obj`` (parsed JSON: dicts, lists, strings) with every string redacted; other values unchanged."""
    if _pattern is None:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_obj(v) for v in obj]
    return obj


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_log_filter() -> None:
    """Add the redacting filter to every handler of the root and ``rollgen`` loggers (idempotent)."""
    for logger in (logging.getLogger(), logging.getLogger("rollgen")):
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
