"""How a phone words what the room device answered: one table for the Python phone and the web app.

``tools/phone-web/gen_schema.py`` writes :data:`TABLE` into the web app (``src/answers.js``; a test checks it is
fresh), so ``edge-agent phone ...`` and the browser say the same line for the same answer. Only the statuses by which
the device says no (a rule, a check, a state) read "refused"; a device fault is not a refusal.
"""

from __future__ import annotations

import re
from typing import Any

# gRPC status names by which the device says no to what was asked
REFUSAL_CODES = ("INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "FAILED_PRECONDITION",
                 "OUT_OF_RANGE", "UNIMPLEMENTED", "UNAUTHENTICATED")
REFUSED = "The room device refused: "
AT_LIMIT = "The room device is at a limit: "  # RESOURCE_EXHAUSTED
FAULT = "Fault on the room device: "  # INTERNAL and the like: it broke, it did not say no

# A start whose capture could not begin: the device answers FAILED_PRECONDITION "capture could not start: <why>"
# (edge_agent.device.lifecycle). Not a refusal of the clinician: nothing records, and the fix is the microphone or IT.
CAPTURE_PREFIX = "capture could not start: "
CAPTURE = "Capture could not start, so nothing is being recorded: "
CAPTURE_ADVICE = "; check the room microphone is plugged in and start again, or ask IT"  # unless the device's line says what to do

# DeviceInfo.ended_without_report: the visit's report will never come (NoReportReason numbers)
NO_REPORT = "No report for this visit: "
NO_REPORT_REASONS = {
    0: "the room device ended it without one",
    1: "the room device failed while building it; tell IT",
    2: "capture failed before any speech was heard (the room microphone stopped); check it is plugged in, or ask IT",
    3: "the room device's storage was full, so the report could not be kept; tell IT",
    4: "the start did not complete and capture was turned off again, so nothing was recorded",
}
NO_REPORT_CAPABILITY = "no-report"

# A Stop of this phone's own visit that the device had already ended (NOT_FOUND), with no word of a missing report
ALREADY_ENDED = "This visit had already ended on the room device; its report, if one was made, comes to this phone by itself."

# ClaimStatus.failure: a press of the room button for this phone's claim could not start the visit (the claim holds)
BUTTON = "The room button could not start your visit: "

_SAYS_WHAT_TO_DO = re.compile(r"\bIT\b")


def device_answer(code: str, details: str) -> str:
    """The one line for a status the device answered (``code``: the gRPC status name) with its message."""
    if code == "FAILED_PRECONDITION" and details.startswith(CAPTURE_PREFIX):
        return capture_line(details)
    if code in REFUSAL_CODES:
        return REFUSED + details
    if code == "RESOURCE_EXHAUSTED":
        return AT_LIMIT + details
    return FAULT + details


def capture_line(details: str) -> str:
    """``details`` is the device's "capture could not start: <why>": what happened, and what to do about it."""
    why = details[len(CAPTURE_PREFIX):].rstrip(".")
    return CAPTURE + why + ("" if _SAYS_WHAT_TO_DO.search(why) else CAPTURE_ADVICE) + "."


def button_line(failure: str) -> str:
    """A press for this phone's claim could not start the visit (``ClaimStatus.failure``)."""
    return capture_line(failure) if failure.startswith(CAPTURE_PREFIX) else BUTTON + failure.rstrip(".") + "."


def no_report_line(reason: int) -> str:
    return NO_REPORT + NO_REPORT_REASONS.get(reason, NO_REPORT_REASONS[0]) + "."


# what the web app reads (gen_schema.py)
TABLE: dict[str, Any] = {
    "refusalCodes": list(REFUSAL_CODES), "refused": REFUSED, "atLimit": AT_LIMIT, "fault": FAULT,
    "capturePrefix": CAPTURE_PREFIX, "capture": CAPTURE, "captureAdvice": CAPTURE_ADVICE,
    "noReport": NO_REPORT, "noReportReasons": {str(k): v for k, v in NO_REPORT_REASONS.items()},
    "noReportCapability": NO_REPORT_CAPABILITY, "button": BUTTON,
    "alreadyEnded": ALREADY_ENDED,
}
