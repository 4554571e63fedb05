"""Pass 2: what the schema cannot express — references, the sub-agent graph, files, templates.

Runs on data that may have failed the schema, so every access checks the type it expects.
Never imports user code.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic
from engine.spec import _digraph as nx  # networkx's calls, without its 130 ms import
from engine.spec._schema_pass import did_you_mean
from engine.spec.yamlload import YamlDoc, escape

FORBIDDEN_MODULES = frozenset(
    {"os", "posix", "nt", "subprocess", "pty", "builtins", "sys", "shutil", "importlib"}
    | {"ctypes", "runpy", "code", "codeop", "pickle", "marshal"}
)
"""Modules no tool may come from: a guard against the obvious mistakes, not a sandbox (only
an allowlist, `allow_modules` / `--allow-module`, restricts what may be imported)."""
"""Top-level modules a `kind: python` ref may never come from."""
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_TEMPLATE_ARG = re.compile(r"^args\.([A-Za-z][A-Za-z0-9_]*)$")


def command_allowed(program: str, allowed: Iterable[str]) -> bool:
    """Whether a stdio server's program is allowed: named as written or by its file name."""
    name = program.replace("\\", "/").rsplit("/", 1)[-1]
    return any(program == a or name == a for a in allowed)


def _dicts(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, dict)}


def _listing(what: str, names: Iterable[str]) -> str:
    ordered = sorted(names)
    if not ordered:
        return f"no {what} are defined"
    shown = ", ".join(ordered[:12])
    more = f", … ({len(ordered) - 12} more)" if len(ordered) > 12 else ""
    return f"defined {what}: {shown}{more}"


class _Checker:
    def __init__(self, doc: YamlDoc, data: dict[str, Any], spec_dir: Path) -> None:
        self.doc, self.spec_dir = doc, spec_dir
        self.models = _dicts(data.get("models"))
        self.tools = _dicts(data.get("tools"))
        self.agents = _dicts(data.get("agents"))
        allow = data.get("allow_modules")
        self.allow = [m for m in allow if isinstance(m, str)] if isinstance(allow, list) else None
        commands = data.get("allow_commands")
        self.commands = (
            [c for c in commands if isinstance(c, str)] if isinstance(commands, list) else None
        )
        self.entry = data.get("entrypoint")
        self.out: list[Diagnostic] = []

    def add(
        self,
        code: str,
        message: str,
        pointer: str,
        suggestion: str | None = None,
        *,
        key: bool = False,
        severity: str = "error",
    ) -> None:
        line, col = self.doc.locate(pointer, key=key)
        self.out.append(
            Diagnostic(
                code=code,
                message=message,
                file=self.doc.path,
                line=line,
                col=col,
                pointer=pointer,
                suggestion=suggestion,
                severity="warning" if severity == "warning" else "error",
            )
        )

    def undefined(self, code: str, what: str, name: str, pool: Iterable[str], ptr: str) -> None:
        names = list(pool)
        hint = did_you_mean(name, names) or f"define '{name}' under {what}s:"
        self.add(code, f"{what} '{name}' is not defined; {_listing(what + 's', names)}", ptr, hint)

    def run(self) -> list[Diagnostic]:
        if isinstance(self.entry, str) and self.entry not in self.agents:
            line_hint = did_you_mean(self.entry, self.agents) or "define it under agents:"
            self.add(
                "undefined-entrypoint",
                f"entrypoint '{self.entry}' is not a defined agent; "
                + _listing("agents", self.agents),
                "/entrypoint",
                line_hint,
            )
        for name, model in self.models.items():
            self.check_file(
                model.get("script"), f"/models/{escape(name)}/script", "script", utf8=False
            )
        for name, tool in self.tools.items():
            self.check_tool(name, tool)
        for name, agent in self.agents.items():
            self.check_agent(name, agent)
        self.check_graph()
        self.check_unused_tools()
        return self.out

    def check_file(self, rel: Any, pointer: str, what: str, *, utf8: bool) -> None:
        if not isinstance(rel, str) or not rel:
            return
        path = self.spec_dir / rel
        try:
            data = path.read_bytes()
            if utf8:
                data.decode("utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.add(
                "unreadable",
                f"cannot read {what} '{rel}': {reason}",
                pointer,
                f"the path is relative to the spec's folder ({self.spec_dir})",
            )
        except UnicodeDecodeError as exc:
            self.add("unreadable", f"{what} '{rel}' is not UTF-8 ({exc.reason})", pointer)

    def check_tool(self, name: str, tool: dict[str, Any]) -> None:
        kind = tool.get("kind")
        base = f"/tools/{escape(name)}"
        target = tool.get("agent")
        if kind == "agent" and isinstance(target, str) and target not in self.agents:
            self.undefined("undefined-agent", "agent", target, self.agents, f"{base}/agent")
        elif kind == "agent" and isinstance(target, str):
            self.check_described(name, tool, target)
        ref = tool.get("ref")
        if kind == "python" and isinstance(ref, str) and ":" in ref:
            self.check_module(ref, f"{base}/ref")
        approval = tool.get("approval")
        if isinstance(approval, dict) and isinstance(approval.get("prompt"), str):
            self.check_template(approval["prompt"], tool, f"{base}/approval/prompt")
        if isinstance(approval, dict) and "expires_after" in approval:
            self.check_expiry(name, approval, f"{base}/approval")
        if isinstance(approval, dict) and isinstance(approval.get("when"), str):
            self.check_when(approval, _parameter_names(tool), f"{base}/approval")
        if kind == "mcp":
            self.check_mcp(tool, base)

    def check_expiry(self, name: str, approval: dict[str, Any], pointer: str) -> None:
        """A call nobody decided in time is rejected: the tool must allow `reject`."""
        decisions = approval.get("decisions", ["approve", "reject"])
        if isinstance(decisions, list) and "reject" not in decisions:
            listed = ", ".join(str(d) for d in decisions)
            self.add(
                "expiry-without-reject",
                f"tool '{name}' expires undecided calls (expires_after), which rejects them, "
                f"but its approval.decisions ({listed}) do not allow reject",
                f"{pointer}/expires_after",
                "add reject to approval.decisions, or remove expires_after",
                key=True,
            )

    def check_mcp(self, tool: dict[str, Any], base: str) -> None:
        """One transport, the fields of that transport only, an allowed program, and
        templates (the server's parameters are unknown here: `validate --resolve` knows)."""
        command, url = tool.get("command"), tool.get("url")
        if command is None and url is None:
            self.add(
                "mcp-transport",
                "an mcp tool needs `command` (a stdio server) or `url` (streamable HTTP)",
                base,
                "add `command: [python, server.py]` or `url: http://127.0.0.1:8000/mcp`",
                key=True,
            )
        elif command is not None and url is not None:
            self.add(
                "mcp-transport",
                "an mcp tool takes `command` or `url`, not both",
                f"{base}/url",
                "keep `command` for a stdio server or `url` for an HTTP one",
                key=True,
            )
        for field, other in (("env", "command"), ("headers", "url")):
            if field in tool and other not in tool:
                self.add(
                    "mcp-transport",
                    f"`{field}` applies to a server started with `{other}` only",
                    f"{base}/{field}",
                    f"remove `{field}`, or give the server a `{other}`",
                    key=True,
                )
        if isinstance(command, list) and command and isinstance(command[0], str):
            self.check_command(command[0], f"{base}/command/0")
        overrides = tool.get("approval", {})
        overrides = overrides.get("tools") if isinstance(overrides, dict) else None
        for name, value in overrides.items() if isinstance(overrides, dict) else ():
            if isinstance(value, dict) and isinstance(value.get("prompt"), str):
                where = f"{base}/approval/tools/{escape(name)}/prompt"
                self.check_template(value["prompt"], {}, where)
            if isinstance(value, dict) and isinstance(value.get("when"), str):
                self.check_when(value, None, f"{base}/approval/tools/{escape(name)}")

    def check_when(self, approval: dict[str, Any], fields: list[str] | None, pointer: str) -> None:
        """A `when:` condition compiles, names known variables and (`fields`: the tool's
        parameters, None when unknown here) known arguments; each problem sits at its line and
        column inside the expression. `required: false` beside it would never ask."""
        self.out += condition_diagnostics(self.doc, f"{pointer}/when", fields)
        if approval.get("required") is False:
            self.add(
                "condition-ignored",
                "approval.required is false, so the `when` condition never asks anyone",
                f"{pointer}/required",
                "remove `required: false` (a condition decides per call)",
                key=True,
            )

    def check_command(self, program: str, pointer: str) -> None:
        if self.commands is None or command_allowed(program, self.commands):
            return
        self.add(
            "command-not-allowed",
            f"program '{program}' is not in allow_commands ({', '.join(self.commands)})",
            pointer,
            f"add '{program}' to allow_commands, or start the server with an allowed program",
        )

    def check_described(self, name: str, tool: dict[str, Any], target: str) -> None:
        """A sub-agent tool shows the calling model its own description, else its agent's;
        with neither, the model is not told what the tool does."""
        if "description" in tool or "description" in self.agents[target]:
            return
        self.add(
            "missing-description",
            f"tool '{name}' has no description, and neither has agent '{target}', so the "
            "calling model is not told what the sub-agent does",
            f"/tools/{escape(name)}",
            f"add a description: to tool '{name}' (what the calling model reads), or to "
            f"agent '{target}'",
            key=True,
        )

    def check_module(self, ref: str, pointer: str) -> None:
        module = ref.split(":", 1)[0]
        top = module.split(".", 1)[0]
        if top in FORBIDDEN_MODULES:
            self.add(
                "module-not-allowed",
                f"ref '{ref}' comes from '{top}'; tools may never come from "
                + ", ".join(sorted(FORBIDDEN_MODULES)),
                pointer,
                "wrap what you need in a function of your own module",
            )
        elif self.allow is not None and not any(
            module == p or module.startswith(p + ".") for p in self.allow
        ):
            self.add(
                "module-not-allowed",
                f"module '{module}' is not under allow_modules ({', '.join(self.allow)})",
                pointer,
                f"add '{module}' to allow_modules, or move the function under an allowed module",
            )

    def check_template(self, prompt: str, tool: dict[str, Any], pointer: str) -> None:
        params = tool.get("parameters")
        props = params.get("properties") if isinstance(params, dict) else None
        if props is None and tool.get("kind") == "agent":
            props = {"request": {}}
        for match in _TEMPLATE.finditer(prompt):
            inner = match.group(1).strip()
            arg = _TEMPLATE_ARG.match(inner)
            if arg is None:
                self.add(
                    "bad-template",
                    f"'{{{{ {inner} }}}}' is not allowed in a prompt; only {{{{ args.NAME }}}}",
                    pointer,
                    "insert arguments as {{ args.NAME }} where NAME is a parameter name",
                )
            elif isinstance(props, dict) and arg.group(1) not in props:
                name = arg.group(1)
                hint = did_you_mean(name, props) or f"add '{name}' to the tool's parameters"
                self.add(
                    "bad-template",
                    f"prompt uses args.{name}, but the tool has no parameter '{name}'",
                    pointer,
                    hint,
                )
        rest = _TEMPLATE.sub("", prompt)
        if "{{" in rest or "}}" in rest:
            self.add(
                "bad-template",
                "unbalanced '{{' or '}}' in the prompt",
                pointer,
                "close every {{ with }}",
            )

    def check_agent(self, name: str, agent: dict[str, Any]) -> None:
        base = f"/agents/{escape(name)}"
        model = agent.get("model")
        if isinstance(model, str) and model not in self.models:
            self.undefined("undefined-model", "model", model, self.models, f"{base}/model")
        tools = agent.get("tools")
        own = [t for t in tools if isinstance(t, str)] if isinstance(tools, list) else []
        for i, tool in enumerate(tools if isinstance(tools, list) else []):
            if isinstance(tool, str) and tool not in self.tools:
                self.undefined("undefined-tool", "tool", tool, self.tools, f"{base}/tools/{i}")
        suspend = agent.get("suspend")
        before = suspend.get("before_tools") if isinstance(suspend, dict) else None
        for i, tool in enumerate(before if isinstance(before, list) else []):
            if isinstance(tool, str) and tool not in own:
                hint = did_you_mean(tool, own) or f"add '{tool}' to the agent's tools"
                self.add(
                    "undefined-tool",
                    f"before_tools names '{tool}', which is not a tool of agent '{name}'; "
                    + (f"its tools: {', '.join(own)}" if own else "it has no tools"),
                    f"{base}/suspend/before_tools/{i}",
                    hint,
                )
        self.check_tool_choice(name, agent.get("tool_choice"), own, base)
        self.check_file(
            agent.get("instructions_file"), f"{base}/instructions_file", "file", utf8=True
        )

    def check_tool_choice(self, name: str, choice: Any, own: list[str], base: str) -> None:
        """Every item is a word or one of the agent's tools (a server's tool, named by its
        toolset's prefix, is known only once listed: `validate --resolve`); a list whose last
        item forces a call every later turn leaves the agent no turn to answer in."""
        if isinstance(choice, str):
            items, pointers = [choice], [f"{base}/tool_choice"]
        elif isinstance(choice, list):
            items = choice
            pointers = [f"{base}/tool_choice/{i}" for i in range(len(choice))]
        else:
            return
        servers = [t for t in own if self.tools.get(t, {}).get("kind") == "mcp"]
        for item, pointer in zip(items, pointers, strict=True):
            if not isinstance(item, str) or not item or item in ("auto", "none"):
                continue  # the schema pass reports what is no name
            if item == "required" and not own:
                self.add(
                    "bad-tool-choice",
                    f"tool_choice 'required' makes agent '{name}' call a tool, but it has none",
                    pointer,
                    "give the agent tools, or remove tool_choice",
                )
            elif item in servers:  # the model sees the server's tools, never the toolset
                self.add(
                    "bad-tool-choice",
                    f"tool_choice names the MCP toolset '{item}', not one of its tools; the "
                    f"model sees them as {item}_TOOL",
                    pointer,
                    f"name one of its tools ({item}_TOOL; `callcc validate --resolve` lists "
                    "them), or choose required",
                )
            elif item != "required" and item not in own:
                if any(item.startswith(f"{server}_") for server in servers):
                    continue
                words = f"its tools: {', '.join(own)}" if own else "it has no tools"
                hint = did_you_mean(item, [*own, "auto", "required", "none"])
                self.add(
                    "bad-tool-choice",
                    f"tool_choice names '{item}', which is not a tool of agent '{name}' "
                    f"({words}); expected auto, required, none or one of its tools",
                    pointer,
                    hint or f"add '{item}' to the agent's tools, or choose auto",
                )
        last = items[-1] if items else None
        forced = (
            last == "required"
            or (last in own and last not in servers)
            or any(isinstance(last, str) and last.startswith(f"{server}_") for server in servers)
        )  # an unknown name is the error above already, not also this warning
        if forced and isinstance(last, str):
            self.add(
                "tool-choice-never-answers",
                f"tool_choice ends with '{last}', so every later turn of agent '{name}' must "
                "call a tool and it can never answer (until max_turns stops it)",
                pointers[-1],
                "end the list with auto: `tool_choice: [" + ", ".join(map(str, items)) + ", auto]`",
                severity="warning",
            )

    def check_graph(self) -> None:
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(self.agents)
        for name, agent in self.agents.items():
            tools = agent.get("tools")
            for i, tool in enumerate(tools if isinstance(tools, list) else []):
                spec = self.tools.get(tool) if isinstance(tool, str) else None
                target = spec.get("agent") if spec and spec.get("kind") == "agent" else None
                if isinstance(target, str) and target in self.agents:
                    graph.add_edge(name, target, tool=tool, index=i)
        for component in nx.strongly_connected_components(graph):
            first = min(component)
            if len(component) == 1 and not graph.has_edge(first, first):
                continue
            edges = nx.find_cycle(graph.subgraph(component), source=first)
            names = [u for u, _ in edges] + [first]
            data = graph.edges[edges[0][0], edges[0][1]]
            self.add(
                "agent-cycle",
                "sub-agents call each other in a cycle: " + " -> ".join(names),
                f"/agents/{escape(first)}/tools/{data['index']}",
                f"remove tool '{data['tool']}' from agent '{first}', or break the cycle elsewhere",
            )
        if isinstance(self.entry, str) and self.entry in self.agents:
            reachable = nx.descendants(graph, self.entry) | {self.entry}
            for name in sorted(set(self.agents) - reachable):
                self.add(
                    "unreachable-agent",
                    f"agent '{name}' is never called from entrypoint '{self.entry}'",
                    f"/agents/{escape(name)}",
                    "give a reachable agent a `kind: agent` tool for it, or remove it",
                    key=True,
                    severity="warning",
                )

    def check_unused_tools(self) -> None:
        """Warn of each tool no agent lists (whatever else is wrong with it), unless an agent
        lists a misspelling of it: the undefined-tool error already suggests it."""
        used: set[str] = set()
        for agent in self.agents.values():
            tools = agent.get("tools")
            used.update(t for t in (tools if isinstance(tools, list) else []) if isinstance(t, str))
        for typo in used - set(self.tools):
            used.update(difflib.get_close_matches(typo, sorted(self.tools), n=1, cutoff=0.6))
        agents = sorted(self.agents)
        for name in sorted(set(self.tools) - used):
            where = f"agent '{agents[0]}'" if len(agents) == 1 else "an agent"
            self.add(
                "unused-tool",
                f"tool '{name}' is not in any agent's tools, so no model can call it",
                f"/tools/{escape(name)}",
                f"add '{name}' to the tools: list of {where}, or remove it",
                key=True,
                severity="warning",
            )


def condition_diagnostics(doc: YamlDoc, pointer: str, fields: list[str] | None) -> list[Diagnostic]:
    """The problems of the CEL condition at `pointer` (`engine.policy.check`), each at its
    line and column inside the expression."""
    from engine.policy import check  # only a spec with a condition loads CEL

    found = []
    for problem in check(doc.locate_value(pointer), fields=fields):
        line, col = doc.locate_inside(pointer, problem.offset)
        found.append(
            Diagnostic(
                code=problem.code,
                message=problem.message,
                file=doc.path,
                line=line,
                col=col,
                pointer=pointer,
                suggestion=problem.suggestion,
            )
        )
    return found


def _parameter_names(tool: dict[str, Any]) -> list[str] | None:
    """The argument names a tool's calls may have, when the spec alone tells (a python tool
    without `parameters` has them inferred on import: `validate --resolve` checks those)."""
    params = tool.get("parameters")
    props = params.get("properties") if isinstance(params, dict) else None
    if isinstance(props, dict):
        return list(props)
    if params is None and tool.get("kind") == "agent":
        return ["request"]
    return None


def semantic_pass(doc: YamlDoc, data: dict[str, Any], spec_dir: Path) -> list[Diagnostic]:
    """Check references, the sub-agent graph, files and prompt templates of `data`."""
    return _Checker(doc, data, spec_dir).run()
