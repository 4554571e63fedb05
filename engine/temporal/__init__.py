"""Distributed runs on Temporal (`pip install callcc[temporal]`); the only package that
imports temporalio, itself imported only by what uses it (`callcc worker`, `--temporal`).

- `data`: the plain dataclasses that travel through Temporal (no messages, ever).
- `workflow`: one workflow per run (id = run id): the `decide` update and its validator, the
  `settled` update, the `pending` query, the `cancel` signal, expiry timers, continue-as-new.
- `activities`: `advance` (the interpreter until the run next waits, retried safely through
  callcc's recovery) and `cancel`, over the run store.
- `worker`: `build_worker`, `run_worker` (graceful on SIGTERM).
- `client`: `TemporalRuntime`, the client face with a local runtime's outcome types.
"""
