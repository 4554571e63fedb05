"""An unsigned long document's messages are read on first use, and refused exactly where a
whole reading refuses them (`Continuation.from_json`, `check()`, `lazy=False`).

Everything but the messages is checked when the text is read, so listing and deciding need no
message; each frame's messages are read and checked the first time anything needs them (a
resume, `frames()`, `root`, `to_dict`, `inspect`). Each test below would fail if a late
reading accepted what a whole one refuses, pointed elsewhere, acted on messages it never
checked, lost an integer beyond 64 bits, or trusted a split of the text that a canonical
document would not show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from io import StringIO
from pathlib import Path
from typing import Any

import loop_tools
import pytest
from builders import (
    finished,
    script,
    suspended,
    write_bank,
)
from test_lazy_messages import SPEC, TURNS  # the same long run, read here without a key

from engine.cli import main
from engine.continuation import Continuation
from engine.errors import ContinuationError
from engine.runtime import Runtime

Change = Callable[[dict[str, Any]], None]


def _runtime(**options: Any) -> Runtime:
    return Runtime(SPEC, model_override=script(TURNS), **options)


def _waiting() -> tuple[Runtime, Continuation]:
    rt = _runtime()
    return rt, suspended(rt.run("Pay bob", run_id="lazy-unsigned-1"))


def _compact(data: dict[str, Any]) -> str:
    """`data` as the compact text `to_json` writes."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _edited(text: str, change: Change) -> str:
    data = json.loads(text)
    change(data)
    return _compact(data)


def _unread(continuation: Continuation) -> bool:
    return continuation._unread is not None  # what this module is about: messages not read yet


def _refusal(action: Callable[[], object]) -> tuple[str, str, str]:
    with pytest.raises(ContinuationError) as caught:
        action()
    return type(caught.value).__name__, caught.value.pointer, str(caught.value)


def test_the_documents_here_are_long_and_read_late() -> None:
    _, waiting = _waiting()
    text = waiting.to_json()

    assert len(text) > 64 * 1024 and "signature" not in json.loads(text)
    assert _unread(Continuation.from_json(text))
    assert not _unread(Continuation.from_json(text, lazy=False))


def test_an_unsigned_document_reads_its_messages_late_into_the_very_same_document() -> None:
    _, waiting = _waiting()
    text = waiting.to_json()

    loaded = Continuation.from_json(text)
    whole = Continuation.from_json(text, lazy=False)

    assert [p.to_dict() for p in loaded.pending()] == [p.to_dict() for p in whole.pending()]
    assert loaded.find("t1")[0] == whole.find("t1")[0]
    assert loaded.usage == whole.usage and repr(loaded) == repr(whole)
    assert _unread(loaded)  # listing what waits reads no message
    assert [(p, f.messages, f.ledger) for p, f in loaded.frames()] == [
        (p, f.messages, f.ledger) for p, f in whole.frames()
    ]
    assert not _unread(loaded)
    assert loaded == whole == waiting
    assert loaded.to_json() == text


def test_deciding_reads_no_message_and_a_decided_document_resumes_to_the_same_end() -> None:
    rt, waiting = _waiting()
    loaded = Continuation.from_json(waiting.to_json())

    decided = loaded.approve("t1")
    batch = loaded.decide_many([])
    assert _unread(decided) and _unread(loaded) and _unread(batch)
    assert decided == waiting.approve("t1")

    done = finished(rt.resume(decided))

    assert done.output == "All done."
    assert loop_tools.CALLS[-1] == ("transfer", {"to": "bob", "amount": 5})
    assert loaded.to_dict() == waiting.to_dict()  # the original reads on its own


def _no_role(data: dict[str, Any]) -> None:
    data["frames"][1]["messages"].insert(1, {"content": "no role"})


def _twice_the_same_call(data: dict[str, Any]) -> None:
    message = data["frames"][1]["messages"][-1]
    message["tool_calls"].append(message["tool_calls"][0])


def _calls_not_a_list(data: dict[str, Any]) -> None:
    data["frames"][1]["messages"][2]["tool_calls"] = {"id": "e0"}


def _arguments_not_text(data: dict[str, Any]) -> None:
    data["frames"][0]["messages"][3]["tool_calls"][0]["function"]["arguments"] = {"text": "x"}


def _not_an_object(data: dict[str, Any]) -> None:
    data["frames"][0]["messages"][5] = "hello"


def _messages_not_a_list(data: dict[str, Any]) -> None:
    data["frames"][1]["messages"] = {"role": "user"}


FAULTS = {
    "a message without a role": (_no_role, "/frames/1/messages/1"),
    "two calls of one message with one id": (_twice_the_same_call, "/frames/1/messages/"),
    "tool_calls not a list": (_calls_not_a_list, "/frames/1/messages/2/tool_calls"),
    "arguments not a string": (_arguments_not_text, "/frames/0/messages/3/tool_calls"),
    "a message that is no object": (_not_an_object, "/frames/0/messages/5"),
    "messages that are no list": (_messages_not_a_list, "/frames/1/messages"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_malformed_message_is_refused_at_first_use_as_a_whole_reading_refuses_it(
    fault: str,
) -> None:
    change, pointer = FAULTS[fault]
    rt, waiting = _waiting()
    text = _edited(waiting.approve("t1").to_json(), change)

    eager = _refusal(lambda: Continuation.from_json(text, lazy=False))
    assert eager[1].startswith(pointer)
    if fault == "messages that are no list":  # nothing to cut out: read whole, refused at once
        assert _refusal(lambda: Continuation.from_json(text)) == eager
        return
    loaded = Continuation.from_json(text)

    assert _unread(loaded)
    assert loaded.pending()[0].id == "t1"  # what waits is listed without a message
    for use in (
        loaded.check,
        loaded.frames,
        lambda: loaded.root,
        loaded.to_dict,
        loaded.to_json,
        lambda: rt.resume(loaded),
        lambda: rt.check(loaded),
    ):
        assert _refusal(use) == eager
    assert _refusal(lambda: Continuation.from_json(text).check()) == eager
    assert not any(name == "transfer" for name, _ in loop_tools.CALLS)


MESSAGE_FIELDS = [
    "/frames/1/messages",
    "/frames/1/messages/0",
    "/frames/1/messages/0/role",
    "/frames/1/messages/0/content",
    "/frames/1/messages/3/tool_calls",
    "/frames/1/messages/3/tool_calls/0",
    "/frames/1/messages/3/tool_calls/0/id",
    "/frames/1/messages/3/tool_calls/0/function",
    "/frames/1/messages/3/tool_calls/0/function/name",
    "/frames/1/messages/3/tool_calls/0/function/arguments",
    "/frames/0/messages/-1/tool_calls/0/id",
]
VALUES: list[Any] = [None, True, 7, 2**70, 2.5, "text", "user", [], {}, [1], {"x": 1}]


def _put(data: Any, path: str, value: Any) -> None:
    *parents, last = path.strip("/").split("/")
    for part in parents:
        data = data[int(part) if isinstance(data, list) else part]
    data[int(last) if isinstance(data, list) else last] = value


def _outcome(
    text: str, read: Callable[[str], Continuation]
) -> tuple[str, str, str] | dict[str, Any]:
    """The refusal of reading `text` with `read`, or the document as plain data."""
    try:
        return read(text).to_dict()
    except ContinuationError as exc:
        return type(exc).__name__, exc.pointer, str(exc)


def _read_and_check(text: str) -> Continuation:
    continuation = Continuation.from_json(text)
    continuation.check()
    return continuation


@pytest.mark.parametrize("path", MESSAGE_FIELDS)
def test_any_value_at_any_message_field_reads_late_as_it_reads_whole(path: str) -> None:
    """Every value of every type at each field of the messages: the late reading, checked
    through, refuses exactly what the whole reading refuses, with the same error, and reads
    the same document from everything else."""
    _, waiting = _waiting()
    base = waiting.approve("t1").to_json()
    for value in VALUES:
        data = json.loads(base)
        _put(data, path, value)
        text = _compact(data)

        whole = _outcome(text, partial(Continuation.from_json, lazy=False))
        late = _outcome(text, Continuation.from_json)
        checked = _outcome(text, _read_and_check)

        assert late == checked == whole, (path, value)


def test_a_number_json_has_not_is_refused_at_first_use_with_its_pointer() -> None:
    _, waiting = _waiting()
    text = waiting.to_json().replace('"content":"Paid', '"content":NaN,"x":"Paid', 1)
    text = text.replace('"role":"user","content":"pay bob"', '"role":"user","content":NaN', 1)

    eager = _refusal(lambda: Continuation.from_json(text, lazy=False))
    loaded = Continuation.from_json(text)

    assert _unread(loaded)
    assert _refusal(loaded.check) == eager
    assert eager[1] == "/frames/1/messages/0/content"


def _broken_syntax(payload: str) -> str:
    cut = payload.index('"messages":[', payload.index('"agent":"helper"')) + len('"messages":[')
    return payload[:cut] + payload[cut:].replace('}],"counters"', '},],"counters"', 1)


def _too_many_digits(payload: str) -> str:
    return payload.replace('"content":"pay bob"', '"content":' + "7" * 5000, 1)


@pytest.mark.parametrize(
    ("breaking", "what"), [(_broken_syntax, "of the text"), (_too_many_digits, "digits")]
)
def test_message_text_that_does_not_read_as_json_is_refused_at_the_frame_s_messages(
    breaking: Callable[[str], str], what: str
) -> None:
    """The one place a late reading says more than a whole one: the whole text does not read
    (pointer ""), and a late reading knows whose messages broke it."""
    rt, waiting = _waiting()
    broken = breaking(waiting.approve("t1").to_json())

    eager = _refusal(lambda: Continuation.from_json(broken, lazy=False))
    loaded = Continuation.from_json(broken)
    _, pointer, message = _refusal(lambda: rt.resume(loaded))

    assert eager[1] == "" and _unread(loaded)
    assert pointer == "/frames/1/messages"
    assert "not valid JSON" in message and what in message
    assert not any(name == "transfer" for name, _ in loop_tools.CALLS)


def test_the_first_fault_in_document_order_is_the_one_reported() -> None:
    """Frames written out of stack order, both children's messages malformed: the late
    reading reports frame 1's fault, as the whole reading does, not the fault of the frame
    the stack reaches first."""
    _, waiting = _waiting()
    data = json.loads(waiting.to_json())
    root, child = data["frames"]
    root["pending"][0]["child"] = 2
    decoy = {"agent": "helper", "messages": [{"role": "user"}, {"content": "no role"}]}
    data["frames"] = [root, {**decoy, "counters": {}, "ledger": {}}, child]
    root["pending"].append({**root["pending"][0], "id": "h2", "child": 1})
    child["messages"].insert(3, "not a message")
    text = _compact(data)

    eager = _refusal(lambda: Continuation.from_json(text, lazy=False))
    loaded = Continuation.from_json(text)

    assert _unread(loaded)
    assert [p.id for p in loaded.pending()] == ["t1"]
    assert eager[1] == "/frames/1/messages/1"
    assert _refusal(loaded.check) == eager


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda d: d["frames"][1]["counters"].update(turns=-1), "/frames/1/counters/turns"),
        (lambda d: d["frames"][1].update(extra=1), "/frames/1/extra"),
        (lambda d: d["frames"][0]["pending"][0].update(reason="?"), "/frames/0/pending/0/reason"),
        (lambda d: d.update(usage={"input_tokens": 1, "output_tokens": 0}), "/usage/input_tokens"),
    ],
)
def test_a_fault_beside_the_messages_is_refused_at_read_as_before(
    change: Change, pointer: str
) -> None:
    """Listing and deciding trust what is read at once, so a fault there is refused there;
    with a malformed message in the same frame as well, the fault reported is the whole
    reading's (its messages come first)."""
    _, waiting = _waiting()
    text = _edited(waiting.to_json(), change)

    assert _refusal(lambda: Continuation.from_json(text))[1] == pointer
    both = _edited(text, _no_role)
    assert _refusal(lambda: Continuation.from_json(both)) == _refusal(
        lambda: Continuation.from_json(both, lazy=False)
    )


def test_integers_beyond_64_bits_stay_exact_in_messages_entries_and_decisions() -> None:
    _, waiting = _waiting()
    data = json.loads(waiting.to_json())
    big = [2**64, -(2**63) - 1, 10**40]
    data["frames"][0]["messages"][0]["n"] = big  # an extra field a caller's message may hold
    helper = data["frames"][1]
    helper["pending"][0]["decision"] = {
        "kind": "edit",
        "fingerprint": helper["pending"][0]["fingerprint"],
        "arguments": {"to": "bob", "amount": 2**70},
    }
    text = _compact(data)

    loaded = Continuation.from_json(text)

    assert _unread(loaded)
    decision = loaded.pending()[0]
    assert decision.decision == "edit"
    [(_, root), (_, child)] = loaded.frames()
    assert root.messages[0]["n"] == big and all(type(n) is int for n in root.messages[0]["n"])
    assert child.pending[0].decision.arguments == {"to": "bob", "amount": 2**70}  # type: ignore[union-attr]
    assert loaded.to_json() == text


def _indented(text: str) -> str:
    return json.dumps(json.loads(text), indent=1, ensure_ascii=False)


def _spaced(text: str) -> str:
    return text.replace('"version":2', '"version": 2', 1)


def _counters_first(text: str) -> str:
    data = json.loads(text)
    data["frames"] = [{"agent": f["agent"], "counters": f["counters"], **f} for f in data["frames"]]
    return _compact(data)


def _markers_in_arguments(text: str) -> str:
    data = json.loads(text)
    entry = data["frames"][1]["pending"][0]
    arguments = {"to": "bob", "amount": 5, "messages": [1], "counters": {}}
    entry["decision"] = {
        "kind": "edit",
        "fingerprint": entry["fingerprint"],
        "arguments": arguments,
    }
    return _compact(data)


def _leading_blank(text: str) -> str:
    return " " + text  # JSON allows it; the canonical form has none


def _escaped(text: str) -> str:
    return text.replace('"agent":"helper"', '"agent":"\\u0068elper"', 1)


@pytest.mark.parametrize(
    "layout",
    [_indented, _spaced, _counters_first, _markers_in_arguments, _escaped, _leading_blank],
)
def test_a_layout_other_than_the_canonical_one_is_read_whole(layout: Callable[[str], str]) -> None:
    """The split is proven only by a canonical rest with one frame per cut; any other text
    is read whole, as before: the same document, and a malformed message refused at once."""
    _, waiting = _waiting()
    text = layout(waiting.to_json())

    loaded = Continuation.from_json(text)

    assert not _unread(loaded)
    assert loaded.to_dict() == Continuation.from_json(text, lazy=False).to_dict()
    bad = layout(_edited(waiting.to_json(), _no_role))
    assert _refusal(lambda: Continuation.from_json(bad))[1] == "/frames/1/messages/1"


def test_a_trailing_newline_and_an_unchecked_signature_keep_the_reading_late() -> None:
    """A file's last newline is JSON whitespace; a signed document read without keys drops
    its signature unchecked, as the whole reading does."""
    _, waiting = _waiting()
    signed = _runtime(secret_key=b"lazy-unsigned-key-0123456789abcdef").run("Pay bob")
    signed_text = suspended(signed).to_json()

    for text in (waiting.to_json() + "\n", signed_text, signed_text + "\r\n"):
        loaded = Continuation.from_json(text)
        assert _unread(loaded)
        assert loaded.to_dict() == Continuation.from_json(text, lazy=False).to_dict()
    assert not Continuation.from_json(signed_text).signed


def test_a_call_changed_in_the_messages_is_refused_against_its_pending_entry() -> None:
    """The check before a resume compares each pending entry with its call in the messages,
    which it reads first: a late reading cannot skip that comparison."""
    rt, waiting = _waiting()
    text = waiting.approve("t1").to_json().replace('\\"amount\\": 5}', '\\"amount\\": 5000}', 1)
    assert "5000}" in text

    loaded = Continuation.from_json(text)
    assert _unread(loaded)

    assert _refusal(lambda: rt.resume(loaded)) == _refusal(
        lambda: rt.resume(Continuation.from_json(text, lazy=False))
    )
    assert _refusal(lambda: rt.resume(loaded))[1] == "/frames/1/pending/0/arguments"
    assert not any(name == "transfer" for name, _ in loop_tools.CALLS)


def test_a_stored_run_is_not_claimed_by_a_resume_of_unchecked_messages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    with _runtime(store=url) as rt:
        waiting = suspended(rt.run("Pay bob", run_id="lazy-stored"))
        bad = Continuation.from_json(_edited(waiting.approve("t1").to_json(), _no_role))
        assert _unread(bad)

        assert _refusal(lambda: rt.resume(bad))[1] == "/frames/1/messages/1"
        assert rt.store is not None
        assert rt.store.get_run("lazy-stored").status == "suspended"
        assert not any(name == "transfer" for name, _ in loop_tools.CALLS)

        done = finished(rt.resume(rt.load(waiting.approve("t1").to_json())))
    assert done.output == "All done."


def test_the_cli_lists_without_reading_messages_and_inspect_refuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLCC_SECRET_KEY", raising=False)
    _, waiting = _waiting()
    state = tmp_path / "state.json"
    state.write_text(_edited(waiting.to_json(), _no_role) + "\n", encoding="utf-8")

    out, err = StringIO(), StringIO()
    assert main(["pending", str(state)], out, err) == 3, err.getvalue()
    assert "t1" in out.getvalue()

    out, err = StringIO(), StringIO()
    assert main(["inspect", str(state)], out, err) == 2
    assert err.getvalue().startswith("callcc: error: ")
    assert " at /frames/1/messages/1" in err.getvalue()


def test_lazy_false_reads_a_verified_document_whole_too() -> None:
    key = b"lazy-unsigned-key-0123456789abcdef"
    rt = _runtime(secret_key=key)
    waiting = suspended(rt.run("Pay bob"))
    text = waiting.to_json()

    whole = Continuation.from_json(text, keys=(key,), lazy=False)
    late = rt.load(text)

    assert not _unread(whole) and _unread(late)
    assert whole.signed and whole == late == waiting
    late.check()
    assert not _unread(late)


def test_cli_resume_checks_the_whole_state_file_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLCC_SECRET_KEY", raising=False)
    write_bank(tmp_path)
    state = tmp_path / "state.json"
    out, err = StringIO(), StringIO()
    run = ["run", str(tmp_path / "bank.yaml"), "-p", "Pay bob 5", "--state", str(state), "-q"]
    assert main(run, out, err) == 3, err.getvalue()
    data = json.loads(state.read_text(encoding="utf-8"))
    earlier = [{"role": "user", "content": f"note {i}: " + "z" * 400} for i in range(200)]
    data["frames"][0]["messages"][:0] = earlier  # a long history: the file is read late
    good = _compact(data) + "\n"
    data["frames"][0]["messages"][7] = {"content": "no role"}
    bad = _compact(data) + "\n"
    assert len(bad) > 64 * 1024 and _unread(Continuation.from_json(bad))

    state.write_text(bad, encoding="utf-8")
    out, err = StringIO(), StringIO()
    assert main(["resume", str(state), "--approve", "t1", "-q"], out, err) == 2

    assert " at /frames/0/messages/7" in err.getvalue()
    assert loop_tools.CALLS == []
    assert state.read_text(encoding="utf-8") == bad  # nothing consumed, nothing rewritten

    state.write_text(good, encoding="utf-8")
    out, err = StringIO(), StringIO()
    assert main(["resume", str(state), "--approve", "t1", "-q"], out, err) == 0, err.getvalue()
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]
