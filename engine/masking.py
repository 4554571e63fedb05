"""What counts as a secret in what callcc shows a person, and how it is hidden.

Pictures, `inspect` and the CLI's text output show a field named like a password, a token, a
secret or an API key (or named in `extra`, such as a spec's `api_key_env` names), and any value
that looks like a token (`sk-...`, `ghp_...`, `Bearer ...`), as `***`. Documents and JSON output
keep the values as they are: they are what a run resumes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
"""What a hidden value shows as."""

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|(private|access|signing)[_-]?key|"
    r"credential|authorization|cookie|^key$)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"^(sk-|ghp_|gho_|xox[abp]-|Bearer\s)", re.IGNORECASE)


def is_secret_key(key: str, extra: Iterable[str] = ()) -> bool:
    """True for keys named like a password, token, secret or API key, or listed in `extra`."""
    return key in set(extra) or bool(_SECRET_KEY.search(key))


def mask(value: Any, extra: Iterable[str] = ()) -> Any:
    """`value` with every secret-looking field (at any depth) replaced by `***`."""
    names = frozenset(extra)
    if isinstance(value, Mapping):
        return {
            str(k): MASK if is_secret_key(str(k), names) else mask(v, names)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask(v, names) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.match(value):
        return MASK
    return value
