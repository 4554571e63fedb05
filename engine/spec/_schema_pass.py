"""Pass 1: the JSON Schema, with each jsonschema error turned into one pointed diagnostic."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

from engine.errors import Diagnostic
from engine.spec.schema import spec_schema, spec_validators
from engine.spec.yamlload import YamlDoc, escape

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NAME_RULE = "names start with a lowercase letter, then up to 63 lowercase letters, digits or '_'"
_SINGULAR = {"agents": "agent", "tools": "tool", "models": "model"}
MISPLACED = "misplaced-key"
"""Code of a key indented so that it reads as an entry of agents:, tools: or models:."""


def schema_pass(doc: YamlDoc, data: dict[str, Any]) -> list[Diagnostic]:
    """Validate `data` against the spec schema; one diagnostic per distinct problem."""
    validators = spec_validators()
    found: list[tuple[ValidationError, tuple[str, ...]]] = [
        (e, ()) for e in validators.root.iter_errors(data)
    ]
    for section, by_kind in validators.variants.items():
        entries = data.get(section)
        for name, entry in (entries if isinstance(entries, dict) else {}).items():
            kind = entry.get("kind") if isinstance(entry, dict) else None
            if isinstance(kind, str) and kind in by_kind:
                validator = by_kind[kind]
            else:  # a bad kind: the dispatching definition says which kinds there are
                validator = validators.dispatch[section]
            found.extend((e, (section, name)) for e in validator.iter_errors(entry))
    out = misplaced(doc, data)
    seen: set[tuple[str, int, int, str]] = set()
    for error, prefix in found:
        for diag in _translate(error, doc, prefix):
            key = (diag.code, diag.line, diag.col, diag.message)
            if key not in seen:
                seen.add(key)
                out.append(diag)
    return out


def misplaced(doc: YamlDoc, data: dict[str, Any]) -> list[Diagnostic]:
    """Keys indented one level too far or too little, so that they read as an entry: an
    agent's `tools: [...]` written beside the agents, or a top-level `tools:` under `agents:`.
    `check_document` drops every other finding inside such an entry: this one says it all."""
    schema = spec_schema()
    defs = schema["$defs"]
    top_level = set(schema["properties"])
    out: list[Diagnostic] = []
    for section, entry in _SINGULAR.items():
        fields = _entry_fields(defs, section)
        found = data.get(section)
        entries: dict[str, Any] = found if isinstance(found, dict) else {}
        for name, value in entries.items():
            as_field = name in fields and not isinstance(value, dict)
            as_top = name in top_level and (
                not isinstance(value, dict) or any(k not in fields for k in value)
            )
            if not (as_field or as_top):
                continue
            pointer = f"/{section}/{escape(name)}"
            if as_field and (above := _entry_above(doc, entries, section, pointer)):
                owner, col = above
                hint = (
                    f"indent '{name}:' to column {col}, under {entry} '{owner}', to make it "
                    f"a field of that {entry}"
                )
            else:
                hint = f"move '{name}:' to column 1, to make it the spec's top-level '{name}:'"
            out.append(
                _diag(
                    doc,
                    MISPLACED,
                    f"'{name}' is indented as an entry of {section}:, so it was read as "
                    f"{_article(entry)} {entry} named '{name}'",
                    pointer,
                    hint,
                    key=True,
                )
            )
    return out


def _entry_fields(defs: dict[str, Any], section: str) -> set[str]:
    """Every field an entry of `section` may have, whatever its kind."""
    names = {"agents": ["agent"], "tools": ["python_tool", "agent_tool", "external_tool"]}
    names["models"] = ["openai_model", "scripted_model"]
    return {f for d in names[section] for f in defs[d].get("properties", {})}


def _entry_above(
    doc: YamlDoc, entries: dict[str, Any], section: str, pointer: str
) -> tuple[str, int] | None:
    """The entry written just above `pointer`, and the column its fields start at."""
    line = doc.locate(pointer, key=True)[0]
    best: tuple[int, str, int] | None = None
    for name, value in entries.items():
        if not isinstance(value, dict) or not value:
            continue
        at = doc.keys.get(f"/{section}/{escape(name)}")
        first = doc.keys.get(f"/{section}/{escape(name)}/{escape(next(iter(value)))}")
        if at and first and at[0] < line and (best is None or at[0] > best[0]):
            best = (at[0], name, first[1])
    return (best[1], best[2]) if best else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest of `choices`, or None."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def suggest_name(bad: str) -> str | None:
    """A valid name close to `bad` (lowercased, other characters as '_'), or None."""
    fixed = re.sub(r"[^a-z0-9_]", "_", bad.strip().lower())
    fixed = re.sub(r"^[^a-z]+", "", fixed)[:64]
    return fixed or None


def pointer_of(path: Sequence[Any]) -> str:
    """JSON pointer of a jsonschema path."""
    return "".join(f"/{escape(str(part))}" for part in path)


def where(path: Sequence[Any]) -> str:
    """Plain-words location of a path: `in agent 'x'`, `in limits of agent 'x'`, ..."""
    parts = [str(p) for p in path]
    if not parts:
        return "at the top level"
    if len(parts) >= 2 and parts[0] in _SINGULAR:
        owner = f"{_SINGULAR[parts[0]]} '{parts[1]}'"
        return f"in {owner}" if len(parts) == 2 else f"in {parts[2]} of {owner}"
    return f"in {parts[0]}"


def field_of(path: Sequence[Any]) -> str:
    """The field a path names, dotted, with its owner: `approval.decisions of tool 'x'`
    (list positions left out: they say which item, the message quotes it)."""
    parts = [str(p) for p in path if not isinstance(p, int)]
    if len(parts) >= 2 and parts[0] in _SINGULAR:
        owner = f"{_SINGULAR[parts[0]]} '{parts[1]}'"
        return f"{'.'.join(parts[2:])} of {owner}" if len(parts) > 2 else owner
    return ".".join(parts) or "the spec"


_SYNONYMS = {
    "modify": "edit",
    "change": "edit",
    "update": "edit",
    "amend": "edit",
    "accept": "approve",
    "allow": "approve",
    "confirm": "approve",
    "deny": "reject",
    "decline": "reject",
    "refuse": "reject",
}
_MEANING = {
    "approve": "the call runs as the model asked",
    "edit": "the reviewer changes the arguments, then the call runs",
    "reject": "the call does not run",
}


def _enum_hint(word: str, options: list[str]) -> str | None:
    """`did you mean 'x'?`, by spelling or by meaning (`modify` -> `edit`), said plainly."""
    target = _SYNONYMS.get(word.strip().lower())
    if target in options:
        meaning = f" ({target}: {_MEANING[target]})" if target in _MEANING else ""
        return f"did you mean '{target}'?{meaning}"
    return did_you_mean(word, options)


def _diag(
    doc: YamlDoc,
    code: str,
    message: str,
    pointer: str,
    suggestion: str | None = None,
    *,
    key: bool = False,
) -> Diagnostic:
    return doc.diagnostic(pointer, code, message, suggestion, key=key)


def _translate(
    error: ValidationError, doc: YamlDoc, prefix: tuple[str, ...] = ()
) -> Iterator[Diagnostic]:
    path = [*prefix, *error.absolute_path]
    pointer = pointer_of(path)
    kind = str(error.validator)
    value: Any = error.validator_value
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    inst = error.instance
    field = str(path[-1]) if path else "the spec"
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = set(schema.get("properties", {}))
        for extra in sorted(set(inst) - allowed):
            hint = did_you_mean(extra, allowed) or "remove it; allowed fields: " + ", ".join(
                sorted(allowed)
            )
            yield _diag(
                doc,
                "unknown-field",
                f"unknown field '{extra}' {where(path)}",
                f"{pointer}/{escape(extra)}",
                hint,
                key=True,
            )
    elif kind == "required" and isinstance(inst, dict):
        for name in value:
            if name not in inst and not _typo_present(name, inst, schema):
                yield _diag(
                    doc,
                    "missing-field",
                    f"missing required field '{name}' {where(path)}",
                    pointer,
                    _missing_hint(name, schema),
                    key=True,
                )
    elif kind == "type":
        types: list[str] = value if isinstance(value, list) else [value]
        expected = " or ".join(_YAML_TYPES.get(t, t) for t in types)
        if path and isinstance(path[-1], int) and len(path) >= 2:  # an entry of a list
            field = f"entry {path[-1] + 1} of {path[-2]}"
        yield _diag(
            doc,
            "wrong-type",
            f"'{field}' must be {_article(expected)} {expected}, not {_json_type(inst)}",
            pointer,
            _DURATION_HINT if field == "expires_after" else _type_hint(expected, inst),
        )
    elif kind == "enum":
        options = ", ".join(str(v) for v in value)
        what = f"kind '{inst}'" if field == "kind" else f"value '{inst}' for {field_of(path)}"
        yield _diag(
            doc,
            "bad-value",
            f"unknown {what}; expected one of: {options}",
            pointer,
            _enum_hint(str(inst), [str(v) for v in value]),
        )
    elif kind == "const":
        yield _diag(
            doc,
            "bad-value",
            f"'{field}' must be {value!r}, not {inst!r}",
            pointer,
            f"write '{field}: {value}'",
        )
    elif kind == "pattern":
        yield _pattern(error, doc, path, pointer)
    elif kind in ("oneOf", "anyOf"):
        yield from _one_of(error, doc, path, pointer, prefix)
    else:
        yield _diag(doc, "bad-value", _plain_message(kind, field, value, inst), pointer)


def _pattern(error: ValidationError, doc: YamlDoc, path: list[Any], pointer: str) -> Diagnostic:
    inst = str(error.instance)
    if "propertyNames" in error.relative_schema_path:
        fixed = suggest_name(inst)
        return _diag(
            doc,
            "bad-name",
            f"'{inst}' is not a valid name {where(path)}: {_NAME_RULE}",
            f"{pointer}/{escape(inst)}",
            f"rename it to '{fixed}'" if fixed else None,
            key=True,
        )
    field = str(path[-1]) if path else ""
    if field == "ref":
        fix = None
        if ":" not in inst and "." in inst:
            fix = "did you mean '{}:{}'?".format(*inst.rsplit(".", 1))
        return _diag(
            doc,
            "bad-ref",
            f"ref '{inst}' is not of the form 'package.module:function'",
            pointer,
            fix or "write the module path, a colon, then the attribute: 'pkg.mod:func'",
        )
    if field == "expires_after":
        return _diag(
            doc,
            "bad-duration",
            f"'{inst}' is not a duration for {field_of(path)}",
            pointer,
            _DURATION_HINT,
        )
    if error.validator_value == NAME_RE.pattern:
        fixed = suggest_name(inst)
        return _diag(
            doc,
            "bad-name",
            f"'{inst}' is not a valid name: {_NAME_RULE}",
            pointer,
            f"use '{fixed}'" if fixed else None,
        )
    return _diag(
        doc,
        "bad-value",
        f"'{inst}' does not match the pattern {error.validator_value}",
        pointer,
    )


def _one_of(
    error: ValidationError, doc: YamlDoc, path: list[Any], pointer: str, prefix: tuple[str, ...]
) -> Iterator[Diagnostic]:
    inst = error.instance
    branches: Any = error.validator_value
    names = [b["required"][0] for b in branches if set(b) == {"required"}]
    if isinstance(inst, dict) and len(names) == len(branches):
        present = [n for n in names if n in inst]
        either = " or ".join(f"'{n}'" for n in names)
        schema = error.schema if isinstance(error.schema, dict) else {}
        if not present and any(_typo_present(n, inst, schema) for n in names):
            return
        if not present:
            yield _diag(
                doc,
                "missing-field",
                f"missing {either} {where(path)}",
                pointer,
                f"add '{names[0]}: ...' (the text) or '{names[1]}: path/to/file.md'",
                key=True,
            )
        else:
            yield _diag(
                doc,
                "conflicting-fields",
                f"give either {either} {where(path)}, not both",
                f"{pointer}/{escape(present[-1])}",
                f"remove '{present[-1]}' or '{present[0]}'",
                key=True,
            )
        return
    if not error.context:
        if isinstance(inst, dict):
            yield _diag(doc, "bad-value", error.message, pointer)
        return  # not a mapping: the type error of the same node says it already
    yield from _translate(best_match(error.context), doc, prefix)


_YAML_TYPES = {"object": "mapping", "array": "list"}
_DURATION_HINT = "write a whole number and a unit (s, m, h or d): 30s, 30m, 24h or 7d"


def _typo_present(name: str, inst: dict[str, Any], schema: dict[str, Any]) -> bool:
    """True when an unknown key of `inst` is a likely typo of `name` (reported as such)."""
    allowed = schema.get("properties", {})
    unknown = [k for k in inst if k not in allowed]
    return bool(difflib.get_close_matches(name, unknown, n=1, cutoff=0.6))


def _missing_hint(name: str, schema: dict[str, Any]) -> str:
    prop = schema.get("properties", {}).get(name, {})
    if "enum" in prop:
        return f"add '{name}: <" + "|".join(prop["enum"]) + ">'"
    if "const" in prop:
        return f"add '{name}: {prop['const']}'"
    return f"add '{name}: ...'"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ('{value}')" if len(value) < 40 else "a string"
    return "a list" if isinstance(value, list) else "a mapping"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _type_hint(expected: str, inst: Any) -> str | None:
    if expected == "array" and isinstance(inst, str):
        return f"write a list: [{inst}]"
    if expected in ("integer", "number") and isinstance(inst, str):
        return "write a number without quotes"
    if expected == "object" and inst is None:
        return "indent the fields under it, or remove the empty key"
    return None


def _plain_message(kind: str, field: str, value: Any, inst: Any) -> str:
    messages = {
        "minimum": f"'{field}' must be at least {value}, not {inst}",
        "exclusiveMinimum": f"'{field}' must be greater than {value}, not {inst}",
        "minItems": f"'{field}' must list at least {value} item(s)",
        "minLength": f"'{field}' must not be empty",
        "uniqueItems": f"'{field}' lists the same entry more than once",
    }
    return messages.get(kind, f"'{field}' is invalid ({kind}: {value!r})")
