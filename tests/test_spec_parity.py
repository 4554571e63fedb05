"""The JSON Schema and the typed model of engine/spec/model.py accept the same fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from engine.spec import model
from engine.spec.schema import spec_schema

# Schema fields that the dataclasses hold under another name, or not at all, by design.
SCHEMA_TO_MODEL = {"instructions_file": "instructions"}
# Dataclass fields that are not YAML fields: the key of the object under its map (`name`),
# an approval's `expires_after` as written (`24h`, beside its seconds), and for the whole
# spec, where it was loaded from, its digest and the source locations.
MODEL_ONLY = {"name", "expires_after_text"}
SPEC_ONLY = {"path", "digest", "locations", "source"}

PAIRS: list[tuple[str, type[Any]]] = [
    ("openai_model", model.OpenAIModel),
    ("scripted_model", model.ScriptedModel),
    ("python_tool", model.PythonTool),
    ("agent_tool", model.AgentTool),
    ("external_tool", model.ExternalTool),
    ("approval", model.Approval),
    ("agent", model.Agent),
]


def schema_fields(definition: dict[str, Any]) -> set[str]:
    return {SCHEMA_TO_MODEL.get(f, f) for f in definition["properties"]}


def model_fields(cls: type[Any], only: set[str] = MODEL_ONLY) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - only


@pytest.mark.parametrize(("definition", "cls"), PAIRS, ids=[p[0] for p in PAIRS])
def test_definition_and_dataclass_have_the_same_fields(definition: str, cls: type[Any]) -> None:
    assert schema_fields(spec_schema()["$defs"][definition]) == model_fields(cls)


def test_top_level() -> None:
    assert schema_fields(spec_schema()) == model_fields(model.Spec, SPEC_ONLY)


@pytest.mark.parametrize(
    ("field", "cls"), [("limits", model.Limits), ("suspend", model.SuspendRules)]
)
def test_nested_agent_objects(field: str, cls: type[Any]) -> None:
    nested = spec_schema()["$defs"]["agent"]["properties"][field]
    assert schema_fields(nested) == model_fields(cls)


def test_every_object_in_the_schema_is_closed() -> None:
    open_by_design = {"params", "parameters", "json_schema", "model", "tool"}
    # `model` and `tool` dispatch on kind to closed variants; params/parameters are free-form.

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            last = where.rsplit("/", 1)[-1]
            if "properties" in node and last not in open_by_design and last != "if":
                is_json_schema = "/json_schema" in where or "/parameters" in where
                assert is_json_schema or node.get("additionalProperties") is False, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}/{i}")

    walk(spec_schema(), "")


def test_kind_variants_match_the_model_literals() -> None:
    defs = spec_schema()["$defs"]
    assert defs["model"]["properties"]["kind"]["enum"] == ["openai", "scripted"]
    assert defs["tool"]["properties"]["kind"]["enum"] == ["agent", "external", "python"]
    for definition, cls in PAIRS:
        if "kind" in defs[definition]["properties"]:
            default = {f.name: f.default for f in dataclasses.fields(cls)}["kind"]
            assert defs[definition]["properties"]["kind"]["const"] == default


@pytest.mark.parametrize(
    "tool",
    [
        {"kind": "python", "ref": "a.b:c", "description": "d"},
        {"kind": "python", "ref": "a.b:c"},
        {"kind": "pyhton", "ref": "a.b:c", "description": "d"},
        {"kind": "agent", "agent": "x", "description": "d", "ref": "a:b"},
        {"kind": "external", "description": "d", "approval": {"decisions": []}},
        {"description": "d"},
        "not a mapping",
    ],
)
def test_split_validators_mean_the_same_as_the_schema(tool: object) -> None:
    from engine.spec.schema import spec_validator, spec_validators

    data = {"spec_version": 1, "entrypoint": "a", "tools": {"t": tool}}
    whole = spec_validator().is_valid(data)
    split = spec_validators()
    kind = tool.get("kind") if isinstance(tool, dict) else None
    by_kind = split.variants["tools"]
    entry = by_kind.get(kind, split.dispatch["tools"]) if isinstance(kind, str) else None
    entry = entry or split.dispatch["tools"]
    assert whole == (split.root.is_valid(data) and entry.is_valid(tool))
