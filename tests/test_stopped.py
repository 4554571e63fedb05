"""A run a `stop` decision ended is `stopped`, not `finished`: the outcome, the CLI (text and
JSON, exit 0), the store (both backends, and a store made before the status existed), and
the pictures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from builders import (
    agent,
    call,
    calls,
    finished,
    make_spec,
    python_tool,
    resume,
    run,
    runtime,
    say,
    sub_agent,
    suspended,
)
from store_fixtures import lay_out_version_1

import engine
from engine.cli import main
from engine.render import inspect_text, stack_graph, to_dot
from engine.spec.model import Limits
from engine.store import open_store

SPEC = """\
spec_version: 1
name: stopper
models:
  s: {kind: scripted, script: stop.script.yaml}
tools:
  echo: {kind: python, ref: "loop_tools:echo", description: Echo the text.}
agents:
  main:
    description: Main.
    model: s
    instructions: Be brief.
    tools: [echo]
    limits: {max_turns: 1}
entrypoint: main
"""
SCRIPT = """\
script_version: 1
agents:
  main:
    - text: Working on it.
      tool_calls: [{id: e1, name: echo, arguments: {text: hi}}]
    - text: never played, the run is stopped before
"""


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def spec_file(tmp_path: Path) -> str:
    (tmp_path / "stop.script.yaml").write_text(SCRIPT, encoding="utf-8")
    path = tmp_path / "stopper.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return str(path)


# -- the outcome ---------------------------------------------------------------------------

LIMITED = make_spec([agent("main", "echo", limits=Limits(max_turns=1))], [python_tool("echo")])
LIMITED_TURNS = {"main": [calls(call("e1", "echo", {"text": "hi"}), text="Working on it.")]}


def test_stopping_the_entry_agent_gives_a_stopped_outcome() -> None:
    rt = runtime(LIMITED, LIMITED_TURNS)
    waiting = suspended(run(rt, "go", run_id="stop-1"))
    [entry] = waiting.pending()
    assert (entry.reason, entry.decisions) == ("turn_limit", ("extend", "stop"))

    outcome = resume(rt, waiting.stop(entry.id))

    assert isinstance(outcome, engine.Stopped)
    assert (outcome.kind, outcome.output, outcome.run_id) == ("stopped", "Working on it.", "stop-1")
    assert outcome.messages[-1] == {"role": "tool", "tool_call_id": "e1", "content": "echo: hi"}


def test_stopping_a_sub_agent_hands_its_reply_to_the_parent_which_finishes() -> None:
    spec = make_spec(
        [agent("boss", "clerk"), agent("clerk", "echo", limits=Limits(max_turns=1))],
        [sub_agent("clerk"), python_tool("echo")],
    )
    rt = runtime(
        spec,
        {
            "boss": [calls(call("c1", "clerk", {"request": "note"})), say("Boss done.")],
            "clerk": [calls(call("e1", "echo", {"text": "x"}), text="Half done.")],
        },
    )
    waiting = suspended(run(rt))

    outcome = finished(resume(rt, waiting.stop(waiting.pending()[0].path)))

    assert outcome.output == "Boss done."
    assert outcome.messages[2]["content"] == "Half done."


# -- the CLI -------------------------------------------------------------------------------


def test_cli_stop_reports_stopped_in_json_with_exit_0(spec_file: str, tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    code, _, _ = cli("run", spec_file, "--state", state, "-q", "-p", "go")
    assert code == 3

    code, out, err = cli("resume", state, "--stop", "limit-1", "--format", "json")

    assert code == 0, err
    assert json.loads(out) == {
        "status": "stopped",
        "output": "Working on it.",
        "pending": [],
        "state_file": None,
        "run_id": json.loads(out)["run_id"],
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    assert "never played" not in err
    assert not Path(state).exists()


def test_cli_stop_says_stopped_in_text_and_warns_of_no_unplayed_turns(
    spec_file: str, tmp_path: Path
) -> None:
    state = str(tmp_path / "state.json")
    cli("run", spec_file, "--state", state, "-q", "-p", "go")

    code, out, err = cli("resume", state, "--stop", "limit-1", "-q")

    assert code == 0
    assert out == "stopped: a stop decision ended the run; its reply so far:\nWorking on it.\n"
    assert "scripted turns never played" not in err


# -- the store -----------------------------------------------------------------------------


def test_the_store_keeps_status_stopped(spec_file: str, store_url: str) -> None:
    code, _, err = cli("run", spec_file, "--store", store_url, "--run-id", "st", "-q", "-p", "go")
    assert code == 3, err

    code, out, err = cli("resume", "st", "--store", store_url, "--stop", "limit-1", "-q")
    assert code == 0, err

    store = open_store(store_url)
    try:
        record = store.get_run("st")
        assert (record.status, record.output) == ("stopped", "Working on it.")
        assert [r.run_id for r in store.list_runs(status="stopped")] == ["st"]
        assert store.pending() == []
    finally:
        store.close()
    code, out, _ = cli("runs", "show", "st", "--store", store_url)
    assert code == 0
    assert out.startswith("run st: stopped, updated ")
    assert "output: Working on it.\n" in out
    assert " · stopped\n" in out
    code, out, _ = cli("runs", "list", "--status", "stopped", "--store", store_url)
    assert out.startswith("st  stopped ")


def test_a_store_made_before_stopped_existed_migrates_and_keeps_it(
    spec_file: str, store_url: str
) -> None:
    lay_out_version_1(
        store_url, "'kept', 's', 'sha256:s', NULL, 'main', 'finished', 3, NULL, 'hi', 0, 0"
    )
    code, _, err = cli("run", spec_file, "--store", store_url, "--run-id", "old", "-q", "-p", "go")
    assert code == 3, err

    code, _, err = cli("resume", "old", "--store", store_url, "--stop", "limit-1", "-q")

    assert code == 0, err
    store = open_store(store_url)
    try:
        assert store.get_run("old").status == "stopped"
        assert (store.get_run("kept").status, store.get_run("kept").output) == ("finished", "hi")
    finally:
        store.close()


# -- pictures ------------------------------------------------------------------------------


def test_a_stopped_runs_frames_are_drawn_grey_and_titled_stopped() -> None:
    rt = runtime(LIMITED, LIMITED_TURNS)
    waiting = suspended(run(rt, "go", run_id="stop-2"))

    graph = stack_graph(waiting, status="stopped")

    assert graph.graph["title"] == "test · run stop-2 · stopped"
    assert graph.nodes["frame:0"]["fillcolor"] == "#eeeeee"
    assert "#eeeeee" in to_dot(graph)
    assert stack_graph(waiting).nodes["frame:0"]["fillcolor"] == "#e3f2fd"
    assert inspect_text(waiting, status="stopped").splitlines()[0].endswith(" · stopped")


def test_every_frame_of_a_stopped_run_is_grey_not_only_the_first() -> None:
    """The loop over each frame's calls reused the name `status` and repainted the frames
    after the first with the last call's status."""
    spec = make_spec(
        [agent("boss", "clerk", "echo"), agent("clerk", "echo", limits=Limits(max_turns=1))],
        [sub_agent("clerk"), python_tool("echo")],
    )
    turns = {
        "boss": [calls(call("b1", "echo", {"text": "a"}), call("c1", "clerk", {"request": "x"}))],
        "clerk": [calls(call("e1", "echo", {"text": "x"}))],
    }
    waiting = suspended(run(runtime(spec, turns)))

    graph = stack_graph(waiting, status="stopped")

    frames = [n for n, data in graph.nodes(data=True) if data.get("kind") == "frame"]
    assert len(frames) == 2
    assert {graph.nodes[n]["fillcolor"] for n in frames} == {"#eeeeee"}
