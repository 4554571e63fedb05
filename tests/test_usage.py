"""Token usage: summed per frame and per run, kept in the continuation, the store and shown by
the CLI; an ended sub-agent's tokens stay counted in its caller."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import builders
import pytest
import yaml
from builders import ROOT, check_document, finished, make_spec, script, suspended
from store_fixtures import lay_out_version_1

from engine import Continuation, Finished, Runtime, load_spec
from engine.cli import main
from engine.errors import ContinuationError
from engine.models.scripted import ScriptedModel, ScriptFormatError
from engine.store import RunRecord, open_store
from engine.usage import Usage, reply_tokens

HR_SPEC = ROOT / "specs" / "hr_agent.yaml"
HR_OUTPUT = "Ada Lovelace is onboarded: account ada created and authorized, welcome email sent."


def hr_script_with_usage(tmp_path: Path) -> str:
    """specs/hr_agent.script.yaml with made-up token counts on every turn."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "specs" / "hr_agent.script.yaml").read_text())
    spent = {"hr_agent": [(10, 1), (20, 2), (30, 3)], "account_agent": [(100, 10), (200, 20)]}
    for agent, turns in data["agents"].items():
        for turn, (spent_in, spent_out) in zip(turns, spent[agent], strict=True):
            turn["usage"] = {"input_tokens": spent_in, "output_tokens": spent_out}
    path = tmp_path / "hr.usage.script.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_a_suspended_sub_agent_holds_its_own_tokens_and_the_run_sums_every_frame(
    tmp_path: Path,
) -> None:
    script = hr_script_with_usage(tmp_path)
    with Runtime(load_spec(HR_SPEC), model_override=f"scripted:{script}") as runtime:
        waiting = suspended(runtime.run("Onboard Ada Lovelace as an engineer"))

    check_document(waiting)  # the schema knows the new members
    hr, account = (frame for _, frame in waiting.frames())
    assert (hr.input_tokens, hr.output_tokens) == (10, 1)
    assert (account.input_tokens, account.output_tokens) == (100, 10)
    assert waiting.usage == Usage(input_tokens=110, output_tokens=11)
    data = waiting.to_dict()
    assert data["usage"] == {"input_tokens": 110, "output_tokens": 11}
    assert data["frames"][0]["counters"]["input_tokens"] == 10
    assert data["frames"][1]["counters"]["output_tokens"] == 10
    again = Continuation.from_json(waiting.to_json())
    assert again == waiting and again.usage == waiting.usage


def test_an_ended_sub_agent_folds_into_its_caller_so_the_run_total_survives_its_frame(
    tmp_path: Path,
) -> None:
    script = hr_script_with_usage(tmp_path)
    with Runtime(load_spec(HR_SPEC), model_override=f"scripted:{script}") as runtime:
        waiting = suspended(runtime.run("Onboard Ada Lovelace as an engineer"))
        done = finished(runtime.resume(waiting.approve("call_acc_2")))

    assert done.output == HR_OUTPUT
    assert done.usage == Usage(input_tokens=10 + 20 + 30 + 100 + 200, output_tokens=36)
    assert done.usage.describe() == "396 tokens (360 in, 36 out)"


def test_a_document_whose_usage_disagrees_with_its_frames_is_refused(tmp_path: Path) -> None:
    script = hr_script_with_usage(tmp_path)
    with Runtime(load_spec(HR_SPEC), model_override=f"scripted:{script}") as runtime:
        data = suspended(runtime.run("Onboard Ada")).to_dict()
    data["usage"]["input_tokens"] = 1
    with pytest.raises(ContinuationError, match="frames' counters add up to 110") as caught:
        Continuation.from_dict(data)
    assert caught.value.pointer == "/usage/input_tokens"
    data["frames"][0]["counters"]["input_tokens"] = -1
    with pytest.raises(ContinuationError) as negative:
        Continuation.from_dict(data)
    assert negative.value.pointer == "/frames/0/counters/input_tokens"


def test_the_frozen_v1_fixture_without_usage_loads_with_none_spent() -> None:
    text = (ROOT / "tests" / "fixtures" / "continuation" / "v1-hr-approval.json").read_text()
    document = Continuation.from_json(text)
    assert "usage" not in json.loads(text)
    assert document.usage == Usage()
    assert "usage" not in document.to_dict()  # nothing spent: the document stays as it was


def test_openai_usage_is_counted_from_what_the_server_sends(
    openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_runtime_openai import openai_spec

    monkeypatch.setenv("CALLCC_TEST_OPENAI_KEY", "sk-test")
    openai_server.push(
        tool_calls=[{"id": "call_1", "name": "transfer", "arguments": {"to": "bob", "amount": 5}}],
        usage={"prompt_tokens": 57, "completion_tokens": 12},
    )
    openai_server.push(text="Sent 5 to bob.", usage={"prompt_tokens": 80, "completion_tokens": 7})
    runtime = Runtime(openai_spec(openai_server.base_url))
    try:
        first = suspended(runtime.run("Send bob 5"))
        assert first.usage == Usage(input_tokens=57, output_tokens=12)
        done = finished(runtime.resume(first.approve("call_1")))
    finally:
        runtime.close()
    assert done.usage == Usage(input_tokens=137, output_tokens=19)


def test_reply_tokens_reads_openai_and_genai_names_and_ignores_junk() -> None:
    assert reply_tokens({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}) == (3, 4)
    assert reply_tokens({"input_tokens": 5, "output_tokens": 6}) == (5, 6)
    assert reply_tokens({"prompt_tokens": -2, "completion_tokens": True}) == (0, 0)
    assert reply_tokens({}) == (0, 0)
    # beyond any reply (a hostile server): read as none, so no store column overflows
    assert reply_tokens({"prompt_tokens": 2**63, "completion_tokens": 2**40}) == (0, 2**40)


def test_a_reply_claiming_more_tokens_than_a_store_keeps_leaves_the_run_whole(
    tmp_path: Path,
) -> None:
    spec = make_spec([builders.agent("main")], [], name="greedy")
    turns = {"main": [{"text": "done", "usage": {"input_tokens": 2**63, "output_tokens": 1}}]}
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with Runtime(spec, model_override=script(turns), store=url) as runtime:
        done = runtime.run("go", run_id="greedy")  # was an OverflowError traceback from SQLite
    assert isinstance(done, Finished) and done.usage == Usage(input_tokens=0, output_tokens=1)


def test_a_script_turn_states_usage_as_a_server_reports_it() -> None:
    model = ScriptedModel.from_data(
        {"agents": {"a": [{"text": "hi", "usage": {"input_tokens": 9, "output_tokens": 2}}]}}
    )
    turns = model._turns["a"]
    assert isinstance(turns, list)
    assert turns[0].usage == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    with pytest.raises(ScriptFormatError, match="usage needs") as caught:
        ScriptedModel.from_data({"agents": {"a": [{"text": "hi", "usage": {"tokens": 9}}]}})
    assert caught.value.pointer == "/agents/a/0/usage"


def test_the_store_keeps_the_totals_and_the_cli_shows_them(store_url: str, tmp_path: Path) -> None:
    script = hr_script_with_usage(tmp_path)
    spec = load_spec(HR_SPEC)
    with Runtime(spec, model_override=f"scripted:{script}", store=store_url) as runtime:
        suspended(runtime.run("Onboard Ada Lovelace as an engineer", run_id="u-1"))
        record = runtime.store.get_run("u-1") if runtime.store else None
        assert record is not None and (record.input_tokens, record.output_tokens) == (110, 11)
        finished(runtime.resume(runtime.load_run("u-1").approve("call_acc_2")))
    store = open_store(store_url)
    try:
        record = store.get_run("u-1")
        assert (record.input_tokens, record.output_tokens) == (360, 36)
        assert [(r.run_id, r.input_tokens) for r in store.list_runs()] == [("u-1", 360)]
    finally:
        store.close()

    out = io.StringIO()
    assert main(["runs", "show", "u-1", "--store", store_url], out, io.StringIO()) == 0
    assert "· finished · 396 tokens (360 in, 36 out)\n" in out.getvalue()  # the stack's head
    out = io.StringIO()
    assert main(["runs", "show", "u-1", "--store", store_url, "--format", "json"], out, out) == 0
    assert json.loads(out.getvalue())["usage"] == {"input_tokens": 360, "output_tokens": 36}
    out = io.StringIO()
    assert main(["runs", "list", "--store", store_url, "--format", "json"], out, out) == 0
    assert json.loads(out.getvalue())[0]["usage"] == {"input_tokens": 360, "output_tokens": 36}


def test_run_and_inspect_show_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    script = hr_script_with_usage(tmp_path)
    state = str(tmp_path / "state.json")
    out = io.StringIO()
    argv = ["run", str(HR_SPEC), "-p", "Onboard Ada", "--model", f"scripted:{script}"]
    code = main([*argv, "--state", state, "--format", "json"], out, io.StringIO())
    assert code == 3
    assert json.loads(out.getvalue())["usage"] == {"input_tokens": 110, "output_tokens": 11}
    out = io.StringIO()
    assert main(["inspect", state], out, io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("· 121 tokens (110 in, 11 out)")
    assert lines[1] == "hr_agent  [turns 1 · 10 in / 1 out tokens]"
    assert "account_agent  ← account_agent (call_hr_1)  [turns 1 · 100 in / 10 out tokens]" in (
        out.getvalue()
    )


def test_migration_5_adds_zero_counts_to_runs_an_older_callcc_kept(store_url: str) -> None:
    lay_out_version_1(
        store_url,
        "'old-1', 'hr', 'sha256:a', NULL, 'hr_agent', 'finished', 3, NULL, 'done', 1, 2",
    )
    store = open_store(store_url)
    try:
        record = store.get_run("old-1")
    finally:
        store.close()
    assert isinstance(record, RunRecord)
    assert (record.input_tokens, record.output_tokens, record.trace) == (0, 0, None)
