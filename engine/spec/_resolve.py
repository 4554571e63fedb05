"""`--resolve`: import every python ref and hold its signature to the declared parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from engine.errors import Diagnostic
from engine.spec._schema_pass import did_you_mean
from engine.spec.yamlload import YamlDoc, escape
from engine.tools import (
    ToolRefError,
    accepts_any_keyword,
    import_ref,
    infer_parameters,
    tool_parameters,
)


def resolve_pass(
    doc: YamlDoc, data: dict[str, Any], spec_dir: Path, skip: set[str]
) -> list[Diagnostic]:
    """Import the ref of every python tool not in `skip`; report what does not fit."""
    out: list[Diagnostic] = []

    def add(code: str, message: str, pointer: str, suggestion: str | None = None) -> None:
        line, col = doc.locate(pointer, key="/parameters" in pointer)
        out.append(
            Diagnostic(
                code=code,
                message=message,
                file=doc.path,
                line=line,
                col=col,
                pointer=pointer,
                suggestion=suggestion,
            )
        )

    tools = data.get("tools")
    for name, tool in (tools if isinstance(tools, dict) else {}).items():
        if name in skip or not isinstance(tool, dict) or tool.get("kind") != "python":
            continue
        base = f"/tools/{escape(name)}"
        try:
            func = import_ref(str(tool.get("ref")), str(spec_dir))
        except ToolRefError as exc:
            hint = f"the spec's folder ({spec_dir}) is searched first; check the module path"
            add(exc.code, str(exc), f"{base}/ref", hint)
            continue
        params = tool.get("parameters")
        if not isinstance(params, dict):
            try:
                infer_parameters(func)
            except TypeError as exc:
                add("signature-mismatch", f"cannot infer parameters: {exc}", f"{base}/ref")
            continue
        try:
            Draft202012Validator.check_schema(params)
        except SchemaError as exc:
            add(
                "bad-parameters",
                f"parameters is not a valid JSON Schema: {exc.message}",
                f"{base}/parameters" + "".join(f"/{escape(str(p))}" for p in exc.absolute_path),
                "see https://json-schema.org/draft/2020-12/json-schema-core",
            )
        props = params.get("properties")
        declared = set(props) if isinstance(props, dict) else set()
        accepted = {p.name: p for p in tool_parameters(func)}
        for pname, param in accepted.items():
            if param.default is param.empty and pname not in declared:
                add(
                    "signature-mismatch",
                    f"{tool['ref']} requires '{pname}', but parameters has no property '{pname}'",
                    f"{base}/parameters",
                    f"add '{pname}' under parameters.properties, or give it a default",
                )
        if accepts_any_keyword(func):
            continue
        for pname in sorted(declared - set(accepted)):
            add(
                "signature-mismatch",
                f"parameters declares '{pname}', which {tool['ref']} does not accept",
                f"{base}/parameters/properties/{escape(pname)}",
                did_you_mean(pname, accepted) or "remove it, or add it to the function",
            )
    return out
