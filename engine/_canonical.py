"""Canonical JSON and the fingerprints built on it (one definition for the whole package), and
the check that a value is plain JSON data canonical JSON can write and read back unchanged."""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_C_ENCODE = getattr(json.encoder, "c_make_encoder", None)
_ITERENCODE = (
    _C_ENCODE(
        None,  # no cycle check: fingerprinted values are parsed JSON or passed json_problem
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        True,
        False,
        False,
    )
    if _C_ENCODE is not None
    else None
)
"""The C encoder `_ENCODER.encode` builds afresh on every call, built once: the same bytes
for half the time (a fingerprint is made for every gated call and checked on every resume)."""
MAX_DEPTH = 100
"""How deeply a value a person or a model supplies (arguments, an answer) may nest: far more
than any tool's parameters need, far less than the recursion a JSON encoder or a schema
validator can take."""
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""A UTF-16 surrogate code point on its own: valid in a Python `str` (JSON `"\\ud800"` reads
as one), but not Unicode text, so no UTF-8 encoder writes it."""


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text, NaN refused: equal values give equal text."""
    if _ITERENCODE is None or isinstance(value, str):  # pragma: no cover - no C encoder
        return _ENCODER.encode(value)
    return "".join(_ITERENCODE(value, 0))


def fingerprint(*parts: Any) -> str:
    """A short stable hash of the canonical JSON of `parts` (128 bits, hex).

    A lone surrogate (in a model's error message, say) is hashed as its own three bytes, so
    every `str` has a fingerprint and valid text hashes exactly as before."""
    text = canonical_json(list(parts))
    digest: str = _sha256()(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:32]


@functools.cache
def _sha256() -> Any:
    """`hashlib.sha256`, imported when something is first hashed: `callcc runs list` and
    `--help` hash nothing (OpenSSL loads with it); an import statement on every call cost
    a tenth of a fingerprint."""
    import hashlib

    return hashlib.sha256


def json_problem(value: Any) -> tuple[str, str] | None:
    """Where (a JSON pointer below `value`, `""` for itself) and why `value` is not plain JSON
    data: a number that is NaN or infinite, text (or a key) with a lone surrogate, nesting
    deeper than `MAX_DEPTH`, or a Python object JSON has no form for. None when fine.

    Iterative, so a value too deep to encode is reported rather than overflowing the stack."""
    if _plain(value):  # the common case, on every resume: no pointers to build
        return None
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and LONE_SURROGATE.search(node):
                return where, _surrogate(node)
        elif isinstance(node, float):
            if not math.isfinite(node):
                return where, f"{node} is not a JSON number"
        elif node is None or isinstance(node, int):  # bool is an int
            continue
        elif isinstance(node, dict | list | tuple):
            if depth >= MAX_DEPTH:
                return where, f"nests deeper than {MAX_DEPTH} levels"
            items: list[tuple[str, Any]]
            if isinstance(node, dict):
                items = [(str(k), item) for k, item in node.items()]
                for key, _ in items:
                    if not key.isascii() and LONE_SURROGATE.search(key):
                        return where, f"has a key that {_surrogate(key)}"
            else:
                items = [(str(i), item) for i, item in enumerate(node)]
            stack.extend((item, f"{where}/{_escape(k)}", depth + 1) for k, item in reversed(items))
        else:
            return where, f"a {type(node).__name__} is not JSON data"
    return None


def _plain(value: Any) -> bool:
    """True when `value` is plain JSON data for sure (exact JSON types only, no pointers
    built); False sends `json_problem` the slow way, which says where and why."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        kind = type(node)
        if kind is str:
            if not node.isascii() and LONE_SURROGATE.search(node):
                return False
        elif kind is int or kind is bool or node is None:
            continue
        elif kind is float:
            if not math.isfinite(node):
                return False
        elif kind is dict:
            if depth >= MAX_DEPTH:
                return False
            for key, item in node.items():
                if type(key) is not str or (not key.isascii() and LONE_SURROGATE.search(key)):
                    return False
                push((item, depth + 1))
        elif kind is list or kind is tuple:
            if depth >= MAX_DEPTH:
                return False
            for item in node:
                push((item, depth + 1))
        else:
            return False
    return True


def _surrogate(text: str) -> str:
    found = LONE_SURROGATE.search(text)
    code = ord(found.group()) if found else 0
    return f"holds a lone surrogate (U+{code:04X}), which is not Unicode text"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
