"""The CLI: a run suspended in one process resumes in another; exit codes; every decision flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from builders import ROOT

from engine.cli import main

SPECS = ROOT / "specs"
HR_OUTPUT = "Ada Lovelace is onboarded: account ada created and authorized, welcome email sent."


def callcc(*argv: str) -> tuple[int, str, str]:
    """`callcc ARGV` in this process: exit code, stdout, stderr."""
    out, err = StringIO(), StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def callcc_process(*argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m engine ARGV` in a fresh interpreter, from the repository root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
    return subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- across processes ----------------------------------------------------------------------


def test_a_run_suspended_in_one_process_resumes_and_finishes_in_another(tmp_path: Path) -> None:
    state = tmp_path / "state.json"

    ran = callcc_process(
        "run", "specs/hr_agent.yaml", "-p", "Onboard Ada Lovelace", "--state", str(state),
        "--format", "json",
    )  # fmt: skip

    assert ran.returncode == 3, ran.stderr
    suspended = json.loads(ran.stdout)
    assert suspended["status"] == "suspended"
    assert suspended["state_file"] == str(state)
    run_id = suspended["run_id"]
    assert [(p["id"], p["path"], p["tool"], p["reason"]) for p in suspended["pending"]] == [
        (
            "call_acc_2",
            "hr_agent/account_agent@call_hr_1/call_acc_2",
            "authorize_account",
            "approval",
        )
    ]
    assert state.exists()

    resumed = callcc_process("resume", str(state), "--approve", "call_acc_2", "--format", "json")

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {
        "status": "finished",
        "output": HR_OUTPUT,
        "pending": [],
        "state_file": None,
        "run_id": run_id,
        "usage": {"input_tokens": 2261, "output_tokens": 184},  # the script's, every turn
    }
    assert not state.exists()  # a finished run cannot be resumed again


# -- exit codes ----------------------------------------------------------------------------


def test_a_missing_spec_is_bad_input(tmp_path: Path) -> None:
    code, _, err = callcc("run", str(tmp_path / "nope.yaml"), "-p", "x")

    assert code == 2
    assert "nope.yaml" in err


@pytest.fixture
def hr_state(tmp_path: Path) -> Path:
    state = tmp_path / "hr.json"
    code, _, _ = callcc(
        "run", str(SPECS / "hr_agent.yaml"), "-p", "Onboard Ada", "--state", str(state), "-q"
    )
    assert code == 3
    return state


def test_an_unknown_decision_id_is_bad_input_and_lists_what_is_pending(hr_state: Path) -> None:
    code, _, err = callcc("resume", str(hr_state), "--approve", "call_9")

    assert code == 2
    assert "no pending call 'call_9'; pending: hr_agent/account_agent@call_hr_1/call_acc_2" in err
    assert hr_state.exists()


def test_pending_lists_id_path_tool_reason_and_decisions(hr_state: Path) -> None:
    code, out, _ = callcc("pending", str(hr_state))

    assert code == 3
    assert out.splitlines() == [
        "  hr_agent/account_agent@call_hr_1/call_acc_2  [approval]  authorize_account "
        '{"username": "ada", "role": "engineer"}',
        "      Grant engineer access to ada?",
        "      decide: approve, reject",
    ]

    code, out, _ = callcc("pending", str(hr_state), "--format", "json")
    [entry] = json.loads(out)
    assert {k: entry[k] for k in ("id", "path", "tool", "reason", "decisions")} == {
        "id": "call_acc_2",
        "path": "hr_agent/account_agent@call_hr_1/call_acc_2",
        "tool": "authorize_account",
        "reason": "approval",
        "decisions": ["approve", "reject"],
    }


# -- decision flags ------------------------------------------------------------------------


@pytest.fixture
def payments_state(tmp_path: Path) -> Path:
    state = tmp_path / "pay.json"
    code, out, _ = callcc(
        "run", str(SPECS / "payments.yaml"), "-p", "Pay bob 200", "--state", str(state),
        "--format", "json",
    )  # fmt: skip
    assert code == 3
    assert [p["id"] for p in json.loads(out)["pending"]] == ["call_pay_2"]
    return state


def test_reject_with_a_reason_finishes_the_run(payments_state: Path) -> None:
    code, out, _ = callcc(
        "resume", str(payments_state), "--reject", "call_pay_2", "--reason", "too much",
        "--format", "json",
    )  # fmt: skip

    assert code == 0
    assert json.loads(out)["status"] == "finished"


def test_edit_with_json_args_finishes_and_bad_args_are_bad_input(payments_state: Path) -> None:
    bad = callcc("resume", str(payments_state), "--edit", "call_pay_2", "--args", "{not json")
    assert bad[0] == 2
    assert "--args is not valid JSON" in bad[2]

    code, out, _ = callcc(
        "resume", str(payments_state), "--edit", "call_pay_2", "--args",
        '{"from_account": "acct_alice", "to_account": "acct_bob", "amount": 20}',
        "--format", "json",
    )  # fmt: skip

    assert code == 0
    assert json.loads(out)["output"] == "Transferred 200 EUR from acct_alice to acct_bob."


def test_answer_then_pause_then_continue_through_the_research_example(tmp_path: Path) -> None:
    state = tmp_path / "research.json"
    code, out, _ = callcc(
        "run", str(SPECS / "research.yaml"), "-p", "What is call/cc?", "--state", str(state),
        "--format", "json",
    )  # fmt: skip
    assert code == 3
    [entry] = json.loads(out)["pending"]
    assert (entry["id"], entry["reason"]) == ("call_res_2", "external")

    code, out, _ = callcc(
        "resume", str(state), "--answer", "call_res_2", "--result", '"Scheme, Racket, Ruby"',
        "--format", "json",
    )  # fmt: skip
    assert code == 3
    [entry] = json.loads(out)["pending"]
    assert (entry["reason"], entry["decisions"]) == ("pause", ["resume", "stop"])

    code, out, _ = callcc("resume", str(state), "--continue", entry["id"], "--format", "json")
    assert code == 0
    assert json.loads(out)["status"] == "finished"
