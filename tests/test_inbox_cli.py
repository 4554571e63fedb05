"""The CLI on stored runs (issue 14): `callcc decide` records, `callcc resume RUN_ID` applies
what is recorded, `callcc runs expire` and `callcc runs audit`, and `pending`, `inspect`,
`render` reading a run by its id; exit codes as documented, on both backends."""

from __future__ import annotations

import getpass
import io
import json
import re
from pathlib import Path

import loop_tools
import pytest
from test_inbox import E1, T1, write_spec

from engine import Runtime, load_spec
from engine.cli import main

USER = f"os:{getpass.getuser()}"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    return write_spec(tmp_path)


def test_decide_then_resume_a_stored_run(spec_path: Path, store_url: str) -> None:
    store = ("--store", store_url)
    code, out, _ = cli("run", str(spec_path), "-p", "pay bob", "--run-id", "r1", *store)
    assert code == 3 and "suspended: 2 pending" in out
    code, out, _ = cli("pending", "r1", *store, "--format", "json")
    assert code == 3
    listed = {p["path"]: (p["approvers"], p["expires_at"] is not None) for p in json.loads(out)}
    assert listed == {T1: (["finance"], True), E1: ([], False)}

    code, out, err = cli("decide", "r1", *store, "--approve", "t1")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"recorded: approve {T1} (by {USER})",
        f"1 still undecided; `callcc decide r1 ...` records more, `callcc resume r1 --store "
        f"{store_url}` resumes with what is recorded (the rest waits again)",
    ]
    code, out, _ = cli("pending", "r1", *store)
    assert code == 3 and "decided: approve" in out
    code, _, err = cli("decide", "r1", *store, "--reject", "t1")
    assert code == 2 and f"{T1} is decided already (approve)" in err
    code, _, err = cli("decide", "r1", *store, "--approve", "t9")
    assert code == 2 and "no pending call 't9'" in err
    code, _, err = cli("decide", "r1", *store, "--edit", "t1", "--args", '{"to": "bob"}')
    assert code == 2 and "decided already" in err
    code, out, _ = cli("inspect", "r1", *store)
    assert code == 0 and "=> transfer (t1)" in out
    code, out, _ = cli("render", "r1", *store, "--format", "dot")
    assert code == 0 and out.startswith("digraph")

    code, out, err = cli("resume", "r1", *store, "-q", "--reject", E1, "--reason", "not now")
    assert (code, out) == (0, "Paid.\n"), err
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]
    code, _, err = cli("resume", "r1", *store, "--approve", "t1")
    assert code == 2 and "is finished, not suspended" in err
    code, out, _ = cli("pending", "r1", *store)
    assert (code, out) == (0, "nothing is pending\n")

    code, out, _ = cli("runs", "audit", "r1", *store)
    assert code == 0
    lines = [line.split("  ", 1)[1] for line in out.splitlines()]  # without the time
    assert lines == [
        f"{USER}  started",
        f"{USER}  decided  approve  {T1}",
        f"{USER}  decided  reject  {E1}  (not now)",
        f"{USER}  resumed",
        f"{USER}  finished",
    ]
    code, out, _ = cli("runs", "audit", "r1", *store, "--format", "json")
    trail = json.loads(out)
    assert [e["action"] for e in trail] == ["started", "decided", "decided", "resumed", "finished"]
    assert re.fullmatch("[0-9a-f]{32}", trail[1]["fingerprint"])  # what the reviewer saw
    code, _, err = cli("runs", "audit", "nope", *store)
    assert code == 2 and "no run 'nope'" in err


def test_decide_records_every_flag_kind_and_refuses_nothing_given(
    spec_path: Path, store_url: str
) -> None:
    store = ("--store", store_url)
    cli("run", str(spec_path), "-p", "pay bob", "--run-id", "r2", *store)
    code, _, err = cli("decide", "r2", *store)
    assert code == 2 and "no decision was given" in err and T1 in err
    code, _, err = cli("decide", "r2", *store, "--patch", "t1", '{"amount": 0}')
    assert code == 2 and "edit of t1: the arguments do not match" in err
    code, out, _ = cli(
        "decide", "r2", *store, "--patch", "t1", '{"amount": 9}', "--approve", "all",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "run_id": "r2",
        "user": USER,
        "recorded": [{"path": T1, "decision": "edit"}, {"path": E1, "decision": "approve"}],
        "remaining": 0,
    }
    code, out, err = cli("resume", "r2", *store, "-q")
    assert (code, out) == (0, "Paid.\n"), err
    assert loop_tools.CALLS == [
        ("transfer", {"to": "bob", "amount": 9}),
        ("echo", {"text": "noted"}),
    ]


def test_runs_expire_from_the_shell(spec_path: Path, store_url: str) -> None:
    store = ("--store", store_url)
    with Runtime(load_spec(spec_path), store=store_url, clock=lambda: 1000.0) as rt:
        rt.run("pay bob", run_id="old")  # gated at 1000: expired long ago
    code, out, _ = cli("runs", "expire", *store)
    assert (code, out) == (0, "expired: run old: still waits on entries not expired\n")
    assert cli("runs", "expire", *store)[:2] == (0, "nothing expired\n")
    code, out, _ = cli("pending", "old", *store)
    assert code == 3 and "decided: reject" in out
    assert cli("decide", "old", *store, "--approve", E1)[0] == 0
    code, out, _ = cli("resume", "old", *store, "--format", "json")
    assert code == 0 and json.loads(out)["status"] == "finished"
    assert loop_tools.CALLS == [("echo", {"text": "noted"})]
    code, out, _ = cli("runs", "audit", "old", *store)
    assert "callcc  expired  reject  main/t1  (expired: no decision within 30m)" in out


def test_a_path_that_exists_is_read_as_a_file(
    spec_path: Path, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ("--store", store_url)
    cli("run", str(spec_path), "-p", "pay bob", "--run-id", "r3", *store)
    monkeypatch.chdir(tmp_path)
    Path("r3").write_text(
        json.dumps({"format": "callcc.continuation"}), encoding="utf-8"
    )  # a file named like the run, but no continuation
    code, _, err = cli("pending", "r3", *store)
    assert code == 2
    assert err.startswith(
        "callcc: note: r3 is a file and also a run id in the store; reading the file"
    )
    code, _, err = cli("inspect", "missing")
    assert code == 2 and "cannot read missing: no such file; to read a stored run" in err
    code, _, err = cli("inspect", "missing", *store)
    assert code == 2 and "no run 'missing'" in err


def test_pending_and_runs_pending_show_why_a_condition_made_a_stored_call_wait(
    store_url: str,
) -> None:
    specs = Path(__file__).parent.parent / "specs"
    store = ("--store", store_url)
    code, _, err = cli("run", str(specs / "transfers.yaml"), "-p", "pay", "--run-id", "pay", *store)
    assert code == 3, err
    code, _, err = cli("run", str(specs / "hr_agent.yaml"), "-p", "x", "--run-id", "hr", *store)
    assert code == 3, err
    when = 'args.amount > 1000 || args.currency != "EUR"'  # specs/transfers.yaml's condition
    why, policy = f"when {when} held", {"kind": "when", "when": when, "outcome": "held"}

    code, out, _ = cli("pending", "pay", *store, "--format", "json")
    [entry] = json.loads(out)
    assert (code, entry["path"]) == (3, "treasurer/call_laptop")
    assert (entry["policy"], entry["why"]) == (policy, why)
    code, out, _ = cli("pending", "pay", *store)
    assert code == 3 and f"      why: {why}\n" in out
    code, out, _ = cli("pending", "hr", *store)
    assert code == 3 and "why:" not in out
    code, out, _ = cli("runs", "show", "pay", *store)
    assert code == 0 and f"why: {why}\n" in out
    code, out, _ = cli("runs", "show", "pay", *store, "--format", "json")
    assert [(p["policy"], p["why"]) for p in json.loads(out)["pending"]] == [(policy, why)]

    code, out, _ = cli("runs", "pending", *store, "--format", "json")
    rows = {r["run_id"]: (r["policy"], r["why"]) for r in json.loads(out)}
    assert (code, rows) == (0, {"pay": (policy, why), "hr": (None, None)})
    code, out, _ = cli("runs", "pending", *store)
    lines = [line.split("  ", 1)[1] for line in out.splitlines()]  # without the time
    assert lines == [  # oldest first: the transfers run suspended first
        "pay  treasurer/call_laptop  [approval]  transfer",
        f"    why: {why}",
        "hr  hr_agent/account_agent@call_hr_1/call_acc_2  [approval]  authorize_account",
    ]
