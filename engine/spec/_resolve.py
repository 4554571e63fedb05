"""`--resolve`: import every python ref and hold its signature to the declared parameters."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from engine.errors import Diagnostic
from engine.spec._semantic import condition_diagnostics
from engine.spec.signature import located, signature_mismatches
from engine.spec.yamlload import YamlDoc, escape
from engine.tools import ToolRefError, import_ref, infer_parameters


def unimportable(diagnostics: Iterable[Diagnostic]) -> set[str]:
    """Tools whose errors make importing their ref unsafe or meaningless: the entry itself,
    its `kind` or its `ref` is wrong. A tool with other errors (a prompt, an approval) is still
    imported and checked, so every finding shows at once."""
    out: set[str] = set()
    for diag in diagnostics:
        parts = diag.pointer.split("/")
        if diag.severity != "error" or len(parts) < 3 or parts[1] != "tools":
            continue
        if len(parts) == 3 or parts[3] in ("kind", "ref"):
            out.add(parts[2].replace("~1", "/").replace("~0", "~"))
    return out


def resolve_pass(
    doc: YamlDoc, data: dict[str, Any], spec_dir: Path, skip: set[str]
) -> list[Diagnostic]:
    """Import the ref of every python tool not in `skip`; report what does not fit."""
    out: list[Diagnostic] = []

    def locate(pointer: str) -> tuple[int, int]:
        return doc.locate(pointer, key="/parameters" in pointer)

    def add(code: str, message: str, pointer: str, suggestion: str | None = None) -> None:
        out.append(doc.diagnostic(pointer, code, message, suggestion, key="/parameters" in pointer))

    tools = data.get("tools")
    for name, tool in (tools if isinstance(tools, dict) else {}).items():
        if name in skip or not isinstance(tool, dict) or tool.get("kind") != "python":
            continue
        base = f"/tools/{escape(name)}"
        ref = str(tool.get("ref"))
        try:
            func = import_ref(ref, str(spec_dir))
        except ToolRefError as exc:
            hint = f"the spec's folder ({spec_dir}) is searched first; check the module path"
            add(exc.code, str(exc), f"{base}/ref", hint)
            continue
        params = tool.get("parameters")
        if isinstance(params, dict):
            try:
                Draft202012Validator.check_schema(params)
            except SchemaError as exc:
                add(
                    "bad-parameters",
                    f"parameters is not a valid JSON Schema: {exc.message}",
                    f"{base}/parameters" + "".join(f"/{escape(str(p))}" for p in exc.absolute_path),
                    "see https://json-schema.org/draft/2020-12/json-schema-core",
                )
        declared = params if isinstance(params, dict) and params else None  # as compile reads it
        mismatches = signature_mismatches(ref, func, declared)
        for mismatch in mismatches:
            out.append(located(name, mismatch, file=doc.path, locate=locate))
        approval = tool.get("approval")
        when = approval.get("when") if isinstance(approval, dict) else None
        if declared is None and not mismatches and isinstance(when, str):  # args known now
            inferred = infer_parameters(func).get("properties", {})
            found = condition_diagnostics(doc, f"{base}/approval/when", list(inferred))
            out += [d for d in found if d.code == "unknown-field"]  # the rest: validate's
    return out
