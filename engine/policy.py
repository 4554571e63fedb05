"""Conditions in CEL (the Common Expression Language): compiled once, evaluated per tool call.

`approval: {when: 'args.amount > 1000'}` asks a person only when the condition holds. An
expression sees three variables: `args` (the call's parsed arguments), `agent` (`name`, and
`path`: the agent names root first, `hr_agent/account_agent`) and `run` (`id`, and the
counters the agent's `limits` count: `turns`, `tool_calls`). `check` is what `callcc
validate` asks: every problem with its offset inside the expression (the spec layer turns the
offset into a line and column of the YAML file); `compile_condition` gives the `Condition` a
run evaluates. A grant's `where:` is meant to use the same two.

Evaluation is bounded and has no side effects: CEL has no loops but its macros over the data
given, no recursion and no assignment, no function with an effect is registered, expressions
are at most `MAX_LENGTH` characters, and the arguments are bounded by the model's reply. An
expression that fails at run time (a missing field, a type error) counts as holding: the
call waits for a person (fail closed), and the pending entry says why.

The only module importing `cel_expr_python` (Google's CEL runtime, cel-cpp under Python
bindings); import this module only where a condition exists, so other runs never load it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel  # type: ignore[import-untyped]  # it ships .pyi without py.typed

__all__ = [
    "FIELDS",
    "MAX_LENGTH",
    "Condition",
    "Problem",
    "Verdict",
    "check",
    "compile_condition",
]

MAX_LENGTH = 4096
"""Characters a condition may have."""
FIELDS: Mapping[str, tuple[str, ...]] = {
    "agent": ("name", "path"),
    "run": ("id", "turns", "tool_calls"),
}
"""The fields of `agent` and `run` (those of `args` are the tool's parameters)."""
VARIABLES = ("args", "agent", "run")
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_FUNCTIONS = (
    "has",
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "timestamp",
    "duration",
    *sorted(_MACROS),
)
_DYN_MAP = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
_ENV = cel.NewEnv(variables={name: _DYN_MAP for name in VARIABLES})
_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*?)(?=\n \||\nERROR| \[[A-Z_]+\]$|$)", re.S)
_UNDECLARED = re.compile(r"undeclared reference to '([^']*)'")


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One thing wrong with a condition, placed inside its text."""

    code: str
    """Diagnostic code: `condition-syntax`, `unknown-variable`, `unknown-field`,
    `condition-type` or `condition-too-long`."""
    message: str
    """What is wrong."""
    offset: int
    """Index of the character it is at, in the expression's text."""
    suggestion: str | None = None
    """How to fix it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """What one evaluation of a condition says about one call."""

    held: bool
    """True when the condition evaluated to true."""
    error: str | None = None
    """Why it could not be evaluated (then the call waits, as if it held); None if it could."""

    @property
    def gates(self) -> bool:
        """True when the call waits for a person: the condition held or failed (fail closed)."""
        return self.held or self.error is not None


class Condition:
    """A compiled condition: `evaluate` it per call (the text is compiled once)."""

    __slots__ = ("_program", "_uses", "text")

    def __init__(self, text: str, program: Any) -> None:
        self.text = text
        """The expression as written."""
        self._program = program
        tokens = _tokens(text)
        self._uses = tuple(  # only these are handed to CEL: converting data costs most
            name
            for name in VARIABLES
            if any(
                t.text == name and t.kind == "ident" and (i == 0 or tokens[i - 1].text != ".")
                for i, t in enumerate(tokens)
            )
        )

    def evaluate(
        self, args: Mapping[str, Any], agent: Mapping[str, Any], run: Mapping[str, Any]
    ) -> Verdict:
        """Whether the condition holds for these variables; never raises."""
        uses = self._uses
        if uses == ("args",):  # the usual condition: no dict built for nothing
            data: dict[str, Any] = {"args": args}
        else:
            given = {"args": args, "agent": agent, "run": run}
            data = {name: given[name] for name in uses}
        try:
            value = self._program.eval(_ENV.Activation(data))
            result = value.value()
        except Exception as exc:  # a value CEL cannot carry (an integer beyond 64 bits)
            return Verdict(held=False, error=_runtime_error(str(exc)))
        if result is True or result is False:
            return Verdict(held=result)
        if value.type().name() == "ERROR":
            return Verdict(held=False, error=_runtime_error(str(result)))
        return Verdict(held=False, error=f"the condition gave {_shown(result)}, not true or false")

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"


def compile_condition(text: str) -> Condition:
    """The condition `text` compiled; `ValueError` with the first problem if `check` finds
    one (validation reports them all, located, before any run compiles)."""
    problems = check(text, fields=None)
    if problems:
        raise ValueError(f"condition {text!r}: {problems[0].message}")
    return Condition(text, _ENV.compile(text))


def check(text: str, *, fields: Collection[str] | None) -> list[Problem]:
    """Every problem of the condition `text`: syntax, unknown variables and functions, types
    CEL can tell, a result that is not a bool, and (when `fields` lists the tool's
    parameters; None: any) an argument the tool does not have."""
    if len(text) > MAX_LENGTH:
        return [
            Problem(
                code="condition-too-long",
                message=f"the condition has {len(text)} characters; at most {MAX_LENGTH}",
                offset=0,
                suggestion="split it, or move the logic into the tool",
            )
        ]
    tokens = _tokens(text)
    try:
        program = _ENV.compile(text)
    except RuntimeError as exc:
        if "recursion" in str(exc).lower():  # cel-cpp's own limit, said in its own words
            return [
                Problem(
                    code="condition-too-deep",
                    message="the condition nests too deeply for CEL (at most 32 levels of "
                    "operators and parentheses)",
                    offset=0,
                    suggestion="split it into fewer terms, use `in [...]` for a list of "
                    "values, or move the logic into the tool",
                )
            ]
        found = _compile_problems(str(exc), text, tokens) or [
            Problem(code="condition-syntax", message=_first_line(str(exc)), offset=0)
        ]
        if any(p.code == "condition-syntax" for p in found):
            return found
        return sorted(found + _field_problems(tokens, fields), key=lambda p: p.offset)
    kind = program.return_type().name()
    if kind not in ("BOOL", "DYN"):
        return [
            Problem(
                code="condition-type",
                message=f"the condition gives {kind.lower()}, not a bool",
                offset=0,
                suggestion="compare it, for example `args.amount > 1000`",
            )
        ]
    return _field_problems(tokens, fields)


def _compile_problems(message: str, text: str, tokens: list[_Token]) -> list[Problem]:
    """CEL's errors as problems; of a syntax error only the first (the parser's recovery
    makes one slip look like several)."""
    lines = text.split("\n")
    found: list[Problem] = []
    for line, col, what in _ERROR.findall(message):
        if found and found[-1].code == "condition-syntax":
            break
        row = min(int(line), len(lines)) - 1
        offset = sum(len(x) + 1 for x in lines[:row]) + int(col) - 1
        offset = min(offset, len(text.rstrip()))  # at the end: just after its last character
        undeclared = _UNDECLARED.search(what)
        if undeclared:
            found.append(_undeclared(undeclared.group(1), offset, tokens))
        elif what.startswith("Syntax error"):
            found.append(_syntax(what, offset, text))
        else:
            found.append(
                Problem(
                    code="condition-type",
                    message=what.replace(
                        "found no matching overload", "no operator or function"
                    ).replace("applied to", "takes"),
                    offset=offset,
                    suggestion="convert one side (int(), double(), string()) so both agree",
                )
            )
    return found


def _undeclared(name: str, offset: int, tokens: list[_Token]) -> Problem:
    """An unknown variable (`argz.amount` names `argz`) or function, at its first letter."""
    root = name.split(".", 1)[0]
    start = next(
        (t.start for t in reversed(tokens) if t.text == root and t.start <= offset), offset
    )
    is_call = any(t.start == start for t in tokens if t.kind == "call")
    if is_call:
        return Problem(
            code="unknown-variable",
            message=f"there is no function '{root}'",
            offset=start,
            suggestion=_did_you_mean(root, _FUNCTIONS)
            or "CEL's standard functions only (size, has, matches, startsWith, int, ...)",
        )
    return Problem(
        code="unknown-variable",
        message=f"there is no variable '{root}'; a condition sees args, agent and run",
        offset=start,
        suggestion=_did_you_mean(root, VARIABLES) or "use args.NAME for an argument",
    )


def _syntax(what: str, offset: int, text: str) -> Problem:
    found = re.search(r"(mismatched|extraneous) input '(.*?)'", what)
    stray = re.search(r"token recognition error at: '(.)", what)
    if stray:
        message = f"unexpected character '{stray.group(1)}'"
        hint = "check the operators around it"
    elif found and found.group(2) == "<EOF>":
        message = "the condition ends too early"
        hint = "complete the expression after the last operator"
    elif found:
        message = f"unexpected '{found.group(2)}'"
        hint = "check the operators and parentheses around it"
    else:
        message = what.replace("Syntax error: ", "syntax error: ")
        hint = 'CEL looks like `args.amount > 1000 && args.currency != "EUR"`'
    if "=" in text and "==" not in text and re.search(r"[^!<>=]=[^=]", text):
        hint = "compare with `==` (a single `=` is not an operator in CEL)"
    return Problem(code="condition-syntax", message=message, offset=offset, suggestion=hint)


def _field_problems(tokens: list[_Token], fields: Collection[str] | None) -> list[Problem]:
    """`args.NAME`, `args["NAME"]`, `agent.NAME`, `run.NAME` that do not exist, and macro
    variables that hide a condition's variable (the fields under them would be misread)."""
    found: list[Problem] = []
    for i, token in enumerate(tokens):
        before = tokens[i - 1].text if i else ""
        if token.kind == "call" and before == "." and token.text in _MACROS:
            var = tokens[i + 2] if i + 2 < len(tokens) else None
            if var is not None and var.text in VARIABLES and tokens[i + 1].text == "(":
                found.append(
                    Problem(
                        code="unknown-variable",
                        message=f"the macro variable '{var.text}' hides the variable '{var.text}'",
                        offset=var.start,
                        suggestion="name the macro's variable otherwise, such as `x`",
                    )
                )
        if token.kind != "ident" or token.text not in VARIABLES or before == ".":
            continue
        name = _selected(tokens, i)
        if name is None:
            continue
        known = FIELDS.get(token.text, fields)
        if known is None or name[0] in known:
            continue
        what = "parameter" if token.text == "args" else "field"
        listed = ", ".join(sorted(known)) or "none"
        found.append(
            Problem(
                code="unknown-field",
                message=f"{token.text} has no {what} '{name[0]}' ({what}s: {listed})",
                offset=name[1],
                suggestion=_did_you_mean(name[0], known)
                or (f"add '{name[0]}' to the tool's parameters" if what == "parameter" else None),
            )
        )
    return found


def _selected(tokens: list[_Token], i: int) -> tuple[str, int] | None:
    """The field `tokens[i]` selects (`.NAME` or `["NAME"]`) and where its name starts."""
    nxt = tokens[i + 1 : i + 4]
    if len(nxt) >= 2 and nxt[0].text == "." and nxt[1].kind in ("ident", "call"):
        return nxt[1].text, nxt[1].start
    if len(nxt) == 3 and nxt[0].text == "[" and nxt[1].kind == "string" and nxt[2].text == "]":
        value = nxt[1].value
        return (value, nxt[1].start + 1) if value is not None else None
    return None


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """`ident`, `call` (an identifier a `(` follows), `string`, `punct` or `number`."""
    text: str
    start: int
    value: str | None = None
    """For a plain string literal without escapes: its value."""


_LEX = re.compile(
    r"""(?P<space>\s+|//[^\n]*)
    |(?P<string>[rRbB]{0,2}(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<number>\d[\w.]*)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<punct>.)""",
    re.S | re.X,
)


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    for match in _LEX.finditer(text):
        kind = match.lastgroup or "punct"
        if kind == "space":
            continue
        word = match.group()
        value = None
        if kind == "string" and word[0] in "'\"" and "\\" not in word and word[:3] not in _TRIPLE:
            value = word[1:-1]
        out.append(_Token(kind, word, match.start(), value))
    for i, token in enumerate(out[:-1]):
        if token.kind == "ident" and out[i + 1].text == "(":
            out[i] = _Token("call", token.text, token.start)
    return out


_TRIPLE = ("'''", '"""')


def _did_you_mean(name: str, pool: Collection[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(pool), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _runtime_error(text: str) -> str:
    """CEL's evaluation error as a person reads it."""
    text = re.sub(r"^[A-Z_]+: ", "", _first_line(text))
    missing = re.match(r'Key not found in map : "(.*)"$', text)
    if missing:
        return f"no field '{missing.group(1)}' (an optional argument the call left out?)"
    overload = re.match(r"No matching overloads found : (\S+)\((.*)\)$", text)
    if overload:
        operator = re.sub(r"^_(.+)_$", r"\1", overload.group(1)).strip("_")
        return f"'{operator}' does not apply to ({overload.group(2)})"
    return text


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:300]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
