"""Python tools: importing a `module:attr` ref, inferring its JSON Schema, and what it may raise.

A tool function takes keyword arguments named like its parameters; one parameter annotated
`ToolContext` (any name) receives the call's context instead of a model argument. A tool that
raises `Deferred` says its result will be supplied later: the run suspends as `external`. One
that raises `NeedsApproval` asks a person first (reason `approval`) and runs again, with
`ToolContext.approved` true, once approved; `RetryWithModel` tells the model exactly what to
correct. Any other exception is handled as the tool's `on_error` says.
"""

from __future__ import annotations

import difflib
import enum
import importlib
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from engine._canonical import json_problem
from engine.errors import UsageError

JsonSchema = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ToolContext:
    """What a running tool may know about the call it serves."""

    run_id: str
    """The run the call belongs to."""
    call_id: str
    """The model's id of this tool call; stable across resumes."""
    agent: str
    """Name of the agent that made the call."""
    tool: str
    """Name of the tool being called."""
    approved: bool = False
    """True when a person approved (or edited) this very call: the spec's `approval` gate,
    or the tool's own `NeedsApproval`. A tool that asks checks it and does not ask again."""

    @property
    def idempotency_key(self) -> str:
        """A key that is the same every time this exact call is attempted."""
        return f"{self.run_id}:{self.call_id}"


class Deferred(Exception):
    """Raised by a python tool whose result will be supplied later (the run suspends)."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason)


class NeedsApproval(Exception):
    """Raised by a python tool that wants a person to approve what it is about to do: the
    run suspends with reason `approval` and the decisions the tool's `approval.decisions`
    allow. Once approved, the tool runs again with `ToolContext.approved` true (with the
    reviewer's arguments after an `edit`); a rejection tells the model why, and nothing runs."""

    def __init__(
        self,
        prompt: str | None = None,
        arguments: dict[str, Any] | None = None,
        reason: str = "",
    ) -> None:
        self.prompt = prompt
        """What the reviewer is asked; the tool's `approval.prompt` (or a default) if None."""
        self.arguments = arguments
        """The arguments the tool will act on, shown to the reviewer and run with once
        approved (they must fit the tool's parameters); the call's own arguments if None."""
        self.reason = reason
        """Why it asks, shown beside the entry (`callcc pending`, the picture)."""
        super().__init__(prompt or reason or "the tool asks for approval")


class RetryWithModel(Exception):
    """Raised by a python tool to tell the model exactly `message` as the call's result, so
    it can correct itself (whatever the tool's `on_error` says: this is no crash)."""

    def __init__(self, message: str) -> None:
        self.message = message
        """What the model reads."""
        super().__init__(message)


class ParameterTypeError(TypeError):
    """A parameter's type hint has no JSON Schema, so the model cannot be told what to pass."""

    def __init__(self, parameter: str, hint: Any, why: str) -> None:
        self.parameter = parameter
        """The parameter's name."""
        self.type = type_name(hint)
        """Its annotation, as a person would write it (`complex`, `list[complex]`)."""
        super().__init__(f"parameter '{parameter}' is annotated {self.type}: {why}")


class ToolRefError(UsageError):
    """A tool ref cannot be used; `code` is `ref-not-found`, `not-callable` or `import-failed`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def import_ref(ref: str, search_path: str | None = None) -> Callable[..., Any]:
    """Import `package.module:attr` (with `search_path` first on sys.path) and return it."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ToolRefError("ref-not-found", f"ref '{ref}' is not of the form 'module:attr'")
    saved = list(sys.path)
    if search_path is not None:
        sys.path.insert(0, search_path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ToolRefError(
            "ref-not-found", f"module '{module_name}' of ref '{ref}' cannot be found: {exc}"
        ) from exc
    except Exception as exc:
        raise ToolRefError(
            "import-failed", f"importing '{module_name}' raised {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        sys.path[:] = saved
    target: Any = module
    for part in attr_path.split("."):
        if not hasattr(target, part):
            names = sorted(
                n
                for n in dir(target)
                if not n.startswith("_") and callable(getattr(target, n, None))
            )  # what a ref can name: `annotations` from `from __future__ import` is no tool
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ToolRefError(
                "ref-not-found",
                f"'{module_name}' has no attribute '{attr_path}'; {hint}"
                f"it has: {', '.join(names[:20]) or 'nothing callable'}",
            )
        target = getattr(target, part)
    if not callable(target):
        raise ToolRefError("not-callable", f"'{ref}' is a {type(target).__name__}, not callable")
    return typing.cast(Callable[..., Any], target)


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_CONTEXT_NAME = re.compile(r"(?:[A-Za-z_]\w*\.)*ToolContext")
"""`ToolContext` as annotation text, maybe qualified (`engine.ToolContext`)."""
_WRAPPED = re.compile(r"(?:typing\.)?(Optional|Union|Annotated)\[(.*)\]")


def context_parameter(func: Callable[..., Any]) -> str | None:
    """The parameter of `func` that receives the call's `ToolContext` instead of a model
    argument: the first one annotated `ToolContext`, `ToolContext | None`,
    `Optional[ToolContext]` or `Annotated[ToolContext, ...]`, also as annotation text that
    does not resolve (`from __future__ import annotations` with the import kept under
    `TYPE_CHECKING`). The model never sees it, and it always receives a `ToolContext`."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read: nothing to inject into
        return None
    hints = _hints(func)
    for param in params:
        if param.kind not in _VARIADIC and _is_context(hints.get(param.name)):
            return param.name
    return None


def tool_parameters(func: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters of `func` the model supplies (no ToolContext, no *args/**kwargs)."""
    context = context_parameter(func)
    return [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind not in _VARIADIC and p.name != context
    ]


def accepts_any_keyword(func: Callable[..., Any]) -> bool:
    """True when `func` has a `**kwargs` parameter."""
    params = inspect.signature(func).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def infer_parameters(func: Callable[..., Any]) -> JsonSchema:
    """A JSON Schema object for `func`'s arguments, from its signature and type hints."""
    hints = _hints(func)
    properties: dict[str, JsonSchema] = {}
    required: list[str] = []
    for param in tool_parameters(func):
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"parameter '{param.name}' is positional-only; tools take keywords")
        schema = _parameter_schema(param.name, hints.get(param.name, Any))
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        else:
            default = param.default
            if isinstance(default, enum.Enum):
                default = default.value
            if isinstance(default, str | int | float | bool | None) and not json_problem(default):
                schema = {**schema, "default": default}
        properties[param.name] = schema
    result: JsonSchema = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    result["additionalProperties"] = accepts_any_keyword(func)
    return result


def _parameter_schema(name: str, hint: Any) -> JsonSchema:
    """The schema of one parameter, or `ParameterTypeError` naming it and its type."""
    if isinstance(hint, str):
        why = "the text does not resolve to a type (a name imported only for type checkers?)"
        raise ParameterTypeError(name, hint, why)
    try:
        schema = type_schema(hint)
    except TypeError as exc:
        raise ParameterTypeError(name, hint, str(exc)) from None
    problem = json_problem(schema)
    if problem is not None:
        where, what = problem
        raise ParameterTypeError(
            name, hint, f"its JSON Schema would hold a value that is not JSON ({what} at {where})"
        )
    return schema


def type_name(hint: Any) -> str:
    """A type hint as it is written in Python: `complex`, `list[complex]`, `Literal[1j]`."""
    if isinstance(hint, str):
        return repr(hint)
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


def type_schema(hint: Any) -> JsonSchema:
    """JSON Schema of one Python type hint; raises TypeError for types it cannot express."""
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint is None or hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and hint in simple:
        return {"type": simple[hint]}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return type_schema(args[0])
    if origin is Literal:
        return {"enum": [a.value if isinstance(a, enum.Enum) else a for a in args]}
    if origin in (Union, types.UnionType):
        options = [type_schema(a) for a in args]
        if all(set(o) == {"type"} and isinstance(o["type"], str) for o in options):
            return {"type": [o["type"] for o in options]}
        return {"anyOf": options}
    if hint in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset):
        if args and origin is not tuple:
            return {"type": "array", "items": type_schema(args[0])}
        return {"type": "array"}
    if hint is dict or origin is dict:
        if len(args) == 2:
            return {"type": "object", "additionalProperties": type_schema(args[1])}
        return {"type": "object"}
    raise TypeError(f"{type_name(hint)} has no JSON Schema")


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    """`func`'s type hints, resolved; when one does not resolve (a name imported only under
    `TYPE_CHECKING`), each of the others still is, and that one stays text."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # resolved one by one below
        pass
    raw = getattr(func, "__annotations__", None)
    names = getattr(func, "__globals__", {})
    items = raw.items() if isinstance(raw, dict) else ()
    return {name: _resolved(hint, names) for name, hint in items}


def _resolved(hint: Any, names: dict[str, Any]) -> Any:
    if not isinstance(hint, str):
        return hint
    try:
        return typing.get_type_hints(_Annotated(hint), names, include_extras=True)["x"]
    except Exception:  # kept as text: `_is_context` reads text too
        return hint


class _Annotated:
    """Something with one annotation, for `typing.get_type_hints` to resolve it alone."""

    def __init__(self, hint: str) -> None:
        self.__annotations__ = {"x": hint}


def _is_context(hint: Any) -> bool:
    """True for `ToolContext`, alone, optional, or annotated; as a type or as text."""
    if hint is ToolContext:
        return True
    if isinstance(hint, typing.ForwardRef):
        hint = hint.__forward_arg__
    if isinstance(hint, str):
        return _text_is_context(re.sub(r"\s+", "", hint).strip("'\""))
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return _is_context(args[0])
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return bool(members) and all(_is_context(a) for a in members)
    return False


def _text_is_context(text: str) -> bool:
    wrapped = _WRAPPED.fullmatch(text)
    if wrapped is not None and wrapped.group(1) == "Annotated":
        return _text_is_context(wrapped.group(2).split(",", 1)[0])
    members = wrapped.group(2).split(",") if wrapped is not None else text.split("|")
    members = [m.strip("'\"") for m in members]
    members = [m for m in members if m not in ("None", "NoneType")]
    return bool(members) and all(_CONTEXT_NAME.fullmatch(m) for m in members)
