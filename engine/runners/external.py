"""`kind: external` tools: the call waits for its result from outside (`answer`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.runners.base import Call, Outcome, Runner, Wait, external_entry, register

if TYPE_CHECKING:
    from engine.tooling import RunContext


class ExternalRunner(Runner):
    """Hands external calls off: each waits on an `external` entry."""

    async def run(self, call: Call, ctx: RunContext) -> Outcome:
        """Make the call wait, asking what the tool's description asks."""
        return Wait(external_entry(call, prompt=call.tool.spec.description))


register("external", ExternalRunner())
