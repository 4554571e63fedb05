"""What a new user of the CLI trips over: state files that overwrite each other, decision flags
that need JSON quoting or a whole argument set, `all` that decides nothing, a closed pipe, and
an unsigned warning that says nothing. Each test fails on the CLI before these fixes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import loop_tools
import pytest
from builders import ROOT, agent, call, calls, make_spec, script

from engine import Runtime, Suspended
from engine.cli import main
from engine.spec.model import ExternalTool
from engine.store import open_store
from engine.store.base import RunRecord

SHOP_YAML = """\
spec_version: 1
name: shop
allow_modules: [loop_tools]
models:
  scripted: {kind: scripted, script: shop.script.yaml}
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {required: true, decisions: [approve, edit, reject]}
  ask_manager:
    kind: external
    description: Ask the manager; the answer arrives later.
    parameters:
      type: object
      properties: {question: {type: string}}
      required: [question]
agents:
  shop:
    description: Refunds.
    model: scripted
    instructions: Refund when asked.
    tools: [transfer, ask_manager]
entrypoint: shop
"""
SHOP_SCRIPT = """\
script_version: 1
agents:
  shop:
    - tool_calls:
        - {id: t1, name: transfer, arguments: {to: bob, amount: 50}}
        - {id: q1, name: ask_manager, arguments: {question: "Refund bob?"}}
    - text: Done.
"""
ASK_SCRIPT = """\
script_version: 1
agents:
  shop:
    - tool_calls:
        - {id: q1, name: ask_manager, arguments: {question: "Refund bob?"}}
    - text: Done.
"""


def callcc(*argv: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shop spec in a fresh working directory."""
    (tmp_path / "shop.script.yaml").write_text(SHOP_SCRIPT, encoding="utf-8")
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP_YAML, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return path


def suspend(spec: Path, *extra: str) -> dict[str, object]:
    code, out, err = callcc("run", str(spec), "-p", "Refund bob", "--format", "json", *extra)
    assert code == 3, err
    data: dict[str, object] = json.loads(out)
    return data


# -- item 4: state files are not lost ------------------------------------------------------


def test_two_runs_in_one_directory_write_two_state_files_named_by_run_id(shop: Path) -> None:
    first, second = suspend(shop), suspend(shop)

    assert first["run_id"] != second["run_id"]
    assert first["state_file"] == f"callcc-state-{first['run_id']}.json"
    assert second["state_file"] == f"callcc-state-{second['run_id']}.json"
    for data in (first, second):
        code, _, err = callcc(
            "resume", str(data["state_file"]), "--approve", "t1", "--result-text", "q1", "yes"
        )
        assert code == 0, err
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 50})] * 2
    assert sorted(p.name for p in shop.parent.glob("callcc-state*")) == []


def test_a_run_id_that_is_no_file_name_makes_a_safe_one(shop: Path) -> None:
    assert suspend(shop, "--run-id", "a/b c")["state_file"] == "callcc-state-a_b_c.json"


def test_a_state_file_holding_a_waiting_run_is_never_overwritten_without_force(
    shop: Path,
) -> None:
    first = suspend(shop, "--run-id", "refund-1", "--state", "s.json")
    held = Path("s.json").read_text(encoding="utf-8")

    code, out, err = callcc("run", str(shop), "-p", "again", "--run-id", "r2", "--state", "s.json")

    assert (code, out) == (2, "")
    assert err == (
        "callcc: error: s.json holds run refund-1, which waits on shop/t1, shop/q1; resume it "
        "first (callcc resume s.json ...), choose another --state, or pass --force to "
        "overwrite it\n"
    )
    assert Path("s.json").read_text(encoding="utf-8") == held
    assert first["state_file"] == "s.json"

    # resuming another file into it is refused the same way
    suspend(shop, "--run-id", "r3", "--state", "other.json")
    code, _, err = callcc(
        "resume", "other.json", "--approve", "t1", "--state", "s.json", "--result-text", "q1", "y"
    )
    assert code == 2
    assert "s.json holds run refund-1" in err
    assert loop_tools.CALLS == []

    assert suspend(shop, "--run-id", "r4", "--state", "s.json", "--force")["run_id"] == "r4"
    assert json.loads(Path("s.json").read_text(encoding="utf-8"))["run_id"] == "r4"


def test_a_file_that_is_no_state_file_is_not_overwritten_either(shop: Path) -> None:
    Path("notes.json").write_text('{"mine": true}', encoding="utf-8")

    code, _, err = callcc("run", str(shop), "-p", "x", "--state", "notes.json")

    assert code == 2
    assert "notes.json exists and is not a callcc state file" in err
    assert Path("notes.json").read_text(encoding="utf-8") == '{"mine": true}'


# -- item 10: decision flags ---------------------------------------------------------------


def test_a_plain_text_result_gets_a_quoting_hint_and_result_text_takes_it_as_is(
    shop: Path,
) -> None:
    state = str(suspend(shop)["state_file"])

    code, _, err = callcc("resume", state, "--answer", "q1", "--result", "ok go ahead")

    assert code == 2
    assert "--result is not valid JSON: Expecting value: line 1 column 1 (char 0)" in err
    assert "quote it as a JSON string (--result '\"ok go ahead\"') or use --result-text" in err

    code, out, err = callcc(
        "resume", state, "--result-text", "q1", "ok go ahead", "--reject", "t1", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "finished"
    assert loop_tools.CALLS == []


def test_reject_all_rejects_every_call_that_allows_it(shop: Path) -> None:
    state = str(suspend(shop)["state_file"])

    code, out, err = callcc("resume", state, "--reject", "all", "--reason", "not today", "-q")

    assert (code, out) == (0, "Done.\n"), err
    assert loop_tools.CALLS == []


def test_approve_all_with_only_external_calls_waiting_says_nothing_was_decided(
    shop: Path,
) -> None:
    Path("shop.script.yaml").write_text(ASK_SCRIPT, encoding="utf-8")
    state = str(suspend(shop)["state_file"])
    before = Path(state).read_text(encoding="utf-8")

    code, out, err = callcc("resume", state, "--approve", "all")

    assert (code, out) == (2, "")
    assert err == (
        "callcc: error: nothing was decided (--approve all found no call that allows approve),"
        " so the run would only wait again; waiting:\n"
        '  shop/q1  [external]  ask_manager {"question": "Refund bob?"}\n'
        "      Ask the manager; the answer arrives later.\n"
        "      decide: answer, reject\n"
    )
    assert Path(state).read_text(encoding="utf-8") == before


def test_resume_is_the_flag_of_the_resume_decision_and_continue_its_alias(tmp_path: Path) -> None:
    state = tmp_path / "research.json"
    spec = ROOT / "specs" / "research.yaml"
    code, out, _ = callcc(
        "run", str(spec), "-p", "What is call/cc?", "--state", str(state), "--format", "json"
    )
    code, out, _ = callcc(
        "resume", str(state), "--result-text", "call_res_2", "Scheme", "--format", "json"
    )
    assert code == 3
    [entry] = json.loads(out)["pending"]
    assert entry["decisions"] == ["resume", "stop"]

    code, out, err = callcc("resume", str(state), "--resume", entry["id"], "--format", "json")

    assert code == 0, err
    assert json.loads(out)["status"] == "finished"


def test_the_next_hint_names_the_resume_flag(tmp_path: Path) -> None:
    state = tmp_path / "research.json"
    spec = ROOT / "specs" / "research.yaml"
    callcc("run", str(spec), "-p", "What is call/cc?", "--state", str(state), "-q")

    code, out, _ = callcc("resume", str(state), "--result-text", "call_res_2", "Scheme", "-q")

    assert code == 3
    assert out.splitlines()[-1] == f"next: callcc resume {state} --resume researcher/pause-1"


def test_patch_merges_onto_the_arguments_and_is_checked_like_an_edit(shop: Path) -> None:
    state = str(suspend(shop)["state_file"])

    code, _, err = callcc("resume", state, "--patch", "t1", '{"amount": "sixty"}')
    assert code == 2
    assert "edit of t1: the arguments do not match the parameters of transfer at amount" in err
    code, _, err = callcc("resume", state, "--patch", "t1", "[1]")
    assert code == 2
    assert "--patch t1: the patch must be a JSON object" in err
    assert loop_tools.CALLS == []

    code, _, err = callcc(
        "resume", state, "--patch", "t1", '{"amount": 60}', "--result-text", "q1", "yes"
    )

    assert code == 0, err
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 60})]


def test_merge_patch_follows_rfc_7396() -> None:
    from engine.cli._decisions import merge_patch

    target = {"a": "b", "c": {"d": "e", "f": "g"}, "keep": [1]}
    patch = {"a": "z", "c": {"f": None, "n": {"x": 1}}, "new": [2]}

    assert merge_patch(target, patch) == {
        "a": "z",
        "c": {"d": "e", "n": {"x": 1}},
        "keep": [1],
        "new": [2],
    }
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "keep": [1]}  # not mutated


# -- item 11: a closed pipe ----------------------------------------------------------------


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_store(url)
    try:
        now = time.time()
        for i in range(300):  # about 200 kB of JSON: far more than a pipe holds
            store.create_run(
                RunRecord(
                    run_id=f"run-{i:04d}",
                    spec_name="shop",
                    spec_digest="sha256:x",
                    spec_path=None,
                    agent="shop" + "p" * 500,
                    status="running",
                    version=0,
                    nonce=None,
                    output=None,
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
    argv = [sys.executable, "-m", "engine", "runs", "list", "--format", "json", "--limit", "1000"]
    child = subprocess.Popen(
        [*argv, "--store", url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.read(10) == b"[\n  {\n    "  # like `| head -c 10`
    child.stdout.close()
    err = child.stderr.read().decode()
    child.stderr.close()

    assert child.wait(timeout=60) == 0
    assert err == ""


# -- item 12: the unsigned warning ---------------------------------------------------------


def test_with_a_store_and_no_state_file_nothing_unsigned_leaves_so_nothing_warns(
    shop: Path, tmp_path: Path
) -> None:
    store = ("--store", f"sqlite:///{tmp_path / 'runs.db'}")
    code, _, err = callcc("run", str(shop), "-p", "x", "--run-id", "r1", "-q", *store)
    assert (code, err) == (3, "")

    code, _, err = callcc("resume", "r1", "--approve", "t1", "-q", *store)  # q1 still waits
    assert (code, err) == (3, "")
    code, _, err = callcc("runs", "pending", *store)
    assert (code, err) == (0, "")


# -- what a new user met after these fixes (the README walk-through) --------------------------


def test_the_next_hint_keeps_the_model_the_run_was_driven_with_and_runs_as_printed(
    tmp_path: Path,
) -> None:
    """The document does not record `--model`: a hint without it resumed on the spec's own
    model (here: its script, one turn short) and failed the run."""
    fanout = "scripted:" + str(ROOT / "specs" / "hr_agent.fanout.script.yaml")
    state = tmp_path / "my state.json"  # a space: the hint must quote it for the shell
    spec = str(ROOT / "specs" / "hr_agent.yaml")
    code, out, _ = callcc("run", spec, "--model", fanout, "--state", str(state), "-q", "-p", "x")
    assert code == 3
    hint = out.splitlines()[-1]
    assert hint.startswith(f"next: callcc resume '{state}' --model {fanout} --approve ")

    argv = shlex.split(hint.removeprefix("next: callcc "))
    code, out, err = callcc(*argv, "--reject", "all", "-q")

    assert code == 0, err


def test_a_relative_sqlite_store_is_named_by_its_absolute_path(shop: Path) -> None:
    code, out, _ = callcc(
        "run", str(shop), "--store", "sqlite:///runs.db", "--run-id", "r", "-p", "x", "-q"
    )
    assert code == 3
    absolute = f"sqlite:///{shop.parent / 'runs.db'}"
    assert f"next: callcc resume r --store {absolute} --approve " in out

    os.chdir("/")  # the shop fixture's monkeypatch puts the working directory back
    argv = ["resume", "r", "--store", absolute, "--approve", "t1", "--result-text", "q1", "yes"]
    code, out, err = callcc(*argv, "-q")
    assert (code, out) == (0, "Done.\n"), err


def test_a_state_file_resumed_from_another_folder_says_where_its_spec_path_came_from(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, _ = callcc("run", "shop.yaml", "--state", "s.json", "-p", "x", "-q")
    assert code == 3
    assert json.loads((tmp_path / "s.json").read_text())["spec"]["path"] == str(shop)
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "shop.yaml"
    shop.rename(moved)

    code, _, err = callcc("resume", "s.json", "--approve", "t1", "-q")

    assert code == 2
    assert f"the spec '{shop}' that s.json records (where the run started)" in err
    assert "pass --spec SPEC" in err


def test_a_failed_run_keeps_its_state_file_to_inspect(shop: Path, tmp_path: Path) -> None:
    (tmp_path / "shop.script.yaml").write_text(
        "script_version: 1\nagents:\n  shop:\n"
        "    - tool_calls: [{id: t1, name: transfer, arguments: {to: bob, amount: 5}}]\n",
        encoding="utf-8",
    )
    code, _, _ = callcc("run", "shop.yaml", "--state", "s.json", "-p", "x", "-q")
    assert code == 3

    code, _, err = callcc("resume", "s.json", "--approve", "t1", "-q")  # the script ends here

    assert code == 1
    assert "callcc: the failed run's state is kept in s.json: `callcc inspect s.json`" in err
    code, out, _ = callcc("inspect", "s.json")
    assert code == 0 and "transfer" in out
    code, _, err = callcc("resume", "s.json", "--approve", "all")
    assert code == 2 and "nothing was decided" in err


def test_resuming_a_run_id_without_a_store_says_to_name_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLCC_STORE", raising=False)
    code, _, err = callcc("resume", "onboard-ada", "--approve", "all")
    assert code == 2
    assert (
        "onboard-ada: no such state file; to resume a stored run by its id, name its store" in err
    )


def test_pending_text_masks_secrets_as_the_pictures_do_and_json_keeps_them(
    tmp_path: Path,
) -> None:
    arguments = {"user": "bob", "password": "hunter2", "api_token": "tok123", "note": "sk-abc"}
    spec = make_spec([agent("ops", "login")], [ExternalTool(name="login", description="Log in.")])
    with Runtime(
        spec, model_override=script({"ops": [calls(call("c1", "login", arguments))]})
    ) as rt:
        waiting = rt.run("log in")
    assert isinstance(waiting, Suspended)
    state = tmp_path / "s.json"
    state.write_text(waiting.continuation.to_json(), encoding="utf-8")

    code, out, _ = callcc("pending", str(state))
    assert code == 3
    assert 'login {"user": "bob", "password": "***", "api_token": "***", "note": "***"}' in out
    code, out, _ = callcc("pending", str(state), "--format", "json")
    assert json.loads(out)[0]["arguments"] == arguments


def test_a_prompt_file_without_an_end_is_refused_at_the_size_limit(shop: Path) -> None:
    """`/dev/zero` has no size to check first; reading it whole killed the process."""
    code, _, err = callcc("run", "shop.yaml", "--prompt-file", "/dev/zero", "-q")
    assert code == 2
    assert "/dev/zero: over the 67108864 byte limit" in err
