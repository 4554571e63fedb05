"""Small builders for interpreter tests: specs as dataclasses, scripts as data, checked runs.

Specs are built in Python (not YAML) so each test shows the whole agent it runs. Their `path`
is a (virtual) file inside tests/, so refs like `loop_tools:transfer` import the recording tools
of `tests/loop_tools.py`. Every continuation that passes through `run`/`resume` here is checked
against the schema of its version (`schema/continuation.v2.schema.json` for what callcc writes)
and must survive a JSON round trip unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from engine.continuation import SUPPORTED_VERSIONS, VERSION, Continuation
from engine.models.scripted import ScriptedModel as ScriptedClient
from engine.runtime import Failed, Finished, Outcome, Runtime, Stopped, Suspended
from engine.spec.model import (
    Agent,
    AgentTool,
    Approval,
    Limits,
    OnError,
    PythonTool,
    ScriptedModel,
    Spec,
    SuspendRules,
    Tool,
)
from engine.spec.schema import continuation_schema_name

TESTS = Path(__file__).parent
ROOT = TESTS.parent
VIRTUAL_SPEC = str(TESTS / "virtual.yaml")
SCHEMA_PATH = ROOT / "schema" / "continuation.v2.schema.json"
"""The schema of the documents callcc writes (version 2)."""
DIGEST = "sha256:test"


# -- tools ---------------------------------------------------------------------------------


def python_tool(
    name: str,
    *,
    ref: str | None = None,
    approval: Approval | None = None,
    on_error: OnError = "model",
) -> Tool:
    """A python tool from tests/loop_tools.py (`ref` defaults to `loop_tools:<name>`);
    `on_error="suspend"` for a test of the `error` entry a person decides on."""
    return PythonTool(
        name=name,
        description=f"the {name} test tool",
        ref=ref or f"loop_tools:{name}",
        approval=approval or Approval(),
        on_error=on_error,
    )


def gated(name: str, *decisions: str, on_error: OnError = "model") -> Tool:
    """A python tool whose every call waits for approval (`approve, reject` by default)."""
    kinds: Any = tuple(decisions) or ("approve", "reject")
    return python_tool(name, approval=Approval(required=True, decisions=kinds), on_error=on_error)


def sub_agent(name: str) -> Tool:
    """A tool named like the agent it runs."""
    return AgentTool(name=name, description=f"delegate to {name}", agent=name)


# -- agents and specs ----------------------------------------------------------------------


def agent(
    name: str,
    *tools: str,
    limits: Limits | None = None,
    suspend: SuspendRules | None = None,
) -> Agent:
    """An agent on the scripted model with the named tools."""
    return Agent(
        name=name,
        description=f"test agent {name}",
        model="scripted",
        instructions=f"You are {name}.",
        tools=tools,
        limits=limits or Limits(),
        suspend=suspend or SuspendRules(),
    )


def make_spec(agents: Iterable[Agent], tools: Iterable[Tool] = (), *, name: str = "test") -> Spec:
    """A spec whose entrypoint is the first agent."""
    agent_list = list(agents)
    return Spec(
        spec_version=1,
        name=name,
        path=VIRTUAL_SPEC,
        entrypoint=agent_list[0].name,
        models={"scripted": ScriptedModel(name="scripted", script=str(TESTS / "unused.yaml"))},
        tools={t.name: t for t in tools},
        agents={a.name: a for a in agent_list},
        digest=DIGEST,
    )


# -- scripts -------------------------------------------------------------------------------


def call(call_id: str, name: str, arguments: Any = None) -> dict[str, Any]:
    """One scripted tool call; `arguments` may be a dict or raw (possibly broken) JSON text."""
    return {"id": call_id, "name": name, "arguments": {} if arguments is None else arguments}


def calls(*items: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    """A scripted turn calling tools (with optional text beside them)."""
    turn: dict[str, Any] = {"tool_calls": list(items)}
    if text is not None:
        turn["text"] = text
    return turn


def say(text: str, **extra: Any) -> dict[str, Any]:
    """A scripted turn answering with text."""
    return {"text": text, **extra}


def script(turns: Mapping[str, list[dict[str, Any]]]) -> ScriptedClient:
    """A scripted model from `{agent: [turn, ...]}`."""
    return ScriptedClient.from_data({"script_version": 1, "agents": dict(turns)})


def runtime(spec: Spec, turns: Mapping[str, list[dict[str, Any]]]) -> Runtime:
    """A runtime whose every agent plays `turns`."""
    return Runtime(spec, model_override=script(turns))


# -- transcripts ---------------------------------------------------------------------------


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str = "", *tool_calls: tuple[str, str, Any]) -> dict[str, Any]:
    """The assistant message the loop records; `tool_calls` are `(id, name, arguments)`."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for call_id, name, args in tool_calls
        ]
    return message


def tool_result(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


# -- checked runs --------------------------------------------------------------------------


@cache
def continuation_validator(version: int = 2) -> Draft202012Validator:
    """The validator of `schema/continuation.v<version>.schema.json`."""
    path = ROOT / "schema" / continuation_schema_name(version)
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(data: Any) -> list[str]:
    """What the schema of the version `data` says it is (`version`) finds wrong with it."""
    version = data.get("version") if isinstance(data, dict) else None
    assert version in SUPPORTED_VERSIONS, f"no schema for version {version!r}"
    errors = sorted(continuation_validator(version).iter_errors(data), key=lambda e: e.json_path)
    return [f"{e.json_path}: {e.message}" for e in errors]


def check_document(continuation: Continuation) -> Continuation:
    """Fail unless the document fits the schema of the version it says it is (callcc writes
    version 2) and survives a JSON round trip unchanged."""
    data = json.loads(continuation.to_json())
    assert data["version"] == VERSION
    errors = schema_errors(data)
    assert not errors, "\n".join(errors)
    again = Continuation.from_json(continuation.to_json())
    assert again.to_json() == continuation.to_json()
    return continuation


def as_version_1(data: Any) -> Any:
    """Plain data (a document, or anything a run store keeps: frame states, snapshots,
    patches) as the release before version 2 wrote it: `version: 1` at the top of a
    document and no `limit` on `turn_limit` entries. A copy; `data` is not changed."""
    if isinstance(data, list):
        return [as_version_1(item) for item in data]
    if not isinstance(data, dict):
        return data
    out = {k: as_version_1(v) for k, v in data.items()}
    if out.get("reason") == "turn_limit":
        out.pop("limit", None)
    if out.get("format") == "callcc.continuation":
        out["version"] = 1
    return out


def _checked(outcome: Outcome) -> Outcome:
    if isinstance(outcome, Suspended | Failed):
        check_document(outcome.continuation)
    return outcome


def run(rt: Runtime, prompt: str = "go", **kwargs: Any) -> Outcome:
    """`rt.run`, checking any continuation it returns."""
    return _checked(rt.run(prompt, **kwargs))


def resume(rt: Runtime, continuation: Continuation, **kwargs: Any) -> Outcome:
    """`rt.resume`, checking the document resumed and any continuation returned."""
    check_document(continuation)
    return _checked(rt.resume(continuation, **kwargs))


def suspended(outcome: Outcome) -> Continuation:
    """The continuation of a suspended outcome (fails the test otherwise)."""
    assert isinstance(outcome, Suspended), outcome
    return outcome.continuation


def finished(outcome: Outcome) -> Finished:
    """The finished outcome (fails the test otherwise)."""
    assert isinstance(outcome, Finished), outcome
    return outcome


def stopped(outcome: Outcome) -> Stopped:
    """The outcome of a run a `stop` decision ended (fails the test otherwise)."""
    assert isinstance(outcome, Stopped), outcome
    return outcome


def failed(outcome: Outcome) -> Failed:
    """The failed outcome (fails the test otherwise)."""
    assert isinstance(outcome, Failed), outcome
    return outcome


def pending_ids(continuation: Continuation) -> list[str]:
    """Paths of what the continuation waits on, in stack order."""
    return [p.path for p in continuation.pending()]


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON document (iterative)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(json.loads(text), 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in value)
    return deepest


# -- a small spec on disk, for CLI tests -----------------------------------------------------

BANK_YAML = """\
spec_version: 1
name: bank
allow_modules: [loop_tools]
models:
  scripted: {kind: scripted, script: bank.script.yaml}
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {required: true, decisions: [approve, edit, reject]}
agents:
  bank:
    description: Moves money.
    model: scripted
    instructions: Move money when asked.
    tools: [transfer]
entrypoint: bank
"""
BANK_SCRIPT = """\
script_version: 1
agents:
  bank:
    - tool_calls:
        - {id: t1, name: transfer, arguments: {to: bob, amount: 5}}
    - text: Sent 5 to bob.
"""


def write_bank(folder: Path) -> Path:
    """The bank spec above and its script in `folder`; the spec's path (transfer waits for
    approval, allowing approve, edit and reject)."""
    (folder / "bank.script.yaml").write_text(BANK_SCRIPT, encoding="utf-8")
    path = folder / "bank.yaml"
    path.write_text(BANK_YAML, encoding="utf-8")
    return path
