"""What a tool server's listing becomes (`kind: mcp`): the names the model sees, which tools
a toolset offers, and their approvals. Pure functions over listings: no transport, no run.

Names. The model sees a server's tool `TOOL` of the toolset `SET` (its key under `tools:`)
as `SET_TOOL`, every character outside `[a-zA-Z0-9_-]` replaced by `_`; a name longer than 64
characters keeps its first 55 and gets `_` and 8 hex digits of the SHA-256 of `SET_TOOL`
(`model_name`). Two tools of one agent under one name (two servers, or a server and a tool
of the spec) are a located error at the toolset's line, when the listing is known: at
`callcc validate --resolve`, or when the run first lists the server.

Approval (`approval_of`). An override under the toolset's `approval.tools` that says
`required` wins; otherwise the server's annotations decide, as the MCP specification reads
them: `readOnlyHint: true` runs at once, anything else waits for a person (`destructiveHint`
defaults to true), and the pending entry's `detail` says why. `idempotentHint: true` makes the
tool `idempotent`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from engine._canonical import fingerprint
from engine.compile import BoundTool, quick_checker, with_condition
from engine.errors import Diagnostic
from engine.spec.model import Approval, McpTool, McpToolset, Spec
from engine.spec.yamlload import escape

__all__ = [
    "MAX_NAME",
    "RemoteTool",
    "approval_of",
    "collisions",
    "expand",
    "located",
    "model_name",
    "selected",
]

MAX_NAME = 64
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteTool:
    """One tool as a server lists it, transport aside."""

    name: str
    """Its name on the server."""
    description: str
    """The server's description."""
    input_schema: Mapping[str, Any]
    """JSON Schema of its arguments."""
    annotations: Mapping[str, Any]
    """`readOnlyHint`, `destructiveHint`, `idempotentHint`, ... as the server gives them."""

    @property
    def fingerprint(self) -> str:
        """`sha256:` of its name, input schema and annotations (what a call was made for)."""
        return "sha256:" + fingerprint(self.name, self.input_schema, self.annotations)


def model_name(toolset: str, tool: str) -> str:
    """The name the model sees for `tool` of `toolset` (see the module docstring)."""
    raw = f"{toolset}_{tool}"
    name = _UNSAFE.sub("_", raw)
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def selected(toolset: McpToolset, tools: Iterable[RemoteTool]) -> list[RemoteTool]:
    """The tools `include` and `exclude` leave, in the server's order."""
    return [
        t
        for t in tools
        if (not toolset.include or _matches(t.name, toolset.include))
        and not _matches(t.name, toolset.exclude)
    ]


def approval_of(toolset: McpToolset, tool: RemoteTool) -> tuple[Approval, str | None, bool]:
    """The tool's approval, why it waits (None: it does not, or the spec says so), and
    whether it is idempotent (see the module docstring)."""
    hints = tool.annotations
    override = next(
        (o for p, o in toolset.approval.tools.items() if fnmatch.fnmatchcase(tool.name, p)), None
    )
    idempotent = hints.get("idempotentHint") is True
    base = override.approval if override is not None else Approval()
    if override is not None and override.required is not None:
        asks = override.required and override.approval.when is None  # else: the condition says
        why = f"the spec requires approval for {tool.name}" if asks else None
        return dataclasses.replace(base, required=override.required), why, idempotent
    if hints.get("readOnlyHint") is True:
        return dataclasses.replace(base, required=False), None, idempotent
    destructive = hints.get("destructiveHint")
    if destructive is True:
        why = f"the server marks {tool.name} as destructive"
    elif destructive is None:
        why = (
            f"the server does not mark {tool.name} as read-only, so it counts as destructive "
            "(the MCP default)"
        )
    else:
        why = f"the server does not mark {tool.name} as read-only (it may change things)"
    return dataclasses.replace(base, required=True), why, idempotent


def expand(toolset: McpToolset, tools: Iterable[RemoteTool]) -> list[BoundTool]:
    """The bound tools of a server's listing, as the model sees them."""
    out: list[BoundTool] = []
    for tool in selected(toolset, tools):
        approval, why, idempotent = approval_of(toolset, tool)
        parameters = dict(tool.input_schema) or {"type": "object"}
        out.append(
            with_condition(
                BoundTool(
                    spec=McpTool(
                        name=model_name(toolset.name, tool.name),
                        description=tool.description,
                        server=toolset.name,
                        remote=tool.name,
                        timeout=toolset.timeout,
                        idempotent=idempotent,
                        approval=approval,
                    ),
                    parameters=parameters,
                    validator=Draft202012Validator(parameters),
                    approval_detail=why,
                    quick_check=quick_checker(parameters),
                )
            )
        )
    return out


def collisions(
    spec: Spec, static: Iterable[str], listed: Mapping[str, list[BoundTool]]
) -> list[Diagnostic]:
    """A located error per model-visible name two tools of one agent share."""
    owner: dict[str, str] = {name: f"tool '{name}' of the spec" for name in static}
    found: list[Diagnostic] = []
    for server, tools in listed.items():
        for tool in tools:
            assert isinstance(tool.spec, McpTool)
            mine = f"tool '{tool.spec.remote}' of server '{server}'"
            other = owner.setdefault(tool.name, mine)
            if other == mine:
                continue
            pointer = f"/tools/{escape(server)}"
            line, col = spec.locations.get(pointer, (1, 1))
            found.append(
                Diagnostic(
                    code="tool-name-collision",
                    message=f"the model would see {mine} and {other} under one name, '{tool.name}'",
                    file=spec.path,
                    line=line,
                    col=col,
                    pointer=pointer,
                    suggestion=f"rename the toolset '{server}', or exclude "
                    f"'{tool.spec.remote}' with `exclude:`",
                )
            )
    return found


def located(spec: Spec, pointer: str, code: str, message: str, hint: str | None) -> Diagnostic:
    line, col = spec.locations.get(pointer, (1, 1))
    return Diagnostic(
        code=code,
        message=message,
        file=spec.path,
        line=line,
        col=col,
        pointer=pointer,
        suggestion=hint,
    )
