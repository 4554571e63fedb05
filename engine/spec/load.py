"""The spec layer's entry points: `load_spec` for a typed Spec, `validate_file` for findings."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic, SpecError
from engine.spec._build import build_spec, spec_digest
from engine.spec.check import check_document, sort_diagnostics
from engine.spec.model import Spec, SpecSource
from engine.spec.yamlload import YamlDoc, escape, load_yaml, read_text

PathLike = str | os.PathLike[str]


def load_spec(path: PathLike, *, env: Mapping[str, str] | None = None) -> Spec:
    """Load, validate and type a spec file; raise `SpecError` listing every error. The spec
    keeps the texts it came from (`Spec.source`), so a run store can keep them too."""
    text = read_text(path)
    return _typed(load_yaml(path, text=text), Path(path), env, text)


def load_spec_quietly(path: PathLike) -> Spec:
    """`load_spec`, without logging the spec's warnings: `callcc validate` printed them."""
    text = read_text(path)
    return _typed(load_yaml(path, text=text), Path(path), None, text, log=False)


def load_stored_spec(source: SpecSource, *, env: Mapping[str, str] | None = None) -> Spec:
    """The spec a run store kept (see `SpecSource`), as if loaded from `source.path`: the same
    digest, its scripts and tool modules looked up in that folder. Nothing else is read."""
    doc = load_yaml(source.path, text=source.text)
    agents: Any = doc.data.get("agents")
    if isinstance(agents, dict) and source.instructions:
        agents = dict(agents)
        for name, instructions in source.instructions.items():
            fields = {k: v for k, v in agents[name].items() if k != "instructions_file"}
            agents[name] = fields | {"instructions": instructions}
        doc = dataclasses.replace(doc, data={**doc.data, "agents": agents})
    return _typed(doc, Path(source.path), env, source)


def _typed(
    doc: YamlDoc,
    path: Path,
    env: Mapping[str, str] | None,
    source: SpecSource | str,
    *,
    log: bool = True,
) -> Spec:
    """The checked, typed spec of `doc`, keeping `source` (or, given the file's text, the
    source it makes with the instructions files the spec names); its warnings are logged
    to `engine.spec` unless `log` is false."""
    data, diagnostics = check_document(doc, env=os.environ if env is None else env)
    if any(d.severity == "error" for d in diagnostics):
        raise SpecError(diagnostics)
    if diagnostics and log:
        import logging  # here: a spec without warnings (and `validate`) loads no logging

        logger = logging.getLogger("engine.spec")
        for warning in diagnostics:
            logger.warning("%s: warning[%s]: %s", warning.location(), warning.code, warning.message)
    digest = spec_digest(doc.data, path.resolve().parent)
    locations = tool_locations(doc.keys, doc.values, data.get("tools"))
    spec = build_spec(data, path=path, digest=digest, locations=locations)
    if isinstance(source, SpecSource):
        return dataclasses.replace(spec, source=source)
    raw_agents = doc.data.get("agents")
    files = {
        name: spec.agents[name].instructions
        for name, agent in (raw_agents.items() if isinstance(raw_agents, dict) else ())
        if isinstance(agent, dict) and "instructions_file" in agent and name in spec.agents
    }
    kept = SpecSource(text=source, instructions=files, path=str(path.resolve()))
    return dataclasses.replace(spec, source=kept)


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
        from engine.spec._resolve import resolve_pass, unimportable

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


def tool_locations(
    keys: Mapping[str, tuple[int, int]],
    values: Mapping[str, tuple[int, int]],
    tools: Any,
) -> dict[str, tuple[int, int]]:
    """Where each python tool's ref, parameters and declared parameter names are written (and
    each mcp toolset's patterns): what `Runtime` needs to place a mismatch it finds at compile
    time (see `Spec.locations`)."""
    out: dict[str, tuple[int, int]] = {}
    for name, tool in (tools if isinstance(tools, dict) else {}).items():
        if isinstance(tool, dict) and tool.get("kind") == "mcp":
            out.update(_mcp_locations(f"/tools/{escape(name)}", tool, keys, values))
        if not isinstance(tool, dict) or tool.get("kind") != "python":
            continue
        base = f"/tools/{escape(name)}"
        wanted = [(base, keys), (f"{base}/ref", values), (f"{base}/parameters", keys)]
        params = tool.get("parameters")
        props = params.get("properties") if isinstance(params, dict) else None
        for prop in props if isinstance(props, dict) else ():
            wanted.append((f"{base}/parameters/properties/{escape(prop)}", keys))
        for pointer, table in wanted:
            if pointer in table:
                out[pointer] = table[pointer]
    return out


def _mcp_locations(
    base: str,
    tool: dict[str, Any],
    keys: Mapping[str, tuple[int, int]],
    values: Mapping[str, tuple[int, int]],
) -> dict[str, tuple[int, int]]:
    """Where an mcp toolset, its include/exclude patterns and approval overrides are written:
    what `validate --resolve` and a run that lists the server place their findings at."""
    wanted = [(base, keys)]
    for field in ("include", "exclude"):
        items = tool.get(field)
        wanted += (
            [(f"{base}/{field}/{i}", values) for i in range(len(items))]
            if isinstance(items, list)
            else []
        )
    overrides = tool.get("approval")
    overrides = overrides.get("tools") if isinstance(overrides, dict) else None
    for name in overrides if isinstance(overrides, dict) else ():
        wanted.append((f"{base}/approval/tools/{escape(name)}", keys))
    return {p: table[p] for p, table in wanted if p in table}
