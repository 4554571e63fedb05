"""callcc: declarative agents that suspend anywhere and resume from one JSON continuation.

Public API: `load_spec`, `Runtime` (`run`/`arun`, `resume`/`aresume`), the outcomes `Finished`,
`Stopped`, `Suspended`, `Failed`, `Continuation` (with `pending()`, the decision methods, and
`decide_many` of `Decide` items), and for tool authors `ToolContext` and `Deferred`. The
top-level `callcc` package re-exports exactly this `__all__`, for `import callcc`.

Ownership, one line a module (a leading underscore marks an internal):
- `errors`: the one exception root (`CallccError`), usage errors vs run errors, `Diagnostic`.
- `spec/`: YAML in, validated frozen `Spec` out; knows no HTTP and runs nothing.
- `tools`: importing python refs, inferring parameters, `ToolContext` (and which parameter
  receives it: `context_parameter`), `Deferred`.
- `compile`: `Spec` -> `Program` (bound tools, model clients, argument validators).
- `frames`: the suspended stack as data: `Frame`, `Pending`, the decision variants.
- `waits`: the one table of which decisions each wait reason allows, on a call or a frame.
- `loop`: `step(frame) -> Continue | Suspend | Finish | Fail` and the driver.
- `tooling`: one turn's tool calls: sort, gate, apply decisions, run, record.
- `continuation`: the document, its decision API, versions; `_codec` parses and checks it.
- `decisions`: `Decide` (a decision addressed by id or path, for `decide_many`), the index of
  pending entries and the copy-on-write that records a batch in O(K).
- `_paths`: pending paths (`root/child@CALL/.../ENTRY`) and which entry an identifier names.
- `runtime`: `Runtime` and its outcomes; `_eager` drives scripted runs without a loop trip.
- `_preflight`: the check of a document against the spec before a resume runs anything.
- `signing`: HMAC-SHA256 signatures, keys from the environment, rotation.
- `store/`: the run store protocol (`base`), SQLite and PostgreSQL backends, `open_store`.
- `journal`: checkpoints as frame deltas, and continuations rebuilt from them.
- `durable`: what a runtime with a store does: start, claim a resume, recover a dead run, keep
  the spec with the run and find it again (`spec_of_run`).
- `lease`: the lease a driving process holds on a run: its length, owner ids, the heartbeat.
- `models/`: the model protocol (`base`), the OpenAI adapter, the scripted model, and
  `script_check`, `callcc validate`'s located check of a script against its spec.
- `masking`: what counts as a secret in what a person is shown, and how it is hidden.
- `render/`: networkx graphs of specs and stacks; DOT, SVG/PNG, Mermaid, terminal text.
- `cli/`: `callcc` subcommands, one module each; `main(argv, stdout, stderr) -> int`;
  `cli/_streams` makes every write printable (lone surrogates escaped, closed pipes quiet);
  `cli/_decisions` adds `--patch`, `--reject all` and the refusal of a resume deciding nothing.
- `_json`: document JSON text: compact writing (orjson when present), the strict reader.
- `_canonical`: canonical JSON and fingerprints; `json_problem`, what counts as plain JSON data.
"""

from engine.continuation import Continuation, Decide, PendingDecision
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
from engine.runtime import Failed, Finished, Outcome, Runtime, Stopped, Suspended
from engine.spec import Spec, load_spec
from engine.tools import Deferred, ToolContext

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
    "Outcome",
    "PendingDecision",
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
