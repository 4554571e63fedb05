"""A small MCP server over stdio, for specs/ledger.yaml: an account ledger in a JSON file.

`lookup` is read-only (it runs at once), `record` adds an entry and is idempotent (the same
account and amount twice is one entry), `erase` is destructive (the spec's agent waits for a
person before it runs). `LEDGER_DB` names the file (default `.callcc/ledger.json`); every
execution is appended to `LEDGER_LOG` when that is set. Run it as `python ledger_server.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("ledger")


def _db() -> Path:
    return Path(os.environ.get("LEDGER_DB", ".callcc/ledger.json"))


def _load() -> dict[str, Any]:
    path = _db()
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _save(data: dict[str, Any]) -> None:
    path = _db()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")


def _log(tool: str, **arguments: Any) -> None:
    log = os.environ.get("LEDGER_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"tool": tool, **arguments}) + "\n")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup(account: str) -> str:
    """The amount recorded under `account`, or that there is none."""
    _log("lookup", account=account)
    amount = _load().get(account)
    return f"{account}: {amount}" if amount is not None else f"{account}: no entry"


@server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True))
def record(account: str, amount: int) -> str:
    """Record `amount` under `account` (replacing what was there)."""
    _log("record", account=account, amount=amount)
    data = _load()
    data[account] = amount
    _save(data)
    return f"recorded {account}: {amount}"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def erase(account: str) -> str:
    """Erase the entry under `account`."""
    _log("erase", account=account)
    data = _load()
    existed = data.pop(account, None) is not None
    _save(data)
    return f"erased {account}" if existed else f"{account}: nothing to erase"


if __name__ == "__main__":
    server.run()
