"""The spec layer's entry points: `load_spec` for a typed Spec, `validate_file` for findings."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.errors import Diagnostic, SpecError
from engine.spec._build import build_spec, spec_digest
from engine.spec._resolve import resolve_pass, unimportable
from engine.spec.check import check_document, sort_diagnostics
from engine.spec.model import Spec
from engine.spec.signature import tool_locations
from engine.spec.yamlload import load_yaml

_log = logging.getLogger("engine.spec")

PathLike = str | os.PathLike[str]


def load_spec(path: PathLike, *, env: Mapping[str, str] | None = None) -> Spec:
    """Load, validate and type a spec file; raise `SpecError` listing every error."""
    doc = load_yaml(path)
    data, diagnostics = check_document(doc, env=os.environ if env is None else env)
    if any(d.severity == "error" for d in diagnostics):
        raise SpecError(diagnostics)
    for warning in diagnostics:
        _log.warning("%s: warning[%s]: %s", warning.location(), warning.code, warning.message)
    spec_path = Path(path)
    digest = spec_digest(doc.data, spec_path.resolve().parent)
    locations = tool_locations(doc.keys, doc.values, data.get("tools"))
    return build_spec(data, path=spec_path, digest=digest, locations=locations)


def validate_file(
    path: PathLike, *, resolve: bool = False, env: Mapping[str, str] | None = None
) -> list[Diagnostic]:
    """Every finding for one spec file, sorted; `resolve` also imports the python refs."""
    try:
        doc = load_yaml(path)
    except SpecError as exc:
        return list(exc.diagnostics)
    data, diagnostics = check_document(doc, env=os.environ if env is None else env)
    if resolve and isinstance(data, dict):
        broken = unimportable(diagnostics)
        spec_dir = Path(path).resolve().parent
        diagnostics = sort_diagnostics(diagnostics + resolve_pass(doc, data, spec_dir, broken))
    return diagnostics


def validate_files(
    paths: Iterable[PathLike], *, resolve: bool = False, env: Mapping[str, str] | None = None
) -> list[Diagnostic]:
    """`validate_file` over several files, all findings in one sorted list."""
    found: list[Diagnostic] = []
    for path in paths:
        found.extend(validate_file(path, resolve=resolve, env=env))
    return sort_diagnostics(found)
