"""Turn-taking behaviours of one visit, from attributed utterances (docs/design.md §5).

Works on live pipeline output and on PriMock57 TextGrids alike: the input is a list of
:class:`edge_agent.transcript.Utterance` with speaker "clinician", "patient" or "other".
The metrics are read off the conversation events of :mod:`edge_agent.behaviours.events`
(each judged with the surrounding turns; definitions in docs/coaching.md):

- ``opening_uninterrupted_s``: the patient's opening statement, from its first words
  to the moment the patient finished or the clinician redirected (Beckman & Frankel
  1984; Marvel et al. 1999); ``opening_redirected`` says which.
- ``interruptions``: floor-taking interruptions only (not back-channels, empathy tokens,
  repairs or turn-end overlaps; Mulder-Vos et al. 2023).
- ``talk_share``: clinician speaking time / all speaking time.
- ``longest_monologue_s``: the longest clinician stretch with no patient turn (any
  answer, even "No.", is a turn; a back-channel is not).
- ``wait_after_question_s``: wait time 1 (Rowe 1986), the patient's latency after each
  clinician question; 0 when the clinician went on or answered it.
- ``pause_after_answer_s``: wait time 2, the clinician's pause after the patient's answer.
- ``stacked_questions``: clinician runs of two or more questions before the patient
  could answer.
- ``speech_rate_wpm``: clinician words per minute of clinician speaking time.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from edge_agent.behaviours.conversation import clean_utterances, has_finite_times
from edge_agent.behaviours.text import FILLER_WORDS
from edge_agent.transcript import Utterance

if TYPE_CHECKING:
    from edge_agent.behaviours.events import VisitEvents

CLINICIAN, PATIENT = "clinician", "patient"
MAX_MINIMAL_WORDS = 6
_GREETING_WORDS = frozenset(
    {"hello", "hi", "hiya", "hey", "morning", "afternoon", "evening", "thanks", "thank", "you", "how", "are", "nice",
     "meet", "to", "too", "doctor", "dr", "i'm", "not", "bad", "bye", "cheers", "there", "it", "is", "that's", "that"}
)
_WORD = re.compile(r"[a-z][a-z'-]*")

# Timing event kinds: a fixed vocabulary (the phone's timeline marks, feedback/proto.py).
EVENT_KINDS = (
    "opening_start", "opening_redirected", "opening_finished", "interruption", "monologue", "longest_monologue",
    "longest_wait", "stacked_questions",
)


def is_minimal(text: str) -> bool:
    """Back-channel or greeting: short and made only of such words."""
    ws = _WORD.findall(text.lower())
    if len(ws) > MAX_MINIMAL_WORDS:
        return False
    return all(w.strip("-'") in FILLER_WORDS or w in FILLER_WORDS or w in _GREETING_WORDS for w in ws)


def is_question(text: str) -> bool:
    """The utterance ends with a question (the floor is handed to the patient)."""
    return text.rstrip().endswith("?")


@dataclass(frozen=True)
class TimingEvent:
    kind: str  # one of EVENT_KINDS
    at_s: float
    detail: str = ""
    utterance_index: int = -1  # index into the input list (the clinician utterance for take-overs)


@dataclass
class TimingMetrics:
    opening_uninterrupted_s: float | None  # None: the patient never gave an opening statement
    opening_redirected: bool
    interruptions: int
    talk_share: float | None  # clinician / all speaking time; None without speech
    longest_monologue_s: float
    wait_after_question_s: list[float] = field(default_factory=list)
    speech_rate_wpm: float | None = None
    events: list[TimingEvent] = field(default_factory=list)
    pause_after_answer_s: list[float] = field(default_factory=list)
    stacked_questions: int = 0

    @property
    def opening_interrupted(self) -> bool:  # the name before the literature's "redirected" (kept for callers)
        return self.opening_redirected

    @property
    def wait_after_question_median_s(self) -> float | None:
        return statistics.median(self.wait_after_question_s) if self.wait_after_question_s else None

    @property
    def pause_after_answer_median_s(self) -> float | None:
        return statistics.median(self.pause_after_answer_s) if self.pause_after_answer_s else None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["wait_after_question_median_s"] = self.wait_after_question_median_s
        d["pause_after_answer_median_s"] = self.pause_after_answer_median_s
        return d


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _word_count(u: Utterance) -> int:
    return len(u.words) if u.words else len(_WORD.findall(u.text.lower()))


def compute_timing(utterances: list[Utterance], events: "VisitEvents | None" = None) -> TimingMetrics:
    """The visit's timing metrics and marks. ``events``: already detected (else detected here, without labels)."""
    from edge_agent.behaviours.events import detect_events

    # live transcripts: utterances with non-finite times are left out, the rest made sane
    # (conversation.clean_utterances), and marks still point at the caller's indices
    kept = [i for i, u in enumerate(utterances) if has_finite_times(u)]
    cleaned = clean_utterances([utterances[i] for i in kept])
    local = sorted(range(len(cleaned)), key=lambda j: (cleaned[j].t0, cleaned[j].t1))
    order = [kept[j] for j in local]
    utts = [cleaned[j] for j in local]
    ev = events if events is not None else detect_events(utts)
    out: list[TimingEvent] = []

    stmt = ev.opening_statement
    opening_s: float | None = None
    redirected = False
    if stmt is not None:
        opening_s = round(stmt.duration, 3)
        out.append(TimingEvent("opening_start", stmt.start, "patient's opening statement", order[stmt.start_turn]))
        if stmt.outcome == "redirected":
            redirected = True
            k = stmt.redirect_turn if stmt.redirect_turn is not None else stmt.end_turn
            out.append(TimingEvent("opening_redirected", stmt.end, "the clinician redirected before the patient finished", order[k]))
        else:
            out.append(TimingEvent("opening_finished", stmt.end, "the patient finished the opening statement", order[stmt.end_turn]))
    for o in ev.interruptions:
        out.append(TimingEvent("interruption", o.time, "the clinician took the floor mid-sentence", order[o.turn]))

    clin = _union_length([(u.t0, u.t1) for u in utts if u.speaker == CLINICIAN])
    others = _union_length([(u.t0, u.t1) for u in utts if u.speaker != CLINICIAN and u.speaker in (PATIENT, "other")])
    share = clin / (clin + others) if clin + others > 0 else None

    longest = max(ev.stretches, key=lambda m: m.duration, default=None)
    for m in ev.monologues:
        out.append(TimingEvent("monologue", m.start, f"{m.duration:.0f} s without a patient turn", order[m.start_turn]))
    if longest is not None:
        out.append(TimingEvent("longest_monologue", longest.start, f"{longest.duration:.0f} s without a patient turn", order[longest.start_turn]))
    waits = [w.seconds for w in ev.waits]
    answered = [w for w in ev.waits if w.how == "answered"]
    if answered:
        w = max(answered, key=lambda x: x.seconds)
        out.append(TimingEvent("longest_wait", w.at, f"{w.seconds:.1f} s before the patient answered", order[w.turn]))
    for s in ev.stacked_questions:
        out.append(TimingEvent("stacked_questions", s.time, f"{len(s.questions)} questions before an answer", order[s.turn]))

    n_words = sum(_word_count(u) for u in utts if u.speaker == CLINICIAN)
    wpm = n_words / (clin / 60.0) if clin > 0 else None
    out.sort(key=lambda e: e.at_s)
    return TimingMetrics(
        opening_uninterrupted_s=opening_s,
        opening_redirected=redirected,
        interruptions=len(ev.interruptions),
        talk_share=share,
        longest_monologue_s=round(longest.duration, 3) if longest is not None else 0.0,
        wait_after_question_s=waits,
        speech_rate_wpm=wpm,
        events=out,
        pause_after_answer_s=[p.seconds for p in ev.pauses],
        stacked_questions=len(ev.stacked_questions),
    )
