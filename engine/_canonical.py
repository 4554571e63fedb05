"""Canonical JSON and the fingerprints built on it (one definition for the whole package)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

_DUMPS = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text, NaN refused: equal values give equal text."""
    return _DUMPS(value)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of the canonical JSON of `parts` (128 bits, hex)."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:32]
