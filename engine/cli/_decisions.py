"""The decision flags of `callcc resume` and `callcc decide` (one set, `add_decision_flags`),
read into `Decide` items (`flag_decisions`), and what the CLI adds to the decision API:
`--patch`, `--reject all`, and the refusal of a resume that decides nothing. Light at import:
the parser is built from it before any command runs."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.continuation import Continuation
    from engine.decisions import Decide

REJECTED = "rejected by the reviewer"


def add_decision_flags(parser: argparse.ArgumentParser) -> None:
    """The decision flags, each repeatable, in their own help group."""
    decide = parser.add_argument_group("decisions (each may be repeated)")
    decide.add_argument("--approve", action=_Noted, default=[], metavar="ID|all")
    decide.add_argument("--reject", action=_Noted, default=[], metavar="ID|all")
    decide.add_argument(
        "--for-run",
        action=_Noted,
        nargs=0,
        dest="for_run",
        default=[],
        help="the --approve/--reject just before also answers later calls of the same tool "
        "in this run, sub-agents too (a grant)",
    )
    decide.add_argument(
        "--where",
        action=_Noted,
        default=[],
        metavar="EXPR",
        help="the --for-run just before covers only calls meeting this CEL condition over "
        "args, agent, run (such as 'args.amount <= 100')",
    )
    decide.add_argument("--reason", action="append", default=[], help="reason of each --reject")
    decide.add_argument("--edit", action=_Noted, default=[], metavar="ID")
    decide.add_argument("--args", action="append", default=[], help="JSON args of each --edit")
    decide.add_argument(
        "--patch",
        action="append",
        default=[],
        nargs=2,
        metavar=("ID", "JSON"),
        help="edit with a JSON merge patch (RFC 7396) of the call's arguments",
    )
    decide.add_argument("--answer", action=_Noted, default=[], metavar="ID")
    decide.add_argument("--result", action="append", default=[], help="JSON of each --answer")
    decide.add_argument(
        "--result-text",
        action="append",
        default=[],
        nargs=2,
        metavar=("ID", "TEXT"),
        help="answer with plain text (no JSON quoting)",
    )
    decide.add_argument("--extend", action=_Noted, default=[], metavar="ID")
    decide.add_argument("--turns", action="append", default=[], type=int, help="per --extend")
    decide.add_argument("--stop", action=_Noted, default=[], metavar="ID")
    decide.add_argument(
        "--resume",
        "--continue",
        dest="carry_on",
        action="append",
        default=[],
        metavar="ID",
        help="decide resume: carry on after a pause or a model error (--continue: the same)",
    )


class _Noted(argparse.Action):
    """`append`, noting each flag's place among the decision flags (`args.decision_order`),
    so `--for-run` and `--where` attach to the flag just before them."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(values)
        setattr(namespace, self.dest, items)
        order = list(getattr(namespace, "decision_order", None) or [])
        order.append((self.dest, len(items) - 1, values))
        namespace.decision_order = order


Scoped = dict[tuple[str, int], dict[str, Any]]
"""(`approve` or `reject`, position among its flags) -> the `scope`/`where` of that flag."""


def scopes(args: argparse.Namespace) -> Scoped:
    """Which --approve and --reject flags a `--for-run` (and its `--where`) follows; a
    `--for-run` with no such flag just before it (another decision flag between them, such as
    `--edit`, counts as none), or a `--where` with no `--for-run` just before it, is a
    `UsageError` (exit 2)."""
    found: Scoped = {}
    last: tuple[str, int] | None = None
    for dest, position, value in getattr(args, "decision_order", None) or []:
        if dest in ("approve", "reject"):
            last = (dest, position)
        elif dest not in ("for_run", "where"):  # another decision: nothing to attach to
            last = None
        elif dest == "for_run":
            if last is None:
                raise UsageError(
                    "--for-run applies to the --approve ID or --reject ID just before it; "
                    "give one first, such as --approve call_1 --for-run"
                )
            if last in found:
                raise UsageError(f"--for-run is given twice for --{last[0]} {_flag(args, last)}")
            found[last] = {"scope": "run"}
        elif dest == "where":
            if last is None or last not in found:
                raise UsageError(
                    "--where applies to the --for-run just before it, such as "
                    "--approve call_1 --for-run --where 'args.amount <= 100'"
                )
            if "where" in found[last]:
                raise UsageError(f"--where is given twice for --{last[0]} {_flag(args, last)}")
            found[last]["where"] = value
    return found


def _flag(args: argparse.Namespace, spot: tuple[str, int]) -> str:
    return str(getattr(args, spot[0])[spot[1]])


def flag_decisions(continuation: Continuation, args: argparse.Namespace) -> list[Decide]:
    """The decisions the flags make on `continuation`, checking that paired flags come in
    pairs and that every id names a pending entry (`DecisionError` lists the ones there are).
    `--approve all` takes every undecided entry that allows approve and no other flag names;
    `--reject all` then every such entry that allows reject. A `--for-run` (with its
    `--where`) makes the flag before it a decision of scope `run`; after an `all`, each
    entry it decides."""
    from engine.decisions import Decide

    scoped = scopes(args)
    approves = [(i, scoped.get(("approve", n), {})) for n, i in enumerate(args.approve)]
    named: list[Decide] = [Decide.approve(i, **scope) for i, scope in approves if i != "all"]
    rejects = [
        (i, reason, scoped.get(("reject", n), {}))
        for n, (i, reason) in enumerate(
            _pairs(args.reject, args.reason, "--reject", "--reason", optional=True)
        )
    ]
    named += [
        Decide.reject(i, reason or REJECTED, **scope) for i, reason, scope in rejects if i != "all"
    ]
    for ident, text in _pairs(args.edit, args.args, "--edit", "--args"):
        value = _json(text, "--args")
        if not isinstance(value, dict):
            raise UsageError("--args must be a JSON object")
        named.append(Decide.edit(ident, value))
    for ident, text in getattr(args, "patch", []):  # new flags: absent from older Namespaces
        patch = _json(text, "--patch")
        if not isinstance(patch, dict):
            raise UsageError(
                f"--patch {ident}: the patch must be a JSON object, such as "
                "'{\"amount\": 60}' (null removes an argument)"
            )
        current = continuation.find(ident)[0].arguments
        if current is None:
            raise UsageError(f"--patch {ident}: the entry is no tool call; it has no arguments")
        named.append(Decide.edit(ident, merge_patch(current, patch)))
    for ident, text in _pairs(args.answer, args.result, "--answer", "--result"):
        named.append(Decide.answer(ident, _json(text, "--result", answer=True)))
    named += [Decide.answer(i, text) for i, text in getattr(args, "result_text", [])]
    for ident, turns in _pairs(args.extend, args.turns, "--extend", "--turns"):
        named.append(Decide.extend(ident, int(turns)))
    named += [Decide.stop(i) for i in args.stop]
    named += [Decide.resume(i) for i in args.carry_on]
    taken = {continuation.find(d.id)[0].path for d in named}  # an unknown id is refused here
    rest = [v for v in continuation.undecided() if v.path not in taken]
    for ident, scope in approves:  # last: `all` means every call no other flag decided
        if ident == "all":
            named += [Decide.approve(v.path, **scope) for v in rest if "approve" in v.decisions]
            rest = [v for v in rest if "approve" not in v.decisions]
    for ident, reason, scope in rejects:
        if ident == "all":
            named += [
                Decide.reject(v.path, reason or REJECTED, **scope)
                for v in rest
                if "reject" in v.decisions
            ]
            rest = [v for v in rest if "reject" not in v.decisions]
    return named


def _pairs(
    ids: list[str], values: list[Any], flag: str, value_flag: str, *, optional: bool = False
) -> list[tuple[str, Any]]:
    if len(values) > len(ids) or (not optional and len(values) != len(ids)):
        raise UsageError(f"give one {value_flag} for each {flag} ({len(ids)} vs {len(values)})")
    return [(ident, values[i] if i < len(values) else None) for i, ident in enumerate(ids)]


def _json(text: str, flag: str, *, answer: bool = False) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = (
            f"; to answer with text, quote it as a JSON string ({flag} "
            f"'{json.dumps(text, ensure_ascii=False)}') or use --result-text ID TEXT"
            if answer
            else "; quote the whole value for the shell, such as '{\"amount\": 60}'"
        )
        raise UsageError(f"{flag} is not valid JSON: {exc}{hint}") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise UsageError(f"{flag} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"{flag} is not valid JSON: it nests too deeply") from None


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396: `patch` merged onto `target` (a copy); `null` removes a member, an object
    merges into an object, anything else replaces. Iterative, so any depth is fine."""
    result = dict(target)
    stack = [(result, patch)]
    while stack:
        into, changes = stack.pop()
        for key, value in changes.items():
            if value is None:
                into.pop(key, None)
            elif isinstance(value, dict):
                inner = into.get(key)
                merged = dict(inner) if isinstance(inner, dict) else {}
                into[key] = merged
                stack.append((merged, value))
            else:
                into[key] = value
    return result


def nothing_decided(continuation: Continuation, args: argparse.Namespace) -> None:
    """Refuse (exit 2) a resume after which no entry has a decision: the run would only
    suspend again, on the same entries; say what waits and what each allows."""
    if any(p.decision is not None for p in continuation.pending()):
        return
    why = []
    for flag, kind in (("--approve", "approve"), ("--reject", "reject")):
        if "all" in getattr(args, flag[2:]):
            why.append(f"{flag} all found no call that allows {kind}")
    reason = "; ".join(why) or "no decision was given"
    from engine.cli._output import describe

    raise UsageError(
        f"nothing was decided ({reason}), so the run would only wait again; waiting:\n"
        + describe(continuation.undecided()).rstrip("\n")
    )
