"""The spec format's JSON Schema: where it lives, its text, and the one validator built from it."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_NAME = "agent-spec.v1.schema.json"
"""File name of the spec schema, in `schema/` of the repository (or `engine/schema/` in wheels)."""


def schema_text() -> str:
    """The spec schema's JSON text, from the installed package if shipped there, else the repo."""
    try:
        packaged = resources.files("engine").joinpath("schema", SCHEMA_NAME)
        if packaged.is_file():
            return packaged.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    repo = Path(__file__).resolve().parent.parent.parent / "schema" / SCHEMA_NAME
    return repo.read_text(encoding="utf-8")


@functools.cache
def spec_schema() -> dict[str, Any]:
    """The spec schema as a dict (parsed once; do not mutate)."""
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@functools.cache
def spec_validator() -> Draft202012Validator:
    """The validator for the spec schema, built once; it holds no per-run state."""
    return Draft202012Validator(spec_schema())
