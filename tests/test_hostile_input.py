"""Hostile input: a clear error with its code (or type), message and place; nothing executed.

Specs (YAML that tries to build objects, explode, nest, fill the disk or reach attributes),
continuation documents (truncated, mistyped, huge, deep, pointing elsewhere), model output
(unknown tools, broken arguments, thousands of calls), and secrets that must never leak into
output, logs or the state file.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import warnings
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    run,
    runtime,
    say,
    stopped,
    sub_agent,
    suspended,
)

from engine.cli import main
from engine.continuation import MAX_DOCUMENT_BYTES, Continuation
from engine.errors import ContinuationError, DecisionError, Diagnostic
from engine.runtime import Runtime
from engine.spec import validate_file
from engine.spec.model import ExternalTool, Limits
from engine.spec.yamlload import MAX_FILE_BYTES

if TYPE_CHECKING:
    from openai_server import OpenAICompatServer


# -- specs ---------------------------------------------------------------------------------

BASE = """\
spec_version: 1
name: shop
models:
  m: {kind: scripted, script: s.yaml}
tools:
  issue_refund:
    kind: python
    ref: shop.refunds:issue_refund
    description: Refund an order.
    parameters:
      type: object
      properties: {order_id: {type: string}}
agents:
  main:
    description: Main agent.
    model: m
    instructions: Be helpful.
    tools: [issue_refund]
entrypoint: main
"""


def diagnose(tmp_path: Path, text: str | bytes) -> Diagnostic:
    """The single diagnostic of `text` written as a spec file."""
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "spec.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    found = validate_file(path, env={})
    assert len(found) == 1, "\n".join(f"{d.location()} {d.code}: {d.message}" for d in found)
    return found[0]


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/object/apply:os.system ['touch /tmp/pwned']", "!!python/object/apply:os.system"),
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!!binary aGVsbG8=", "!!binary"),
    ],
)
def test_yaml_tags_are_refused_where_they_stand(tmp_path: Path, value: str, tag: str) -> None:
    d = diagnose(tmp_path, BASE.replace("instructions: Be helpful.", f"instructions: {value}"))

    assert (d.code, d.line, d.col) == ("yaml-tag", 17, 19)
    assert d.message == f"explicit YAML tag '{tag}' is not allowed"


def test_a_tagged_mapping_is_refused(tmp_path: Path) -> None:
    text = BASE.replace(
        "  m: {kind: scripted",
        "  x: !!python/object/new:subprocess.Popen {args: [[id]]}\n  m: {kind: scripted",
    )
    d = diagnose(tmp_path, text)
    assert (d.code, d.line, d.col) == ("yaml-tag", 4, 6)


def test_an_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    lines = ["spec_version: 1", 'x0: &x0 ["a", "a", "a", "a", "a", "a", "a", "a", "a", "a"]']
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 9)]

    d = diagnose(tmp_path, "\n".join(lines) + "\n")

    assert (d.code, d.line) == ("alias-bomb", 5)
    assert d.message == "aliases expand to more than 10000 nodes"


def test_10000_levels_of_flow_nesting_are_refused(tmp_path: Path) -> None:
    """libyaml's own flow-depth limit (1,000) speaks first: the parser stops at column 1003."""
    d = diagnose(tmp_path, "a: " + "[" * 10_000 + "]" * 10_000 + "\n")

    assert (d.code, d.line, d.col) == ("yaml-syntax", 1, 1003)


def test_200_levels_of_flow_nesting_are_refused_at_level_101(tmp_path: Path) -> None:
    d = diagnose(tmp_path, "a: " + "[" * 200 + "]" * 200 + "\n")

    assert (d.code, d.line, d.col) == ("too-deep", 1, 4 + 99)
    assert d.message == "nesting deeper than 100 levels"


@pytest.mark.parametrize(
    ("levels", "expected"), [(1_000, ("too-deep", 101, 101)), (10_000, ("file-too-large", 1, 1))]
)
def test_deep_block_mappings_are_refused(
    tmp_path: Path, levels: int, expected: tuple[str, int, int]
) -> None:
    """10,000 block levels need 50 MB of indentation: the size limit refuses them first."""
    text = "".join(" " * i + f"k{i}:\n" for i in range(levels)) + " " * levels + "v: 1\n"

    d = diagnose(tmp_path, text)

    assert (d.code, d.line, d.col) == expected


def test_10000_levels_of_compact_block_sequences_are_refused_at_level_101(tmp_path: Path) -> None:
    d = diagnose(tmp_path, "a:\n  " + "- " * 10_000 + "1\n")

    assert (d.code, d.line, d.col) == ("too-deep", 2, 3 + 2 * 99)


def test_a_100_mb_spec_is_refused_by_its_size_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:  # sparse: 100 MB that take no disk
        handle.write(b"spec_version: 1\n")
        handle.truncate(100 * 1024 * 1024)

    (d,) = validate_file(path, env={})

    assert (d.code, d.line, d.col) == ("file-too-large", 1, 1)
    assert (
        d.message
        == f"file is {100 * 1024 * 1024} bytes; specs may be at most {MAX_FILE_BYTES} bytes"
    )


def test_binary_garbage_is_refused_as_not_utf8(tmp_path: Path) -> None:
    d = diagnose(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    assert (d.code, d.line, d.col, d.message) == (
        "not-utf8",
        1,
        1,
        "byte 0x89 is not valid UTF-8",
    )


def test_control_characters_are_refused_on_their_own_line(tmp_path: Path) -> None:
    """engine/spec/yamlload.py _build: the reader's error (a NUL on line 2) has no
    problem_mark, so the diagnostic points at 1:1 instead of 2:8."""
    d = diagnose(tmp_path, "spec_version: 1\nname: a\x00b\n")

    assert (d.code, d.line) == ("yaml-syntax", 2)


def test_latin1_text_is_refused_at_the_byte(tmp_path: Path) -> None:
    text = BASE.replace("Be helpful.", "Sois serviable, caf\u00e9.").encode("latin-1")

    d = diagnose(tmp_path, text)

    assert (d.code, d.line, d.col, d.suggestion) == ("not-utf8", 17, 38, "save as UTF-8")


def test_duplicate_keys_are_refused_at_the_second(tmp_path: Path) -> None:
    text = BASE.replace("    ref: shop", "    kind: external\n    ref: shop")

    d = diagnose(tmp_path, text)

    assert (d.code, d.line, d.col) == ("duplicate-key", 8, 5)
    assert d.suggestion == "'kind' is already defined on line 7; keep one of them"


@pytest.mark.parametrize(
    ("name", "line", "col"),
    [
        ("issue-refund", 6, 3),
        ("__class__", 6, 3),
        ("'refund now'", 6, 3),
        ("'1refund'", 6, 3),
        ("'déjà'", 6, 3),
    ],
)
def test_tool_names_that_are_not_function_names_are_refused(
    tmp_path: Path, name: str, line: int, col: int
) -> None:
    text = BASE.replace("  issue_refund:\n", f"  {name}:\n").replace(
        "tools: [issue_refund]", f"tools: [{name}]"
    )
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")

    found = validate_file(path, env={})

    assert (found[0].code, found[0].line, found[0].col) == ("bad-name", line, col)


@pytest.mark.parametrize(
    "expr",
    [
        "args.__class__",
        "args.order_id.__globals__",
        "args.__class__.__mro__[1].__subclasses__()",
        "7*7",
        "config.items()",
        "lipsum.__globals__.os.popen('id').read()",
        "args['order_id']",
        "args.order_id|attr('__class__')",
    ],
)
def test_template_syntax_reaching_attributes_is_refused(tmp_path: Path, expr: str) -> None:
    text = BASE.replace(
        "      properties: {order_id: {type: string}}\n",
        "      properties: {order_id: {type: string}}\n"
        f'    approval: {{required: true, prompt: "Refund {{{{ {expr} }}}}?"}}\n',
    )

    d = diagnose(tmp_path, text)

    assert (d.code, d.line, d.col) == ("bad-template", 13, 40)
    assert d.message.endswith("is not allowed in a prompt; only {{ args.NAME }}")


def test_a_prompt_template_is_filled_with_values_never_evaluated() -> None:
    spec = make_spec([agent("a", "transfer")], [gated("transfer")])
    tool = spec.tools["transfer"]
    from dataclasses import replace

    approval = replace(tool.approval, prompt="Send {{ args.amount }} to {{ args.to }}?")
    spec.tools["transfer"] = replace(tool, approval=approval)  # type: ignore[index]
    turns = {"a": [calls(call("t", "transfer", {"to": "{{ args.__class__ }}", "amount": 1}))]}

    doc = suspended(runtime(spec, turns).run("go"))

    assert doc.pending()[0].prompt == "Send 1 to {{ args.__class__ }}?"
    assert loop_tools.CALLS == []


# -- continuations -------------------------------------------------------------------------

STACK = make_spec(
    [agent("boss", "transfer", "ask", "clerk"), agent("clerk", "echo")],
    [
        gated("transfer", "approve", "edit", "reject"),
        ExternalTool(name="ask", description="Ask the auditor."),
        sub_agent("clerk"),
        gated("echo"),
    ],
    name="stack",
)
STACK_TURNS = {
    "boss": [
        calls(
            call("t", "transfer", {"to": "bob", "amount": 5}),
            call("q", "ask", {"question": "ok?"}),
            call("c", "clerk", {"request": "note it"}),
        ),
        say("Boss done."),
    ],
    "clerk": [calls(call("e", "echo", {"text": "note"})), say("Clerk done.")],
}


def stack() -> tuple[Runtime, Continuation]:
    rt = runtime(STACK, STACK_TURNS)
    doc = suspended(run(rt, "Pay bob", run_id="hostile-1"))
    loop_tools.CALLS.clear()
    return rt, doc


def refused(rt: Runtime, text: str | bytes) -> ContinuationError:
    """The error of loading and resuming `text`, after checking that nothing ran."""
    with pytest.raises(ContinuationError) as caught:
        rt.resume(Continuation.from_json(text))
    assert loop_tools.CALLS == []
    return caught.value


def test_truncated_documents_are_refused_at_every_cut() -> None:
    rt, doc = stack()
    text = doc.approve("t").to_json()

    for cut in range(0, len(text), max(1, len(text) // 97)):
        error = refused(rt, text[:cut])
        assert "not valid JSON" in str(error) and "truncated" in str(error)


VALUES: list[Any] = [None, True, 7, 2.5, "text", [], {}, [1], {"x": 1}]


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else type(value).__name__


def _wrong_types(path: str) -> list[tuple[str, Any]]:
    return [(path, v) for v in VALUES]


FIELDS = [
    "/format",
    "/version",
    "/run_id",
    "/nonce",
    "/spec",
    "/spec/name",
    "/spec/digest",
    "/spec/path",
    "/frames",
    "/frames/0",
    "/frames/0/agent",
    "/frames/0/messages",
    "/frames/0/messages/0",
    "/frames/0/messages/0/role",
    "/frames/0/messages/1/tool_calls",
    "/frames/0/messages/1/tool_calls/0",
    "/frames/0/messages/1/tool_calls/0/id",
    "/frames/0/messages/1/tool_calls/0/function",
    "/frames/0/messages/1/tool_calls/0/function/name",
    "/frames/0/messages/1/tool_calls/0/function/arguments",
    "/frames/0/counters",
    "/frames/0/counters/turns",
    "/frames/0/counters/tool_calls",
    "/frames/0/ledger",
    "/frames/0/ledger/t",
    "/frames/0/pending",
    "/frames/0/pending/0",
    "/frames/0/pending/0/id",
    "/frames/0/pending/0/reason",
    "/frames/0/pending/0/tool",
    "/frames/0/pending/0/arguments",
    "/frames/0/pending/0/decisions",
    "/frames/0/pending/0/fingerprint",
    "/frames/0/pending/0/decision",
    "/frames/0/pending/0/decision/kind",
    "/frames/0/pending/0/decision/fingerprint",
    "/frames/0/pending/1/prompt",
    "/frames/0/pending/2/child",
    "/frames/1/agent",
    "/frames/1/results",
]


VALID_ALTERNATIVES = {("/frames/0/pending/1/prompt", "NoneType")}
"""Values of another type that the format allows (`prompt` may be null)."""
CAUGHT_LATER = {
    ("/frames/0/messages/1/tool_calls", "NoneType"),  # no calls: the pending call is orphaned
    ("/frames/0/pending/0/tool", "NoneType"),  # a frame-level entry: fingerprint mismatch
    ("/frames/0/pending/0/arguments", "NoneType"),
}
"""A null where the format allows one: refused by the consistency checks, elsewhere."""


@pytest.mark.parametrize("value", ["soon", -1.5, True, None, [1]])
def test_a_time_counter_that_is_not_a_non_negative_number_is_refused(value: Any) -> None:
    rt, data = _decided_data()
    data["frames"][0]["counters"]["elapsed"] = value

    error = refused(rt, json.dumps(data))

    assert error.pointer == "/frames/0/counters/elapsed"


def test_a_boolean_version_is_not_version_1() -> None:
    """engine/continuation.py from_dict: `version in SUPPORTED_VERSIONS` is True for
    `true` and `1.0` (`True == 1`), so without the type check `"version": true` would load
    as version 1."""
    rt, data = _decided_data()
    data["version"] = True

    error = refused(rt, json.dumps(data))

    assert error.pointer == "/version"


def _get(data: Any, path: str) -> Any:
    for part in path.strip("/").split("/"):
        data = data[int(part) if isinstance(data, list) else part]
    return data


def _put(data: Any, path: str, value: Any) -> None:
    *parents, last = path.strip("/").split("/")
    for part in parents:
        data = data[int(part) if isinstance(data, list) else part]
    data[int(last) if isinstance(data, list) else last] = value


def _decided_data() -> tuple[Runtime, dict[str, Any]]:
    rt, doc = stack()
    data = json.loads(doc.approve("t").to_json())
    data["frames"][1]["results"] = {}
    return rt, data


@pytest.mark.parametrize("path", FIELDS)
def test_a_value_of_the_wrong_type_at_any_field_is_refused_pointing_at_it(path: str) -> None:
    rt, data = _decided_data()
    good = _get(data, path)
    for value in VALUES:
        if _type(value) == _type(good) or (path, _type(value)) in VALID_ALTERNATIVES:
            continue
        if path == "/version" and value is True:
            continue  # test_a_boolean_version_is_not_version_1
        bad = copy.deepcopy(data)
        _put(bad, path, value)

        error = refused(rt, json.dumps(bad))

        related = path.startswith(error.pointer) or error.pointer.startswith(path)
        assert related or (path, _type(value)) in CAUGHT_LATER, (
            path,
            value,
            error,
        )


def test_an_unknown_version_names_the_supported_versions() -> None:
    rt, data = _decided_data()
    data["version"] = 3

    error = refused(rt, json.dumps(data))

    assert error.pointer == "/version"
    assert "unsupported continuation version 3; this callcc reads versions 1, 2" in str(error)


def test_a_100_mb_document_is_refused_by_its_size_before_parsing() -> None:
    rt, _ = stack()
    text = '{"format": "' + "x" * (100 * 1024 * 1024) + '"'  # not even valid JSON

    error = refused(rt, text)

    assert str(error).startswith(f"document is {len(text)} bytes, over the ")
    assert f"{MAX_DOCUMENT_BYTES} byte limit" in str(error)
    with pytest.raises(ContinuationError, match="byte limit"):
        rt.load(text.encode())


@pytest.mark.parametrize("depth", [100_000, 1_000_000])
def test_json_nested_deeper_than_python_can_parse_is_a_continuation_error(depth: int) -> None:
    rt, data = _decided_data()
    text = json.dumps(data)
    nested = text.replace('"content": "Pay bob"', '"content":' + "[" * depth + "]" * depth, 1)
    assert len(nested) > len(text)

    for document in ("[" * depth + "]" * depth, "{" + '"a":{' * depth + "}" * depth, nested):
        error = refused(rt, document)
        assert "nests too deeply to be a continuation" in str(error)


def test_a_pending_entry_naming_a_tool_not_in_the_spec_is_refused() -> None:
    rt, data = _decided_data()
    data["frames"][0]["pending"][0]["tool"] = "wire_all_funds"

    error = refused(rt, json.dumps(data))

    assert error.pointer == "/frames/0/pending/0/tool"
    assert "names tool 'wire_all_funds', which its agent does not have in the spec" in str(error)


def test_a_pending_entry_naming_another_agents_tool_is_refused() -> None:
    rt, data = _decided_data()
    data["frames"][0]["pending"][0]["tool"] = "echo"  # the clerk's tool, not the boss's

    error = refused(rt, json.dumps(data))

    assert error.pointer == "/frames/0/pending/0/tool"


def test_a_decision_for_a_call_that_is_not_pending_lists_the_pending_ids() -> None:
    _, doc = stack()

    with pytest.raises(DecisionError) as caught:
        doc.approve("wire_1")

    assert caught.value.pending_ids == ("boss/clerk@c/e", "boss/q", "boss/t")
    assert str(caught.value) == "no pending call 'wire_1'; pending: boss/clerk@c/e, boss/q, boss/t"
    with pytest.raises(DecisionError, match="does not allow 'approve'; allowed: answer, reject"):
        doc.approve("q")
    with pytest.raises(DecisionError, match="'c'"):
        doc.approve("c")  # the sub-agent's own entry is not a decision
    assert loop_tools.CALLS == []


def test_a_tool_result_injected_into_a_pending_call_is_refused() -> None:
    rt, data = _decided_data()
    data["frames"][0]["results"] = {"t": '{"ok": true}'}

    error = refused(rt, json.dumps(data))

    assert error.pointer == "/frames/0/pending/0/id"
    assert "call 't' is pending and has a result" in str(error)


def test_a_tool_message_injected_for_a_pending_call_is_refused() -> None:
    rt, data = _decided_data()
    data["frames"][0]["messages"].append(
        {"role": "tool", "tool_call_id": "t", "content": '{"ok": true}'}
    )

    error = refused(rt, json.dumps(data))

    assert error.pointer == "/frames/0/pending/0/id"
    assert "is not a call of the agent's current turn" in str(error)


def test_a_result_for_a_call_nobody_made_is_refused() -> None:
    rt, data = _decided_data()
    data["frames"][1]["results"] = {"ghost": "done"}

    error = refused(rt, json.dumps(data))

    assert error.pointer == "/frames/1/results"


# -- model output --------------------------------------------------------------------------

OPEN = make_spec(
    [agent("a", "transfer", "echo")], [python_tool("transfer"), python_tool("echo")], name="open"
)


def test_model_calls_to_unknown_tools_broken_json_and_bad_arguments_become_error_messages() -> None:
    turns = {
        "a": [
            calls(
                call("u", "os_system", {"cmd": "rm -rf /"}),
                call("j", "transfer", '{"to": "bob", "amount": 5'),
                call("n", "transfer", "[1, 2]"),
                call("s", "transfer", {"to": "bob", "amount": "all"}),
                call("x", "transfer", {"to": "bob", "amount": 5, "admin": True}),
            ),
            say("I could not do it."),
        ]
    }

    outcome = finished(run(runtime(OPEN, turns)))

    results = {m["tool_call_id"]: m["content"] for m in outcome.messages if m["role"] == "tool"}
    assert results["u"] == ("error: unknown tool 'os_system'; available tools: echo, transfer")
    assert results["j"].startswith("error: the arguments are not valid JSON (")
    assert results["n"].startswith("error: the arguments must be a JSON object")
    assert results["s"].startswith("error: the arguments do not match the parameters of transfer")
    assert "at amount: 'all' is not of type 'integer'" in results["s"]
    assert results["x"].startswith("error: the arguments do not match the parameters of transfer")
    assert all(r.endswith("again with valid arguments") for k, r in results.items() if k != "u")
    assert loop_tools.CALLS == []


def test_5000_tool_calls_in_one_reply_suspend_on_max_tool_calls_before_any_runs() -> None:
    spec = make_spec(
        [agent("a", "transfer", limits=Limits(max_tool_calls=10))], [python_tool("transfer")]
    )
    flood = calls(*(call(f"f{i}", "transfer", {"to": "eve", "amount": 1}) for i in range(5000)))

    doc = suspended(run(runtime(spec, {"a": [flood]})))

    (entry,) = doc.pending()
    assert (entry.reason, entry.decisions) == ("turn_limit", ("extend", "stop"))
    assert entry.detail == "max_tool_calls: 0 used of 10, the model asks for 5000 more"
    assert loop_tools.CALLS == []
    ended = stopped(runtime(spec, {"a": [flood]}).resume(doc.stop(entry.id)))
    assert loop_tools.CALLS == []
    assert sum(m["role"] == "tool" for m in ended.messages) == 5000


# -- secrets -------------------------------------------------------------------------------

API_KEY = "sk-test-SECRET-123"
HMAC_KEY = "hmac-key-SECRET-0123456789abcdef"
OPENAI_YAML = """\
spec_version: 1
name: leaky
allow_modules: [loop_tools]
models:
  gpt:
    kind: openai
    model: test-model
    base_url: BASE_URL
    api_key_env: CALLCC_TEST_API_KEY
    max_retries: 0
    timeout: 10
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {required: true}
agents:
  bank:
    description: Moves money.
    model: gpt
    instructions: Move money when asked.
    tools: [transfer]
entrypoint: bank
"""


def test_neither_the_api_key_nor_the_signing_key_appears_in_output_logs_or_state(
    openai_server: OpenAICompatServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CALLCC_TEST_API_KEY", API_KEY)
    monkeypatch.setenv("CALLCC_SECRET_KEY", HMAC_KEY)
    spec = tmp_path / "leaky.yaml"
    spec.write_text(OPENAI_YAML.replace("BASE_URL", openai_server.base_url), encoding="utf-8")
    state = tmp_path / "state.json"
    openai_server.push(
        tool_calls=[{"id": "t1", "name": "transfer", "arguments": {"to": "bob", "amount": 5}}]
    )
    openai_server.push(status=401, error="Incorrect API key provided")
    caplog.set_level(logging.DEBUG)
    out, err = StringIO(), StringIO()

    first = main(["run", str(spec), "-p", "Pay bob", "--state", str(state)], out, err)
    saved = state.read_text(encoding="utf-8")
    second = main(["resume", str(state), "--approve", "t1"], out, err)

    assert (first, second) == (3, 1)
    assert "401" in err.getvalue()
    assert openai_server.request_headers[0]["authorization"] == f"Bearer {API_KEY}"
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records  # the DEBUG logs were captured
    for text in (out.getvalue(), err.getvalue(), logged, caplog.text, saved):
        assert API_KEY not in text
        assert HMAC_KEY not in text
        assert "SECRET" not in text
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]
    with warnings.catch_warnings():  # the CLI leaks the client's sockets: see the test below
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_the_cli_closes_the_openai_clients_sockets(
    openai_server: OpenAICompatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine/runtime.py Runtime.close (used by the CLI's `with _runtime(...)`) closes the event
    loops without closing the model clients (`OpenAIChatModel.aclose`), so the httpx
    connections stay open and warn `unclosed transport` at garbage collection, inside
    whichever test runs next (it made the property tests fail under filterwarnings=error)."""
    monkeypatch.setenv("CALLCC_TEST_API_KEY", API_KEY)
    spec = tmp_path / "leaky.yaml"
    spec.write_text(OPENAI_YAML.replace("BASE_URL", openai_server.base_url), encoding="utf-8")
    openai_server.push(text="Nothing to pay.")

    code = main(["run", str(spec), "-p", "hi", "-q"], StringIO(), StringIO())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()

    assert code == 0
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
