"""callcc and its peers through the same workloads, each system in its own process.

Workloads (every iteration checks the final output; one with an approval also checks the
pending approval it saw and the tool's result):
- `approval_cycle`: one agent, one tool needing approval; run, suspend, serialize to bytes,
  load into a fresh object graph, approve, resume, finish.
- `nested_approval`: root -> child -> grandchild, each the tool of the one above; the
  grandchild's tool needs approval; the same cycle from the root.
- `long_loop`: 50 model turns each calling a cheap tool, then the answer; no approval.
- `over_http`: `approval_cycle` through each system's Chat Completions adapter against one
  loopback server (`server.py`).
- `store_sqlite`, `store_postgresql`: `approval_cycle` with callcc's run stores (callcc only).
Besides, 10,000 suspended approval_cycle runs are held in one process per system: their bytes,
the process's growth, and the live object a caller keeps to resume each.

Every ratio is to `callcc`, callcc's production path (`arun`/`aresume` awaited on a running
event loop, as a service drives runs; the model an async client); `callcc_sync` is its sync
API (`run`/`resume`, entering the loop per call) and `callcc_eager` its eager path, which only
scripted models with sync tools get (see `callcc_worker`). The peers with an async API
(OpenAI Agents SDK, PydanticAI) are awaited on a running loop too; LangGraph's `invoke` is
sync.

Ownership, one line a module:
- `script`: the shared script (which turn a model gives) and the tool bodies; stdlib only.
- `worker`: the worker protocol and the timing, peak-memory and held-runs measurements.
- `<system>_worker`: one system's workloads, run in that system's environment
  (`callcc_worker` serves `callcc`, the production path, `callcc_sync` and `callcc_eager`).
- `server`: the loopback OpenAI-compatible server answering from `script`.
- `venvs`: pinned per-peer environments under bench/.venvs/.
- `runner`: starts the workers and alternates them in rounds; `report`: table, JSON, machine.
"""
