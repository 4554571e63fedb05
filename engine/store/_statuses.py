"""The statuses a stored run can have (`engine.store.base` re-exports them): a leaf, so that
`callcc --help`, which lists them as choices, loads no store module."""

from __future__ import annotations

from typing import Literal, TypeAlias

RunStatus: TypeAlias = Literal["running", "suspended", "finished", "failed", "stopped"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "suspended", "finished", "failed", "stopped")
