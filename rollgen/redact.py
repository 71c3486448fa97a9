"""Secrets never reach data: the configured API keys and tokens are redacted from every text rollgen writes.

A process-wide registry holds the secrets in memory only: the values of the environment variables the
config names (every ``*_env`` key, e.g. ``policy.api_key_env``, a judge's ``api_key_env``), string values of
keys named like a secret (``api_key``, ``token``, ``password``, ``secret``), and the keys of the endpoints a
run talks to (the embedded policy's random token). ``redact(text)`` replaces each occurrence of a secret,
and of any piece of 8 or more characters of one (a truncated error message, a key cut by a proxy), with
``[redacted]``. Values shorter than 8 characters are not secrets but placeholders (``EMPTY``, ``none``, as
local servers are often given) and are left alone: masking them would rewrite ordinary words.

Redaction happens where outside text enters rollgen (the policy client's parsed responses and error
messages, the line each rollout is written as), so everything derived downstream is clean; a logging
filter (``install_log_filter``) covers log records.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "MIN_PIECE", "RedactingFilter", "Redactor", "active", "install_log_filter", "redact",
           "redact_json", "redact_obj", "register", "register_config", "secret_keys"]

MASK = "[redacted]"
MIN_PIECE = 8  # pieces of a secret this long or longer are redacted too
_SECRET_KEY = re.compile(r"(?i)(?:^|_)(?:api_?key|token|password|secret)$")

_SAFE = '"\\'  # never swallowed by a mask, so a redacted JSON line stays valid JSON
_BLOCK = MIN_PIECE // 2


class Redactor:
    """Masks a set of secrets, and every piece of ``MIN_PIECE`` or more characters of one, in text.

    The secrets are cut into aligned blocks of ``MIN_PIECE // 2`` characters: any piece of ``MIN_PIECE``
    or more characters contains a whole block, so finding the blocks (``str.find``, in C) and growing
    each hit along its secret finds every piece, at a few microseconds per clean line.
    """

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self._blocks: list[tuple[str, str, int]] = []  # (block, secret, offset in the secret)

    def __bool__(self) -> bool:
        return bool(self._blocks)

    def register(self, *secrets: str | None) -> None:
        """Add secrets (None and values shorter than ``MIN_PIECE`` are placeholders, not secrets: ignored)."""
        for s in secrets:
            if not s or len(s) < MIN_PIECE or s in self.secrets:
                continue
            self.secrets.add(s)
            self._blocks.extend((s[j:j + _BLOCK], s, j) for j in range(0, len(s) - _BLOCK + 1, _BLOCK)
                                if not any(c in _SAFE for c in s[j:j + _BLOCK]))

    def redact(self, text: str) -> str:
        """``text`` with every secret and every piece of one of ``MIN_PIECE`` or more characters masked.

        A hit is grown along its secret as far as the text matches, so a leaked key is masked whole. Quotes
        and backslashes are never swallowed, so redacting a JSON line keeps it valid JSON.
        """
        if not self._blocks or not text:
            return text
        spans = []
        for block, secret, j in self._blocks:
            p = text.find(block)
            while p != -1:
                a, b = p, j
                while a > 0 and b > 0 and text[a - 1] == secret[b - 1] and text[a - 1] not in _SAFE:
                    a, b = a - 1, b - 1
                c, d = p + len(block), j + len(block)
                while c < len(text) and d < len(secret) and text[c] == secret[d] and text[c] not in _SAFE:
                    c, d = c + 1, d + 1
                if c - a >= MIN_PIECE:
                    spans.append((a, c))
                p = text.find(block, p + 1)
        if not spans:
            return text
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        out, pos = [], 0
        for start, end in merged:
            out += [text[pos:start], MASK]
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def redact_json(self, line: str) -> str:
        """A JSON text, redacted and still valid JSON (a secret piece that matched a number is left to the
        strings-only pass)."""
        clean = self.redact(line)
        if clean is line:
            return line
        try:
            json.loads(clean)
        except ValueError:
            return json.dumps(self.redact_obj(json.loads(line)), ensure_ascii=False)
        return clean

    def redact_obj(self, obj: Any) -> Any:
        """``obj`` (parsed JSON: dicts, lists, strings) with every string redacted; other values unchanged."""
        if not self._blocks:
            return obj
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact(k) if isinstance(k, str) else k: self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        return obj


# The process-wide registry rollgen uses: secrets are added as runs name them and never removed.
_DEFAULT = Redactor()
register = _DEFAULT.register
redact = _DEFAULT.redact
redact_obj = _DEFAULT.redact_obj
redact_json = _DEFAULT.redact_json


def active() -> bool:
    """Whether any secret is registered (else redaction is a no-op)."""
    return bool(_DEFAULT)


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


ENV_SECRETS = ("ROLLGEN_REWARD_TOKEN",)  # tokens rollgen itself reads from the environment


def register_config(config: Mapping[str, Any]) -> None:
    """Register every secret ``config`` (a plain-container run config) names, and rollgen's own tokens."""
    register(*(secret for _, secret in secret_keys(config)), *(os.environ.get(name) for name in ENV_SECRETS))


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _DEFAULT:
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
