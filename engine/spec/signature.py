"""A python tool's function held to its declared parameters: one check, two callers.

`validate --resolve` (`_resolve`) and `Runtime(spec)` (through `engine.compile`) both import
the function and ask `signature_mismatches`; each turns the findings into located
`Diagnostic`s with `located`, from the YAML document or from `Spec.locations`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import Diagnostic
from engine.spec._schema_pass import did_you_mean
from engine.spec.yamlload import escape
from engine.tools import (
    ParameterTypeError,
    accepts_any_keyword,
    infer_parameters,
    tool_parameters,
)

SIGNATURE_MISMATCH = "signature-mismatch"
UNSUPPORTED_TYPE = "unsupported-type"
"""A parameter's type has no JSON Schema, and the spec gives no `parameters` instead."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Mismatch:
    """One way a tool's function does not fit what the spec declares for it."""

    code: str
    """Diagnostic code, such as `signature-mismatch`."""
    message: str
    """What does not fit, in one sentence."""
    pointer: str
    """JSON pointer inside the tool's entry (`/ref`, `/parameters/properties/x`)."""
    suggestion: str | None = None
    """How to fix it."""


def signature_mismatches(
    ref: str, func: Callable[..., Any], parameters: Mapping[str, Any] | None
) -> list[Mismatch]:
    """Every way `func` cannot be called with arguments that fit `parameters` (or, with no
    `parameters`, why they cannot be inferred from its signature)."""
    if not isinstance(parameters, Mapping):
        try:
            infer_parameters(func)
        except ParameterTypeError as exc:
            return [
                Mismatch(
                    code=UNSUPPORTED_TYPE,
                    message=f"cannot infer the parameters of {ref}: {exc}",
                    pointer="/ref",
                    suggestion=f"annotate '{exc.parameter}' with a type JSON can carry (str, "
                    "int, float, bool, None, list[...], dict[str, ...], a Literal or an Enum of "
                    "JSON values), or give the tool `parameters` in the spec",
                )
            ]
        except (TypeError, ValueError) as exc:  # ValueError: no signature to read at all
            return [
                Mismatch(
                    code=SIGNATURE_MISMATCH,
                    message=f"cannot infer parameters: {exc}",
                    pointer="/ref",
                    suggestion="give the tool `parameters`, or change the signature",
                )
            ]
        return []
    props = parameters.get("properties")
    declared = set(props) if isinstance(props, Mapping) else set()
    try:
        accepted, any_keyword = _shape(func)
    except ValueError as exc:  # some builtins: nothing says which keywords they take
        return [
            Mismatch(
                code="no-signature",
                message=f"{ref} has no signature to hold its parameters to ({exc})",
                pointer="/ref",
                suggestion="wrap it in a Python function whose parameters are named like "
                "the tool's parameters",
            )
        ]
    out: list[Mismatch] = []
    for name, (required, positional_only) in accepted.items():
        if positional_only and name in declared:
            out.append(
                Mismatch(
                    code=SIGNATURE_MISMATCH,
                    message=f"{ref} takes '{name}' by position only; tools are called "
                    "with keyword arguments",
                    pointer=f"/parameters/properties/{escape(name)}",
                    suggestion=f"remove the '/' after '{name}' in the function's signature",
                )
            )
        elif required and name not in declared:
            out.append(
                Mismatch(
                    code=SIGNATURE_MISMATCH,
                    message=f"{ref} requires '{name}', but parameters has no property '{name}'",
                    pointer="/parameters",
                    suggestion=f"add '{name}' under parameters.properties, or give it a default",
                )
            )
    if any_keyword:
        return out
    for name in sorted(declared - set(accepted)):
        out.append(
            Mismatch(
                code=SIGNATURE_MISMATCH,
                message=f"parameters declares '{name}', which {ref} does not accept",
                pointer=f"/parameters/properties/{escape(name)}",
                suggestion=did_you_mean(name, accepted) or "remove it, or add it to the function",
            )
        )
    return out


def _shape(func: Callable[..., Any]) -> tuple[dict[str, tuple[bool, bool]], bool]:
    """`{name: (required, positional only)}` of what the model supplies, and whether `func`
    takes `**kwargs`; cached, as `Runtime(spec)` asks it for every tool of every spec."""
    try:
        hash(func)
    except TypeError:  # an unhashable callable object
        return _compute_shape(func)
    return _cached_shape(func)


def _compute_shape(func: Callable[..., Any]) -> tuple[dict[str, tuple[bool, bool]], bool]:
    accepted = {
        p.name: (p.default is p.empty, p.kind is inspect.Parameter.POSITIONAL_ONLY)
        for p in tool_parameters(func)
    }
    return accepted, accepts_any_keyword(func)


_cached_shape = functools.lru_cache(maxsize=1024)(_compute_shape)


def located(
    tool: str,
    mismatch: Mismatch,
    *,
    file: str,
    locate: Callable[[str], tuple[int, int]],
) -> Diagnostic:
    """The diagnostic of `mismatch` in tool `tool`, placed by `locate(pointer)`."""
    pointer = f"/tools/{escape(tool)}{mismatch.pointer}"
    line, col = locate(pointer)
    return Diagnostic(
        code=mismatch.code,
        message=mismatch.message,
        file=file,
        line=line,
        col=col,
        pointer=pointer,
        suggestion=mismatch.suggestion,
    )


def locate_in(locations: Mapping[str, tuple[int, int]]) -> Callable[[str], tuple[int, int]]:
    """A `locate` over `locations` that falls back to the nearest located ancestor, then 1:1."""

    def locate(pointer: str) -> tuple[int, int]:
        while pointer:
            if pointer in locations:
                return locations[pointer]
            pointer = pointer.rsplit("/", 1)[0]
        return (1, 1)

    return locate
