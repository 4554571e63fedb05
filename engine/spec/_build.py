"""Turn validated spec data into the frozen dataclasses of `engine.spec.model`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.spec.model import (
    DEFAULT_MAX_TOOL_CALLS,
    DEFAULT_MAX_TURNS,
    NO_APPROVAL,
    Agent,
    AgentTool,
    Approval,
    ExternalTool,
    Limits,
    McpApproval,
    McpApprovals,
    McpToolset,
    Model,
    OpenAIModel,
    PythonTool,
    ScriptedModel,
    Spec,
    SuspendRules,
    Tool,
    duration_seconds,
)


def spec_digest(raw: dict[str, Any], spec_dir: Path) -> str:
    """`sha256:` of the canonical JSON of the raw data (before env substitution).

    `instructions_file` is replaced by `instructions` holding the file's text, so the digest
    changes when the prompt changes and not when the spec moves to another machine.
    """
    agents = raw.get("agents")
    if isinstance(agents, dict):
        inlined = {}
        for name, agent in agents.items():
            if isinstance(agent, dict) and isinstance(agent.get("instructions_file"), str):
                text = (spec_dir / agent["instructions_file"]).read_text(encoding="utf-8")
                agent = {k: v for k, v in agent.items() if k != "instructions_file"}
                agent["instructions"] = text
            inlined[name] = agent
        raw = {**raw, "agents": inlined}
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def build_spec(
    data: dict[str, Any],
    *,
    path: Path,
    digest: str,
    locations: Mapping[str, tuple[int, int]] | None = None,
) -> Spec:
    """The typed spec of data that passed both validation passes (`locations`: see
    `Spec.locations`)."""
    spec_dir = path.resolve().parent
    return Spec(
        spec_version=data["spec_version"],
        name=data.get("name") or path.stem,
        path=str(path),
        entrypoint=data["entrypoint"],
        models={n: _model(n, m, spec_dir) for n, m in data.get("models", {}).items()},
        tools={n: _tool(n, t) for n, t in data.get("tools", {}).items()},
        agents={n: _agent(n, a, spec_dir) for n, a in data.get("agents", {}).items()},
        description=data.get("description", ""),
        allow_modules=tuple(data.get("allow_modules", ())),
        allow_commands=tuple(data.get("allow_commands", ())),
        digest=digest,
        locations=dict(locations or {}),
    )


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _model(name: str, data: dict[str, Any], spec_dir: Path) -> Model:
    if data["kind"] == "scripted":
        return ScriptedModel(name=name, script=str((spec_dir / data["script"]).resolve()))
    return OpenAIModel(
        name=name,
        model=data["model"],
        base_url=data.get("base_url"),
        api_key_env=data.get("api_key_env"),
        params=dict(data.get("params", {})),
        timeout=_seconds(data.get("timeout")),
        max_retries=data.get("max_retries", 2),
    )


def _approval(value: Any) -> Approval:
    if value is True:
        return Approval(required=True)
    if not isinstance(value, dict):
        return NO_APPROVAL
    expires = value.get("expires_after")
    return Approval(
        required=value.get("required", True),
        decisions=tuple(value.get("decisions", ("approve", "reject"))),
        prompt=value.get("prompt"),
        approvers=tuple(value.get("approvers", ())),
        expires_after=duration_seconds(expires) if expires is not None else None,
        expires_after_text=expires,
        when=value.get("when"),
    )


def _mcp(name: str, data: dict[str, Any]) -> McpToolset:
    overrides = data.get("approval", {}).get("tools", {})
    return McpToolset(
        name=name,
        description=data.get("description", ""),
        command=tuple(data.get("command", ())),
        url=data.get("url"),
        env=dict(data.get("env", {})),
        headers=dict(data.get("headers", {})),
        include=tuple(data.get("include", ())),
        exclude=tuple(data.get("exclude", ())),
        approval=McpApprovals(
            tools={
                tool: McpApproval(
                    required=value
                    if isinstance(value, bool)
                    else value.get("required", True if "when" in value else None),
                    approval=_approval(value),
                )
                for tool, value in overrides.items()
            }
        ),
        timeout=_seconds(data.get("timeout")),
    )


def _tool(name: str, data: dict[str, Any]) -> Tool:
    if data["kind"] == "mcp":
        return _mcp(name, data)
    common: dict[str, Any] = {
        "name": name,
        "description": data.get("description", ""),
        "parameters": data.get("parameters"),
        "timeout": _seconds(data.get("timeout")),
        "idempotent": data.get("idempotent", False),
        "approval": _approval(data.get("approval")),
    }
    if data["kind"] == "python":
        return PythonTool(ref=data["ref"], on_error=data.get("on_error", "model"), **common)
    if data["kind"] == "agent":
        return AgentTool(agent=data["agent"], **common)
    return ExternalTool(**common)


def _agent(name: str, data: dict[str, Any], spec_dir: Path) -> Agent:
    if "instructions_file" in data:
        instructions = (spec_dir / data["instructions_file"]).read_text(encoding="utf-8")
    else:
        instructions = data["instructions"]
    limits = data.get("limits", {})
    suspend = data.get("suspend", {})
    return Agent(
        name=name,
        description=data.get("description", ""),
        model=data["model"],
        instructions=instructions,
        tools=tuple(data.get("tools", ())),
        limits=Limits(
            max_turns=limits.get("max_turns", DEFAULT_MAX_TURNS),
            max_tool_calls=limits.get("max_tool_calls", DEFAULT_MAX_TOOL_CALLS),
            timeout=_seconds(limits.get("timeout")),
        ),
        suspend=SuspendRules(
            every_turns=suspend.get("every_turns"),
            after_seconds=_seconds(suspend.get("after_seconds")),
            before_tools=tuple(suspend.get("before_tools", ())),
        ),
        tool_choice=_tool_choice(data.get("tool_choice")),
    )


def _tool_choice(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
