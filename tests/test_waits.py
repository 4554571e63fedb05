"""The decisions each wait allows are written down once, in `engine.waits`."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from engine.spec.model import DecisionKind
from engine.spec.schema import spec_schema
from engine.waits import APPROVAL_DECISIONS, CALL_WAITS, FRAME_WAITS, allowed

ENGINE = Path(__file__).resolve().parent.parent / "engine"


def _rows() -> set[frozenset[str]]:
    rows = [*CALL_WAITS.values(), *FRAME_WAITS.values()]
    return {frozenset(row) for row in rows if len(row) > 1} - {frozenset(APPROVAL_DECISIONS)}


def test_no_module_but_the_table_writes_out_a_row_of_it() -> None:
    rows = _rows()
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path.name == "waits.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple | ast.List | ast.Set) and node.elts:
                values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if len(values) == len(node.elts) and frozenset(map(str, values)) in rows:
                    found.append(f"{path.relative_to(ENGINE)}:{node.lineno}")
    assert found == []


def test_the_same_reason_allows_other_decisions_on_a_call_and_on_a_frame() -> None:
    assert allowed("error", call=True) == ("approve", "answer", "reject")
    assert allowed("error", call=False) == ("resume", "stop")
    assert allowed("pause", call=True) == ("resume", "reject")
    assert allowed("pause", call=False) == ("resume", "stop")
    assert allowed("turn_limit", call=True) == ()
    assert allowed("external", call=False) == ()
    assert allowed("subagent", call=True) == ()


def test_the_spec_format_offers_exactly_the_approval_decisions_of_the_table() -> None:
    approval = spec_schema()["$defs"]["approval"]["properties"]["decisions"]
    assert tuple(approval["items"]["enum"]) == APPROVAL_DECISIONS
    assert typing.get_args(DecisionKind) == APPROVAL_DECISIONS
