"""Compact JSON text for documents: orjson writes it when installed, else the standard library.

A continuation of 1,000 messages (120 kB) takes the standard library about 1 ms to write and
orjson about 0.1 ms; reading a 1 MB document takes the standard library 7 ms and orjson 4 ms.
orjson reads integers beyond 64 bits as floats, though, and a document must come back exactly
as it was written: `loads` lets orjson read only text with no run of 19 digits (every integer
outside orjson's exact range, -2**63 to 2**64 - 1, has at least 19), and anything orjson
refuses to read (NaN, a lone surrogate, nesting beyond 1,024 levels, broken text) goes to the
standard library, whose reading and whose error messages are the contract. A text under
64 kB is read by orjson only once something imported it: a process that reads one small
document (`callcc pending`) is done before orjson's import would pay off. Anything orjson
refuses to write (integers beyond 64 bits, non-string keys it cannot
convert, text with a lone surrogate, nesting beyond 254 levels) falls back to the standard
library, which writes a lone surrogate as its `\\ud800` escape: the text stays valid UTF-8 and
reads back as the same string.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from types import ModuleType
from typing import Any

from engine._canonical import LONE_SURROGATE


@functools.cache
def _orjson() -> ModuleType | None:
    """orjson, imported when a document is first written or read."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency; this keeps callcc usable
        return None
    return orjson


def orjson_ready() -> None:
    """Import orjson now (if installed), so `loads_plain` uses it from here on."""
    _orjson()


def dumps(value: Any) -> str:
    """`value` as compact JSON text (UTF-8, no spaces, keys in insertion order)."""
    orjson = _orjson()
    if orjson is not None:
        try:
            text: str = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
            return text
        except (TypeError, orjson.JSONEncodeError):
            pass
    return escape_surrogates(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def escape_surrogates(text: str) -> str:
    """`text` with every lone surrogate written as its JSON escape (`\\ud800`): inside a JSON
    string it reads back as the same code point; anywhere else it is at least printable."""
    if text.isascii() or not LONE_SURROGATE.search(text):
        return text
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class NonFinite(ValueError):
    """The text holds `NaN`, `Infinity` or a number beyond any float (`1e999`): JSON has no
    such numbers, and writing them back gives `null`."""


def _constant(name: str) -> Any:
    raise NonFinite(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFinite(f"{text} is beyond any number JSON readers keep")
    return value


_IMPORT_ORJSON_AT = 64 * 1024
"""Text this long is read with orjson even when nothing imported it yet."""
_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_float)
_DIGIT_MARKS = bytes(1 if 0x30 <= byte <= 0x39 else 0 for byte in range(256))
"""`bytes.translate` table: ASCII digits to 1, every other byte to 0."""
_LONG_NUMBER = b"\x01" * 19
"""19 digits in a row, marked: the shortest integer orjson might not read exactly."""


def loads(text: str) -> Any:
    """Parse JSON text exactly (big integers stay integers); `NonFinite` for NaN, Infinity
    and numbers that overflow a float. orjson reads it when it surely reads it exactly, the
    standard library otherwise (and for every error: its messages are the ones reported)."""
    # orjson once this process has it, or for a large text; a command that reads one small
    # document (`callcc pending`) is done before importing orjson would have paid off
    orjson = sys.modules.get("orjson") if len(text) < _IMPORT_ORJSON_AT else _orjson()
    if orjson is not None and not may_hold_long_numbers(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the standard library says what is wrong (or reads what orjson will not)
    return _DECODER.decode(text)


def loads_plain(text: str) -> tuple[bool, Any]:
    """`(True, value)` when orjson reads `text` exactly into plain JSON data, else
    `(False, None)` (read it with the standard library, which says what is wrong). orjson
    itself refuses NaN, Infinity, numbers beyond a float, lone surrogates and nesting beyond
    1,024 levels; text that may hold an integer beyond 64 bits is left to the other reader.
    Only once something imported orjson (a run's drive does): a quick command that checks
    one document's calls is done before the import would pay off."""
    orjson = sys.modules.get("orjson")
    if orjson is None or may_hold_long_numbers(text):
        return False, None
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None


def may_hold_long_numbers(text: str) -> bool:
    """True when `text` has 19 ASCII digits in a row somewhere: possibly an integer beyond 64
    bits, which orjson would read as a float (digits inside strings count too: only slower).
    About 0.7 ms a megabyte, a third of what orjson takes to read it (a regular expression
    takes ten times longer)."""
    if len(text) < len(_LONG_NUMBER):  # too short to hold 19 of anything (a call's arguments)
        return False
    marked = text.encode("utf-8", "surrogatepass").translate(_DIGIT_MARKS)
    return marked.find(_LONG_NUMBER) >= 0


def non_finite_at(value: Any) -> str:
    """The JSON pointer of the first NaN or infinite number in `value` (`""` if none)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return where
        if isinstance(node, dict):
            items = [(str(k), v) for k, v in node.items()]
        elif isinstance(node, list):
            items = [(str(i), v) for i, v in enumerate(node)]
        else:
            continue
        stack.extend((v, f"{where}/{_escape(k)}") for k, v in reversed(items))
    return ""


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
