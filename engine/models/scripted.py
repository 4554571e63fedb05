"""A deterministic model that plays a script of turns: for tests, demos and benchmarks.

The script is YAML (or the same data in Python)::

    script_version: 1
    agents:
      hr_agent:                          # a list: every invocation plays it from the start
        - tool_calls:
            - {id: call_1, name: account_agent, arguments: {request: "..."}}
            - {id: call_2, name: account_agent, arguments: {request: "..."}}
        - text: "Done."
          usage: {input_tokens: 812, output_tokens: 9}   # optional: what a server reports
      account_agent:                     # a mapping: one list per invocation, keyed by the
        call_1:                          # id of the call that started it (or by the whole
          - text: "..."                  # invocation path, `/call_1/call_7`, when call ids
            finish_reason: length        # repeat across the stack); anything but stop fails
        call_2:
          - error: {message: "rate limited", transient: true}

Which turn answers a call is a function of the request alone: turn number `request.attempt`
(the model calls this agent invocation made before) of the list for the requesting agent and
invocation (`request.path`). So a resume in a fresh process plays on exactly where the
suspended run stopped. A call beyond the script fails the run loudly; `unused()` lists turns
never played. A turn's optional `usage` is reported as a server reports token usage, so runs
without HTTP count tokens too (`engine.usage`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from engine.errors import ModelError, ScriptError, UsageError
from engine.models.base import ModelReply, ModelRequest, ToolCall


class ScriptFormatError(UsageError):
    """The script file is malformed; `pointer` is the JSON pointer of the fault in it."""

    def __init__(self, source: str, problem: str, *, pointer: str = "") -> None:
        self.source = source
        """The script file (or `<script>`)."""
        self.problem = problem
        """What is wrong, without the location."""
        self.pointer = pointer
        """JSON pointer of the offending node (`""` for the whole script)."""
        where = f" at {pointer}" if pointer else ""
        super().__init__(f"{source}{where}: {problem}")


@dataclass(frozen=True, kw_only=True, slots=True)
class _ErrorTurn:
    message: str
    transient: bool


Turn: TypeAlias = ModelReply | _ErrorTurn
Turns: TypeAlias = Sequence[Turn] | Mapping[str, Sequence[Turn]]
"""One agent's script: one list for every invocation, or one list per invocation key."""


class ScriptedModel:
    """Plays `turns[agent][request.attempt]` (or `turns[agent][invocation][request.attempt]`)
    for every request."""

    name = "scripted"
    """What run events and traces name as the model."""
    provider = "scripted"
    """What run events and traces name as the provider."""

    def __init__(self, turns: Mapping[str, Turns], *, source: str):
        self._turns: dict[str, list[Turn] | dict[str, list[Turn]]] = {
            agent: {k: list(v) for k, v in items.items()}
            if isinstance(items, Mapping)
            else list(items)
            for agent, items in turns.items()
        }
        self._source = source
        self._served: set[tuple[str, str | None, int]] = set()
        self.calls = 0
        """Model calls answered by this object (in this process)."""

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedModel:
        """Load a script file."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScriptFormatError(str(file), f"cannot read the script: {exc}") from None
        return cls.from_data(_load_yaml(text, str(file)), source=str(file))

    @classmethod
    def from_data(cls, data: Any, *, source: str = "<script>") -> ScriptedModel:
        """Build from plain data shaped like the script file."""
        return cls(parse_script(data, source), source=source)

    async def complete(self, request: ModelRequest) -> ModelReply:
        """The scripted turn for this request, or a loud failure past the script's end."""
        return self.reply(request)

    def reply(self, request: ModelRequest) -> ModelReply:
        """Synchronous core of `complete`."""
        scripted = self._turns.get(request.agent)
        if scripted is None:
            known = ", ".join(sorted(self._turns)) or "none"
            raise ScriptError(
                f"scripted model {self._source} has no turns for agent {request.agent!r} "
                f"(scripted agents: {known}); add `agents: {{{request.agent}: [...]}}`"
            )
        key, turns = self._invocation(request, scripted)
        if request.attempt >= len(turns):
            label = _label(request, key)
            raise ScriptError(
                f"scripted model {self._source} was asked for turn {request.attempt + 1} of "
                f"{label} but the script has only {len(turns)}; "
                "add a turn or check why the agent kept going"
            )
        self._served.add((request.agent, key, request.attempt))
        self.calls += 1
        turn = turns[request.attempt]
        if isinstance(turn, _ErrorTurn):
            raise ModelError(turn.message, transient=turn.transient, model="scripted")
        if request.tool_choice is not None:
            self._check_choice(turn, request, _label(request, key))
        return turn

    def _check_choice(self, turn: ModelReply, request: ModelRequest, label: str) -> None:
        """A server told which tool to call obeys: so must the script's turn (else the
        script tests a run no real model would make)."""
        assert request.tool_choice is not None
        wrong = disobeys(request.tool_choice, [c.name for c in turn.tool_calls])
        if wrong:
            raise ScriptError(
                f"scripted model {self._source}: turn {request.attempt + 1} of {label} "
                f"{wrong}, but the agent's tool_choice for this turn is "
                f"{request.tool_choice!r}; make the turn obey it, or change the agent's "
                "tool_choice"
            )

    def _invocation(
        self, request: ModelRequest, scripted: list[Turn] | dict[str, list[Turn]]
    ) -> tuple[str | None, list[Turn]]:
        if isinstance(scripted, list):
            return None, scripted
        for key in (request.path, request.parent_call or ""):
            if key in scripted:
                return key, scripted[key]
        started = f"call {request.parent_call!r}" if request.parent_call else "the run itself"
        raise ScriptError(
            f"scripted model {self._source} has no turns for the invocation of agent "
            f"{request.agent!r} that {started} started (path {request.path or '/'!r}; scripted "
            f"invocations: {', '.join(sorted(scripted)) or 'none'}); add "
            f"`{request.agent}: {{{request.parent_call or ''}: [...]}}`"
        )

    def unused(self) -> list[str]:
        """Turns never played, as `agent[index]` (or `agent[invocation][index]`).

        Only what this object saw counts: for an invocation it served, every turn after the
        last one served is unused (earlier ones may have been played by the process that
        started the run); one it never served counts whole.
        """
        out: list[str] = []
        for agent, scripted in sorted(self._turns.items()):
            lists = [(None, scripted)] if isinstance(scripted, list) else sorted(scripted.items())
            for key, turns in lists:
                served = [i for a, k, i in self._served if a == agent and k == key]
                start = max(served) + 1 if served else 0
                label = agent if key is None else f"{agent}[{key}]"
                out.extend(f"{label}[{i}]" for i in range(start, len(turns)))
        return out


_FAST_LOADER: type[Any] | None = getattr(yaml, "CSafeLoader", None)
"""libyaml's loader, when PyYAML was built with it: a 1,000-turn script loads in a fifth of
the pure-Python loader's time, into the same data."""


def disobeys(choice: str, names: Sequence[str]) -> str:
    """How a turn calling the tools `names` disobeys `tool_choice` `choice` (`calls no
    tool`), or `""` when it obeys."""
    if choice == "auto":
        return ""
    if choice == "none":
        return "calls tools" if names else ""
    if choice == "required":
        return "" if names else "calls no tool"
    if names and set(names) == {choice}:
        return ""
    return f"calls {', '.join(names)}" if names else "calls no tool"


def _load_yaml(text: str, source: str) -> Any:
    """The script's data. libyaml reads it when present; should it refuse the text, the
    pure-Python loader reads it again, so a script it accepts still loads and a broken one
    fails with the words and the line and column the pure loader gives (`callcc validate`
    locates the faults in a script's data: engine.models.script_check)."""
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # CSafeLoader: builds plain data only
        except yaml.YAMLError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScriptFormatError(source, f"not valid YAML: {exc}") from None


def parse_script(data: Any, source: str) -> dict[str, list[Turn] | dict[str, list[Turn]]]:
    """The turns of script data, refusing the first fault with its JSON pointer."""
    if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
        raise ScriptFormatError(source, "expected a mapping with `agents:`")
    if data.get("script_version", 1) != 1:
        raise ScriptFormatError(
            source, "unsupported script_version; expected 1", pointer="/script_version"
        )
    unknown = sorted(set(data) - {"script_version", "agents"})
    if unknown:
        raise ScriptFormatError(
            source, f"unknown key {unknown[0]!r}; a script has script_version and agents"
        )
    turns: dict[str, list[Turn] | dict[str, list[Turn]]] = {}
    for agent, items in data["agents"].items():
        where = f"/agents/{_escape(str(agent))}"
        if isinstance(items, dict):
            turns[str(agent)] = {
                str(key): _parse_list(value, source, f"{where}/{_escape(str(key))}", str(agent))
                for key, value in items.items()
            }
        elif isinstance(items, list):
            turns[str(agent)] = _parse_list(items, source, where, str(agent))
        else:
            raise ScriptFormatError(
                source,
                "expected a list of turns, or a mapping from the id of the call that "
                "started an invocation to its list of turns",
                pointer=where,
            )
    return turns


def _parse_list(items: Any, source: str, where: str, agent: str) -> list[Turn]:
    if not isinstance(items, list):
        raise ScriptFormatError(source, "expected a list of turns", pointer=where)
    return [_parse_turn(item, source, f"{where}/{i}", agent, i) for i, item in enumerate(items)]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _parse_turn(item: Any, source: str, where: str, agent: str, index: int) -> Turn:
    def fail(problem: str, pointer: str = where) -> ScriptFormatError:
        return ScriptFormatError(source, problem, pointer=pointer)

    if not isinstance(item, dict):
        raise fail("expected a mapping with text, tool_calls or error")
    unknown = set(item) - {"text", "tool_calls", "finish_reason", "usage", "error"}
    if unknown:
        raise fail(
            f"unknown key {sorted(unknown)[0]!r}; a turn has text, tool_calls, "
            "finish_reason, usage or error",
            f"{where}/{_escape(sorted(unknown)[0])}",
        )
    if "error" in item:
        error = item["error"]
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            raise fail("error needs {message: text, transient: bool}", f"{where}/error")
        return _ErrorTurn(message=error["message"], transient=bool(error.get("transient", True)))
    calls: list[ToolCall] = []
    raw_calls = item.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise fail("tool_calls must be a list of {id, name, arguments}", f"{where}/tool_calls")
    for j, call in enumerate(raw_calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise fail("expected {id, name, arguments}", f"{where}/tool_calls/{j}")
        arguments = call.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call_id = str(call.get("id") or f"call_{agent}_{index}_{j}")
        calls.append(ToolCall(id=call_id, name=call["name"], arguments=text))
    text_value = item.get("text")
    if text_value is not None and not isinstance(text_value, str):
        raise fail("text must be a string", f"{where}/text")
    if text_value is None and not calls:
        raise fail("a turn needs text or tool_calls")
    finish = item.get("finish_reason") or ("tool_calls" if calls else "stop")
    return ModelReply(
        content=text_value,
        tool_calls=tuple(calls),
        finish_reason=str(finish),
        usage=_usage(item.get("usage"), fail, f"{where}/usage"),
    )


def _usage(raw: Any, fail: Any, where: str) -> dict[str, int]:
    """A turn's `usage: {input_tokens, output_tokens}`, reported as an OpenAI-compatible
    server reports it (`prompt_tokens`, `completion_tokens`, `total_tokens`)."""
    if raw is None:
        return {}
    names = {"input_tokens", "output_tokens"}
    if (
        not isinstance(raw, dict)
        or not set(raw) <= names
        or any(type(v) is not int or v < 0 for v in raw.values())
    ):
        raise fail("usage needs {input_tokens: N, output_tokens: N} (whole numbers)", where)
    spent_in, spent_out = raw.get("input_tokens", 0), raw.get("output_tokens", 0)
    return {
        "prompt_tokens": spent_in,
        "completion_tokens": spent_out,
        "total_tokens": spent_in + spent_out,
    }


def _label(request: ModelRequest, key: str | None) -> str:
    """The invocation a script error names: the agent, and the call that started it."""
    return f"agent {request.agent!r}" + (f" invoked by {key!r}" if key else "")
