"""How big a workflow's Temporal history is: its events and bytes, as the server counts them.

Imports temporalio only, so callcc's environment and a peer's (bench/.venvs/) both use it.
Bytes are the server's `history_size_bytes`, the figure it holds against its 50 MB limit;
the events are fetched and counted too, and must agree with the server's length.
"""

from __future__ import annotations

from typing import Any


async def history(client: Any, workflow_id: str) -> dict[str, int]:
    """`{"events", "bytes"}` of the latest run of `workflow_id` (a `temporalio.client.Client`)."""
    handle = client.get_workflow_handle(workflow_id)
    info = (await handle.describe()).raw_description.workflow_execution_info
    events = (await handle.fetch_history()).events
    if len(events) != info.history_length:
        raise AssertionError(
            f"{workflow_id}: fetched {len(events)} events of {info.history_length}"
        )
    return {"events": len(events), "bytes": int(info.history_size_bytes)}
