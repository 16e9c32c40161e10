"""Visits that ended with no report, remembered for the clinician who started them (``DeviceInfo.ended_without_report``).

A phone waits for the report of every visit it started; when the device ends a visit without one (the report could
not be built, capture failed before any speech, nowhere left to keep it, a start undone) nothing would ever arrive and
the phone would wait for the outbox's whole retention. The device says so instead, to that clinician only. Memory
only, a few per clinician and a bounded number of clinicians: a restart forgets them (the phone then waits as before).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass

# reasons, as the wire's NoReportReason numbers them (edge_agent.proto agent.proto)
FAULT, CAPTURE_FAILED, STORAGE_FULL, DISCARDED = 1, 2, 3, 4
PER_CLINICIAN = 8
CLINICIANS = 256


@dataclass(frozen=True)
class NoReport:
    visit_id: str
    reason: int
    ended_unix_s: int


class NoReports:
    def __init__(self, per_clinician: int = PER_CLINICIAN, clinicians: int = CLINICIANS) -> None:
        self._by: OrderedDict[str, deque[NoReport]] = OrderedDict()
        self._per = per_clinician
        self._max = clinicians
        self._count = 0
        self.generation: dict[str, int] = {}  # changes per clinician at each entry: open feedback streams end on it

    def add(self, clinician: str, visit_id: str, reason: int) -> None:
        entries = self._by.pop(clinician, None) or deque(maxlen=self._per)
        entries.append(NoReport(visit_id, reason, int(time.time())))
        self._by[clinician] = entries
        while len(self._by) > self._max:
            gone, _ = self._by.popitem(last=False)
            self.generation.pop(gone, None)
        self._count += 1
        self.generation[clinician] = self._count

    def of(self, clinician: str) -> list[NoReport]:
        return list(self._by.get(clinician, ()))

    def reason(self, clinician: str, visit_id: str) -> int | None:
        return next((e.reason for e in self._by.get(clinician, ()) if e.visit_id == visit_id), None)
