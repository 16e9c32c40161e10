"""Device side of the population signal: one de-identified record per visit.

Called by the visit lifecycle at stop with the clinician's pseudonymous
certificate id and the coaching report; queues the sealed record in the same
outbox and returns its readable text, which travels inside the clinician's
own sealed report (so they see exactly what their visit contributed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from edge_agent.device.outbox import Outbox
from edge_agent.population.metrics import TIMING_NAMES
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.record import contribute_at_stop, render_contribution
from edge_agent.proto.edge_agent.v1 import feedback_pb2


@dataclass
class PopulationContributor:
    keyring: PeriodKeyRing
    aggregator_public_key: bytes
    service_line: str

    @classmethod
    def from_files(cls, period_key: Path, aggregator_public_key: Path, service_line: str) -> "PopulationContributor":
        ring = PeriodKeyRing.load(period_key)
        ring.advance(dt.date.today())
        return cls(ring, Path(aggregator_public_key).read_bytes(), service_line)

    def __call__(self, outbox: Outbox, clinician_cert_id: str, feedback: feedback_pb2.Feedback) -> str:
        today = dt.date.today()
        self.keyring.advance(today)  # a finished period's key is erased before anything else
        record = contribute_at_stop(
            outbox,
            self.keyring,
            self.aggregator_public_key,
            timing=population_timing(feedback),
            label_counts=dict(feedback.label_counts),
            service_line=self.service_line,
            visit_date=today,
            clinician_cert_id=clinician_cert_id,
        )
        return render_contribution(record)


def population_timing(feedback: feedback_pb2.Feedback) -> dict[str, float]:
    """The report's timing metrics under the population's names (the median wait stands for the list)."""
    timing = dict(feedback.timing)
    if "wait_after_question_median_s" in timing:
        timing["wait_after_question_s"] = timing.pop("wait_after_question_median_s")
    return {name: value for name, value in timing.items() if name in TIMING_NAMES}
