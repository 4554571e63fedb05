"""engine.tools: JSON Schema inference from signatures, importing refs, ToolContext, Deferred."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Literal, Optional

import ctx_tools
import pytest
from builders import (
    agent,
    call,
    calls,
    finished,
    make_spec,
    python_tool,
    run,
    runtime,
    say,
    tool_result,
)

from engine.tools import (
    Deferred,
    ToolContext,
    ToolRefError,
    context_parameter,
    import_ref,
    infer_parameters,
)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def everything(
    name: str,
    count: int,
    ratio: float,
    flag: bool,
    tags: list[str],
    meta: dict[str, int],
    mode: Literal["fast", "slow"],
    colour: Colour,
    note: str | None = None,
    legacy: Optional[int] = None,  # noqa: UP045 - the old spelling must work too
    level: int = 3,
    *,
    ctx: ToolContext,
) -> str:
    return name


def test_infers_every_supported_type() -> None:
    assert infer_parameters(everything) == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object", "additionalProperties": {"type": "integer"}},
            "mode": {"enum": ["fast", "slow"]},
            "colour": {"enum": ["red", "blue"]},
            "note": {"type": ["string", "null"], "default": None},
            "legacy": {"type": ["integer", "null"], "default": None},
            "level": {"type": "integer", "default": 3},
        },
        "required": ["name", "count", "ratio", "flag", "tags", "meta", "mode", "colour"],
        "additionalProperties": False,
    }


def test_kwargs_open_the_schema_and_untyped_is_anything() -> None:
    def loose(query, **extra: object) -> None:  # type: ignore[no-untyped-def]
        return None

    assert infer_parameters(loose) == {
        "type": "object",
        "properties": {"query": {}},
        "required": ["query"],
        "additionalProperties": True,
    }


def test_unsupported_type_says_what_to_do() -> None:
    def odd(path: Path) -> None:
        return None

    with pytest.raises(TypeError, match="parameter 'path' is annotated Path: Path has no JSON"):
        infer_parameters(odd)


def test_tool_context_and_idempotency_key() -> None:
    ctx = ToolContext(run_id="run_1", call_id="call_9", agent="hr_agent", tool="send_email")
    assert ctx.idempotency_key == "run_1:call_9"
    with pytest.raises(TypeError):
        ToolContext("run_1", "call_9", "a", "t")  # type: ignore[misc]


def test_deferred_carries_its_reason() -> None:
    with pytest.raises(Deferred) as caught:
        raise Deferred("waiting for the bank")
    assert caught.value.reason == "waiting for the bank"


def test_import_ref_restores_sys_path(tmp_path: Path) -> None:
    import sys

    (tmp_path / "tool_mod_x.py").write_text("def hello(name: str) -> str:\n    return name\n")
    before = list(sys.path)
    func = import_ref("tool_mod_x:hello", str(tmp_path))
    assert func("ada") == "ada"
    assert sys.path == before


@pytest.mark.parametrize(
    ("ref", "code"),
    [
        ("no_such_module_zz:f", "ref-not-found"),
        ("json:no_such_function", "ref-not-found"),
        ("json.decoder:JSONDecodeError.nothing", "ref-not-found"),
        ("math:pi", "not-callable"),
        ("json", "ref-not-found"),
    ],
)
def test_import_ref_errors(ref: str, code: str) -> None:
    with pytest.raises(ToolRefError) as caught:
        import_ref(ref, None)
    assert caught.value.code == code


# -- the ToolContext parameter, spelt every way ---------------------------------------------

CONTEXT_TOOLS = {
    "optional_ctx": "ctx",
    "typing_optional": "context",
    "union_none": "c",
    "annotated": "ctx",
    "text_only": "ctx",
    "text_plain": "ctx",
}


@pytest.mark.parametrize(("tool", "param"), sorted(CONTEXT_TOOLS.items()))
def test_every_spelling_of_the_context_parameter_is_found(tool: str, param: str) -> None:
    func = getattr(ctx_tools, tool)

    assert context_parameter(func) == param
    assert param not in infer_parameters(func)["properties"]


def test_a_list_of_contexts_is_no_context_parameter() -> None:
    assert context_parameter(ctx_tools.not_a_context) is None


def test_text_annotations_of_other_parameters_still_resolve() -> None:
    assert infer_parameters(ctx_tools.text_plain)["properties"] == {"key": {"type": "integer"}}


@pytest.mark.parametrize("tool", sorted(CONTEXT_TOOLS))
def test_a_parameter_hidden_from_the_model_receives_the_context(tool: str) -> None:
    spec = make_spec(
        [agent("main", tool)],
        [python_tool(tool, ref=f"ctx_tools:{tool}")],
    )
    key = 5 if tool == "text_plain" else "k"
    rt = runtime(spec, {"main": [calls(call("call_7", tool, {"key": key})), say("ok")]})

    (definition,) = rt.program.agents["main"].tool_defs
    outcome = finished(run(rt, run_id="run-42"))

    assert CONTEXT_TOOLS[tool] not in definition["function"]["parameters"]["properties"]
    assert outcome.messages[2] == tool_result("call_7", f"{key}@run-42:call_7")
