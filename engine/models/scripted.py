"""A deterministic model that plays a script of turns: for tests, demos and benchmarks.

The script is YAML (or the same data in Python)::

    script_version: 1
    agents:
      hr_agent:
        - tool_calls:
            - {id: call_1, name: account_agent, arguments: {request: "..."}}
        - text: "Done."
      account_agent:
        - text: "..."
          finish_reason: length          # optional; anything but stop makes the run fail
        - error: {message: "rate limited", transient: true}

Which turn answers a call is a function of the request alone: turn number `request.attempt`
(the model calls this agent invocation made before) of the requesting agent's list. So a
resume in a fresh process plays on exactly where the suspended run stopped, and every
invocation of an agent starts at its first turn. A call beyond the script fails the run
loudly; `unused()` lists turns never played.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ModelError, ScriptError, UsageError
from engine.models.base import ModelReply, ModelRequest, ToolCall


class ScriptFormatError(UsageError):
    """The script file is malformed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _ErrorTurn:
    message: str
    transient: bool


class ScriptedModel:
    """Plays `turns[agent][request.attempt]` for every request."""

    def __init__(self, turns: Mapping[str, Sequence[ModelReply | _ErrorTurn]], *, source: str):
        self._turns = {agent: list(items) for agent, items in turns.items()}
        self._source = source
        self._served: set[tuple[str, int]] = set()
        self.calls = 0
        """Model calls answered by this object (in this process)."""

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedModel:
        """Load a script file."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScriptFormatError(f"{file}: cannot read the script: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScriptFormatError(f"{file}: not valid YAML: {exc}") from None
        return cls.from_data(data, source=str(file))

    @classmethod
    def from_data(cls, data: Any, *, source: str = "<script>") -> ScriptedModel:
        """Build from plain data shaped like the script file."""
        if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
            raise ScriptFormatError(f"{source}: expected a mapping with `agents:`")
        if data.get("script_version", 1) != 1:
            raise ScriptFormatError(f"{source}: unsupported script_version; expected 1")
        turns: dict[str, list[ModelReply | _ErrorTurn]] = {}
        for agent, items in data["agents"].items():
            if not isinstance(items, list):
                raise ScriptFormatError(f"{source}: agents.{agent}: expected a list of turns")
            turns[str(agent)] = [
                _parse_turn(item, f"{source}: agents.{agent}[{i}]", str(agent), i)
                for i, item in enumerate(items)
            ]
        return cls(turns, source=source)

    async def complete(self, request: ModelRequest) -> ModelReply:
        """The scripted turn for this request, or a loud failure past the script's end."""
        return self.reply(request)

    def reply(self, request: ModelRequest) -> ModelReply:
        """Synchronous core of `complete`."""
        turns = self._turns.get(request.agent)
        if turns is None:
            scripted = ", ".join(sorted(self._turns)) or "none"
            raise ScriptError(
                f"scripted model {self._source} has no turns for agent {request.agent!r} "
                f"(scripted agents: {scripted}); add `agents: {{{request.agent}: [...]}}`"
            )
        if request.attempt >= len(turns):
            raise ScriptError(
                f"scripted model {self._source} was asked for turn {request.attempt + 1} of "
                f"agent {request.agent!r} but the script has only {len(turns)}; "
                "add a turn or check why the agent kept going"
            )
        self._served.add((request.agent, request.attempt))
        self.calls += 1
        turn = turns[request.attempt]
        if isinstance(turn, _ErrorTurn):
            raise ModelError(turn.message, transient=turn.transient, model="scripted")
        return turn

    def unused(self) -> list[str]:
        """Turns never played, as `agent[index]`.

        Only what this object saw counts: for an agent it served, every turn after the
        last one served is unused (earlier ones may have been played by the process that
        started the run); an agent it never served counts whole.
        """
        out: list[str] = []
        for agent, turns in sorted(self._turns.items()):
            served = [i for a, i in self._served if a == agent]
            start = max(served) + 1 if served else 0
            out.extend(f"{agent}[{i}]" for i in range(start, len(turns)))
        return out


def _parse_turn(item: Any, where: str, agent: str, index: int) -> ModelReply | _ErrorTurn:
    if not isinstance(item, dict):
        raise ScriptFormatError(f"{where}: expected a mapping with text, tool_calls or error")
    unknown = set(item) - {"text", "tool_calls", "finish_reason", "error"}
    if unknown:
        raise ScriptFormatError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if "error" in item:
        error = item["error"]
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            raise ScriptFormatError(f"{where}: error needs {{message: text, transient: bool}}")
        return _ErrorTurn(message=error["message"], transient=bool(error.get("transient", True)))
    calls: list[ToolCall] = []
    for j, call in enumerate(item.get("tool_calls") or []):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ScriptFormatError(f"{where}.tool_calls[{j}]: expected {{name, arguments}}")
        arguments = call.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call_id = str(call.get("id") or f"call_{agent}_{index}_{j}")
        calls.append(ToolCall(id=call_id, name=call["name"], arguments=text))
    text_value = item.get("text")
    if text_value is not None and not isinstance(text_value, str):
        raise ScriptFormatError(f"{where}: text must be a string")
    if text_value is None and not calls:
        raise ScriptFormatError(f"{where}: a turn needs text or tool_calls")
    finish = item.get("finish_reason") or ("tool_calls" if calls else "stop")
    return ModelReply(content=text_value, tool_calls=tuple(calls), finish_reason=str(finish))
