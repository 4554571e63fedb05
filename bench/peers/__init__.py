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

Every ratio is to `callcc`, callcc's production path (runs on the event loop, the model an
async client); `callcc_eager` is its eager path, which only scripted models with sync tools get
(see `callcc_worker`).

Ownership, one line a module:
- `script`: the shared script (which turn a model gives) and the tool bodies; stdlib only.
- `worker`: the worker protocol and the timing, peak-memory and held-runs measurements.
- `<system>_worker`: one system's workloads, run in that system's environment
  (`callcc_worker` serves both `callcc`, the production path, and `callcc_eager`).
- `server`: the loopback OpenAI-compatible server answering from `script`.
- `venvs`: pinned per-peer environments under bench/.venvs/.
- `runner`: starts the workers and alternates them in rounds; `report`: table, JSON, machine.
"""
