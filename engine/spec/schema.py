"""The spec format's JSON Schema: where it lives, its text, and the one validator built from it."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by the validators' builders: `callcc schema` prints text only
    from jsonschema import Draft202012Validator

SCHEMA_NAME = "agent-spec.v1.schema.json"
"""File name of the spec schema, in `schema/` of the repository (`engine/schema` links to it,
so wheels ship it as package data)."""
CONTINUATION_SCHEMA_NAME = "continuation.v2.schema.json"
"""File name of the schema of the continuation document as this callcc writes it (version 2),
beside the spec schema."""


def continuation_schema_name(version: int) -> str:
    """File name of the schema of continuation documents of `version` (1 or 2: each version's
    schema stays as released; `engine.continuation.SUPPORTED_VERSIONS` lists what loads)."""
    return f"continuation.v{version}.schema.json"


def schema_text(name: str = SCHEMA_NAME) -> str:
    """A schema's JSON text, from the installed package if shipped there, else the repo."""
    try:
        packaged = resources.files("engine").joinpath("schema", name)
        if packaged.is_file():
            return packaged.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    repo = Path(__file__).resolve().parent.parent.parent / "schema" / name
    return repo.read_text(encoding="utf-8")


@functools.cache
def spec_schema() -> dict[str, Any]:
    """The spec schema as a dict (parsed once; do not mutate)."""
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@functools.cache
def spec_validator() -> Draft202012Validator:
    """The validator for the whole spec schema, built once; it holds no per-run state."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(inline_refs(spec_schema()))


@dataclass(frozen=True, slots=True)
class SpecValidators:
    """The spec schema split for speed: `models`/`tools` entries are checked by their kind.

    Dispatching on `kind` in code instead of through the schema's `if`/`then` chain halves the
    cost of the schema pass; the meaning is the same as `spec_validator()`.
    """

    root: Draft202012Validator
    """The schema with the entries of `models` and `tools` left to the validators below."""
    variants: Mapping[str, Mapping[str, Draft202012Validator]]
    """Section (`models`, `tools`) -> kind -> validator of that variant."""
    dispatch: Mapping[str, Draft202012Validator]
    """Section -> validator of the kind-dispatching definition, for entries with a bad kind."""


@functools.cache
def spec_validators() -> SpecValidators:
    """The split validators, each built when first used (a spec names few of the kinds, and
    building one takes about half a millisecond); they hold no per-run state."""
    from jsonschema import Draft202012Validator

    schema = spec_schema()
    defs = schema["$defs"]

    def build(name: str) -> Draft202012Validator:
        return Draft202012Validator(inline_refs({**defs[name], "$defs": defs}))

    root = {**schema, "properties": dict(schema["properties"])}
    variants: dict[str, Mapping[str, Draft202012Validator]] = {}
    dispatch: dict[str, str] = {}
    for section, entry in (("models", "model"), ("tools", "tool")):
        root["properties"][section] = {
            **schema["properties"][section],
            "additionalProperties": True,
        }
        dispatch[section] = entry
        kinds = defs[entry]["properties"]["kind"]["enum"]
        variants[section] = OnFirstUse({kind: f"{kind}_{entry}" for kind in kinds}, build)
    return SpecValidators(
        Draft202012Validator(inline_refs(root)), variants, OnFirstUse(dispatch, build)
    )


class OnFirstUse(Mapping[str, "Draft202012Validator"]):
    """Key -> the validator of a schema definition, built on first look-up (then kept)."""

    def __init__(self, names: dict[str, str], build: Callable[[str], Draft202012Validator]) -> None:
        self._names = names
        self._build = build
        self._built: dict[str, Draft202012Validator] = {}

    def __getitem__(self, key: str) -> Draft202012Validator:
        validator = self._built.get(key)
        if validator is None:
            validator = self._built[key] = self._build(self._names[key])
        return validator

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` with local `$ref`s inlined (recursive ones only a few levels deep).

    Same meaning, but validation skips reference resolution, which was most of its cost.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def inline(node: Any, trail: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, trail) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS):
            name = ref[len(_DEFS) :]
            if trail.count(name) < _MAX_INLINE:
                rest = {k: v for k, v in node.items() if k != "$ref"}
                if set(rest) <= _ANNOTATIONS:
                    return inline({**defs[name], **rest}, (*trail, name))
                both = {**rest, "allOf": [*rest.get("allOf", []), defs[name]]}
                return inline(both, (*trail, name))
        return {k: inline(v, trail) for k, v in node.items()}

    # `$defs` itself stays as written: only a reference past the depth limit reaches it, and
    # inlining it again for each validator built was most of a `callcc validate`'s run
    return {k: v if k == "$defs" else inline(v, ()) for k, v in schema.items()}


_DEFS = "#/$defs/"
_MAX_INLINE = 3  # a recursive definition (json_schema) is inlined this deep, then referenced
_ANNOTATIONS = frozenset({"title", "description", "default"})
