"""Spec -> Program: agents with their model clients and bound tools, ready for the loop.

Compiling imports the python tools (with the spec's folder first on the import path), holds
each function to its declared parameters (or infers them from its signature where the spec gives
none), builds one argument validator per tool and one client per model. The loop then needs no
YAML and no lookups by string.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from engine.errors import Diagnostic, SpecError, UsageError
from engine.models.base import ModelClient
from engine.models.scripted import ScriptedModel
from engine.spec._semantic import FORBIDDEN_MODULES, command_allowed
from engine.spec.check import sort_diagnostics
from engine.spec.model import (
    Agent,
    AgentTool,
    CallableTool,
    ExternalTool,
    McpToolset,
    Model,
    PythonTool,
    Spec,
)
from engine.spec.signature import Mismatch, locate_in, located, signature_mismatches
from engine.tools import ToolRefError, context_parameter, import_ref, infer_parameters

if TYPE_CHECKING:  # engine.policy loads CEL: imported when a spec has a condition
    from engine.policy import Condition

AGENT_TOOL_PARAMETERS: Mapping[str, Any] = {
    "type": "object",
    "properties": {"request": {"type": "string", "description": "What the sub-agent should do"}},
    "required": ["request"],
    "additionalProperties": False,
}
ANY_OBJECT: Mapping[str, Any] = {"type": "object"}


@dataclass(frozen=True, kw_only=True, slots=True)
class BoundTool:
    """A tool ready to call."""

    spec: CallableTool
    """The tool as declared (or, for a tool of an MCP server, as its listing gives it)."""
    parameters: Mapping[str, Any]
    """JSON Schema of its arguments (declared or inferred)."""
    validator: Draft202012Validator
    """Checks arguments before anything runs."""
    func: Callable[..., Any] | None = None
    """The python callable (python tools only)."""
    is_async: bool = False
    """True when `func` is a coroutine function."""
    context_param: str | None = None
    """Name of the parameter that receives a `ToolContext`, if any."""
    approval_detail: str | None = None
    """Why calls wait for approval, for the pending entry's `detail` (MCP tools: what the
    server's annotations say); None when the spec's `approval` is the reason."""
    condition: Condition | None = None
    """The compiled `approval.when` (`engine.policy`): a call waits only when it holds or
    cannot be evaluated; None: the approval asks every call (or none)."""
    quick_check: Callable[[dict[str, Any]], bool] = lambda _: False
    """A fast check for simple flat schemas: True means valid for sure; False means ask
    `validator` (which also explains what is wrong)."""

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.spec.name


@dataclass(frozen=True, kw_only=True, slots=True)
class BoundAgent:
    """An agent ready to run."""

    spec: Agent
    """The agent as declared."""
    model: ModelClient
    """The client answering its model calls."""
    tools: Mapping[str, BoundTool]
    """Its tools by name."""
    tool_defs: tuple[Mapping[str, Any], ...]
    """Its tools in OpenAI `tools=` format."""
    toolsets: tuple[McpToolset, ...] = ()
    """Its tool servers, whose tools a run lists when the agent first runs
    (`engine.toolsets` binds them); not in `tools` and `tool_defs` until then."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Program:
    """A compiled spec."""

    spec: Spec
    """The spec compiled."""
    agents: Mapping[str, BoundAgent]
    """Every agent by name."""
    allowed_commands: tuple[str, ...] | None = None
    """The runtime's `--allow-command` programs (None: only the spec's `allow_commands`)."""

    @property
    def has_toolsets(self) -> bool:
        """True when an agent uses a tool server (a run then needs `engine.toolsets`)."""
        return any(a.toolsets for a in self.agents.values())


def compile_spec(
    spec: Spec,
    *,
    model_override: ModelClient | str | None = None,
    allowed_modules: Sequence[str] | None = None,
    allowed_commands: Sequence[str] | None = None,
) -> Program:
    """Bind every agent's model and tools. `model_override` replaces every agent's model: a
    client object, a model name from the spec, or `scripted:PATH`. Python tools are imported
    only from modules the spec's `allow_modules` and the caller's `allowed_modules` allow;
    stdio servers start only programs its `allow_commands` and `allowed_commands` allow."""
    search_path = str(Path(spec.path).resolve().parent) if spec.path else None
    for tool in spec.tools.values():
        if isinstance(tool, PythonTool):
            check_module_allowed(tool, spec.allow_modules, allowed_modules)
        elif isinstance(tool, McpToolset) and tool.command:
            check_command_allowed(tool, spec.allow_commands, allowed_commands)
    override = _resolve_override(spec, model_override)
    clients: dict[str, ModelClient] = {}
    tools = _bind_tools(spec, search_path)
    agents: dict[str, BoundAgent] = {}
    for name, agent in spec.agents.items():
        if override is not None:
            client = override
        else:
            if agent.model not in clients:
                clients[agent.model] = build_model(spec.models[agent.model])
            client = clients[agent.model]
        own = {t: tools[t] for t in agent.tools if t in tools}
        agents[name] = BoundAgent(
            spec=agent,
            model=client,
            tools=own,
            tool_defs=tuple(
                tool_definition(t, spec.tool_description(t.name)) for t in own.values()
            ),
            toolsets=tuple(
                t for t in (spec.tools[n] for n in agent.tools) if isinstance(t, McpToolset)
            ),
        )
    commands = tuple(allowed_commands) if allowed_commands is not None else None
    return Program(spec=spec, agents=agents, allowed_commands=commands)


def check_command_allowed(
    tool: McpToolset, spec_allows: Sequence[str], runtime_allows: Sequence[str] | None
) -> None:
    """Refuse a stdio server whose program either allowlist leaves out."""
    program = tool.command[0]
    for source, allows in (
        ("the spec's allow_commands", spec_allows),
        ("the runtime's allowed_commands (--allow-command)", runtime_allows),
    ):
        if allows and not command_allowed(program, allows):
            raise UsageError(
                f"tool {tool.name!r}: program {program!r} is not allowed by {source} "
                f"({', '.join(allows)}); allow it there, or start the server with another"
            )
    if runtime_allows is not None and not runtime_allows:
        raise UsageError(
            f"tool {tool.name!r}: the runtime allows no stdio servers (allowed_commands=[])"
        )


def check_module_allowed(
    tool: PythonTool, spec_allows: Sequence[str], runtime_allows: Sequence[str] | None
) -> None:
    """Refuse a ref from a forbidden module, or from outside either allowlist."""
    module = tool.ref.split(":", 1)[0]
    if module.split(".", 1)[0] in FORBIDDEN_MODULES:
        raise UsageError(
            f"tool {tool.name!r}: ref {tool.ref!r} comes from a module tools may never come "
            f"from ({', '.join(sorted(FORBIDDEN_MODULES))}); wrap it in a function of your own"
        )
    for source, allows in (
        ("the spec's allow_modules", spec_allows),
        ("the runtime's allowed_modules (--allow-module)", runtime_allows),
    ):
        if allows and not any(module == p or module.startswith(p + ".") for p in allows):
            raise UsageError(
                f"tool {tool.name!r}: module {module!r} is not allowed by {source} "
                f"({', '.join(allows)})"
            )
    if runtime_allows is not None and not runtime_allows:
        raise UsageError(
            f"tool {tool.name!r}: the runtime allows no python modules (allowed_modules=[])"
        )


def build_model(model: Model) -> ModelClient:
    """The client for one spec model."""
    if model.kind == "scripted":
        return ScriptedModel.from_file(model.script)
    from engine.models.openai import build_model as build_openai  # imports the HTTP stack

    return build_openai(model)


def _resolve_override(spec: Spec, override: ModelClient | str | None) -> ModelClient | None:
    if override is None or not isinstance(override, str):
        return override
    if override.startswith("scripted:"):
        return ScriptedModel.from_file(override.removeprefix("scripted:"))
    if override in spec.models:
        return build_model(spec.models[override])
    known = ", ".join(sorted(spec.models)) or "none"
    raise UsageError(
        f"unknown model {override!r}; use a model of the spec ({known}) or scripted:PATH"
    )


def _bind_tools(spec: Spec, search_path: str | None) -> dict[str, BoundTool]:
    """Every tool bound; a ref that does not import or a function that does not fit its
    parameters refuses the whole spec, with every such finding located in the spec's file."""
    tools: dict[str, BoundTool] = {}
    found: list[Diagnostic] = []
    locate = locate_in(spec.locations)
    for name, tool in spec.tools.items():
        if isinstance(tool, McpToolset):  # its tools are listed by the server at run time
            continue
        try:
            bound = _bind_tool(tool, search_path)
        except ToolRefError as exc:
            hint = f"the spec's folder ({search_path}) is searched first; check the module path"
            bad = Mismatch(code=exc.code, message=str(exc), pointer="/ref", suggestion=hint)
            found.append(located(name, bad, file=spec.path, locate=locate))
            continue
        if isinstance(bound, BoundTool):
            tools[name] = with_condition(bound)
        else:
            found.extend(located(name, m, file=spec.path, locate=locate) for m in bound)
    if found:
        raise SpecError(sort_diagnostics(found))
    return tools


def _bind_tool(
    tool: PythonTool | AgentTool | ExternalTool, search_path: str | None
) -> BoundTool | list[Mismatch]:
    if isinstance(tool, PythonTool):
        func = import_ref(tool.ref, search_path)
        if tool.parameters:
            mismatches = signature_mismatches(tool.ref, func, tool.parameters)
            parameters = tool.parameters
        else:
            try:
                parameters = infer_parameters(func)
            except (TypeError, ValueError):  # ValueError: no signature to read
                mismatches = signature_mismatches(tool.ref, func, None)
            else:
                mismatches = []
        if mismatches:
            return mismatches
        context_param = context_parameter(func)
        return BoundTool(
            spec=tool,
            parameters=parameters,
            validator=Draft202012Validator(parameters),
            func=func,
            is_async=inspect.iscoroutinefunction(func),
            context_param=context_param,
            quick_check=quick_checker(parameters),
        )
    default = AGENT_TOOL_PARAMETERS if isinstance(tool, AgentTool) else ANY_OBJECT
    assert isinstance(tool, AgentTool | ExternalTool)
    parameters = tool.parameters or default
    return BoundTool(
        spec=tool,
        parameters=parameters,
        validator=Draft202012Validator(parameters),
        quick_check=quick_checker(parameters),
    )


def with_condition(tool: BoundTool) -> BoundTool:
    """`tool` with its `approval.when` compiled, when it has one that can ask."""
    approval = tool.spec.approval
    if approval.when is None or not approval.required:
        return tool
    from engine.policy import compile_condition  # only a spec with a condition loads CEL

    try:
        condition = compile_condition(approval.when)
    except ValueError as exc:  # a spec built in Python: `callcc validate` would have said so
        raise UsageError(f"tool {tool.name!r}: approval.when: {exc}") from None
    return dataclasses.replace(tool, condition=condition)


_SCALAR: Mapping[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}
_OBJECT_KEYS = frozenset({"type", "properties", "required", "additionalProperties"})
_PROPERTY_KEYS = frozenset({"type", "enum", "description", "title"})
_DOC_KEYS = frozenset({"description", "title", "$schema"})


def quick_checker(schema: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A check of flat objects of scalar fields, ~20x faster than jsonschema; anything
    richer gets a checker that always defers to jsonschema."""
    never: Callable[[dict[str, Any]], bool] = lambda _: False  # noqa: E731
    if set(schema) - _OBJECT_KEYS - _DOC_KEYS or schema.get("type") != "object":
        return never
    properties = schema.get("properties", {})
    required = tuple(schema.get("required", ()))
    closed = schema.get("additionalProperties", True) is False
    if schema.get("additionalProperties", True) not in (True, False):
        return never
    checks: dict[str, Callable[[Any], bool]] = {}
    for name, sub in properties.items():
        if not isinstance(sub, Mapping) or set(sub) - _PROPERTY_KEYS:
            return never
        declared = sub.get("type")
        kind = _SCALAR.get(declared) if isinstance(declared, str) else None
        if kind is None:
            return never
        enum = sub.get("enum")
        if enum is not None:
            allowed = tuple(enum)
            checks[name] = lambda v, k=kind, a=allowed: k(v) and v in a  # type: ignore[misc]
        else:
            checks[name] = kind

    def check(arguments: dict[str, Any]) -> bool:
        for name in required:
            if name not in arguments:
                return False
        for name, value in arguments.items():
            test = checks.get(name)
            if test is None:
                if closed:
                    return False
            elif not test(value):
                return False
        return True

    return check


def tool_definition(tool: BoundTool, description: str) -> Mapping[str, Any]:
    """`tool` as an entry of the OpenAI `tools=` list."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": description,
            "parameters": tool.parameters,
        },
    }
