"""Pictures of specs and suspended stacks: golden DOT/Mermaid text, SVG content, hostile text.

Regenerate the golden files with `CALLCC_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render.py`
and review the diff like code.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.continuation import Continuation
from engine.errors import UsageError
from engine.frames import Frame, Pending
from engine.models.scripted import ScriptedModel as ScriptedClient
from engine.render import (
    DotNotFoundError,
    inspect_text,
    render,
    spec_graph,
    stack_graph,
    to_dot,
    to_mermaid,
)
from engine.runtime import Runtime
from engine.spec import load_spec
from engine.spec.model import (
    Agent,
    AgentTool,
    Approval,
    ExternalTool,
    Limits,
    PythonTool,
    ScriptedModel,
    Spec,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("CALLCC_UPDATE_GOLDEN") == "1"
SPECS = sorted(p for p in (ROOT / "specs").glob("*.yaml") if not p.name.endswith(".script.yaml"))
HOSTILE = '< > & " \' { } | \n \\ ] [ ` # ; <b>bold</b> &amp; </TD></TABLE>> ]]; }} """'
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing; run with CALLCC_UPDATE_GOLDEN=1 to create it")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def hr() -> tuple[Spec, Continuation]:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    with Runtime(spec) as runtime:
        outcome = runtime.run("Onboard Ada", run_id="golden-hr")
    assert outcome.kind == "suspended"
    return spec, outcome.continuation


def deep() -> tuple[Spec, Continuation]:
    """root -> left -> mid -> deep -> leaf (approval) and root -> right (external): depth 5,
    two pending calls in different branches, one done call, one secret argument."""

    def call(name: str, agent: str) -> AgentTool:
        return AgentTool(name=name, description=f"Call {agent}.", agent=agent)

    approval = Approval(
        required=True,
        decisions=("approve", "edit", "reject"),
        prompt="Send {{ args.amount }} to {{ args.to }}?",
    )
    tools: dict[str, Any] = {
        "echo": PythonTool(name="echo", description="Echo.", ref="render_tools:echo"),
        "transfer": PythonTool(
            name="transfer",
            description="Move money.",
            ref="render_tools:transfer",
            approval=approval,
        ),
        "ask": ExternalTool(name="ask", description="Ask a person."),
        **{f"call_{a}": call(f"call_{a}", a) for a in ("left", "right", "mid", "deep", "leaf")},
    }

    def agent(name: str, *names: str, turns: int = 100) -> Agent:
        return Agent(
            name=name,
            description=f"The {name} agent.",
            model="m",
            instructions="Work.",
            tools=names,
            limits=Limits(max_turns=turns),
        )

    agents = [
        agent("root", "call_left", "call_right", turns=4),
        agent("left", "echo", "call_mid"),
        agent("mid", "call_deep"),
        agent("deep", "call_leaf"),
        agent("leaf", "transfer"),
        agent("right", "ask"),
    ]
    spec = Spec(
        spec_version=1,
        name="deep",
        path="",
        entrypoint="root",
        models={"m": ScriptedModel(name="m", script="")},
        tools=tools,
        agents={a.name: a for a in agents},
    )

    def calls(*items: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
        return {"tool_calls": [{"id": i, "name": n, "arguments": a} for i, n, a in items]}

    script = {
        "agents": {
            "root": [
                calls(
                    ("c_left", "call_left", {"request": "go left"}),
                    ("c_right", "call_right", {"request": "go right"}),
                )
            ],
            "left": [
                calls(
                    ("c_echo", "echo", {"text": "hi"}), ("c_mid", "call_mid", {"request": "deeper"})
                )
            ],
            "mid": [calls(("c_deep", "call_deep", {"request": "deeper still"}))],
            "deep": [calls(("c_leaf", "call_leaf", {"request": "pay bob"}))],
            "leaf": [
                {
                    "text": "I will pay Bob.",
                    **calls(
                        (
                            "c_pay",
                            "transfer",
                            {"to": "bob", "amount": 5, "api_token": "sk-secret-value"},
                        )
                    ),
                }
            ],
            "right": [calls(("c_ask", "ask", {"question": 'Is Bob <trusted> & "known"?'}))],
        }
    }
    with Runtime(spec, model_override=ScriptedClient.from_data(script)) as runtime:
        outcome = runtime.run("Start", run_id="golden-deep")
    assert outcome.kind == "suspended"
    return spec, outcome.continuation


def refund() -> tuple[Spec, Continuation]:
    """A refund agent that looked the order up, said why, and asks for `issue_refund`, whose
    approval has no prompt: what a decider needs is the order's total and the model's words."""
    tools: dict[str, Any] = {
        "lookup_order": PythonTool(
            name="lookup_order", description="Find an order.", ref="render_tools:lookup_order"
        ),
        "issue_refund": PythonTool(
            name="issue_refund",
            description="Refund money.",
            ref="render_tools:issue_refund",
            approval=Approval(required=True, decisions=("approve", "edit", "reject")),
        ),
    }
    refunds = Agent(
        name="refund_agent",
        description="Refunds orders.",
        model="m",
        instructions="Refund carefully.",
        tools=("lookup_order", "issue_refund"),
    )
    spec = Spec(
        spec_version=1,
        name="refunds",
        path="",
        entrypoint="refund_agent",
        models={"m": ScriptedModel(name="m", script="")},
        tools=tools,
        agents={"refund_agent": refunds},
    )
    script = {
        "agents": {
            "refund_agent": [
                {
                    "tool_calls": [
                        {"id": "c_look", "name": "lookup_order", "arguments": {"order": "A-7"}}
                    ]
                },
                {
                    "text": "Order A-7 totals 80 EUR; the customer asks for 60 back.",
                    "tool_calls": [
                        {
                            "id": "c_refund",
                            "name": "issue_refund",
                            "arguments": {"order": "A-7", "amount": 60},
                        }
                    ],
                },
            ]
        }
    }
    with Runtime(spec, model_override=ScriptedClient.from_data(script)) as runtime:
        outcome = runtime.run("Refund 60 EUR of order A-7", run_id="refund-bob")
    assert outcome.kind == "suspended"
    return spec, outcome.continuation


def hostile() -> Continuation:
    """A frame whose messages and arguments hold every troublesome character and 100 kB."""
    big = ("x<&>\"'{}|\n" * 10_000)[:100_000]
    args = {"note": HOSTILE, "big": big, "password": "hunter2", HOSTILE: HOSTILE}
    message = {
        "role": "assistant",
        "content": HOSTILE,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "t<o>ol", "arguments": "{}"}}
        ],
    }
    root = Frame(
        agent='ag"ent<1>{x}',
        messages=[{"role": "user", "content": big}, message],
        ledger={"c1": "pending", "c0": "rejected", 'c"2': "failed"},
        results={"c0": HOSTILE + big, 'c"2': json.dumps({"password": "hunter2", HOSTILE: big})},
    )
    root.pending.append(
        Pending.for_call(
            id="c1",
            reason="approval",
            tool="t<o>ol",
            arguments=args,
            decisions=("approve", "reject"),
            prompt=HOSTILE,
            detail=big,
        )
    )
    return Continuation(run_id="r<1>", spec_name='s"&', spec_digest="sha256:0", root=root)


# -- golden text -------------------------------------------------------------------------------


def test_hr_stack_golden() -> None:
    spec, cont = hr()
    graph = stack_graph(cont, spec)
    assert_golden("hr.stack.dot", to_dot(graph))
    assert_golden("hr.stack.mmd", to_mermaid(graph))


def test_hr_decided_not_resumed_golden() -> None:
    spec, cont = hr()
    graph = stack_graph(cont.approve("call_acc_2"), spec)
    pending = graph.nodes["pending:1:call_acc_2"]
    assert pending["decision"] == "approve"
    assert ("decided", "approve (not resumed yet)") in pending["rows"]
    assert_golden("hr-decided.stack.dot", to_dot(graph))


def test_deep_stack_golden() -> None:
    spec, cont = deep()
    graph = stack_graph(cont, spec)
    waiting = [n for n, d in graph.nodes(data=True) if d["kind"] == "pending"]
    assert waiting == ["pending:4:c_pay", "pending:5:c_ask"]
    assert_golden("deep.stack.dot", to_dot(graph))
    assert_golden("deep.stack.mmd", to_mermaid(graph))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_golden(path: Path) -> None:
    graph = spec_graph(load_spec(path))
    assert_golden(f"spec-{path.stem}.dot", to_dot(graph))
    assert_golden(f"spec-{path.stem}.mmd", to_mermaid(graph))


def test_dot_is_deterministic_across_runs() -> None:
    first, second = hr(), hr()
    assert to_dot(stack_graph(first[1], first[0])) == to_dot(stack_graph(second[1], second[0]))
    assert to_mermaid(spec_graph(first[0])) == to_mermaid(spec_graph(second[0]))


# -- what a decider reads ----------------------------------------------------------------------


def test_a_done_calls_result_shows_masked_in_the_picture_and_the_tree() -> None:
    spec, cont = refund()
    dot = to_dot(stack_graph(cont, spec))
    row = "<I>result</I> order=A-7, total=80, currency=EUR, card_token=***"
    assert '<B>lookup_order</B><BR/><FONT POINT-SIZE="9">c_look · done</FONT><BR/>' in dot
    assert f'<FONT POINT-SIZE="9">{row}</FONT>' in dot
    assert "tok_4242" not in dot + to_mermaid(stack_graph(cont, spec)) + inspect_text(cont, spec)
    assert (
        "   done     lookup_order (c_look) → order=A-7, total=80, currency=EUR, card_token=***\n"
        in inspect_text(cont, spec)
    )


def test_a_long_hostile_result_stays_one_short_escaped_line() -> None:
    root = Frame(
        agent="a",
        messages=[{"role": "user", "content": "go"}],
        ledger={"c1": "done"},
        results={"c1": "<b>" + "x" * 5_000 + "</b>"},
    )
    dot = to_dot(stack_graph(Continuation(run_id="r", spec_name="s", spec_digest="d", root=root)))
    assert "<I>result</I> &lt;b&gt;" + "x" * 66 + "…</FONT>" in dot


def test_secrets_in_results_that_are_not_json_objects_are_masked_too() -> None:
    results = {
        "c1": "created; api_key=live-123, note: password: hunter2",
        "c2": "call with Authorization: Bearer abc.def or ghp_token42",
        "c3": '["ok", {"token": "t-1"}]',
        "c4": '{"password": "hunter2", "cut": "' + "x" * 2_000_000,  # too big, not JSON
    }
    root = Frame(
        agent="a",
        messages=[{"role": "user", "content": "go"}],
        ledger=dict.fromkeys(results, "done"),
        results=results,
    )
    cont = Continuation(run_id="r", spec_name="s", spec_digest="d", root=root)
    rows = {
        d["call_id"]: d["rows"][1][1]
        for _, d in stack_graph(cont).nodes(data=True)
        if d["kind"] == "call"
    }
    assert rows["c1"] == "created; api_key=***, note: password: ***"
    assert rows["c2"] == "call with Authorization: *** or ***"
    assert rows["c3"] == '["ok", {"token": "***"}]'
    assert rows["c4"].startswith('{"password": ***, "cut": "xxx')
    assert "hunter2" not in inspect_text(cont)


def test_the_frame_shows_what_the_assistant_said_or_which_tools_it_called() -> None:
    spec, cont = refund()
    dot = to_dot(stack_graph(cont, spec))
    said = "Order A-7 totals 80 EUR; the customer asks for 60 back."
    assert f"<I>assistant</I> {said}</FONT>" in dot
    _, deep_cont = deep()
    dot = to_dot(stack_graph(deep_cont))
    assert "(no text yet)" not in dot
    assert "<I>assistant</I> (no text) called echo, call_mid</FONT>" in dot  # frame left
    parts = [{"type": "text", "text": "Checking"}, {"type": "text", "text": "the order."}]
    root = Frame(agent="a", messages=[{"role": "user", "content": "go"}])
    root.messages.append({"role": "assistant", "content": parts})
    graph = stack_graph(Continuation(run_id="r", spec_name="s", spec_digest="d", root=root))
    assert ("assistant", "Checking the order.") in graph.nodes["frame:0"]["rows"]


def test_the_title_names_the_spec_the_run_and_what_waits() -> None:
    spec, cont = refund()
    title = "refunds · run refund-bob · waits for approval of issue_refund"
    assert f"label=<<B>{title}</B>>, labelloc=t" in to_dot(stack_graph(cont, spec))
    _, deep_cont = deep()
    assert stack_graph(deep_cont).graph["title"] == (
        "deep · run golden-deep · waits for approval of transfer, the result of ask"
    )
    decided = stack_graph(cont.approve("c_refund")).graph["title"]
    assert decided == "refunds · run refund-bob · decided: resume it to carry on"


def test_an_approval_without_a_prompt_asks_a_default_question(tmp_path: Path) -> None:
    spec, cont = refund()
    question = "Run issue_refund with these arguments?"
    assert [p.prompt for p in cont.pending()] == [question]
    assert f"<I>ask</I> {question}</FONT>" in to_dot(stack_graph(cont, spec))
    state = tmp_path / "state.json"
    state.write_text(cont.to_json(), encoding="utf-8")
    code, out, _ = cli("pending", str(state))
    assert code == 3  # suspended
    assert f"\n      {question}\n" in out


def test_the_legend_is_one_small_table_not_a_row_of_nodes() -> None:
    spec, cont = hr()
    dot = to_dot(stack_graph(cont, spec))
    assert "cluster_legend" not in dot
    legend = [line for line in dot.splitlines() if line.startswith('  "legend"')]
    assert len(legend) == 1 and legend[0].count("<TR>") == 3  # a heading and two rows of three
    assert '<TD BGCOLOR="#ffcc80" COLOR="#e65100" BORDER="2">' in legend[0]


# -- the graph is public API -------------------------------------------------------------------


def test_spec_graph_nodes_edges_and_faded_unreachable_agent() -> None:
    spec, _ = deep()
    orphan = Agent(
        name="orphan", description="Never called.", model="m", instructions="x", tools=("echo",)
    )
    spec = Spec(
        spec_version=1,
        name="deep",
        path="",
        entrypoint="root",
        models=spec.models,
        tools=spec.tools,
        agents={**spec.agents, "orphan": orphan},
    )
    graph = spec_graph(spec)
    assert graph.graph["kind"] == "spec"
    edge = graph.edges["agent:root", "agent:left"]
    assert (edge["kind"], edge["label"]) == ("subagent", "call_left")
    assert graph.nodes["tool:transfer"]["shape"] == "hexagon"
    assert ("", "needs approval") in graph.nodes["tool:transfer"]["rows"]
    assert graph.nodes["tool:ask"]["tool_kind"] == "external"
    assert graph.nodes["agent:orphan"]["reachable"] is False
    assert "dashed" in graph.nodes["agent:orphan"]["style"]
    assert graph.nodes["tool:echo"]["reachable"] is True  # left, which is reachable, uses it


def test_stack_graph_marks_statuses_and_masks_secrets() -> None:
    graph = stack_graph(hostile())
    statuses = {d["status"]: d for _, d in graph.nodes(data=True) if d["kind"] == "call"}
    assert statuses["rejected"]["strike"] is True
    assert statuses["failed"]["fillcolor"] == "#ffcdd2"
    pending = graph.nodes["pending:0:c1"]
    assert pending["penwidth"] == "3" and pending["fillcolor"] == "#ffcc80"
    _, cont = deep()
    text = to_dot(stack_graph(cont)) + to_mermaid(stack_graph(cont)) + inspect_text(cont)
    assert "sk-secret-value" not in text
    assert "api_token=***" in text


def test_inspect_text_of_hr() -> None:
    spec, cont = hr()
    assert inspect_text(cont, spec) == (
        "run golden-hr · spec hr_onboarding · 1 waiting, 0 decided · 876 tokens (777 in, 99 out)\n"
        "hr_agent  [turns 1 of 10 · 412 in / 38 out tokens]\n"
        "   user: Onboard Ada\n"
        "   assistant: I'll have account_agent set up Ada's account first.\n"
        "   account_agent  ← account_agent (call_hr_1)  [turns 1 of 5 · 365 in / 61 out tokens]\n"
        "      user: Create an account for Ada Lovelace (ada) with role engineer\n"
        "      assistant: Creating the account ada, then granting the engineer role.\n"
        "      done     create_account (call_acc_1) → username=ada, full_name=Ada Lovelace, "
        "status=created\n"
        "      >> authorize_account (call_acc_2) · approval\n"
        "            path: hr_agent/account_agent@call_hr_1/call_acc_2\n"
        "            args: username=ada, role=engineer\n"
        "            ask: Grant engineer access to ada?\n"
        "            decide: approve | reject\n"
    )
    decided = inspect_text(cont.approve("call_acc_2"))
    assert "=> authorize_account (call_acc_2)" in decided
    assert "decided: approve (resume to carry it out)" in decided


# -- SVG and hostile text through the real dot -------------------------------------------------


@needs_dot
def test_svg_names_every_agent_and_the_pending_tool() -> None:
    spec, cont = hr()
    for graph, names in (
        (stack_graph(cont, spec), ["hr_agent", "account_agent", "authorize_account"]),
        (spec_graph(spec), list(spec.agents)),
    ):
        root = ET.fromstring(render(graph, "svg"))
        texts = " ".join(t for el in root.iter() for t in (el.text or "",))
        for name in names:
            assert name in texts, name
    assert render(stack_graph(cont), "png").startswith(b"\x89PNG")


@needs_dot
def test_hostile_text_gives_valid_dot_and_mermaid() -> None:
    graph = stack_graph(hostile())
    dot = to_dot(graph)
    assert len(dot) < 20_000  # the 100 kB message is shortened, not embedded
    assert "hunter2" not in dot + inspect_text(hostile())  # in arguments and in results
    done = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    ET.fromstring(done.stdout)  # well-formed SVG
    mermaid = to_mermaid(graph)
    for line in mermaid.splitlines():
        assert line.count('"') % 2 == 0, line  # every label opens and closes on its line
        assert "<TD" not in line and "<script" not in line.lower()
    labels = re.findall(r'"([^"]*)"', mermaid)
    assert labels and all("\n" not in label for label in labels)
    assert not re.search(r"<(?!/?(b|br/|s)>)", "".join(labels))  # only our own markup
    bad = Spec(
        spec_version=1,
        name=HOSTILE,
        path="",
        entrypoint="a",
        models={},
        tools={},
        agents={"a": Agent(name="a", description=HOSTILE, model="m", instructions="")},
    )
    done = subprocess.run(
        ["dot", "-Tsvg"], input=to_dot(spec_graph(bad)).encode(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()


def test_missing_dot_is_a_usage_error_that_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, cont = hr()
    monkeypatch.setenv("PATH", str(tmp_path))
    graph = stack_graph(cont, spec)
    with pytest.raises(DotNotFoundError) as info:
        render(graph, "svg")
    assert isinstance(info.value, UsageError)
    assert "apt-get install graphviz" in str(info.value)
    assert "brew install graphviz" in str(info.value)
    assert to_dot(graph).startswith("digraph") and to_mermaid(graph).startswith("flowchart")


# -- CLI ---------------------------------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_render_detects_continuations_and_specs(tmp_path: Path) -> None:
    spec, cont = hr()
    state = tmp_path / "state.json"
    state.write_text(cont.to_json(), encoding="utf-8")
    spec_file = str(ROOT / "specs" / "hr_agent.yaml")
    assert cli("render", str(state), "--spec", spec_file) == (
        0,
        to_dot(stack_graph(cont, spec)),
        "",
    )
    assert cli("render", spec_file, "--format", "mermaid") == (0, to_mermaid(spec_graph(spec)), "")
    code, _, _ = cli("render", str(state), "-o", str(tmp_path / "stack.mmd"))
    assert code == 0
    assert (tmp_path / "stack.mmd").read_text() == to_mermaid(stack_graph(cont))


@needs_dot
def test_cli_render_images_need_a_file(tmp_path: Path) -> None:
    spec_file = str(ROOT / "specs" / "hr_agent.yaml")
    assert cli("render", spec_file, "-o", str(tmp_path / "spec.svg"))[0] == 0
    ET.parse(tmp_path / "spec.svg")
    code, out, err = cli("render", spec_file, "--format", "png")
    assert (code, out) == (2, "")
    assert "-o FILE.png" in err
    code, _, err = cli("render", spec_file, "-o", str(tmp_path / "spec.pdf"))
    assert code == 2 and "--format" in err


def test_cli_inspect(tmp_path: Path) -> None:
    _, cont = hr()
    state = tmp_path / "state.json"
    state.write_text(cont.to_json(), encoding="utf-8")
    assert cli("inspect", str(state)) == (0, inspect_text(cont), "")
    code, _, err = cli("inspect", str(ROOT / "specs" / "hr_agent.yaml"))
    assert code == 2 and "is a spec, not a continuation" in err
    code, _, err = cli("inspect", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err


def test_render_subcommands_have_help() -> None:
    from engine.cli import render as render_cli

    sub = argparse.ArgumentParser().add_subparsers()
    render_cli.register(sub)
    for name, parser in sub.choices.items():
        assert parser.description, name
        assert any(a.help for a in sub._choices_actions if a.dest == name), name
