"""Validation of a loaded YAML document: env substitution, then the schema, then semantics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic
from engine.spec._schema_pass import MISPLACED, schema_pass
from engine.spec._semantic import semantic_pass
from engine.spec.env import substitute
from engine.spec.yamlload import YamlDoc


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics ordered by file, line, column, then code."""
    return sorted(diagnostics, key=lambda d: (d.file, d.line, d.col, d.code, d.message))


def check_document(doc: YamlDoc, *, env: Mapping[str, str]) -> tuple[Any, list[Diagnostic]]:
    """Return the env-substituted data and every diagnostic of both passes, sorted."""
    if "script_version" in doc.data and "spec_version" not in doc.data:
        line, col = doc.locate("/script_version", key=True)
        return doc.data, [
            Diagnostic(
                code="not-a-spec",
                message="this is a scripted model's script, not a spec",
                file=doc.path,
                line=line,
                col=col,
                pointer="/script_version",
                suggestion="validate the spec that names it under models: (kind: scripted)",
            )
        ]
    originals: dict[str, tuple[str, str]] = {}
    data, diagnostics = substitute(
        doc.data, env=env, file=doc.path, locate=doc.locate, originals=originals
    )
    found = schema_pass(doc, data) + semantic_pass(doc, data, Path(doc.path).resolve().parent)
    moved = [d.pointer for d in found if d.code == MISPLACED]
    found = [d for d in found if d.code == MISPLACED or not _inside(d.pointer, moved)]
    diagnostics += [_redact(d, originals) for d in found]
    return data, sort_diagnostics(diagnostics)


def _inside(pointer: str, roots: list[str]) -> bool:
    return any(pointer == r or pointer.startswith(r + "/") for r in roots)


def _redact(diag: Diagnostic, originals: dict[str, tuple[str, str]]) -> Diagnostic:
    """Show `${env:NAME}` as written instead of the value it had: values may be secrets.

    The suggestion is dropped: it may quote a transformed value ("rename it to 'sk_live'").
    """
    if diag.pointer not in originals:
        return diag
    written, value = originals[diag.pointer]
    message = diag.message.replace(value, written) if value else diag.message
    hint = f"the value comes from {written}; check that environment variable"
    return dataclasses.replace(diag, message=message, suggestion=hint)
