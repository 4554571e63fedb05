"""Integrity: signed continuations, decisions bound to what the reviewer saw, single use per
runtime, and python tools only from the modules the author and the runtime allow.

Every refusal is asserted with its error type, message and pointer, and with
`loop_tools.CALLS == []`: the proof that nothing ran.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from io import StringIO
from pathlib import Path
from typing import Any

import loop_tools
import pytest
from builders import (
    ROOT,
    agent,
    call,
    calls,
    finished,
    gated,
    make_spec,
    python_tool,
    say,
    script,
    suspended,
    write_bank,
)

from engine.cli import main
from engine.continuation import Continuation
from engine.errors import ContinuationError, SpecError, UsageError
from engine.runtime import Runtime
from engine.signing import ALGORITHM, generate_key, key_id
from engine.spec import load_spec, validate_file

OLD_KEY = "old-key-0123456789abcdef-rotation"
NEW_KEY = "new-key-0123456789abcdef-rotation"
OTHER_KEY = "someone-elses-key-0123456789abcdef"
HR_SPEC = ROOT / "specs" / "hr_agent.yaml"
UNSIGNED_WARNING = (
    "callcc: warning: {} is not signed: anyone holding the file can approve its calls, or "
    "edit them; set CALLCC_SECRET_KEY (`callcc keygen` makes a key), see docs/SECURITY.md\n"
)


# A bank agent that asks to move money twice in one turn; each transfer waits for a reviewer.
BANK = make_spec(
    [agent("bank", "transfer", "echo")],
    [gated("transfer", "approve", "edit", "reject"), python_tool("echo")],
    name="bank",
)
BANK_TURNS = {
    "bank": [
        calls(
            call("t1", "transfer", {"to": "bob", "amount": 5}),
            call("t2", "transfer", {"to": "eve", "amount": 7}),
            text="Two transfers.",
        ),
        say("Done."),
    ]
}


def bank(secret_key: Any = None, turns: dict[str, Any] | None = None) -> Runtime:
    """A runtime of BANK playing `turns`, signing with `secret_key` (None: unsigned)."""
    return Runtime(BANK, model_override=script(turns or BANK_TURNS), secret_key=secret_key)


def suspended_bank(secret_key: Any = None) -> tuple[Runtime, Continuation]:
    rt = bank(secret_key)
    return rt, suspended(rt.run("Pay bob 5 and eve 7", run_id="bank-1"))


def edit_json(text: str, change: Callable[[dict[str, Any]], None]) -> str:
    data = json.loads(text)
    change(data)
    return json.dumps(data)


# -- signing -------------------------------------------------------------------------------


def test_a_keyed_runtime_signs_its_documents_and_load_verifies_them() -> None:
    rt, continuation = suspended_bank(NEW_KEY)

    text = continuation.to_json()
    signature = json.loads(text)["signature"]

    assert continuation.signed
    assert signature["alg"] == ALGORITHM == "HMAC-SHA256"
    assert signature["kid"] == key_id(NEW_KEY.encode())
    assert re.fullmatch(r"[0-9a-f]{64}", signature["mac"])
    assert NEW_KEY not in text
    loaded = rt.load(text)
    assert loaded == continuation and loaded.signed_with(rt.keys)
    assert rt.load(continuation.to_json(indent=2)) == continuation  # layout is not content
    decided = loaded.approve("t1").reject("t2", "not today")
    assert json.loads(decided.to_json())["signature"]["mac"] != signature["mac"]
    assert finished(rt.resume(rt.load(decided.to_json()))).output == "Done."
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]


def _message_content(d: dict[str, Any]) -> None:
    d["frames"][0]["messages"][0]["content"] = "Pay bob 5000 and eve 7"


def _call_arguments(d: dict[str, Any]) -> None:
    d["frames"][0]["messages"][1]["tool_calls"][0]["function"]["arguments"] = (
        '{"to": "bob", "amount": 5000}'
    )


def _pending_arguments(d: dict[str, Any]) -> None:
    d["frames"][0]["pending"][0]["arguments"]["amount"] = 5000


def _counter(d: dict[str, Any]) -> None:
    d["frames"][0].setdefault("counters", {})["extra_turns"] = 50


def _ledger_status(d: dict[str, Any]) -> None:
    d["frames"][0]["ledger"]["t2"] = "done"


def _decision_kind(d: dict[str, Any]) -> None:
    decision = d["frames"][0]["pending"][1]["decision"]  # t2 was rejected: flip to approve
    d["frames"][0]["pending"][1]["decision"] = {
        "kind": "approve",
        "fingerprint": decision["fingerprint"],
    }


def _decision_removed(d: dict[str, Any]) -> None:
    del d["frames"][0]["pending"][1]["decision"]


def _nonce(d: dict[str, Any]) -> None:
    d["nonce"] = "0" * 24


def _spec_digest(d: dict[str, Any]) -> None:
    d["spec"]["digest"] = "sha256:forged"


def _run_id(d: dict[str, Any]) -> None:
    d["run_id"] = "bank-2"


def _signature_kid(d: dict[str, Any]) -> None:
    d["signature"]["kid"] = key_id(OTHER_KEY.encode())


@pytest.mark.parametrize(
    "change",
    [
        _message_content,
        _call_arguments,
        _pending_arguments,
        _counter,
        _ledger_status,
        _decision_kind,
        _decision_removed,
        _nonce,
        _spec_digest,
        _run_id,
    ],
)
def test_editing_any_part_of_a_signed_decided_document_is_refused_and_nothing_runs(
    change: Callable[[dict[str, Any]], None],
) -> None:
    rt, continuation = suspended_bank(NEW_KEY)
    decided = continuation.approve("t1").reject("t2", "eve is not a customer")
    text = edit_json(decided.to_json(), change)

    with pytest.raises(ContinuationError) as caught:
        rt.resume(rt.load(text))

    assert caught.value.pointer == "/signature"
    assert "was modified after it was signed" in str(caught.value)
    assert "decided through the API, never edited by hand" in str(caught.value)
    assert loop_tools.CALLS == []


def test_editing_the_key_id_of_the_signature_is_refused() -> None:
    rt, continuation = suspended_bank(NEW_KEY)
    text = edit_json(continuation.approve("t1").to_json(), _signature_kid)

    with pytest.raises(ContinuationError) as caught:
        rt.resume(rt.load(text))

    assert caught.value.pointer.startswith("/signature")
    assert "modified" in str(caught.value)
    assert loop_tools.CALLS == []


@pytest.mark.parametrize("mac", ["\u00e9" * 64, "caf\u00e9"])
def test_a_signature_mac_with_non_ascii_text_is_a_continuation_error(mac: str) -> None:
    """engine/signing.py verify: `hmac.compare_digest(expected, signature["mac"])` raises
    TypeError ("comparing strings with non-ASCII characters is not supported") for a
    non-ASCII mac; found by the signed-corruption property."""
    rt, continuation = suspended_bank(NEW_KEY)

    def change(d: dict[str, Any]) -> None:
        d["signature"]["mac"] = mac

    with pytest.raises(ContinuationError) as caught:
        rt.load(edit_json(continuation.to_json(), change))
    assert caught.value.pointer.startswith("/signature")


def test_an_unsigned_document_is_refused_by_a_runtime_with_a_key() -> None:
    _, unsigned = suspended_bank(None)
    text = unsigned.approve("t1").reject("t2").to_json()
    assert "signature" not in json.loads(text)
    keyed = bank(NEW_KEY)

    with pytest.raises(ContinuationError) as caught:
        keyed.load(text)
    assert caught.value.pointer == "/signature"
    assert "the continuation is not signed, but a signing key is configured" in str(caught.value)

    with pytest.raises(ContinuationError) as caught:  # parsed without keys, resumed with them
        keyed.resume(Continuation.from_json(text))
    assert caught.value.pointer == "/signature"
    assert "signature was not verified with this runtime's keys" in str(caught.value)
    assert loop_tools.CALLS == []


def test_a_document_signed_with_another_key_is_refused() -> None:
    _, continuation = suspended_bank(OTHER_KEY)
    text = continuation.approve("t1").reject("t2").to_json()
    rt = bank(NEW_KEY)

    with pytest.raises(ContinuationError) as caught:
        rt.resume(rt.load(text))

    assert caught.value.pointer == "/signature"
    message = str(caught.value)
    assert "or signed with another key" in message
    assert f"signed by key {key_id(OTHER_KEY.encode())}" in message
    assert f"accepted keys: {key_id(NEW_KEY.encode())}" in message
    assert OTHER_KEY not in message and NEW_KEY not in message
    assert loop_tools.CALLS == []


def test_a_continuation_from_another_runtime_object_keeps_its_key_and_is_refused() -> None:
    _, continuation = suspended_bank(OTHER_KEY)  # in memory, signed under another key

    with pytest.raises(ContinuationError, match="not verified with this runtime's keys"):
        bank(NEW_KEY).resume(continuation.approve("t1").reject("t2"))
    assert loop_tools.CALLS == []


def test_key_rotation_old_documents_verify_and_are_re_signed_with_the_new_key() -> None:
    _, continuation = suspended_bank(OLD_KEY)
    old_text = continuation.to_json()
    assert json.loads(old_text)["signature"]["kid"] == key_id(OLD_KEY.encode())
    rotated = bank([NEW_KEY, OLD_KEY])

    loaded = rotated.load(old_text)
    decided = loaded.approve("t1").reject("t2")
    new_text = decided.to_json()

    assert json.loads(new_text)["signature"]["kid"] == key_id(NEW_KEY.encode())
    with pytest.raises(ContinuationError, match="signed with another key"):
        bank(OLD_KEY).load(new_text)  # a runtime that never got the new key refuses it
    assert finished(rotated.resume(rotated.load(new_text))).output == "Done."
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]


def test_key_rotation_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _, continuation = suspended_bank(OLD_KEY)
    monkeypatch.setenv("CALLCC_SECRET_KEY", f" {NEW_KEY} , {OLD_KEY} ")

    rt = bank()
    loaded = rt.load(continuation.to_json())

    assert rt.keys == (NEW_KEY.encode(), OLD_KEY.encode())
    assert json.loads(loaded.to_json())["signature"]["kid"] == key_id(NEW_KEY.encode())


@pytest.mark.parametrize("keys", ["short", b"15-bytes-secret", [NEW_KEY, "tiny"], ""])
def test_keys_shorter_than_16_bytes_are_refused(keys: Any) -> None:
    with pytest.raises(UsageError, match="at least 16 bytes; generate one with `callcc keygen`"):
        bank(keys)


def test_a_short_key_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCC_SECRET_KEY", "hunter2")

    with pytest.raises(UsageError, match="at least 16 bytes") as caught:
        bank()
    assert "hunter2" not in str(caught.value)


def test_the_key_file_names_the_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated 2024-05\n{NEW_KEY}\n\n{OLD_KEY}\n", encoding="utf-8")
    monkeypatch.setenv("CALLCC_SECRET_KEY_FILE", str(key_file))

    rt, continuation = suspended_bank()

    assert rt.keys == (NEW_KEY.encode(), OLD_KEY.encode())
    assert json.loads(continuation.to_json())["signature"]["kid"] == key_id(NEW_KEY.encode())
    _, old = suspended_bank(OLD_KEY)
    assert rt.load(old.to_json()) == old


def test_an_empty_or_missing_key_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# no keys yet\n\n", encoding="utf-8")
    monkeypatch.setenv("CALLCC_SECRET_KEY_FILE", str(empty))
    with pytest.raises(UsageError, match="the key file holds no key"):
        bank()

    monkeypatch.setenv("CALLCC_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="cannot read the key file"):
        bank()


def callcc(*argv: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_keygen_prints_a_43_character_urlsafe_key_that_signs() -> None:
    code, out, err = callcc("keygen")
    again = callcc("keygen")[1]

    assert (code, err) == (0, "")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}\n", out)
    assert out != again
    assert len(generate_key()) == 43
    assert bank(out.strip()).keys == (out.strip().encode(),)


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def bank_yaml(tmp_path: Path) -> Path:
    return write_bank(tmp_path)


def test_cli_resume_of_a_hand_edited_signed_state_file_exits_2_and_says_modified(
    bank_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_SECRET_KEY", NEW_KEY)
    state = tmp_path / "state.json"
    code, _, err = callcc("run", str(bank_yaml), "-p", "Pay bob 5", "--state", str(state))
    assert (code, err) == (3, "")
    assert "signature" in json.loads(state.read_text(encoding="utf-8"))

    # the reviewer approves 5; someone on the way makes it 5000 in both places it appears
    edited = re.sub(r'(amount\\?": ?)5\b', r"\g<1>5000", state.read_text(encoding="utf-8"))
    assert edited.count("5000") == 2
    state.write_text(edited, encoding="utf-8")

    code, out, err = callcc("resume", str(state), "--approve", "t1")

    assert code == 2
    assert out == ""
    assert err.startswith(  # the file, then what is wrong with it
        f"callcc: error: {state}: the continuation was modified after it was signed"
    )
    assert "at /signature" in err
    assert NEW_KEY not in err
    assert loop_tools.CALLS == []
    assert state.read_text(encoding="utf-8") == edited  # nothing consumed, nothing rewritten


def test_cli_resume_of_an_unsigned_state_file_with_a_key_configured_exits_2(
    bank_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.json"
    assert callcc("run", str(bank_yaml), "-p", "Pay bob 5", "--state", str(state))[0] == 3
    monkeypatch.setenv("CALLCC_SECRET_KEY", NEW_KEY)

    code, _, err = callcc("resume", str(state), "--approve", "t1")

    assert code == 2
    assert f"callcc: error: {state}: the continuation is not signed, but a signing key" in err
    assert loop_tools.CALLS == []


def test_cli_without_a_key_warns_once_when_an_unsigned_state_file_is_written(
    bank_yaml: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"

    code, _, err = callcc("run", str(bank_yaml), "-p", "Pay bob 5", "--state", str(state), "-q")
    assert (code, err) == (3, UNSIGNED_WARNING.format(state))
    code, _, err = callcc("pending", str(state))
    assert (code, err) == (3, "")  # reading a document lets nothing leave the process

    code, out, err = callcc("resume", str(state), "--approve", "t1", "-q")
    assert (code, out, err) == (0, "Sent 5 to bob.\n", "")  # finished: no document left
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]


def test_cli_with_a_key_signs_and_resumes_without_a_warning(
    bank_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_SECRET_KEY", NEW_KEY)
    state = tmp_path / "state.json"

    code, _, err = callcc("run", str(bank_yaml), "-p", "Pay", "--state", str(state), "-q")
    assert (code, err) == (3, "")
    code, out, err = callcc("resume", str(state), "--approve", "t1", "-q")

    assert (code, out, err) == (0, "Sent 5 to bob.\n", "")
    assert not state.exists()


# -- decisions bound to what the reviewer saw ----------------------------------------------


def test_a_decision_moved_to_another_entry_is_refused() -> None:
    """The reviewer approved t1 (bob, 5); copying that approval onto t2 (eve, 7) in the
    unsigned JSON is refused: the decision carries the fingerprint of t1."""
    rt, continuation = suspended_bank(None)
    text = continuation.approve("t1").to_json()

    def move(d: dict[str, Any]) -> None:
        pending = d["frames"][0]["pending"]
        pending[1]["decision"] = pending[0]["decision"]

    with pytest.raises(ContinuationError) as caught:
        rt.resume(Continuation.from_json(edit_json(text, move)))

    assert caught.value.pointer == "/frames/0/pending/1/decision/fingerprint"
    assert "the decision answers another call than this entry (fingerprint mismatch)" in str(
        caught.value
    )
    assert loop_tools.CALLS == []


def test_a_decision_from_another_run_with_the_same_call_id_is_refused() -> None:
    """Same call id, other arguments: an approval of `t1: bob 5` does not approve
    `t1: bob 5000` in another run."""
    _, small = suspended_bank(None)
    big_turns = {
        "bank": [calls(call("t1", "transfer", {"to": "bob", "amount": 5000})), say("Done.")]
    }
    big_rt = bank(None, big_turns)
    big = suspended(big_rt.run("Pay bob 5000"))
    approval = json.loads(small.approve("t1").to_json())["frames"][0]["pending"][0]["decision"]

    def graft(d: dict[str, Any]) -> None:
        d["frames"][0]["pending"][0]["decision"] = approval

    with pytest.raises(ContinuationError) as caught:
        big_rt.resume(Continuation.from_json(edit_json(big.to_json(), graft)))

    assert caught.value.pointer == "/frames/0/pending/0/decision/fingerprint"
    assert loop_tools.CALLS == []


def test_an_approval_forged_with_the_right_fingerprint_is_refused_only_when_signed() -> None:
    """Without a key a forger need not even compute the fingerprint: the entry holds it, and
    copying it into a decision passes the consistency checks. Signing is what stops that
    (docs/SECURITY.md says so)."""

    def forge(d: dict[str, Any]) -> None:
        entry = d["frames"][0]["pending"][1]
        entry["decision"] = {"kind": "approve", "fingerprint": entry["fingerprint"]}

    rt, unsigned = suspended_bank(None)
    forged = edit_json(unsigned.approve("t1").to_json(), forge)
    finished(rt.resume(Continuation.from_json(forged)))
    assert [name for name, _ in loop_tools.CALLS] == ["transfer", "transfer"]
    loop_tools.CALLS.clear()

    keyed, signed = suspended_bank(NEW_KEY)
    forged = edit_json(signed.approve("t1").to_json(), forge)
    with pytest.raises(ContinuationError, match="modified after it was signed"):
        keyed.resume(keyed.load(forged))
    assert loop_tools.CALLS == []


# -- single use ----------------------------------------------------------------------------


def test_resuming_the_same_document_twice_with_one_runtime_is_refused() -> None:
    rt, continuation = suspended_bank(NEW_KEY)
    text = continuation.approve("t1").reject("t2").to_json()

    finished(rt.resume(rt.load(text)))
    with pytest.raises(ContinuationError) as caught:
        rt.resume(rt.load(text))

    assert caught.value.pointer == "/nonce"
    assert "already resumed by this runtime" in str(caught.value)
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]


def test_a_refused_resume_does_not_consume_the_nonce() -> None:
    rt, continuation = suspended_bank(None)
    with pytest.raises(ContinuationError):
        rt.resume(Continuation.from_json(edit_json(continuation.to_json(), _pending_arguments)))

    finished(rt.resume(continuation.approve("t1").reject("t2")))
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]


def test_each_suspension_gets_a_new_nonce() -> None:
    spec = make_spec([agent("a", "transfer")], [gated("transfer")])
    turns = {
        "a": [
            calls(call("p1", "transfer", {"to": "bob", "amount": 1})),
            calls(call("p2", "transfer", {"to": "bob", "amount": 2})),
            say("Both."),
        ]
    }
    rt = Runtime(spec, model_override=script(turns), secret_key=NEW_KEY)
    first = suspended(rt.run("go"))
    second = suspended(rt.resume(first.approve("p1")))

    assert first.nonce != second.nonce
    assert finished(rt.resume(second.approve("p2"))).output == "Both."
    with pytest.raises(ContinuationError, match="already resumed"):
        rt.resume(first.approve("p1"))  # the older document is spent too
    assert [args["amount"] for _, args in loop_tools.CALLS] == [1, 2]


def test_without_a_store_a_second_runtime_does_not_know_the_nonce_was_used() -> None:
    """The documented limit (docs/SECURITY.md): replay protection lives in the runtime object
    until the run store records consumed nonces across processes."""
    _, continuation = suspended_bank(NEW_KEY)
    text = continuation.approve("t1").reject("t2").to_json()

    for _ in range(2):
        rt = bank(NEW_KEY)
        finished(rt.resume(rt.load(text)))

    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})] * 2


# -- where python tools may come from ------------------------------------------------------

SPEC_WITH_REF = """\
spec_version: 1
name: refs
models:
  m: {kind: scripted, script: s.yaml}
tools:
  run_it:
    kind: python
    ref: REF
    description: Run something.
agents:
  main:
    description: Main agent.
    model: m
    instructions: Be helpful.
    tools: [run_it]
entrypoint: main
"""


def spec_file(tmp_path: Path, ref: str, *, allow: str = "") -> Path:
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    text = SPEC_WITH_REF.replace("REF", ref)
    if allow:
        text = text.replace("name: refs\n", f"name: refs\nallow_modules: [{allow}]\n")
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "ref", ["os:system", "subprocess:run", "builtins:eval", "importlib:import_module"]
)
def test_refs_into_dangerous_modules_are_refused_at_validation(tmp_path: Path, ref: str) -> None:
    (d,) = validate_file(spec_file(tmp_path, ref), env={})

    assert (d.code, d.line, d.col, d.pointer) == ("module-not-allowed", 8, 10, "/tools/run_it/ref")
    top = ref.split(":")[0]
    assert d.message == (
        f"ref '{ref}' comes from '{top}'; tools may never come from "
        "builtins, code, codeop, ctypes, importlib, marshal, nt, os, pickle, posix, pty, runpy, "
        "shutil, subprocess, sys"
    )
    with pytest.raises(SpecError, match="module-not-allowed"):
        load_spec(spec_file(tmp_path, ref), env={})


@pytest.mark.parametrize("ref", ["os:system", "subprocess:run", "builtins:eval", "os.path:join"])
def test_refs_into_dangerous_modules_are_refused_when_compiling(ref: str) -> None:
    spec = make_spec([agent("a", "danger")], [python_tool("danger", ref=ref)])

    with pytest.raises(UsageError) as caught:
        Runtime(spec)

    assert f"tool 'danger': ref {ref!r} comes from a module tools may never come from" in str(
        caught.value
    )


def test_a_ref_outside_the_spec_allow_modules_is_refused(tmp_path: Path) -> None:
    (d,) = validate_file(spec_file(tmp_path, "shop.refunds:go", allow="shopping"), env={})
    assert (d.code, d.line) == ("module-not-allowed", 9)
    assert d.message == "module 'shop.refunds' is not under allow_modules (shopping)"

    spec = replace(BANK, allow_modules=("bank_tools",))
    with pytest.raises(UsageError) as caught:
        Runtime(spec)
    assert "module 'loop_tools' is not allowed by the spec's allow_modules (bank_tools)" in str(
        caught.value
    )


def test_a_prefix_allows_submodules_but_not_lookalike_names() -> None:
    spec = make_spec(
        [agent("a", "t")], [python_tool("t", ref="loop_tools_evil:transfer")], name="x"
    )
    with pytest.raises(UsageError, match="'loop_tools_evil' is not allowed"):
        Runtime(replace(spec, allow_modules=("loop_tools",)))
    hr = load_spec(HR_SPEC)  # refs in callcc_examples.hr: a submodule of the prefix
    assert Runtime(hr, allowed_modules=["callcc_examples"]).program.agents
    assert Runtime(hr, allowed_modules=["callcc_examples.hr"]).program.agents


def test_the_runtime_allowlist_narrows_the_spec() -> None:
    spec = load_spec(HR_SPEC)

    with pytest.raises(UsageError) as caught:
        Runtime(spec, allowed_modules=["other"])
    assert "module 'callcc_examples.hr' is not allowed by the runtime's allowed_modules " in str(
        caught.value
    )
    assert "(--allow-module) (other)" in str(caught.value)

    with pytest.raises(UsageError, match=r"allows no python modules \(allowed_modules=\[\]\)"):
        Runtime(spec, allowed_modules=[])

    Runtime(spec, allowed_modules=["callcc_examples"]).close()
    Runtime(spec, allowed_modules=["callcc_examples.hr"]).close()


def test_cli_allow_module(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    args = ("run", str(HR_SPEC), "-p", "Onboard Ada Lovelace", "--state", state, "-q")

    code, _, err = callcc(*args, "--allow-module", "other", "--allow-module", "more")
    assert code == 2
    assert "callcc: error: tool 'send_email': module 'callcc_examples.hr' is not allowed" in err
    assert "(other, more)" in err
    assert not Path(state).exists()

    assert callcc(*args, "--allow-module", "callcc_examples")[0] == 3


MARKER_MODULE = """\
from pathlib import Path

Path(__file__).with_name("imported.marker").write_text("imported")


def tool(x: str) -> str:
    return x
"""


@pytest.fixture
def marker_module(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A module next to the spec that leaves a marker file when it is imported."""
    name = f"marker_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MARKER_MODULE, encoding="utf-8")
    yield name, tmp_path / "imported.marker"
    sys.modules.pop(name, None)


def test_validation_never_imports_user_code_unless_resolve_is_given(
    tmp_path: Path, marker_module: tuple[str, Path]
) -> None:
    name, marker = marker_module
    path = spec_file(tmp_path, f"{name}:tool")

    assert validate_file(path, env={}) == []
    assert callcc("validate", str(path))[0] == 0
    load_spec(path, env={})
    assert not marker.exists()

    code, out, _ = callcc("validate", "--resolve", str(path))
    assert (code, out.splitlines()[-1]) == (0, "valid: 1 file checked, 0 errors, 0 warnings")
    assert marker.read_text() == "imported"


def test_a_forbidden_ref_is_never_imported_even_with_resolve(
    tmp_path: Path, marker_module: tuple[str, Path]
) -> None:
    name, marker = marker_module
    path = spec_file(tmp_path, f"{name}:tool", allow="somewhere_else")

    code, out, _ = callcc("validate", "--resolve", str(path))

    assert code == 2
    assert "module-not-allowed" in out
    assert not marker.exists()
