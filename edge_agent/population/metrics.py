"""The metrics a contribution record carries, their coarse buckets, and what the aggregator releases.

Buckets are fixed here and shared by device and aggregator: a record holds the
*lower edge* of a bucket, never a raw value, and the aggregator rejects any
number that is not one of the edges (so a device cannot smuggle a precise
value, or an identifier, through a numeric field).

Released statistic per metric (cell = service line x period x metric):

* timing metrics: the mean over clinicians of each clinician's mean bucket
  value (bucket midpoint; the open top bucket counts as its lower edge);
* label metrics: the mean over clinicians of each clinician's share of visits
  in which the behaviour occurred at least once ("agenda solicited in 35 % of
  visits", weighting every clinician equally).

Each clinician contributes one value in ``[lo, hi]`` per cell, which is what
bounds the sensitivity of the DP release (unit of privacy = one clinician in
one period).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from edge_agent.behaviours.reliability import SHOWN as SHOWN_LABELS

TIMING, LABEL = "timing", "label"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # TIMING or LABEL
    edges: tuple[float, ...]  # bucket lower edges, ascending, first = 0
    top: float  # upper end of the last bucket for display/midpoint (>= last edge)
    unit: str
    top_open: bool  # last bucket is "edge or more"

    def bucket(self, value: float) -> float:
        """Lower edge of the bucket holding ``value`` (negative values count as 0)."""
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{self.name} is not a finite number")
        i = bisect.bisect_right(self.edges, max(0.0, value)) - 1
        return self.edges[max(i, 0)]

    def representative(self, edge: float) -> float:
        """Numeric value of a bucket for averaging."""
        i = self.edges.index(edge)
        if self.kind == LABEL:
            return 0.0 if edge == 0 else 1.0  # presence in the visit
        if i + 1 < len(self.edges):
            hi = self.edges[i + 1] - 1 if self.integer else self.edges[i + 1]  # integer buckets: edge..next-1
            return (edge + hi) / 2
        return edge if self.top_open else (edge + self.top) / 2

    @property
    def bounds(self) -> tuple[float, float]:
        if self.kind == LABEL:
            return 0.0, 1.0
        return 0.0, self.representative(self.edges[-1])

    def label(self, edge: float) -> str:
        """Human text of a bucket, e.g. ``40-50 %`` or ``6 or more``."""
        i = self.edges.index(edge)
        scale, unit = (100.0, " %") if self.unit == "share" else (1.0, f" {self.unit}" if self.unit else "")
        lo = _fmt(edge * scale)
        if i + 1 < len(self.edges):
            hi_edge = self.edges[i + 1] - 1 if self.integer else self.edges[i + 1]
            if hi_edge == edge:
                return f"{lo}{unit}".rstrip()
            return f"{lo}-{_fmt(hi_edge * scale)}{unit}".rstrip()
        if self.top_open:
            return f"{lo}{unit} or more".strip()
        return f"{lo}-{_fmt(self.top * scale)}{unit}".rstrip()

    @property
    def integer(self) -> bool:
        return self.unit == ""

    @property
    def release_unit(self) -> str:
        return "share of visits" if self.kind == LABEL else self.unit


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


_COUNT_EDGES = (0.0, 1.0, 2.0, 3.0, 6.0)

TIMING_METRICS: tuple[Metric, ...] = (
    Metric("opening_uninterrupted_s", TIMING, (0.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0), 120.0, "s", True),
    Metric("talk_share", TIMING, tuple(i / 10 for i in range(10)), 1.0, "share", False),
    Metric("longest_monologue_s", TIMING, (0.0, 15.0, 30.0, 60.0, 120.0, 300.0), 300.0, "s", True),
    Metric("wait_after_question_s", TIMING, (0.0, 0.5, 1.0, 2.0, 4.0), 4.0, "s", True),
    Metric("speech_rate_wpm", TIMING, (0.0, 80.0, 100.0, 120.0, 140.0, 160.0, 180.0, 200.0, 240.0), 240.0, "wpm", True),
)
# only labels coders agree on (edge_agent/behaviours/reliability.py): a population pattern must not rest on an unreliable count
LABEL_METRICS: tuple[Metric, ...] = tuple(Metric(name, LABEL, _COUNT_EDGES, 6.0, "", True) for name in SHOWN_LABELS)
METRICS: dict[str, Metric] = {m.name: m for m in (*TIMING_METRICS, *LABEL_METRICS)}
TIMING_NAMES: tuple[str, ...] = tuple(m.name for m in TIMING_METRICS)
LABEL_NAMES: tuple[str, ...] = tuple(m.name for m in LABEL_METRICS)
ALL_METRIC_NAMES: tuple[str, ...] = (*TIMING_NAMES, *LABEL_NAMES)
