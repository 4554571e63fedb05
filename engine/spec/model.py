"""The typed, immutable spec: the only form of a spec that later layers ever see.

Built by `engine.spec.load_spec` after the JSON Schema and the semantic checks passed, so every
reference in it is known to resolve. Field names mirror the YAML keys one to one (a parity test
holds the schema and these dataclasses to the same set of fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

DecisionKind: TypeAlias = Literal["approve", "edit", "reject"]
OnError: TypeAlias = Literal["model", "suspend", "fail"]
"""What a python tool's exception does: the model reads it (and may correct itself), a
person decides (`error` entry), or the run fails."""
TOOL_CHOICES = ("auto", "required", "none")
"""The `tool_choice` words; any other item names one of the agent's tools."""

DEFAULT_MAX_TURNS = 100
"""Model turns an agent may take per invocation when `limits.max_turns` is absent."""
DEFAULT_MAX_TOOL_CALLS = 1000
"""Tool calls an agent may make per invocation when `limits.max_tool_calls` is absent."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenAIModel:
    """A model behind any OpenAI-compatible Chat Completions endpoint."""

    kind: Literal["openai"] = "openai"
    name: str
    """The key under `models:`."""
    model: str
    """The model id sent to the server, e.g. `gpt-4o-mini`."""
    base_url: str | None = None
    """Server root such as `http://127.0.0.1:8080/v1`; the OpenAI default when absent."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (the key itself is never stored)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Extra request parameters, such as `temperature` or `max_tokens`."""
    timeout: float | None = None
    """Seconds per request before the client gives up."""
    max_retries: int = 2
    """Retries the client makes on transient failures before the run suspends with `error`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ScriptedModel:
    """A deterministic script of model turns, for tests and demos."""

    kind: Literal["scripted"] = "scripted"
    name: str
    """The key under `models:`."""
    script: str
    """Absolute path of the script file (written relative to the spec)."""


Model: TypeAlias = OpenAIModel | ScriptedModel


@dataclass(frozen=True, kw_only=True, slots=True)
class Approval:
    """Whether a tool call waits for a person, and what that person may decide."""

    required: bool = False
    """True: every call of the tool suspends the run until decided. False still gives the
    decisions, prompt, approvers and expiry of the calls a python tool asks about itself
    (`engine.NeedsApproval`)."""
    decisions: tuple[DecisionKind, ...] = ("approve", "reject")
    """What the reviewer may do with a call."""
    prompt: str | None = None
    """Text shown to the reviewer; `{{ args.NAME }}` inserts an argument. Without it the
    reviewer is asked "Run TOOL with these arguments?" (`engine.tooling.approval_question`)."""
    approvers: tuple[str, ...] = ()
    """Who may decide: role names or user names (`callcc serve`); empty: any approver."""
    expires_after: float | None = None
    """Seconds a call may wait for a decision before it is rejected (`engine.inbox`); None:
    it waits as long as it takes."""
    when: str | None = None
    """A CEL condition (`engine.policy`): with one, a call waits only when it holds (or cannot
    be evaluated); None: every call waits (when `required`)."""
    expires_after_text: str | None = field(default=None, compare=False)
    """`expires_after` as the spec wrote it (`24h`), for the reason an expired call is
    rejected with (`expiry_reason`); not a YAML field of its own."""

    def expiry_reason(self) -> str:
        """The reason a call of this tool that nobody decided in time is rejected with."""
        return expiry_reason(self.expires_after_text or f"{self.expires_after or 0:g}s")


NO_APPROVAL = Approval()

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
"""The units of a duration such as `approval.expires_after: 24h`, in seconds."""


def duration_seconds(text: str) -> float:
    """The seconds of a duration the schema accepted (`30s`, `30m`, `24h`, `7d`)."""
    return float(int(text[:-1]) * DURATION_UNITS[text[-1]])


def expiry_reason(written: str) -> str:
    """What the model reads about a call nobody decided within `written` (`24h`)."""
    return f"expired: no decision within {written}"


@dataclass(frozen=True, kw_only=True, slots=True)
class PythonTool:
    """A tool implemented by an importable Python callable."""

    kind: Literal["python"] = "python"
    name: str
    """The key under `tools:`; the function name the model sees."""
    description: str
    """What the tool does, for the model."""
    ref: str
    """`package.module:function`."""
    parameters: Mapping[str, Any] | None = None
    """JSON Schema of the arguments; inferred from the signature when absent."""
    timeout: float | None = None
    """Seconds a call may take before it fails with a timeout."""
    idempotent: bool = False
    """True when running a call twice has the effect of running it once."""
    approval: Approval = NO_APPROVAL
    """Whether calls wait for a person (and, for a tool that asks itself by raising
    `engine.NeedsApproval`, what that person may decide)."""
    on_error: OnError = "model"
    """What an exception (or the timeout) of a call does: `model` (the model reads the error
    as the call's result), `suspend` (a person decides: `error` entry) or `fail` (the run
    fails). A process that died mid-call is no tool error: that call always waits for a
    person unless the tool is idempotent; under `model` so does the timeout of a tool that is
    not idempotent (it may still be running, or have taken effect)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentTool:
    """A sub-agent called as a tool: it runs its own loop with its own messages."""

    kind: Literal["agent"] = "agent"
    name: str
    """The key under `tools:`."""
    description: str = ""
    """What the sub-agent does, for the calling model; `""` when absent, the agent's own
    `description` is shown then (`Spec.tool_description`)."""
    agent: str
    """Name of the agent under `agents:` that runs."""
    parameters: Mapping[str, Any] | None = None
    """JSON Schema of the arguments; `{request: string}` when absent."""
    timeout: float | None = None
    """Seconds the sub-agent may run before it fails with a timeout."""
    idempotent: bool = False
    """True when running a call twice has the effect of running it once."""
    approval: Approval = NO_APPROVAL
    """Whether calls wait for a person before the sub-agent starts."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ExternalTool:
    """A tool whose result a person or another system supplies later (`answer`)."""

    kind: Literal["external"] = "external"
    name: str
    """The key under `tools:`."""
    description: str
    """What the tool does, for the model."""
    parameters: Mapping[str, Any] | None = None
    """JSON Schema of the arguments; any object when absent."""
    timeout: float | None = None
    """Accepted for symmetry; an external call waits as long as it takes."""
    idempotent: bool = False
    """True when supplying a result twice is harmless."""
    approval: Approval = NO_APPROVAL
    """Whether calls wait for a person before the request goes out."""


@dataclass(frozen=True, kw_only=True, slots=True)
class McpApproval:
    """One server tool's approval override under `approval.tools`."""

    required: bool | None = None
    """True or false: whether its calls wait for a person; None (`required` absent): what the
    tool's annotations say (`readOnlyHint: true`: no, anything else: yes)."""
    approval: Approval = NO_APPROVAL
    """Its decisions and prompt (its `required` is not read: see `required`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class McpApprovals:
    """`approval:` of an MCP toolset: overrides per server tool."""

    tools: Mapping[str, McpApproval] = field(default_factory=dict)
    """Server tool name or glob -> its override (the first pattern that matches wins)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class McpToolset:
    """The tools of an MCP server (`kind: mcp`), listed when a run first needs them."""

    kind: Literal["mcp"] = "mcp"
    name: str
    """The key under `tools:`; the prefix of every tool name the model sees."""
    description: str = ""
    """What the server is for (the model reads each tool's own description)."""
    command: tuple[str, ...] = ()
    """Program and arguments of a stdio server (empty for an HTTP server)."""
    url: str | None = None
    """Endpoint of a streamable HTTP server (None for a stdio server)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables added to a stdio server's environment."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """HTTP headers sent to an HTTP server."""
    include: tuple[str, ...] = ()
    """Server tool names or globs offered (empty: all)."""
    exclude: tuple[str, ...] = ()
    """Server tool names or globs never offered."""
    approval: McpApprovals = McpApprovals()
    """Approval overrides per server tool."""
    timeout: float | None = None
    """Seconds a call (and connecting) may take."""


@dataclass(frozen=True, kw_only=True, slots=True)
class McpTool:
    """One tool of an MCP server as a run binds it (never in `Spec.tools`: a server lists its
    tools when connected); shaped like the other tool kinds, so the loop treats it the same."""

    kind: Literal["mcp"] = "mcp"
    name: str
    """The name the model sees (`TOOLSET_TOOL`, see `engine.mcp.model_name`)."""
    description: str
    """The server's description of the tool."""
    server: str
    """The toolset (its key under `tools:`)."""
    remote: str
    """The tool's name on the server."""
    timeout: float | None = None
    """The toolset's `timeout`."""
    idempotent: bool = False
    """The tool's `idempotentHint`."""
    approval: Approval = NO_APPROVAL
    """From its annotations and the toolset's overrides."""


Tool: TypeAlias = PythonTool | AgentTool | ExternalTool | McpToolset
CallableTool: TypeAlias = PythonTool | AgentTool | ExternalTool | McpTool
"""A tool a model calls by name: a spec's tool, or one tool of a toolset's server."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Budgets of one agent invocation; reaching one suspends with reason `turn_limit`."""

    max_turns: int = DEFAULT_MAX_TURNS
    """Model turns per invocation."""
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS
    """Tool calls per invocation."""
    timeout: float | None = None
    """Seconds of active running per invocation (time spent suspended does not count)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SuspendRules:
    """Pauses beyond approval: the run suspends with reason `pause`."""

    every_turns: int | None = None
    """Pause after every N model turns."""
    after_seconds: float | None = None
    """Pause once this many seconds of active running passed since the last pause."""
    before_tools: tuple[str, ...] = ()
    """Pause before any call of these tools runs."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Agent:
    """One LLM-tool loop."""

    name: str
    """The key under `agents:`."""
    description: str = ""
    """What the agent is for (`""` when absent); a sub-agent tool without a description of
    its own shows it to the calling model."""
    model: str
    """Name of a model under `models:`."""
    instructions: str
    """The system prompt (read from `instructions_file` when that was given)."""
    tools: tuple[str, ...] = ()
    """Names of tools under `tools:` the agent may call."""
    limits: Limits = Limits()
    """Budgets per invocation."""
    suspend: SuspendRules = SuspendRules()
    """Pauses beyond approval."""
    tool_choice: tuple[str, ...] = ()
    """Which tool the model must call, turn by turn: `auto`, `required`, `none` or a tool
    name per model turn of an invocation, the last item holding for every later turn
    (`tool_choice: [issue_refund, auto]`); empty (absent): the request names none."""

    def tool_choice_at(self, turn: int) -> str | None:
        """The `tool_choice` for the model turn `turn` (0: the first of the invocation)."""
        choices = self.tool_choice
        if not choices:
            return None
        return choices[min(turn, len(choices) - 1)]


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecSource:
    """What a spec was loaded from, kept with every run so a resume needs no file: the spec
    file's text and the text of each agent's `instructions_file` (everything its digest
    covers). Scripted models' scripts and python tool modules are not part of it: they are
    found in `folder`, the spec's absolute folder."""

    text: str
    """The spec file's text, exactly as read."""
    instructions: Mapping[str, str]
    """Agent name -> the text of its `instructions_file` (agents with inline text: absent)."""
    path: str
    """The absolute path the spec file had."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Spec:
    """A whole validated spec file."""

    spec_version: int
    """Always 1 for this format."""
    name: str
    """`name:` of the spec, or the file's stem."""
    path: str
    """The file the spec was loaded from."""
    entrypoint: str
    """The agent `run` starts when none is named."""
    models: Mapping[str, Model]
    """Models by name."""
    tools: Mapping[str, Tool]
    """Tools by name."""
    agents: Mapping[str, Agent]
    """Agents by name."""
    description: str = ""
    """What the spec is for."""
    allow_modules: tuple[str, ...] = ()
    """Module prefixes `kind: python` refs may come from (empty: any)."""
    allow_commands: tuple[str, ...] = ()
    """Programs `kind: mcp` stdio servers may be started with (empty: any)."""
    digest: str = ""
    """`sha256:` of the spec's canonical form; a continuation records it."""
    locations: Mapping[str, tuple[int, int]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """JSON pointer -> (line, col) of each python tool's entry, `ref`, `parameters` and
    parameter names, so `Runtime` places the mismatches it finds on import; empty for a spec
    built in Python (its errors then point at line 1)."""
    source: SpecSource | None = field(default=None, compare=False, repr=False)
    """The texts it was loaded from (None for a spec built in Python); a run store keeps them."""

    def tool_description(self, name: str) -> str:
        """What a model reads about tool `name`: its `description`, or for a sub-agent tool
        without one, its agent's (`""` when neither is given: validation refuses that)."""
        tool = self.tools[name]
        if tool.description or not isinstance(tool, AgentTool):
            return tool.description
        agent = self.agents.get(tool.agent)
        return agent.description if agent is not None else ""

    def _repr_svg_(self) -> str:
        """Jupyter draws a spec as its agent graph."""
        from engine.render import render, spec_graph  # the spec layer never needs the renderer

        return render(spec_graph(self), "svg").decode("utf-8")
