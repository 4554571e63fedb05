"""callcc: declarative agents that suspend anywhere and resume from one JSON continuation.

Public API: `load_spec`, `Runtime` (`run`/`arun`, `resume`/`aresume`, `fork`/`afork`), the
outcomes `Finished`, `Stopped`, `Suspended`, `Failed`, `Continuation` (with `pending()`, the
decision methods, and `decide_many` of `Decide` items), and for tool authors `ToolContext`,
`Deferred`, `NeedsApproval` (a tool asks a person first) and `RetryWithModel` (the model reads
what to fix). The
top-level `callcc` package re-exports exactly this `__all__`, for `import callcc`.

Ownership, one line a module (a leading underscore marks an internal):
- `errors`: the one exception root (`CallccError`), usage errors vs run errors, `Diagnostic`.
- `spec/`: YAML in, validated frozen `Spec` out; knows no HTTP and runs nothing.
- `tools`: importing python refs, inferring parameters, `ToolContext` (and which parameter
  receives it: `context_parameter`), what a tool raises: `Deferred`, `NeedsApproval`,
  `RetryWithModel`.
- `compile`: `Spec` -> `Program` (bound tools, model clients, argument validators).
- `frames`: the suspended stack as data: `Frame`, `Pending` (and its `Seal`), the decisions.
- `waits`: the one table of which decisions each wait reason allows, on a call or a frame.
- `loop`: `step(frame) -> Continue | Suspend | Finish | Fail` and the driver.
- `steps`: those step types, a leaf the loop, the runners and the runtime share.
- `tooling`: one turn's tool calls: sort, gate, apply decisions, run, record; `RunContext`.
- `runners/`: one runner per tool kind (`python`, `agent`, `external`, `mcp`) in one registry
  (`runners/base` documents the interface).
- `server_tools`: what an MCP server's listing becomes: the names the model sees, include and
  exclude, approvals from the tools' annotations and the spec's overrides, name collisions.
- `toolsets`: a run's connections to MCP servers (opened when an agent first runs, closed when
  the drive ends), agents bound to the listings, schema fingerprints kept in frames and the
  refusal of a resumed call whose schema changed; `resolve` for `validate --resolve`.
- `mcp`: the MCP client over stdio and streamable HTTP, results as text; the only module
  importing the `mcp` SDK (loaded when a run first connects).
- `policy`: approval conditions in CEL (`approval.when`): `check` for validate, `Condition`
  compiled once and evaluated per call (fail closed); the only module importing
  `cel_expr_python`, loaded only for a spec with a condition.
- `grants`: run-scoped grants (`Grant`: a decision of scope `run`), which calls one covers
  (reject wins; a `where` in CEL through `policy`), and turning scoped decisions into grants
  when a run resumes.
- `events`: the typed run events and `Observers`; the loop emits them, knowing no consumer;
  `_emit` builds them from the loop's state (only when the run has observers).
- `continuation`: the document, its decision API, versions, a long document's messages read
  on first use (`Unread`); `_codec` parses and checks it; `_migrate` upgrades an older
  version's data to the current one on read (version 1 -> 2: `limit` from `detail`).
- `decisions`: `Decide` (a decision addressed by id or path, for `decide_many`), the index of
  pending entries and the copy-on-write that records a batch in O(K).
- `_paths`: pending paths (`root/child@CALL/.../ENTRY`) and which entry an identifier names.
- `_frozen`: frozen dataclasses made on hot paths at a fraction of their `__init__`'s cost:
  `quick_init` for those made every turn, drafts for a pending view and a decision.
- `runtime`: `Runtime` and its outcomes; `_eager` drives scripted runs without a loop trip;
  `_ids` draws run ids and nonces.
- `_preflight`: the check of a document against the spec before a resume runs anything.
- `inbox`: decisions recorded in a store until the run resumes with them (the service, the
  CLI and Temporal share it): `record`, `resume_recorded` (`ResumedElsewhere` for the loser
  of a claim), expiry (`expire`), each with an async twin.
- `audit`: the entries of a run's audit trail (who started, decided, expired, resumed, ended
  it) and who acts (`os_user`, `callcc`).
- `signing`: HMAC-SHA256 signatures, keys from the environment, rotation.
- `store/`: the run store protocols (`base`: `RunStore`, its async face `AsyncRunStore`), SQLite
  and PostgreSQL backends, `open_store`; `_plan` runs one sans-IO body per store operation on
  a blocking or an asyncio cursor; `_aio` the async faces (a worker thread, in place), derived
  from `RunStore`'s signatures; `_sql` what the backends share (rows, refusals, delete and
  prune); `_ops` the operations written once for both (listings with cursors, recorded
  decisions, the audit trail, expiry).
- `journal`: checkpoints as frame deltas, and continuations rebuilt from them.
- `durable`: what a runtime with a store does: start, claim a resume, recover a dead run, keep
  the spec with the run and find it again (`spec_of_run`).
- `history`: a stored run's steps (its events, numbered from 1) described: what happened at
  each (`callcc runs history`).
- `fork`: a new run whose history is a stored run's up to a step (`Runtime.fork`): the plan
  (copied events, results reused, the rule for calls under way or waiting), its first write.
- `lease`: the lease a driving process holds on a run: its length, owner ids, the heartbeat
  (a thread for the sync API, a task for the async one).
- `models/`: the model protocol (`base`), the OpenAI adapter, the scripted model, and
  `script_check`, `callcc validate`'s located check of a script against its spec.
- `masking`: what counts as a secret in what a person is shown, and how it is hidden.
- `usage`: token counts per frame and per run (an ended sub-agent's fold into its caller).
- `tracing`: run events as OpenTelemetry GenAI spans; the only module importing opentelemetry.
- `render/`: networkx graphs of specs and stacks; DOT, SVG/PNG, Mermaid, terminal text.
- `serve/`: `callcc serve`, the approval service: the JSON API, users and roles, the event hub
  (its own ownership list in `serve/__init__`); the only package importing fastapi, starlette
  and uvicorn (`callcc[serve]`), imported by nothing else but `cli/serve`'s handler.
- `temporal/`: distributed runs on Temporal, the only package importing temporalio: `data`
  (what travels: references, never messages), `workflow` (one per run: the `decide` update
  and its validator, queries, the cancel signal, expiry timers, continue-as-new),
  `activities` (`advance` over the run store, retried through recovery), `worker`, `client`
  (`TemporalRuntime`).
- `cli/`: `callcc` subcommands, one module each, imported when its command runs (`cli/_exit`
  holds the exit codes); `main(argv, stdout, stderr) -> int`;
  `cli/_streams` makes every write printable (lone surrogates escaped, closed pipes quiet);
  `cli/_options` the options of Temporal (`--temporal`, `--namespace`, `--task-queue`);
  `cli/worker` is `callcc worker` and the `--temporal` face of run/resume/pending;
  `cli/_decisions` holds the decision flags of resume and decide as `Decide` items, `--patch`,
  `--reject all` and the refusal of a resume deciding nothing; `cli/_stored` reads a RUN_ID
  from a store where a file could be named and finds the store URL; `cli/inbox` is
  `decide`, `runs expire` and `runs audit`.
- `_json`: document JSON text: compact writing, exact reading (orjson when it is exact).
- `_canonical`: canonical JSON and fingerprints; `json_problem`, what counts as plain JSON data.
- `_lazy`: package attributes imported on first use, so `import engine` and the CLI start fast.
"""

import typing as _typing

from engine._lazy import exports as _exports
from engine.errors import (
    CallccError,
    ConflictError,
    ContinuationError,
    DecisionError,
    ModelError,
    RunError,
    SpecChangedError,
    SpecError,
    StoreError,
    UsageError,
)

if _typing.TYPE_CHECKING:
    from engine.continuation import Continuation, PendingDecision
    from engine.decisions import Decide
    from engine.runtime import Failed, Finished, Outcome, Runtime, Stopped, Suspended
    from engine.spec import Spec, load_spec
    from engine.tools import Deferred, NeedsApproval, RetryWithModel, ToolContext
else:  # imported on first use: `import engine` (and every CLI command) stays cheap
    __getattr__, __dir__ = _exports(
        __name__,
        {
            "Continuation": "engine.continuation",
            "PendingDecision": "engine.continuation",
            "Decide": "engine.decisions",
            **dict.fromkeys(
                ("Failed", "Finished", "Outcome", "Runtime", "Stopped", "Suspended"),
                "engine.runtime",
            ),
            "Spec": "engine.spec.model",
            "load_spec": "engine.spec.load",
            "Deferred": "engine.tools",
            "NeedsApproval": "engine.tools",
            "RetryWithModel": "engine.tools",
            "ToolContext": "engine.tools",
        },
    )

__all__ = [
    "CallccError",
    "ConflictError",
    "Continuation",
    "ContinuationError",
    "Decide",
    "DecisionError",
    "Deferred",
    "Failed",
    "Finished",
    "ModelError",
    "NeedsApproval",
    "Outcome",
    "PendingDecision",
    "RetryWithModel",
    "RunError",
    "Runtime",
    "Spec",
    "SpecChangedError",
    "SpecError",
    "Stopped",
    "StoreError",
    "Suspended",
    "ToolContext",
    "UsageError",
    "load_spec",
]
