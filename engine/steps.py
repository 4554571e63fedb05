"""What one step of the loop returns: `Continue | Suspend | Finish | Fail`.

A leaf module (it imports nothing of the engine), so the loop, the tool runners (a sub-agent
call drives a child frame to one of these) and the runtime all read the same types without
importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from engine._frozen import quick_init

__all__ = [
    "CLOSED_TURN",
    "CONTINUE",
    "SUSPEND",
    "Continue",
    "End",
    "Fail",
    "Finish",
    "Step",
    "Suspend",
]


@quick_init
@dataclass(frozen=True, slots=True)
class Continue:
    """Take another step."""

    kind: Literal["continue"] = "continue"
    checkpoint: bool = True
    """False when the step only did what the last checkpoint already implies (closing a
    turn whose results are all recorded), so a run store need not write it."""


@quick_init
@dataclass(frozen=True, slots=True)
class Suspend:
    """The frame waits on its `pending` entries."""

    kind: Literal["suspend"] = "suspend"


@quick_init
@dataclass(frozen=True, slots=True)
class Finish:
    """The agent answered (or a `stop` decision ended it: `stopped`)."""

    output: str
    kind: Literal["finish"] = "finish"
    stopped: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class Fail:
    """The agent cannot go on."""

    reason: str
    kind: Literal["fail"] = "fail"
    resumable: bool = False
    """True when the failing frame recorded an `error` entry: once the cause is fixed, a
    `resume` decision asks the model again (the failed run's continuation resumes)."""


Step: TypeAlias = Continue | Suspend | Finish | Fail
End: TypeAlias = Suspend | Finish | Fail
"""How driving a frame ends."""
CONTINUE = Continue()
CLOSED_TURN = Continue(checkpoint=False)
SUSPEND = Suspend()
