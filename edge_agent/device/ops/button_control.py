"""`VisitControl` for the room button over the server's asyncio `VisitManager`.

gpiozero calls the button handler in its own thread; the visit lifecycle lives
on the daemon's event loop. This adapter hops onto the loop and waits for the
result, so the press handler sees a plain bool / exception.

    control = ManagerVisitControl(server.visits, loop)
    panel = open_panel(cfg.gpio, control, claims)
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge_agent.device.ops.gpio import Claim
from edge_agent.errors import EdgeAgentError

TIMEOUT_S = 30.0


class ManagerVisitControl:
    def __init__(self, manager: Any, loop: asyncio.AbstractEventLoop, timeout_s: float = TIMEOUT_S) -> None:
        self.manager = manager  # edge_agent.device.lifecycle.VisitManager
        self.loop = loop
        self.timeout_s = timeout_s

    def _run(self, coro: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(self.timeout_s)
        except TimeoutError:
            future.cancel()
            raise EdgeAgentError("the visit did not respond to the button in time") from None

    def start_from_button(self, claim: Claim) -> str:
        # No voiceprint: a button start carries none, attribution then works without enrolment.
        # Duration 0: the lifecycle's own (live) default applies.
        ctx = self._run(self.manager.start(claim.clinician_id, claim.public_key, 0, None, None, trigger="button",
                                           person=claim.person))
        return str(ctx.visit_id)

    def stop_from_button(self) -> None:
        self._run(self.manager.stop(None, None, "button"))

    def is_active(self) -> bool:
        return bool(self.manager.active)
