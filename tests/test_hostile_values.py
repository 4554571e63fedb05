"""Documents holding values no valid run writes: refused with `ContinuationError` and the JSON
pointer of the fault (CLI exit 2), before anything runs; never a ValueError, RecursionError,
UnicodeEncodeError or OverflowError from deep inside.

NaN and Infinity (JSON has neither; Python reads both), lone surrogates (`"\\ud800"` reads
as a `str` no UTF-8 encoder writes), nesting deep enough to overflow an encoder, counters
that would be written back as null, integers of more digits than Python converts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import loop_tools
import pytest

from engine.cli import main
from engine.continuation import Continuation
from engine.errors import ContinuationError, DecisionError
from engine.runtime import Runtime, Suspended
from engine.spec import load_spec

SPEC_YAML = """\
spec_version: 1
name: values
allow_modules: [loop_tools]
models:
  scripted: {kind: scripted, script: values.script.yaml}
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {decisions: [approve, edit, reject]}
  ask:
    kind: external
    description: Ask the auditor.
agents:
  boss:
    description: Pays after asking.
    model: scripted
    instructions: Pay bob.
    tools: [transfer, ask]
entrypoint: boss
"""
SCRIPT_YAML = """\
script_version: 1
agents:
  boss:
    - tool_calls:
        - {id: t, name: transfer, arguments: {to: bob, amount: 5}}
        - {id: q, name: ask, arguments: {question: "ok?"}}
    - text: Boss done.
"""
KEY = "values-signing-key-0123456789abcdef"
PENDING_ARGS = '"arguments":{"to":"bob","amount":5}'
DEPTHS = range(101, 1101, 9)
"""Around a thousand, some parse and then overflowed the stack of the fingerprint's canonical
JSON (RecursionError); deeper ones are too deep to parse. Every one must be refused."""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    (tmp_path / "values.script.yaml").write_text(SCRIPT_YAML, encoding="utf-8")
    path = tmp_path / "values.yaml"
    path.write_text(SPEC_YAML, encoding="utf-8")
    return path


def document(spec_path: Path, decide: Callable[[Continuation], Continuation] | None = None) -> str:
    """The compact JSON of the run suspended on `t` (approval) and `q` (external), decided."""
    with Runtime(load_spec(spec_path)) as runtime:
        outcome = runtime.run("Pay bob", run_id="values-1")
    assert isinstance(outcome, Suspended)
    loop_tools.CALLS.clear()
    doc = outcome.continuation
    return (decide(doc) if decide else doc).to_json()


def replaced(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, (old, text)
    return text.replace(old, new)


def approve_t(doc: Continuation) -> Continuation:
    return doc.approve("t")


def deep_arguments(text: str, depth: int) -> str:
    nested = "[" * depth + "]" * depth
    return replaced(text, PENDING_ARGS, f'"arguments":{{"to":"bob","amount":5,"x":{nested}}}')


CASES: dict[str, tuple[Any, Callable[[str], str], str, str]] = {
    "NaN in pending arguments": (
        approve_t,
        lambda t: replaced(t, PENDING_ARGS, PENDING_ARGS.replace("5", "NaN")),
        "/frames/0/pending/0/arguments/amount",
        "not valid JSON: NaN is not a JSON number",
    ),
    "Infinity in pending arguments": (
        approve_t,
        lambda t: replaced(t, PENDING_ARGS, PENDING_ARGS.replace("5", "-Infinity")),
        "/frames/0/pending/0/arguments/amount",
        "not valid JSON: -Infinity is not a JSON number",
    ),
    "a lone surrogate in pending arguments": (
        approve_t,
        lambda t: replaced(t, PENDING_ARGS, PENDING_ARGS.replace("bob", "\\ud800")),
        "/frames/0/pending/0/arguments/to",
        "holds a lone surrogate (U+D800)",
    ),
    "a lone surrogate in a reject reason": (
        lambda d: d.reject("t", "too much"),
        lambda t: replaced(t, '"reason":"too much"', '"reason":"no \\udfff"'),
        "/frames/0/pending/0/decision/reason",
        "holds a lone surrogate (U+DFFF)",
    ),
    "a lone surrogate in edit arguments": (
        lambda d: d.edit("t", {"to": "carol", "amount": 3}),
        lambda t: replaced(t, '"to":"carol"', '"to":"\\ud800carol"'),
        "/frames/0/pending/0/decision/arguments/to",
        "holds a lone surrogate",
    ),
    "NaN in an answer": (
        lambda d: d.answer("q", "yes"),
        lambda t: replaced(t, '"result":"yes"', '"result":[1,NaN]'),
        "/frames/0/pending/1/decision/result/1",
        "not valid JSON: NaN is not a JSON number",
    ),
    "a counter set to NaN": (
        approve_t,
        lambda t: replaced(t, '"counters":{', '"counters":{"extra_seconds":NaN,'),
        "/frames/0/counters/extra_seconds",
        "not valid JSON: NaN is not a JSON number",
    ),
    "a counter beyond any float": (
        approve_t,
        lambda t: replaced(t, '"counters":{', '"counters":{"extra_seconds":1e999,'),
        "/frames/0/counters/extra_seconds",
        "not valid JSON: 1e999 is beyond any number JSON readers keep",
    ),
    "an integer counter too big for a float": (
        approve_t,
        lambda t: replaced(t, '"counters":{', f'"counters":{{"extra_seconds":{10**400},'),
        "/frames/0/counters/extra_seconds",
        "expected a finite non-negative number",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_value_no_run_writes_is_refused_with_its_pointer_through_the_api(
    spec_path: Path, case: str
) -> None:
    decide, corrupt, pointer, message = CASES[case]
    text = corrupt(document(spec_path, decide))

    with Runtime(load_spec(spec_path)) as runtime, pytest.raises(ContinuationError) as caught:
        runtime.resume(runtime.load(text))

    assert caught.value.pointer == pointer
    assert message in str(caught.value)
    assert loop_tools.CALLS == []


@pytest.mark.parametrize("case", list(CASES))
def test_a_value_no_run_writes_is_exit_2_with_its_pointer_through_the_cli(
    spec_path: Path, tmp_path: Path, case: str
) -> None:
    decide, corrupt, pointer, message = CASES[case]
    state = tmp_path / "state.json"
    state.write_text(corrupt(document(spec_path, decide)), encoding="utf-8")
    out, err = StringIO(), StringIO()

    code = main(["resume", str(state), "--spec", str(spec_path), "-q"], out, err)

    assert code == 2, err.getvalue()
    assert err.getvalue().splitlines()[-1].startswith("callcc: error: ")
    assert f"{message}" in err.getvalue() and f" at {pointer}" in err.getvalue()
    assert loop_tools.CALLS == []


def test_arguments_nested_at_any_depth_are_refused_never_a_recursion_error(
    spec_path: Path, tmp_path: Path
) -> None:
    base = document(spec_path, approve_t)
    state = tmp_path / "state.json"
    ours = f"nests deeper than 100 levels at /frames/0/pending/0/arguments/x/{'0/' * 98}0"
    messages = set()
    with Runtime(load_spec(spec_path)) as runtime:
        for depth in DEPTHS:
            text = deep_arguments(base, depth)
            with pytest.raises(ContinuationError) as caught:
                runtime.resume(runtime.load(text))
            messages.add(str(caught.value).replace(ours, "OURS"))
            state.write_text(text, encoding="utf-8")
            err = StringIO()
            code = main(["resume", str(state), "--spec", str(spec_path), "-q"], StringIO(), err)
            assert code == 2, err.getvalue()

    assert messages <= {
        "the value OURS; was the document edited?",
        "document nests too deeply to be a continuation",
    }
    assert "the value OURS; was the document edited?" in messages
    assert loop_tools.CALLS == []


def test_nan_in_a_document_broken_further_on_is_still_a_continuation_error(
    spec_path: Path,
) -> None:
    text = document(spec_path)
    cut = replaced(text, '"version":2', '"version":NaN')[: len(text) // 2]

    with pytest.raises(ContinuationError, match="NaN is not a JSON number") as caught:
        Continuation.from_json(cut)

    assert caught.value.pointer == ""


def test_an_integer_of_more_digits_than_python_reads_is_not_valid_json(spec_path: Path) -> None:
    text = replaced(document(spec_path), '"turns":1', '"turns":1' + "0" * 5000)

    with pytest.raises(ContinuationError, match="not valid JSON: Exceeds the limit"):
        Continuation.from_json(text)


@pytest.mark.parametrize(
    ("path", "value", "pointer"),
    [
        (("counters", "extra_seconds"), float("nan"), "/frames/0/counters/extra_seconds"),
        (("counters", "elapsed"), float("inf"), "/frames/0/counters/elapsed"),
        (
            ("pending", 0, "arguments", "amount"),
            float("nan"),
            "/frames/0/pending/0/arguments/amount",
        ),
        (("pending", 0, "arguments", "to"), "\udc00", "/frames/0/pending/0/arguments/to"),
    ],
)
def test_data_given_to_from_dict_is_held_to_the_same_rules(
    spec_path: Path, path: tuple[Any, ...], value: Any, pointer: str
) -> None:
    """engine/_codec.py: `value < 0` is False for NaN, so a NaN counter was accepted; orjson
    then wrote it as null and the run's next continuation could not be loaded."""
    data = json.loads(document(spec_path))
    target = data["frames"][0]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value

    with pytest.raises(ContinuationError) as caught:
        Continuation.from_dict(data)

    assert caught.value.pointer == pointer


# -- signed documents ------------------------------------------------------------------------


@pytest.mark.parametrize("indent", [None, 2])
def test_a_signed_document_with_a_raw_lone_surrogate_is_refused_at_the_signature(
    spec_path: Path, indent: int | None
) -> None:
    """engine/signing.py verify: `payload.encode()` raised UnicodeEncodeError for a `str`
    document holding a lone surrogate (only the Python API can be given one: files are read as
    UTF-8)."""
    with Runtime(load_spec(spec_path), secret_key=KEY) as runtime:
        outcome = runtime.run("Pay bob", run_id="values-2")
        assert isinstance(outcome, Suspended)
        text = outcome.continuation.to_json(indent=indent)
        forged = replaced(text, "Pay bob", "Pay \ud800")

        with pytest.raises(ContinuationError) as caught:
            runtime.load(forged)
        assert runtime.load(text) == outcome.continuation  # the untouched one still verifies

    assert caught.value.pointer == "/signature"
    assert "modified after it was signed" in str(caught.value)


# -- decisions through the API and the CLI ---------------------------------------------------


@pytest.mark.parametrize(
    ("decide", "message"),
    [
        (lambda d: d.reject("t", "no \ud800"), "the reason of a rejection must be plain JSON"),
        (lambda d: d.edit("t", {"to": "\udc80", "amount": 1}), "holds a lone surrogate"),
        (lambda d: d.answer("q", _deep(200)), "an answer must be plain JSON data: it nests"),
        (lambda d: d.answer("q", {"deep": _deep(5000)}), "nests deeper than 100 levels"),
    ],
)
def test_a_decision_that_is_not_plain_json_is_a_decision_error(
    spec_path: Path, decide: Callable[[Continuation], Continuation], message: str
) -> None:
    """engine/continuation.py _json_value: `json.dumps` of a value 5000 deep raised
    RecursionError, and a reason with a lone surrogate made a document nothing could write."""
    with Runtime(load_spec(spec_path)) as runtime:
        outcome = runtime.run("Pay bob", run_id="values-3")
    assert isinstance(outcome, Suspended)

    with pytest.raises(DecisionError, match=message):
        decide(outcome.continuation)


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--answer", "q", "--result", "[" * 5000 + "]" * 5000], "--result is not valid JSON"),
        (["--answer", "q", "--result", "1" * 5000], "--result is not valid JSON"),
        (["--edit", "t", "--args", '{"to": "bob", "amount": NaN}'], "plain JSON"),
        (["--reject", "t", "--reason", "no \udcff"], "holds a lone surrogate (U+DCFF)"),
    ],
)
def test_cli_decisions_that_are_not_plain_json_are_exit_2(
    spec_path: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    """A `--reason` that is not UTF-8 reaches Python as lone surrogates (surrogateescape)."""
    state = tmp_path / "state.json"
    state.write_text(document(spec_path), encoding="utf-8")
    out, err = StringIO(), StringIO()

    code = main(["resume", str(state), "--spec", str(spec_path), "-q", *flags], out, err)

    assert code == 2, err.getvalue()
    assert message in err.getvalue()
    assert loop_tools.CALLS == []
