"""The fast paths of issue 13 give the very results of the slow ones.

Documents are read by orjson when it reads them exactly (integers beyond 64 bits go to the
standard library), fingerprints and argument decodes are not repeated for entries this process
made and can prove unchanged (a `Seal`), canonical JSON reuses one C encoder, runnable calls
carry their decoded arguments to the run, and scripts load with libyaml when PyYAML has it.
Each test below would fail if a fast path read differently, trusted a stale value, or lost the
location of an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import loop_tools
import pytest
import yaml
from builders import (
    agent,
    call,
    calls,
    finished,
    gated,
    make_spec,
    python_tool,
    resume,
    run,
    runtime,
    say,
    suspended,
)
from hypothesis import given
from hypothesis import strategies as st

from engine import _json
from engine._canonical import canonical_json
from engine.continuation import Continuation
from engine.errors import ContinuationError
from engine.frames import Pending, call_fingerprint
from engine.models.scripted import ScriptedModel, ScriptFormatError
from engine.spec.model import Limits

BIG = [2**64, 2**64 + 1, -(2**63) - 1, 10**40, -(10**30) - 7]
"""Integers orjson cannot read exactly: beyond its range of -2**63 .. 2**64 - 1."""

LONG_TURNS = 3_000
"""Turns of echo calls that make a document of about 1 MB."""


def _long_run_suspended() -> tuple[Any, Continuation]:
    """A run of LONG_TURNS echo turns that then waits for approval of a transfer."""
    limits = Limits(max_turns=LONG_TURNS + 2, max_tool_calls=LONG_TURNS + 2)
    spec = make_spec(
        [agent("clerk", "echo", "transfer", limits=limits)],
        [python_tool("echo"), gated("transfer", "approve", "edit", "reject")],
    )
    turns = [
        calls(call(f"e{i}", "echo", {"text": f"step {i}: invoice {i:05d}, paid " + "x" * 200}))
        for i in range(LONG_TURNS)
    ]
    turns += [calls(call("t1", "transfer", {"to": "bob", "amount": 5})), say("Done.")]
    rt = runtime(spec, {"clerk": turns})
    return rt, suspended(run(rt, "Reconcile"))


# -- documents -----------------------------------------------------------------------------


def test_a_1_mb_document_with_integers_beyond_64_bits_round_trips_exactly() -> None:
    rt, waiting = _long_run_suspended()
    for big in BIG:
        edited = waiting.edit("t1", {"to": "bob", "amount": big})
        text = edited.to_json()
        assert len(text) > 1_000_000

        back = Continuation.from_json(text)

        assert back == edited
        decision = back.frames()[0][1].pending[0].decision
        amount = decision.arguments["amount"]  # type: ignore[union-attr]
        assert (type(amount), amount) == (int, big)
        assert back.to_json() == text
    finished(resume(rt, back))
    assert loop_tools.CALLS[-1] == ("transfer", {"to": "bob", "amount": BIG[-1]})


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 18446744073709551615, "m": -9223372036854775808}',  # orjson's exact ends
        '{"n": 18446744073709551616}',
        '{"n": -9223372036854775809}',
        '{"n": 123456789012345678901234567890}',
        '{"n": 0.1234567890123456789, "s": "1234567890123456789"}',
        '{"f": [1.5, -0.0, 1e308, 5e-324, 0.30000000000000004, 1e22, 12345678.9]}',
        '{"a": 1, "b": 2, "a": 3}',
        '{"k": "\\ud83d\\ude00 \\u0000 \\n"}',
        '{"lone": "\\ud800"}',
        "[" * 600 + "]" * 600,
    ],
)
def test_reading_gives_what_the_standard_library_reads(text: str) -> None:
    value = _json.loads(text)
    expected = json.loads(text)
    assert value == expected
    assert json.dumps(value) == json.dumps(expected)  # same types, same key order


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"n": NaN}', _json.NonFinite),
        ('{"n": 1e999}', _json.NonFinite),
        ('{"n": 1,}', json.JSONDecodeError),
        ("[" * 100_000 + "]" * 100_000, RecursionError),
    ],
)
def test_what_orjson_refuses_is_refused_with_the_standard_library_s_error(
    text: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _json.loads(text)


def test_a_document_whose_messages_are_malformed_is_refused_at_the_message() -> None:
    """The whole-list check only says "something is off": the pointer still comes from the
    message-by-message check, here for the 2,002nd message of a long frame."""
    _, waiting = _long_run_suspended()
    data = json.loads(waiting.to_json())
    data["frames"][0]["messages"][2001]["tool_calls"][0]["function"]["arguments"] = {"a": 1}

    with pytest.raises(ContinuationError) as caught:
        Continuation.from_json(json.dumps(data))

    assert caught.value.pointer == "/frames/0/messages/2001/tool_calls"


def test_a_call_id_used_in_two_turns_still_loads_with_its_ledger() -> None:
    """Ids repeated across messages take the slow way; the ledger comes out the same."""
    _, waiting = _long_run_suspended()
    data = json.loads(waiting.to_json())
    messages = data["frames"][0]["messages"]
    messages[3]["tool_calls"][0]["id"] = messages[1]["tool_calls"][0]["id"]

    frame = Continuation.from_json(json.dumps(data)).frames()[0][1]

    assert frame.ledger["e0"] == "done" and "e1" not in frame.ledger
    assert frame.ledger["t1"] == "pending"
    assert list(frame.ledger)[:2] == ["e0", "e2"]


# -- fingerprints and decodes, once --------------------------------------------------------

PAY = make_spec([agent("bank", "transfer")], [gated("transfer", "approve", "edit")])
PAY_TURNS = {"bank": [calls(call("t1", "transfer", {"to": "bob", "amount": 5})), say("Done.")]}


def test_an_entry_changed_in_place_no_longer_holds_its_fingerprint() -> None:
    entry = Pending.for_call(
        id="t1",
        reason="approval",
        tool="transfer",
        arguments={"to": "bob", "amount": 5, "memo": ["rent"]},
        decisions=("approve",),
        text='{"to": "bob", "amount": 5, "memo": ["rent"]}',
    )
    assert entry.fingerprint_holds()
    assert entry.decoded_from('{"to": "bob", "amount": 5, "memo": ["rent"]}')
    assert not entry.decoded_from('{"to": "bob", "amount": 5000, "memo": ["rent"]}')

    assert entry.arguments is not None
    entry.arguments["memo"].append("and a yacht")  # nested, in place: the seal must see it

    assert not entry.fingerprint_holds()
    assert not entry.decoded_from('{"to": "bob", "amount": 5, "memo": ["rent"]}')


def test_arguments_changed_in_memory_after_an_approval_are_refused_and_nothing_runs() -> None:
    """The approval is bound to `bob, 5`. Changing the entry (and the model's call) in memory
    afterwards must not ride on a fingerprint remembered from before: refused, not run."""
    rt = runtime(PAY, PAY_TURNS)
    approved = suspended(run(rt, "Pay bob")).approve("t1")
    frame = approved.frames()[0][1]  # the read-only view, written to on purpose
    assert frame.pending[0].arguments is not None
    frame.pending[0].arguments["amount"] = 5000
    message = frame.messages[-1]
    message["tool_calls"][0]["function"]["arguments"] = '{"to": "bob", "amount": 5000}'

    with pytest.raises(ContinuationError, match="its call was modified"):
        rt.resume(approved)
    assert loop_tools.CALLS == []


def test_an_edited_call_that_fails_waits_on_the_fingerprint_of_the_edited_call() -> None:
    """An edit changes the arguments the call runs with; when that run fails, the new entry
    is fingerprinted on the edited arguments, and only a decision on it runs it again."""
    spec = make_spec(
        [agent("bank", "flaky")], [gated("flaky", "approve", "edit", on_error="suspend")]
    )
    turns = {"bank": [calls(call("f1", "flaky", {"key": "a"})), say("Done.")]}
    rt = runtime(spec, turns)
    first = suspended(run(rt, "Go"))
    before = first.pending()[0].fingerprint

    failed_once = suspended(resume(rt, first.edit("f1", {"key": "b"})))

    entry = failed_once.pending()[0]
    assert (entry.reason, entry.arguments) == ("error", {"key": "b"})
    assert entry.fingerprint == call_fingerprint(
        "f1", "flaky", {"key": "b"}, "error", entry.decisions
    )
    assert entry.fingerprint != before
    finished(resume(rt, Continuation.from_json(failed_once.approve("f1").to_json())))
    assert loop_tools.CALLS == [("flaky", {"key": "b"}), ("flaky", {"key": "b"})]


@pytest.mark.parametrize("through_json", [False, True])
def test_calls_run_with_the_arguments_the_model_wrote_or_the_reviewer_edited(
    through_json: bool,
) -> None:
    """A turn with a call that runs at once and two that wait: the first runs with its
    decoded arguments (carried, not decoded again), the others with the approved and the
    edited ones, whether the resume gets the object or its JSON."""
    spec = make_spec(
        [agent("bank", "echo", "transfer")],
        [python_tool("echo"), gated("transfer", "approve", "edit")],
    )
    raw = '{"text": "caf\\u00e9 \\ud83d\\ude00", "text": "last wins"}'
    turn = calls(
        call("e1", "echo", raw),
        call("t1", "transfer", {"to": "bob", "amount": 5}),
        call("t2", "transfer", '{"amount": 7, "to": "eve"}'),
    )
    rt = runtime(spec, {"bank": [turn, say("Done.")]})
    waiting = suspended(run(rt, "Go"))
    assert loop_tools.CALLS == [("echo", {"text": "last wins"})]
    decided = waiting.approve("t1").edit("t2", {"to": "eve", "amount": 8})
    if through_json:
        decided = Continuation.from_json(decided.to_json())

    finished(resume(rt, decided))

    assert loop_tools.CALLS[1:] == [
        ("transfer", {"to": "bob", "amount": 5}),
        ("transfer", {"to": "eve", "amount": 8}),
    ]


# -- scripts -------------------------------------------------------------------------------

BROKEN_SCRIPT = """\
script_version: 1
agents:
  bank:
    - tool_calls:
        - {id: t1, name: transfer, arguments: {to: bob, amount: 5}}
    - text: "Done.
      still open
  other: [
"""


def test_a_broken_script_fails_with_the_pure_loader_s_words_line_and_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "broken.script.yaml"
    path.write_text(BROKEN_SCRIPT, encoding="utf-8")
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.load(BROKEN_SCRIPT, Loader=yaml.SafeLoader)

    with pytest.raises(ScriptFormatError) as caught:
        ScriptedModel.from_file(path)

    assert str(caught.value) == f"{path}: not valid YAML: {pure.value}"
    assert "line 9, column 1" in str(caught.value)


def test_a_script_loads_into_the_same_turns_with_either_loader(tmp_path: Path) -> None:
    text = """\
script_version: 1
agents:
  bank:
    - tool_calls:
        - {id: t1, name: transfer, arguments: {to: "bob", amount: 5, when: "2026-12-02",
           ok: yes, off: off, ratio: 1.5e3, none: ~, octal: 0o17, big: 123456789012345678901}}
    - text: |
        Paid,
          as asked.
      finish_reason: stop
    - error: {message: "rate limited", transient: false}
  child:
    call_1:
      - text: 'quoted ''here'''
"""
    path = tmp_path / "fine.script.yaml"
    path.write_text(text, encoding="utf-8")
    pure = yaml.load(text, Loader=yaml.SafeLoader)

    loaded = ScriptedModel.from_file(path)
    expected = ScriptedModel.from_data(pure, source=str(path))

    assert loaded._turns == expected._turns
    arguments = json.loads(loaded._turns["bank"][0].tool_calls[0].arguments)  # type: ignore
    assert arguments["big"] == 123456789012345678901 and arguments["ok"] is True


# -- canonical JSON ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_canonical_json_is_the_standard_library_s_sorted_compact_text(value: Any) -> None:
    """The encoder built once writes exactly what `json.dumps` writes with the same options:
    every fingerprint in every stored document stays what it was."""
    expected = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    assert canonical_json(value) == expected
    assert canonical_json([value, "t"]) == f'[{expected},"t"]'


# -- arguments read by orjson, fingerprints taken from this process's seals ---------------


def _stdlib_decode(text: str) -> tuple[Any, str]:
    """`decode_arguments` as it was, with the standard library only."""
    from engine._canonical import json_problem
    from engine.tooling import _ARGUMENTS

    try:
        arguments = _ARGUMENTS.decode(text) if text.strip() else {}
    except (ValueError, RecursionError) as exc:
        return None, f"the arguments are not valid JSON ({exc})"
    problem = json_problem(arguments)
    if problem is not None:
        where, what = problem
        return None, f"the arguments are not plain JSON: {where or 'the value'} {what}"
    return arguments, ""


@pytest.mark.parametrize(
    "text",
    [
        '{"to": "bob", "amount": 5}',
        '{"a": 1, "a": 2}',
        '{"n": 18446744073709551616, "m": -9223372036854775809}',
        '{"f": [1.5, -0.0, 1e308, 5e-324, 0.30000000000000004]}',
        '{"n": 1e999}',
        '{"n": NaN}',
        '{"s": "\\ud800"}',
        '{"s": "\\ud83d\\ude00"}',
        "[" * 150 + "]" * 150,
        "[" * 99 + "]" * 99,
        "",
        "  ",
        "\ufeff{}",
        '{"to": "bob",}',
        "[1, 2]",
    ],
)
def test_arguments_read_by_orjson_are_what_the_standard_library_reads(text: str) -> None:
    from engine.tooling import decode_arguments

    got, want = decode_arguments(text), _stdlib_decode(text)

    assert got == want
    assert json.dumps(got[0]) == json.dumps(want[0])  # same types, same key order


def test_an_entry_read_back_holds_its_fingerprint_only_while_it_is_what_was_sealed() -> None:
    rt = runtime(PAY, PAY_TURNS)
    waiting = suspended(run(rt, "Pay bob"))
    data = json.loads(waiting.to_json())
    [entry] = Continuation.from_dict(data).frames()[0][1].pending
    assert entry.seal is None  # read from a document: its fingerprint is a claim

    assert entry.fingerprint_holds()  # the seal this process made with it, still exact
    assert entry.seal is not None

    data["frames"][0]["pending"][0]["arguments"]["amount"] = 5000  # the claim kept, the call not
    [forged] = Continuation.from_dict(data).frames()[0][1].pending
    assert not forged.fingerprint_holds()
    assert forged.seal is None
    with pytest.raises(ContinuationError, match="its call was modified"):
        rt.resume(Continuation.from_dict(data).approve("t1"))
    assert loop_tools.CALLS == []
