"""Every error kind of spec validation: exact code, line, column and suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import Diagnostic
from engine.spec import validate_file

BASE = """\
spec_version: 1
models:
  m:
    kind: scripted
    script: s.yaml
tools:
  issue_refund:
    kind: python
    ref: shop.refunds:issue_refund
    description: Refund an order.
agents:
  main:
    description: Main agent.
    model: m
    instructions: Be helpful.
    tools: [issue_refund]
entrypoint: main
"""


def check(tmp_path: Path, text: str, **kwargs: object) -> list[Diagnostic]:
    """Write `text` as spec.yaml (with its script) and validate it without any env."""
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    env = kwargs.pop("env", {})
    return validate_file(path, env=env, **kwargs)  # type: ignore[arg-type]


def one(found: list[Diagnostic]) -> Diagnostic:
    """The single diagnostic of a check, failing with all of them listed otherwise."""
    assert len(found) == 1, "\n".join(f"{d.location()} {d.code}: {d.message}" for d in found)
    return found[0]


def summary(d: Diagnostic) -> tuple[str, int, int, str | None]:
    return (d.code, d.line, d.col, d.suggestion)


def test_the_base_spec_is_valid(tmp_path: Path) -> None:
    assert check(tmp_path, BASE) == []


# --- YAML layer -------------------------------------------------------------------------------


def test_duplicate_key(tmp_path: Path) -> None:
    text = BASE.replace("    model: m\n", "    model: m\n    model: m\n")
    assert summary(one(check(tmp_path, text))) == (
        "duplicate-key",
        15,
        5,
        "'model' is already defined on line 14; keep one of them",
    )


def test_root_not_mapping(tmp_path: Path) -> None:
    d = one(check(tmp_path, "- spec_version: 1\n"))
    assert summary(d) == (
        "root-not-mapping",
        1,
        1,
        "a spec is a mapping that starts with 'spec_version: 1'",
    )
    assert d.message == "the root is a sequence"


def test_empty_file_is_not_a_mapping(tmp_path: Path) -> None:
    assert one(check(tmp_path, "")).message == "the file is empty"


@pytest.mark.parametrize(
    ("value", "shown"),
    [("!!python/object:os.system x", "!!python/object:os.system"), ("!foo bar", "!foo")],
)
def test_explicit_tag(tmp_path: Path, value: str, shown: str) -> None:
    text = BASE.replace("description: Main agent.", f"description: {value}")
    d = one(check(tmp_path, text))
    assert summary(d) == ("yaml-tag", 13, 18, "remove the tag; specs hold plain data only")
    assert d.message == f"explicit YAML tag '{shown}' is not allowed"


def test_billion_laughs_fails_fast(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    d = one(check(tmp_path, "\n".join(lines) + "\n"))
    # refused at line 5 of 10: the expansion stops at the limit instead of building 9**10 nodes
    assert (d.code, d.line, d.col) == ("alias-bomb", 5, 10)
    assert d.message == "aliases expand to more than 10000 nodes"


def test_self_referencing_alias(tmp_path: Path) -> None:
    d = one(check(tmp_path, "a: &x [1, *x]\n"))
    assert (d.code, d.line, d.col, d.message) == (
        "alias-bomb",
        1,
        11,
        "alias '*x' refers to itself",
    )


def test_too_deep(tmp_path: Path) -> None:
    text = "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 120)) + "  " * 120 + "v: 1\n"
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col) == ("too-deep", 101, 201)
    assert d.message == "nesting deeper than 100 levels"


def test_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * (10 * 1024 * 1024))
    d = one(validate_file(path, env={}))
    assert (d.code, d.line, d.col) == ("file-too-large", 1, 1)
    assert d.suggestion == "split the spec or move long instructions into instructions_file"


def test_unreadable(tmp_path: Path) -> None:
    d = one(validate_file(tmp_path / "missing.yaml", env={}))
    assert summary(d) == ("unreadable", 1, 1, "check the path")
    assert d.message == "cannot read file: No such file or directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("spec_version: 1\nname: caf\u00e9\n".encode("latin-1"))
    d = one(validate_file(path, env={}))
    assert summary(d) == ("not-utf8", 2, 10, "save as UTF-8")
    assert d.message == "byte 0xe9 is not valid UTF-8"


def test_yaml_syntax(tmp_path: Path) -> None:
    text = BASE.replace("tools: [issue_refund]", "tools: [issue_refund")
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col) == ("yaml-syntax", 17, 11)
    assert "did not find expected ',' or ']'" in d.message


def test_tab_indentation_gets_a_hint(tmp_path: Path) -> None:
    d = one(check(tmp_path, "a:\n\tb: 1\n"))
    assert (d.code, d.line, d.col) == ("yaml-syntax", 2, 1)
    assert d.suggestion == "indent with spaces; YAML forbids tabs for indentation"


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    d = one(check(tmp_path, "base: &b {x: 1}\nother:\n  <<: *b\n"))
    assert summary(d) == ("yaml-merge-key", 3, 3, "write the fields out in full")
    assert d.message == "YAML merge keys ('<<') are not supported"


def test_several_documents_are_refused(tmp_path: Path) -> None:
    d = one(check(tmp_path, BASE + "---\na: 1\n"))
    assert (d.code, d.line, d.col, d.message) == (
        "yaml-syntax",
        18,
        1,
        "more than one YAML document",
    )


# --- env substitution -------------------------------------------------------------------------


def test_env_unset(tmp_path: Path) -> None:
    text = BASE.replace("Be helpful.", "Serve ${env:SHOP_NAME} customers.")
    d = one(check(tmp_path, text))
    assert summary(d) == (
        "env-unset",
        15,
        19,
        "set SHOP_NAME, or give a default: ${env:SHOP_NAME:-value}",
    )
    assert d.message == "environment variable 'SHOP_NAME' is not set"
    assert d.pointer == "/agents/main/instructions"


# --- schema pass ------------------------------------------------------------------------------


def test_unknown_field_suggests_the_closest(tmp_path: Path) -> None:
    text = BASE.replace("    instructions: Be", "    instrctions: Be")
    d = one(check(tmp_path, text))
    assert summary(d) == ("unknown-field", 15, 5, "did you mean 'instructions'?")
    assert d.message == "unknown field 'instrctions' in agent 'main'"
    assert d.pointer == "/agents/main/instrctions"


def test_unknown_field_without_a_close_match_lists_fields(tmp_path: Path) -> None:
    text = BASE.replace("spec_version: 1\n", "spec_version: 1\ncolour: blue\n")
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col) == ("unknown-field", 2, 1)
    assert d.suggestion == (
        "remove it; allowed fields: agents, allow_commands, allow_modules, description, "
        "entrypoint, models, name, spec_version, tools"
    )


def test_missing_field(tmp_path: Path) -> None:
    text = BASE.replace("    description: Refund an order.\n", "")
    d = one(check(tmp_path, text))
    assert summary(d) == ("missing-field", 7, 3, "add 'description: ...'")
    assert d.message == "missing required field 'description' in tool 'issue_refund'"


def test_missing_instructions(tmp_path: Path) -> None:
    text = BASE.replace("    instructions: Be helpful.\n", "")
    d = one(check(tmp_path, text))
    assert summary(d) == (
        "missing-field",
        12,
        3,
        "add 'instructions: ...' (the text) or 'instructions_file: path/to/file.md'",
    )


def test_instructions_and_instructions_file_conflict(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("Be kind.", encoding="utf-8")
    text = BASE.replace("    tools: [", "    instructions_file: p.md\n    tools: [")
    d = one(check(tmp_path, text))
    assert summary(d) == (
        "conflicting-fields",
        16,
        5,
        "remove 'instructions_file' or 'instructions'",
    )


def test_wrong_type(tmp_path: Path) -> None:
    text = BASE.replace("    tools: [", "    limits: {max_turns: ten}\n    tools: [")
    d = one(check(tmp_path, text))
    assert summary(d) == ("wrong-type", 16, 25, "write a number without quotes")
    assert d.message == "'max_turns' must be an integer, not a string ('ten')"


def test_bad_kind_is_one_error(tmp_path: Path) -> None:
    text = BASE.replace("kind: python", "kind: pyhton")
    d = one(check(tmp_path, text))
    assert summary(d) == ("bad-value", 8, 11, "did you mean 'python'?")
    assert d.message == "unknown kind 'pyhton'; expected one of: agent, external, mcp, python"


def test_out_of_range(tmp_path: Path) -> None:
    text = BASE.replace("    tools: [", "    limits: {max_turns: 0}\n    tools: [")
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col, d.message) == (
        "bad-value",
        16,
        25,
        "'max_turns' must be at least 1, not 0",
    )


def test_bad_decision(tmp_path: Path) -> None:
    text = BASE.replace(
        "description: Refund an order.\n",
        "description: Refund an order.\n    approval: {decisions: [approve, edt]}\n",
    )
    d = one(check(tmp_path, text))
    assert summary(d) == ("bad-value", 11, 37, "did you mean 'edit'?")


def test_bad_name(tmp_path: Path) -> None:
    text = BASE.replace("  issue_refund:", "  Issue-Refund:").replace(
        "[issue_refund]", "[issue_refund]"
    )
    found = check(tmp_path, text)
    d = found[0]
    assert summary(d) == ("bad-name", 7, 3, "rename it to 'issue_refund'")
    assert d.message.startswith("'Issue-Refund' is not a valid name in tools")


def test_bad_ref(tmp_path: Path) -> None:
    text = BASE.replace("shop.refunds:issue_refund", "shop.refunds.issue_refund")
    d = one(check(tmp_path, text))
    assert summary(d) == ("bad-ref", 9, 10, "did you mean 'shop.refunds:issue_refund'?")


def test_bad_spec_version(tmp_path: Path) -> None:
    d = one(check(tmp_path, BASE.replace("spec_version: 1", "spec_version: 2")))
    assert summary(d) == ("bad-value", 1, 15, "write 'spec_version: 1'")


def test_bad_parameters_schema(tmp_path: Path) -> None:
    text = BASE.replace(
        "    description: Refund an order.\n",
        "    description: Refund an order.\n    parameters:\n      type: object\n"
        "      properties: {order: {type: strng}}\n",
    )
    d = one(check(tmp_path, text))
    assert summary(d) == ("bad-value", 13, 34, "did you mean 'string'?")


# --- semantic pass ----------------------------------------------------------------------------


def test_undefined_tool(tmp_path: Path) -> None:
    d = one(check(tmp_path, BASE.replace("[issue_refund]", "[issue_refnd]")))
    assert summary(d) == ("undefined-tool", 16, 13, "did you mean 'issue_refund'?")
    assert d.message == "tool 'issue_refnd' is not defined; defined tools: issue_refund"


def test_undefined_model(tmp_path: Path) -> None:
    d = one(check(tmp_path, BASE.replace("    model: m\n", "    model: gpt\n")))
    assert summary(d) == ("undefined-model", 14, 12, "define 'gpt' under models:")
    assert d.message == "model 'gpt' is not defined; defined models: m"


def test_undefined_agent(tmp_path: Path) -> None:
    text = BASE.replace(
        "agents:\n",
        "  helper:\n    kind: agent\n    agent: helpr\n    description: Helps.\nagents:\n",
    ).replace("tools: [issue_refund]", "tools: [issue_refund, helper]")
    d = one(check(tmp_path, text))
    assert summary(d) == ("undefined-agent", 13, 12, "define 'helpr' under agents:")


def test_undefined_entrypoint(tmp_path: Path) -> None:
    d = one(check(tmp_path, BASE.replace("entrypoint: main", "entrypoint: mian")))
    assert summary(d) == ("undefined-entrypoint", 17, 13, "did you mean 'main'?")
    assert d.message == "entrypoint 'mian' is not a defined agent; defined agents: main"


CYCLE = BASE.replace(
    "agents:\n",
    "  ask_b:\n    kind: agent\n    agent: b\n    description: Ask b.\n"
    "  ask_main:\n    kind: agent\n    agent: main\n    description: Ask main.\nagents:\n",
).replace("tools: [issue_refund]", "tools: [issue_refund, ask_b]") + ("agents_extra: placeholder\n")


def test_agent_cycle(tmp_path: Path) -> None:
    text = CYCLE.replace("agents_extra: placeholder\n", "").replace(
        "entrypoint: main",
        "  b:\n    description: B.\n    model: m\n    instructions: x\n    tools: [ask_main]\n"
        "entrypoint: main",
    )
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col) == ("agent-cycle", 29, 13)
    assert d.message == "sub-agents call each other in a cycle: b -> main -> b"
    assert d.suggestion == "remove tool 'ask_main' from agent 'b', or break the cycle elsewhere"


def test_unreachable_agent_is_a_warning(tmp_path: Path) -> None:
    text = BASE.replace(
        "entrypoint: main",
        "  lonely:\n    description: L.\n    model: m\n    instructions: x\nentrypoint: main",
    )
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col, d.severity) == ("unreachable-agent", 17, 3, "warning")


def test_before_tools_must_be_tools_of_the_agent(tmp_path: Path) -> None:
    text = BASE.replace(
        "    tools: [issue_refund]\n",
        "    tools: [issue_refund]\n    suspend: {before_tools: [issue_refnd]}\n",
    )
    d = one(check(tmp_path, text))
    assert summary(d) == ("undefined-tool", 17, 30, "did you mean 'issue_refund'?")


def test_instructions_file_unreadable(tmp_path: Path) -> None:
    text = BASE.replace("instructions: Be helpful.", "instructions_file: prompt.md")
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col) == ("unreadable", 15, 24)
    assert d.message == "cannot read file 'prompt.md': No such file or directory"


def test_instructions_file_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_bytes(b"caf\xe9")
    text = BASE.replace("instructions: Be helpful.", "instructions_file: prompt.md")
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col) == ("unreadable", 15, 24)


@pytest.mark.parametrize("expr", ["args.__class__", "foo.bar()", "args"])
def test_bad_template(tmp_path: Path, expr: str) -> None:
    text = BASE.replace(
        "description: Refund an order.\n",
        f'description: Refund an order.\n    approval: {{prompt: "Refund {{{{ {expr} }}}}?"}}\n',
    )
    d = one(check(tmp_path, text))
    assert summary(d) == (
        "bad-template",
        11,
        24,
        "insert arguments as {{ args.NAME }} where NAME is a parameter name",
    )


def test_template_names_a_missing_parameter(tmp_path: Path) -> None:
    text = BASE.replace(
        "description: Refund an order.\n",
        "description: Refund an order.\n    parameters:\n      type: object\n"
        "      properties: {order_id: {type: string}}\n"
        '    approval: {prompt: "Refund {{ args.order }}?"}\n',
    )
    d = one(check(tmp_path, text))
    assert summary(d) == ("bad-template", 14, 24, "did you mean 'order_id'?")


def test_forbidden_module(tmp_path: Path) -> None:
    d = one(check(tmp_path, BASE.replace("shop.refunds:issue_refund", "os:system")))
    assert summary(d) == (
        "module-not-allowed",
        9,
        10,
        "wrap what you need in a function of your own module",
    )
    assert (
        "tools may never come from builtins, code, codeop, ctypes, importlib, marshal, nt, os,"
        in (d.message)
    )


def test_module_outside_allow_modules(tmp_path: Path) -> None:
    text = BASE.replace("spec_version: 1\n", "spec_version: 1\nallow_modules: [shopping]\n")
    d = one(check(tmp_path, text))
    assert (d.code, d.line, d.col) == ("module-not-allowed", 10, 10)
    assert d.message == "module 'shop.refunds' is not under allow_modules (shopping)"


def test_script_file_is_not_a_spec(tmp_path: Path) -> None:
    d = one(check(tmp_path, "script_version: 1\nagents: {}\n"))
    assert (d.code, d.line, d.col) == ("not-a-spec", 1, 1)


# --- --resolve --------------------------------------------------------------------------------

SHOP = '''\
"""Tools for the resolve tests."""

NOT_A_FUNCTION = 3


def issue_refund(order_id: str, amount: float = 0.0) -> str:
    return order_id
'''


def resolve(tmp_path: Path, text: str) -> list[Diagnostic]:
    package = tmp_path / "shop_r"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "refunds.py").write_text(SHOP, encoding="utf-8")
    return check(tmp_path, text.replace("shop.refunds", "shop_r.refunds"), resolve=True)


def test_resolve_ok(tmp_path: Path) -> None:
    assert resolve(tmp_path, BASE) == []


def test_resolve_attribute_not_found(tmp_path: Path) -> None:
    d = one(resolve(tmp_path, BASE.replace(":issue_refund", ":issue_refunds")))
    assert (d.code, d.line, d.col) == ("ref-not-found", 9, 10)
    assert d.message.startswith("'shop_r.refunds' has no attribute 'issue_refunds'")


def test_resolve_module_not_found(tmp_path: Path) -> None:
    d = one(check(tmp_path, BASE.replace("shop.refunds", "shop_missing.refunds"), resolve=True))
    assert (d.code, d.line, d.col) == ("ref-not-found", 9, 10)


def test_resolve_not_callable(tmp_path: Path) -> None:
    d = one(resolve(tmp_path, BASE.replace(":issue_refund", ":NOT_A_FUNCTION")))
    assert (d.code, d.line, d.col) == ("not-callable", 9, 10)


def test_resolve_signature_mismatch(tmp_path: Path) -> None:
    text = BASE.replace(
        "description: Refund an order.\n",
        "description: Refund an order.\n    parameters:\n      type: object\n"
        "      properties: {order: {type: string}}\n",
    )
    found = resolve(tmp_path, text)
    assert [summary(d) for d in found] == [
        (
            "signature-mismatch",
            11,
            5,
            "add 'order_id' under parameters.properties, or give it a default",
        ),
        ("signature-mismatch", 13, 20, "did you mean 'order_id'?"),
    ]


def test_env_values_never_appear_in_messages(tmp_path: Path) -> None:
    text = BASE.replace("    model: m\n", "    model: ${env:SECRET_MODEL}\n")
    found = check(tmp_path, text, env={"SECRET_MODEL": "sk-live-123"})
    assert [d.code for d in found] == ["bad-name", "undefined-model"]
    for d in found:
        assert "live" not in f"{d.message} {d.suggestion}"
        assert (
            d.suggestion
            == "the value comes from ${env:SECRET_MODEL}; check that environment variable"
        )
    assert found[1].message.startswith("model '${env:SECRET_MODEL}' is not defined")


def test_escaped_and_default_env_references(tmp_path: Path) -> None:
    text = BASE.replace(
        "Be helpful.", "Use $${env:LITERAL}, ${env:TONE:-calm} and ${not_env}, ${env:WHO}."
    )
    assert check(tmp_path, text, env={"WHO": "Ada"}) == []
    from engine.spec import load_spec

    spec = load_spec(tmp_path / "spec.yaml", env={"WHO": "Ada"})
    assert spec.agents["main"].instructions == "Use ${env:LITERAL}, calm and ${not_env}, Ada."
