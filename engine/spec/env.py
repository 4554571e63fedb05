"""`${env:NAME}` and `${env:NAME:-default}` substitution inside string values (never keys).

`$${env:NAME}` is an escape that yields the literal text `${env:NAME}`; any other `${...}` is
left alone. An unset variable without a default is an `env-unset` diagnostic at the string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import Diagnostic
from engine.spec.yamlload import escape

_PATTERN = re.compile(r"(\$?)\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(
    data: Any,
    *,
    env: Mapping[str, str],
    file: str,
    locate: Callable[[str], tuple[int, int]],
    originals: dict[str, tuple[str, str]] | None = None,
) -> tuple[Any, list[Diagnostic]]:
    """Return a copy of `data` with env references replaced, and a diagnostic per unset name.

    `originals`, when given, receives pointer -> (text as written, text substituted) for every
    string that changed, so messages can show what was written instead of a secret's value.
    """
    diagnostics: list[Diagnostic] = []

    def one(text: str, pointer: str) -> str:
        if "${" not in text:
            return text
        result = _PATTERN.sub(lambda match: replace(match, pointer), text)
        if originals is not None and result != text:
            originals[pointer] = (text, result)
        return result

    def replace(match: re.Match[str], pointer: str) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        value = env.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        line, col = locate(pointer)
        diagnostics.append(
            Diagnostic(
                code="env-unset",
                message=f"environment variable '{name}' is not set",
                file=file,
                line=line,
                col=col,
                pointer=pointer,
                suggestion=f"set {name}, or give a default: ${{env:{name}:-value}}",
            )
        )
        return match.group(0)

    return _walk(data, "", one), diagnostics


def _walk(value: Any, pointer: str, one: Callable[[str, str], str]) -> Any:
    # Depth is bounded by the YAML loader (at most 100 levels), so recursion is safe here.
    if isinstance(value, str):
        return one(value, pointer)
    if isinstance(value, dict):
        return {k: _walk(v, f"{pointer}/{escape(k)}", one) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, f"{pointer}/{i}", one) for i, v in enumerate(value)]
    return value
