"""Safe YAML loading that remembers where every key and value came from.

The document is built from PyYAML parser events (libyaml's C parser when available: composing
nodes in pure Python costs about 90 ms for a 2,000-line spec) with an explicit stack, so no
recursion, no object construction from tags, and hard bounds on nesting, alias expansion and
file size. Locations are 1-based `(line, col)` keyed by RFC 6901 JSON pointer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from engine.errors import Diagnostic, SpecError

MAX_FILE_BYTES = 10 * 1024 * 1024
"""Files larger than this are refused before they are read."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted."""
MAX_ALIAS_NODES = 10_000
"""Nodes that alias expansion may add in total; beyond it the file is an alias bomb."""

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVE: Callable[..., str] = Resolver().resolve
_CONSTRUCTOR = SafeConstructor()
_TAG = "tag:yaml.org,2002:"


@dataclass(frozen=True, slots=True)
class YamlDoc:
    """A loaded YAML mapping plus the location of every key and value in the source."""

    path: str
    """The file it came from."""
    data: dict[str, Any]
    """Plain Python data: dict, list, str, int, float, bool, None."""
    values: dict[str, tuple[int, int]] = field(default_factory=dict)
    """JSON pointer -> (line, col) of the value."""
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)
    """JSON pointer -> (line, col) of the mapping key that holds the value."""
    text: str = field(default="", repr=False)
    """The file's text, for `locate_inside` (`""`: offsets inside a value fall to its start)."""

    def locate_value(self, pointer: str) -> Any:
        """The value at `pointer` (None when there is none)."""
        return _get(self.data, pointer)

    def locate_inside(self, pointer: str, offset: int) -> tuple[int, int]:
        """Location of character `offset` of the string value at `pointer` (see
        `scalar_position`), or of the value itself when the text is not at hand."""
        start = self.values.get(pointer)
        value = _get(self.data, pointer)
        if start is None or not self.text or not isinstance(value, str):
            return self.locate(pointer)
        return scalar_position(self.text, start, value, offset)

    def locate(self, pointer: str, *, key: bool = False) -> tuple[int, int]:
        """Location of `pointer` (its key when `key`), else of its nearest located ancestor."""
        while True:
            found = (self.keys.get(pointer) if key else None) or self.values.get(pointer)
            if found is not None:
                return found
            if not pointer:
                return (1, 1)
            pointer = pointer.rsplit("/", 1)[0]

    def diagnostic(
        self,
        pointer: str,
        code: str,
        message: str,
        suggestion: str | None = None,
        *,
        key: bool = False,
        severity: Any = "error",
    ) -> Diagnostic:
        """A finding at `pointer` of this file (its key when `key`), located by `locate`."""
        line, col = self.locate(pointer, key=key)
        return Diagnostic(
            code=code,
            message=message,
            file=self.path,
            line=line,
            col=col,
            pointer=pointer,
            suggestion=suggestion,
            severity=severity,
        )


def _get(data: Any, pointer: str) -> Any:
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(data, dict):
            data = data.get(token)
        elif isinstance(data, list) and token.isdigit() and int(token) < len(data):
            data = data[int(token)]
        else:
            return None
    return data


def scalar_position(text: str, start: tuple[int, int], value: str, offset: int) -> tuple[int, int]:
    """The (line, col) in `text` of character `offset` of the string scalar `value` written at
    `start`: exact for plain, single-quoted, double-quoted (escapes included) and block (`|`,
    `>`) scalars, folded lines and all. `offset == len(value)` is just after its last
    character. Should the text not read back as `value` (it always does for a file YAML
    parsed), a character maps to the one before it."""
    lines = text.split("\n")
    begin = _after_properties(text, sum(len(x) + 1 for x in lines[: start[0] - 1]) + start[1] - 1)
    chars = _scalar_chars(text, begin, value)
    after = chars[-1] + 1 if chars else begin  # just after the last character
    index = chars[offset] if offset < len(chars) else after
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


_PROPERTY = re.compile(r"(?:[&!][^\s]*[ \t]+|[&!][^\s]*\n[ \t]*)")
"""An anchor (`&name`) or a tag (`!tag`, `!!str`, `!<...>`) and the blanks after it: a
node's start mark is at its properties, its text after them."""


def _after_properties(text: str, begin: int) -> int:
    """`begin` moved past the node properties written before a scalar's text."""
    while (found := _PROPERTY.match(text, begin)) is not None:
        begin = found.end()
    return begin


def _scalar_chars(text: str, begin: int, value: str) -> list[int]:
    """The index in `text` of each character of `value` (see `scalar_position`)."""
    first = text[begin : begin + 1]
    style = {"|": "literal", ">": "folded", "'": "single", '"': "double"}.get(first, "plain")
    indent = -1  # flow styles: a line break drops all the next line's leading blanks
    i = begin + 1 if style in ("single", "double") else begin
    if style in ("literal", "folded"):
        header_end = text.find("\n", begin)
        header = text[begin:header_end] if header_end >= 0 else text[begin:]
        i = header_end + 1 if header_end >= 0 else len(text)
        digit = re.search(r"[1-9]", header.split("#", 1)[0])
        line_start = text.rfind("\n", 0, begin) + 1
        if digit:
            parent = len(text[line_start:]) - len(text[line_start:].lstrip(" "))
            indent = parent + int(digit.group())
        else:
            body = re.match(r"(?:[ ]*\n)*([ ]*)", text[i:])
            indent = len(body.group(1)) if body else 0
        i = _after_break(text, i, indent)
    out: list[int] = []
    n = len(text)
    for c in value:
        while i < n:
            r = text[i]
            if style == "double" and r == "\\":
                nxt = text[i + 1 : i + 2]
                if nxt == "\n":  # an escaped line break: nothing of it is in the value
                    i = _after_break(text, i + 2, indent)
                    continue
                out.append(i)
                i += 2 + {"x": 2, "u": 4, "U": 8}.get(nxt, 0)
                break
            if style == "single" and r == "'" and c == "'" and text[i + 1 : i + 2] == "'":
                out.append(i)
                i += 2
                break
            if r == c:
                out.append(i)
                i = _after_break(text, i + 1, indent) if r == "\n" else i + 1
                break
            if r == "\n" and c == " " and style != "literal":  # a folded line break
                out.append(i)
                i = _after_break(text, i + 1, indent)
                break
            if r in " \t\r\n":  # blanks YAML drops: trailing ones, extra line breaks
                i = _after_break(text, i + 1, indent) if r == "\n" else i + 1
                continue
            out.append(out[-1] if out else begin)  # never for text YAML read as `value`
            break
        else:
            out.append(out[-1] if out else begin)
    return out


def _after_break(text: str, i: int, indent: int) -> int:
    """Past the indentation of the line starting at `i` (at most `indent` spaces in a block
    scalar; every blank in a flow scalar, `indent < 0`)."""
    n, skipped = len(text), 0
    while i < n and text[i] in " \t" and (indent < 0 or (text[i] == " " and skipped < indent)):
        i += 1
        skipped += 1
    return i


def escape(token: str) -> str:
    """Escape one reference token for a JSON pointer (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


class _Refused(Exception):
    def __init__(self, code: str, message: str, mark: Any, suggestion: str | None = None):
        super().__init__(message)
        self.code, self.message, self.mark, self.suggestion = code, message, mark, suggestion


@dataclass(slots=True)
class _Frame:
    container: dict[str, Any] | list[Any]
    pointer: str
    start: int
    anchor: str | None
    key: str | None = None
    key_marks: dict[str, int] = field(default_factory=dict)


def load_yaml(path: str | os.PathLike[str], *, text: str | None = None) -> YamlDoc:
    """Load a YAML file whose root is a mapping; raise `SpecError` with one diagnostic if not.
    With `text`, that is the file's content (a spec kept in a run store) and nothing is read."""
    name = os.fspath(path)
    if text is None:
        text = _read_text(name)
    if text.lstrip()[:1] == "{" and '"callcc.continuation"' in text[:256]:
        _fail(  # a state file passed where a spec goes: say so, not forty schema errors
            name,
            "not-a-spec",
            "this is a continuation document (a run's saved state), not a spec",
            hint=f"`callcc inspect {name}` reads and checks it; `callcc resume {name}` "
            "decides and carries it on",
        )
    try:
        return _build(name, text)
    except _Refused as exc:
        line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (1, 1)
        diag = Diagnostic(
            code=exc.code,
            message=exc.message,
            file=name,
            line=line,
            col=col,
            pointer="",
            suggestion=exc.suggestion,
        )
        raise SpecError([diag]) from None


def _fail(name: str, code: str, message: str, line: int = 1, col: int = 1, hint: str = "") -> None:
    diag = Diagnostic(
        code=code,
        message=message,
        file=name,
        line=line,
        col=col,
        pointer="",
        suggestion=hint or None,
    )
    raise SpecError([diag])


def read_text(path: str | os.PathLike[str]) -> str:
    """A spec file's text (size-checked, UTF-8); `SpecError` with one diagnostic if unreadable."""
    return _read_text(os.fspath(path))


def _read_text(name: str) -> str:
    try:
        size = os.stat(name).st_size
        if size > MAX_FILE_BYTES:
            _fail(
                name,
                "file-too-large",
                f"file is {size} bytes; specs may be at most {MAX_FILE_BYTES} bytes",
                hint="split the spec or move long instructions into instructions_file",
            )
        with open(name, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        _fail(name, "unreadable", f"cannot read file: {exc.strerror or exc}", hint="check the path")
        raise AssertionError("unreachable") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = raw[exc.start : exc.start + 1].hex()
        _fail(name, "not-utf8", f"byte 0x{bad} is not valid UTF-8", line, col, "save as UTF-8")
        raise AssertionError("unreachable") from exc


def _build(name: str, text: str) -> YamlDoc:
    loader = _Loader(text)
    try:
        return _Builder(name, text).run(loader)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        mark = exc.problem_mark
        hint = None
        if mark is not None and "\t" in text.split("\n")[mark.line][: mark.column + 1]:
            hint = "indent with spaces; YAML forbids tabs for indentation"
        raise _Refused("yaml-syntax", problem, mark, hint) from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids, e.g. NUL
        raise _Refused("yaml-syntax", str(exc), _mark_at(text, exc.position)) from None
    except yaml.YAMLError as exc:
        raise _Refused("yaml-syntax", str(exc), None) from None
    finally:
        loader.dispose()


def _mark_at(text: str, position: int) -> yaml.Mark:
    """A mark (0-based line and column, as PyYAML's) for a character offset."""
    line = text.count("\n", 0, position)
    column = position - (text.rfind("\n", 0, position) + 1)
    return yaml.Mark("<spec>", position, line, column, None, 0)


class _Builder:
    """Turns a stream of parser events into plain data and location maps."""

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text
        self.values: dict[str, tuple[int, int]] = {}
        self.keys: dict[str, tuple[int, int]] = {}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.expanded = 0

    def run(self, loader: Any) -> YamlDoc:
        loader.get_event()  # StreamStart
        if loader.check_event(StreamEndEvent):
            raise _Refused("root-not-mapping", "the file is empty", None, _ROOT_HINT)
        loader.get_event()  # DocumentStart
        first = loader.peek_event()
        if not isinstance(first, MappingStartEvent):
            what = "a sequence" if isinstance(first, SequenceStartEvent) else "a scalar"
            raise _Refused("root-not-mapping", f"the root is {what}", first.start_mark, _ROOT_HINT)
        stack: list[_Frame] = []
        root: dict[str, Any] | None = None
        while root is None:
            root = self.feed(loader.get_event(), stack)
        loader.get_event()  # DocumentEnd
        if loader.check_event(DocumentStartEvent):
            mark = loader.peek_event().start_mark
            raise _Refused("yaml-syntax", "more than one YAML document", mark, "remove the '---'")
        return YamlDoc(self.name, root, self.values, self.keys, self.text)

    def feed(self, event: Any, stack: list[_Frame]) -> dict[str, Any] | None:
        """Handle one event; return the root mapping when it closes."""
        if isinstance(event, MappingEndEvent | SequenceEndEvent):
            frame = stack.pop()
            if frame.anchor is not None:
                self.open_anchors.discard(frame.anchor)
                self.anchors[frame.anchor] = (frame.container, self.nodes - frame.start)
            if not stack:
                assert isinstance(frame.container, dict)
                return frame.container
            return None
        if stack and isinstance(stack[-1].container, dict) and stack[-1].key is None:
            self.take_key(event, stack[-1])
            return None
        if isinstance(event, AliasEvent):
            value = self.expand(event)
            self.attach(stack, value, event.start_mark)
            return None
        self.check_tag(event)
        self.nodes += 1
        if isinstance(event, ScalarEvent):
            value = _scalar(event)
            self.attach(stack, value, event.start_mark)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1)
            return None
        if len(stack) >= MAX_DEPTH:
            raise _Refused("too-deep", f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        container: dict[str, Any] | list[Any] = {} if isinstance(event, MappingStartEvent) else []
        pointer = self.attach(stack, container, event.start_mark) if stack else ""
        if not stack:
            self.values[""] = (event.start_mark.line + 1, event.start_mark.column + 1)
        anchor = event.anchor
        if anchor is not None:
            self.open_anchors.add(anchor)
        stack.append(_Frame(container, pointer, self.nodes, anchor))
        return None

    def check_tag(self, event: Any) -> None:
        tag = event.tag
        if tag is None or (tag == "!" and isinstance(event, ScalarEvent)):
            return
        if isinstance(event, MappingStartEvent | SequenceStartEvent) and event.implicit:
            return
        raise _Refused(
            "yaml-tag",
            f"explicit YAML tag '{tag.replace(_TAG, '!!')}' is not allowed",
            event.start_mark,
            "remove the tag; specs hold plain data only",
        )

    def take_key(self, event: Any, frame: _Frame) -> None:
        if not isinstance(event, ScalarEvent):
            what = "an alias" if isinstance(event, AliasEvent) else "a collection"
            raise _Refused(
                "bad-key", f"a mapping key must be a plain string, not {what}", event.start_mark
            )
        self.check_tag(event)
        key = event.value
        mark: Any = event.start_mark
        if event.implicit[0] and _RESOLVE(ScalarNode, key, (True, False)) == _TAG + "merge":
            raise _Refused(
                "yaml-merge-key",
                "YAML merge keys ('<<') are not supported",
                mark,
                "write the fields out in full",
            )
        if key in frame.key_marks:
            raise _Refused(
                "duplicate-key",
                f"duplicate key '{key}'",
                mark,
                f"'{key}' is already defined on line {frame.key_marks[key]}; keep one of them",
            )
        frame.key_marks[key] = mark.line + 1
        frame.key = key
        self.keys[f"{frame.pointer}/{escape(key)}"] = (mark.line + 1, mark.column + 1)

    def attach(self, stack: list[_Frame], value: Any, mark: Any) -> str:
        frame = stack[-1]
        container = frame.container
        if isinstance(container, dict):
            assert frame.key is not None
            pointer = f"{frame.pointer}/{escape(frame.key)}"
            container[frame.key] = value
            frame.key = None
        else:
            pointer = f"{frame.pointer}/{len(container)}"
            container.append(value)
        self.values[pointer] = (mark.line + 1, mark.column + 1)
        return pointer

    def expand(self, event: Any) -> Any:
        anchor = event.anchor
        if anchor in self.open_anchors:
            raise _Refused(
                "alias-bomb", f"alias '*{anchor}' refers to itself", event.start_mark, _ALIAS_HINT
            )
        if anchor not in self.anchors:
            raise _Refused("yaml-syntax", f"undefined alias '*{anchor}'", event.start_mark)
        value, size = self.anchors[anchor]
        self.expanded += size
        self.nodes += size
        if self.expanded > MAX_ALIAS_NODES:
            raise _Refused(
                "alias-bomb",
                f"aliases expand to more than {MAX_ALIAS_NODES} nodes",
                event.start_mark,
                _ALIAS_HINT,
            )
        return value


_ROOT_HINT = "a spec is a mapping that starts with 'spec_version: 1'"
_ALIAS_HINT = "write the repeated part out, or use fewer anchors and aliases"


def _scalar(event: Any) -> Any:
    value: str = event.value
    if not event.implicit[0] or event.tag == "!":
        return value
    tag = _RESOLVE(ScalarNode, value, (True, False))
    if tag == _TAG + "str":
        return value
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return _CONSTRUCTOR.bool_values[value.lower()]
    if tag == _TAG + "int":
        return _CONSTRUCTOR.construct_yaml_int(ScalarNode(tag, value))
    if tag == _TAG + "float":
        return _CONSTRUCTOR.construct_yaml_float(ScalarNode(tag, value))
    return value  # timestamps and '=' stay text: specs are JSON data
