"""Compact JSON text for documents: orjson writes it when installed, else the standard library.

A continuation of 1,000 messages (120 kB) takes the standard library about 1 ms to write and
orjson about 0.1 ms. Reading stays with the standard library (`json.loads`): orjson reads
integers beyond 64 bits as floats, and a document must come back exactly as it was written.
Anything orjson refuses to write (integers beyond 64 bits, non-string keys it cannot
convert, text with a lone surrogate, nesting beyond 254 levels) falls back to the standard
library, which writes a lone surrogate as its `\\ud800` escape: the text stays valid UTF-8 and
reads back as the same string.
"""

from __future__ import annotations

import json
from typing import Any

from engine._canonical import LONE_SURROGATE

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; this keeps callcc usable
    orjson = None  # type: ignore[assignment]


def dumps(value: Any) -> str:
    """`value` as compact JSON text (UTF-8, no spaces, keys in insertion order)."""
    if orjson is not None:
        try:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            pass
    return escape_surrogates(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def escape_surrogates(text: str) -> str:
    """`text` with every lone surrogate written as its JSON escape (`\\ud800`): inside a JSON
    string it reads back as the same code point; anywhere else it is at least printable."""
    if text.isascii() or not LONE_SURROGATE.search(text):
        return text
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


loads = json.loads
"""Parse JSON text exactly (big integers stay integers)."""
