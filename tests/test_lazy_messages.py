"""A verified document's messages are read on first use, and read exactly as a whole reading
would have read them (`Continuation.from_json` with keys, `engine.continuation.Unread`).

The signature proves the text is what a key holder wrote, so its messages can wait; each test
below would fail if the late reading gave other messages, another ledger, lost an integer
beyond 64 bits, pointed elsewhere, or trusted a split of the text that a canonical document
would not show.
"""

from __future__ import annotations

import json
from typing import Any

import loop_tools
import pytest
from builders import (
    agent,
    call,
    calls,
    finished,
    gated,
    make_spec,
    python_tool,
    say,
    script,
    sub_agent,
    suspended,
)

from engine.continuation import Continuation
from engine.errors import ContinuationError
from engine.runtime import Runtime
from engine.signing import sign

KEY = b"lazy-messages-key-0123456789abcdef"
SPEC = make_spec(
    [agent("boss", "helper", "echo"), agent("helper", "echo", "transfer")],
    [sub_agent("helper"), python_tool("echo"), gated("transfer", "approve", "edit", "reject")],
)
TURNS = {
    "boss": [
        *[calls(call(f"b{i}", "echo", {"text": f"boss step {i} " + "x" * 300})) for i in range(90)],
        calls(call("h1", "helper", {"request": "pay bob"})),
        say("All done."),
    ],
    "helper": [
        *[
            calls(call(f"e{i}", "echo", {"text": f"step {i} [a] {{b}} " + "y" * 300}))
            for i in range(90)
        ],
        calls(call("t1", "transfer", {"to": "bob", "amount": 5})),
        say("Paid."),
    ],
}


def _runtime() -> Runtime:
    return Runtime(SPEC, model_override=script(TURNS), secret_key=KEY)


def _waiting() -> tuple[Runtime, Continuation]:
    rt = _runtime()
    return rt, suspended(rt.run("Pay bob", run_id="lazy-1"))


def _signed(data: dict[str, Any]) -> str:
    """`data` as the compact text a keyed `to_json` writes, signed with KEY."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return (
        payload[:-1] + ',"signature":' + json.dumps(sign(payload, KEY), separators=(",", ":")) + "}"
    )


def test_the_documents_here_are_long_enough_to_be_read_late() -> None:
    assert len(_waiting()[1].to_json()) > 64 * 1024


def _unread(continuation: Continuation) -> bool:
    return continuation._unread is not None  # what this module is about: messages not read yet


def test_a_verified_document_reads_its_messages_late_into_the_very_same_document() -> None:
    _, waiting = _waiting()
    text = waiting.to_json()

    loaded = Continuation.from_json(text, keys=(KEY,))
    whole = Continuation.from_dict({k: v for k, v in json.loads(text).items() if k != "signature"})

    assert _unread(loaded)
    assert [p.to_dict() for p in loaded.pending()] == [p.to_dict() for p in whole.pending()]
    assert _unread(loaded)  # listing what waits reads no message
    assert [(f.messages, f.ledger) for _, f in loaded.frames()] == [
        (f.messages, f.ledger) for _, f in whole.frames()
    ]
    assert not _unread(loaded)
    assert loaded.to_json() == text


def test_a_decision_on_an_unread_document_resumes_to_the_same_end() -> None:
    rt, waiting = _waiting()
    loaded = rt.load(waiting.to_json())
    decided = loaded.approve("t1")
    assert _unread(decided)

    done = finished(rt.resume(decided))

    assert done.output == "All done."
    assert loop_tools.CALLS[-1] == ("transfer", {"to": "bob", "amount": 5})
    assert loaded.to_dict() == waiting.to_dict()  # the original reads on its own


def test_integers_beyond_64_bits_in_messages_and_arguments_survive_a_late_reading() -> None:
    _, waiting = _waiting()
    data = json.loads(waiting.to_json())
    del data["signature"]
    big = [2**64, -(2**63) - 1, 10**40]
    data["frames"][0]["messages"][0]["n"] = big  # an extra field a caller's message may hold
    helper = data["frames"][1]
    helper["pending"][0]["decision"] = {
        "kind": "edit",
        "fingerprint": helper["pending"][0]["fingerprint"],
        "arguments": {"to": "bob", "amount": 2**70},
    }

    loaded = Continuation.from_json(_signed(data), keys=(KEY,))

    assert _unread(loaded)
    [(_, root), (_, child)] = loaded.frames()
    assert root.messages[0]["n"] == big and all(type(n) is int for n in root.messages[0]["n"])
    assert child.pending[0].decision.arguments == {"to": "bob", "amount": 2**70}  # type: ignore[union-attr]


def test_frames_written_out_of_stack_order_get_their_own_messages() -> None:
    _, waiting = _waiting()
    data = json.loads(waiting.to_json())
    del data["signature"]
    root, child = data["frames"]
    root["pending"][0]["child"] = 2
    decoy = {"agent": "helper", "messages": [{"role": "user", "content": "decoy"}]}
    data["frames"] = [root, {**decoy, "counters": {}, "ledger": {}}, child]
    root["pending"].append(
        {**root["pending"][0], "id": "h2", "child": 1}
    )  # a second sub-agent entry keeps frame 1 reachable

    loaded = Continuation.from_json(_signed(data), keys=(KEY,))

    assert _unread(loaded)
    by_frame = [f.messages for _, f in loaded.frames()]
    assert by_frame[1] == child["messages"]
    assert by_frame[2] == [{"role": "user", "content": "decoy"}]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda ms: ms.insert(1, {"content": "no role"}), "/frames/1/messages/1"),
        (lambda ms: ms[-1]["tool_calls"].append(ms[-1]["tool_calls"][0]), "/frames/1/messages/"),
    ],
)
def test_malformed_messages_a_key_holder_signed_are_refused_where_they_are(
    change: Any, pointer: str
) -> None:
    rt, waiting = _waiting()
    data = json.loads(waiting.approve("t1").to_json())
    del data["signature"]
    change(data["frames"][1]["messages"])

    loaded = rt.load(_signed(data))
    with pytest.raises(ContinuationError) as caught:
        rt.resume(loaded)

    assert caught.value.pointer.startswith(pointer)
    assert not any(name == "transfer" for name, _ in loop_tools.CALLS)


def test_signed_message_text_that_is_not_json_is_refused_at_the_frame_s_messages() -> None:
    rt, waiting = _waiting()
    payload = waiting.approve("t1").to_json()
    payload = payload[: payload.rindex(',"signature":')] + "}"
    cut = payload.index('"messages":[', payload.index('"agent":"helper"')) + len('"messages":[')
    broken = payload[:cut] + payload[cut:].replace('}],"counters"', '},],"counters"', 1)
    text = (
        broken[:-1] + ',"signature":' + json.dumps(sign(broken, KEY), separators=(",", ":")) + "}"
    )

    loaded = rt.load(text)
    with pytest.raises(ContinuationError) as caught:
        rt.resume(loaded)

    assert caught.value.pointer == "/frames/1/messages"
    assert "not valid JSON" in str(caught.value)
    assert not any(name == "transfer" for name, _ in loop_tools.CALLS)


def test_tampered_message_text_is_refused_by_the_signature_before_anything_is_read() -> None:
    rt, waiting = _waiting()
    text = waiting.approve("t1").to_json().replace("boss step 7", "boss step 8")

    with pytest.raises(ContinuationError) as caught:
        rt.load(text)

    assert caught.value.pointer == "/signature"


@pytest.mark.parametrize(
    "arguments",
    [
        {"to": "bob", "amount": 5, "messages": [1], "counters": {}},  # both markers, as keys
        {"to": '"messages":[ and ],"counters":{ as text', "amount": 5},  # inside a string
        {"to": "bob", "amount": 5, "x": {"messages": [], "y": [1], "counters": {"turns": 1}}},
    ],
)
def test_markers_outside_the_messages_fall_back_to_a_whole_reading_or_split_exactly(
    arguments: dict[str, Any],
) -> None:
    _, waiting = _waiting()
    edited = waiting.edit("t1", arguments)
    text = edited.to_json()

    loaded = Continuation.from_json(text, keys=(KEY,))

    assert loaded.to_dict() == edited.to_dict()
    assert loaded.frames()[1][1].pending[0].decision.arguments == arguments  # type: ignore[union-attr]
    assert loaded.to_json() == text
