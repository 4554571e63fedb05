"""`callcc validate` for the scripts of scripted models: located findings, like a spec's.

A script is checked against the spec that names it: its format (the first fault, as loading
it would refuse it), then every agent it scripts exists and uses this script's model, every
tool a turn calls is one of that agent's tools, every turn obeys the agent's `tool_choice`, and
every invocation key (the id of the call that starts an invocation) is the id of a call in the
script that starts that agent.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic, SpecError
from engine.models.scripted import ScriptFormatError, disobeys, parse_script
from engine.spec.load import load_spec_quietly
from engine.spec.model import Agent, AgentTool, McpToolset, ScriptedModel, Spec
from engine.spec.yamlload import YamlDoc, escape, load_yaml


def check_spec_scripts(paths: Iterable[str], found: Sequence[Diagnostic]) -> list[Diagnostic]:
    """Findings in the scripts named by each spec of `paths` that `found` holds no error for
    (a spec with errors cannot say which agents a script plays)."""
    broken = {d.file for d in found if d.severity == "error"}
    out: list[Diagnostic] = []
    for path in paths:
        if path in broken:
            continue
        spec = _quiet_load(path)
        if spec is None:
            continue
        for model in spec.models.values():
            if isinstance(model, ScriptedModel):
                out.extend(check_script(spec, model))
    return list(dict.fromkeys(out))  # two specs naming one script: each finding once


def check_script(spec: Spec, model: ScriptedModel) -> list[Diagnostic]:
    """Every finding in the script of `model`, a scripted model of `spec`."""
    file = _shown(model.script)
    try:
        doc = load_yaml(file)
    except SpecError as exc:
        return list(exc.diagnostics)
    try:
        parse_script(doc.data, file)
    except ScriptFormatError as exc:
        return [_at(doc, exc.pointer, "script-format", exc.problem, key=True)]
    agents = doc.data["agents"]
    starts = _starting_calls(spec, agents)
    out: list[Diagnostic] = []
    for name, turns in agents.items():
        where = f"/agents/{escape(str(name))}"
        agent = spec.agents.get(str(name))
        if agent is None:
            users = [a.name for a in spec.agents.values() if a.model == model.name]
            out.append(
                _at(
                    doc,
                    where,
                    "unknown-agent",
                    f"spec {spec.name!r} has no agent {name!r}",
                    _suggest(str(name), users or spec.agents, "scripted agents"),
                    key=True,
                )
            )
            continue
        if agent.model != model.name:
            out.append(
                _at(
                    doc,
                    where,
                    "agent-not-scripted",
                    f"agent {name!r} uses model {agent.model!r}, not {model.name!r} whose "
                    "script this is: these turns are never played",
                    f"set `model: {model.name}` on agent {name!r}, or remove these turns",
                    key=True,
                    severity="warning",
                )
            )
        lists = turns.items() if isinstance(turns, dict) else [(None, turns)]
        for key, items in lists:
            at = where if key is None else f"{where}/{escape(str(key))}"
            if key is not None:
                out.extend(_check_key(doc, at, str(name), str(key), starts.get(str(name), {})))
            for i, turn in enumerate(items):
                for j, call in enumerate(turn.get("tool_calls") or []):
                    out.extend(
                        _check_call(doc, f"{at}/{i}/tool_calls/{j}/name", spec, agent.name, call)
                    )
            if agent.tool_choice:
                out.extend(_check_choices(doc, at, agent, items))
    return out


def _check_choices(
    doc: YamlDoc, at: str, agent: Agent, items: list[dict[str, Any]]
) -> list[Diagnostic]:
    """Every reply turn obeys the agent's `tool_choice` for it (an `error` turn is no reply:
    the next turn answers the same model turn), as the scripted model holds it when played."""
    out: list[Diagnostic] = []
    turn_number = 0
    for i, turn in enumerate(items):
        if "error" in turn:
            continue
        choice = agent.tool_choice_at(turn_number)
        turn_number += 1
        assert choice is not None
        wrong = disobeys(choice, [c["name"] for c in turn.get("tool_calls") or []])
        if wrong:
            out.append(
                _at(
                    doc,
                    f"{at}/{i}",
                    "disobeys-tool-choice",
                    f"turn {i + 1} of agent {agent.name!r} {wrong}, but the agent's "
                    f"tool_choice for its model turn {turn_number} is {choice!r}",
                    "make the turn obey it, or change the agent's tool_choice",
                )
            )
    return out


def _check_call(
    doc: YamlDoc, pointer: str, spec: Spec, agent: str, call: dict[str, Any]
) -> list[Diagnostic]:
    tool = call["name"]
    tools = spec.agents[agent].tools
    if tool in tools or any(  # a server's tool (`SET_TOOL`): its listing is not known here
        tool.startswith(f"{name}_") and isinstance(spec.tools.get(name), McpToolset)
        for name in tools
    ):
        return []
    hint = _suggest(tool, tools, f"tools of {agent}")
    if tool in spec.tools and hint is not None and not hint.startswith("did you"):
        hint = f"add {tool!r} to `tools:` of agent {agent!r} in the spec"
    return [_at(doc, pointer, "unknown-tool", f"agent {agent!r} has no tool {tool!r}", hint)]


def _check_key(
    doc: YamlDoc, pointer: str, agent: str, key: str, starts: dict[str, str]
) -> list[Diagnostic]:
    """A key names the call that starts the invocation: by its id, or by the whole path."""
    if not starts or key.rpartition("/")[2] in starts:
        return []  # no call in this script starts the agent: its parent plays elsewhere
    return [
        _at(
            doc,
            pointer,
            "unknown-invocation",
            f"no call in this script starts agent {agent!r} with id {key!r}",
            _suggest(key, starts, "calls that start it"),
            key=True,
        )
    ]


def _starting_calls(spec: Spec, agents: dict[str, Any]) -> dict[str, dict[str, str]]:
    """agent -> {call id: calling agent} for the script's calls that start a sub-agent."""
    out: dict[str, dict[str, str]] = {}
    for caller, turns in agents.items():
        lists = turns.values() if isinstance(turns, dict) else [turns]
        for items in lists:
            for index, turn in enumerate(items):
                for j, call in enumerate(turn.get("tool_calls") or []):
                    tool = spec.tools.get(call["name"])
                    if isinstance(tool, AgentTool):
                        call_id = str(call.get("id") or f"call_{caller}_{index}_{j}")
                        out.setdefault(tool.agent, {})[call_id] = str(caller)
    return out


def _suggest(word: str, choices: Iterable[str], what: str) -> str | None:
    names = sorted(choices)
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"{what}: {', '.join(names)}" if names else None


def _at(
    doc: YamlDoc,
    pointer: str,
    code: str,
    message: str,
    suggestion: str | None = None,
    *,
    key: bool = False,
    severity: Any = "error",
) -> Diagnostic:
    return doc.diagnostic(pointer, code, message, suggestion, key=key, severity=severity)


def _shown(path: str) -> str:
    """The script's path as a person would type it: relative to here when inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _quiet_load(path: str) -> Spec | None:
    """The spec, without logging its warnings again (validate printed them)."""
    try:
        return load_spec_quietly(Path(path))
    except SpecError:
        return None


__all__ = ["check_script", "check_spec_scripts"]
