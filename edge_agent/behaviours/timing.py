"""Turn-taking behaviours of one visit, from attributed utterances (DESIGN.md §5).

Works on live pipeline output and on PriMock57 TextGrids alike: the input is a
list of :class:`edge_agent.transcript.Utterance` with speaker "clinician",
"patient" or "other".

Conventions (also in docs/coaching.md):
- A *minimal* utterance is a back-channel or greeting ("mm-hm", "okay",
  "yeah", "hello, how are you?"): it neither takes nor holds the floor.
- The patient *holds the floor* during each of their non-minimal utterances.
- A clinician *take-over* is the onset of a non-minimal clinician utterance.
  A take-over is an *interruption* when it starts while the patient holds the
  floor and more than ``transition_s`` before that patient utterance ends
  (overlaps in the last half second are ordinary turn transitions).
- The *opening* starts with the patient's first non-minimal utterance after the
  clinician's opening solicitation ("how can I help?"; without one, the first
  non-minimal patient utterance) and ends
  at the first clinician take-over; it was interrupted if that take-over was an
  interruption, otherwise the patient yielded at the end of their last
  utterance before it.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field

from edge_agent.behaviours.text import FILLER_WORDS
from edge_agent.transcript import Utterance

CLINICIAN, PATIENT = "clinician", "patient"
TRANSITION_S = 0.5
MAX_MINIMAL_WORDS = 6
_GREETING_WORDS = frozenset(
    {"hello", "hi", "hiya", "hey", "morning", "afternoon", "evening", "thanks", "thank", "you", "how", "are", "nice",
     "meet", "to", "too", "doctor", "dr", "i'm", "not", "bad", "bye", "cheers", "there", "it", "is", "that's", "that"}
)
_WORD = re.compile(r"[a-z][a-z'-]*")
# The clinician's opening solicitation; the opening statement is the answer to it.
# Before it come greetings, audio checks and identity checks, which are not the opening.
_SOLICITATION = re.compile(
    r"how (?:can|may) (?:i|we) help|what can (?:i|we) do for you|what (?:has )?brought you|what brings you|"
    r"what(?:'s| has| is) been (?:going on|happening)|what seems to be|what(?:'s| is) the (?:problem|matter)|"
    r"how are things|what would you like to (?:talk|discuss)|tell me (?:what|about what|a bit about what)",
    re.IGNORECASE,
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
    kind: str  # opening_start | opening_interrupted | opening_yielded | interruption | longest_monologue | longest_wait
    at_s: float
    detail: str = ""
    utterance_index: int = -1  # index into the input list (clinician utterance for take-overs)


@dataclass
class TimingMetrics:
    opening_uninterrupted_s: float | None  # None: the patient never took the floor
    opening_interrupted: bool
    interruptions: int
    talk_share: float | None  # clinician / all speaking time; None without speech
    longest_monologue_s: float
    wait_after_question_s: list[float] = field(default_factory=list)
    speech_rate_wpm: float | None = None
    events: list[TimingEvent] = field(default_factory=list)

    @property
    def wait_after_question_median_s(self) -> float | None:
        return statistics.median(self.wait_after_question_s) if self.wait_after_question_s else None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["wait_after_question_median_s"] = self.wait_after_question_median_s
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


def compute_timing(utterances: list[Utterance], transition_s: float = TRANSITION_S) -> TimingMetrics:
    order = sorted(range(len(utterances)), key=lambda i: (utterances[i].t0, utterances[i].t1))
    utts = [utterances[i] for i in order]
    minimal = [is_minimal(u.text) for u in utts]
    floors = [(u.t0, u.t1) for u, m in zip(utts, minimal) if u.speaker == PATIENT and not m]
    events: list[TimingEvent] = []

    def holding(at: float) -> tuple[float, float] | None:
        for a, b in floors:
            if a < at < b - transition_s:
                return (a, b)
        return None

    takeovers = [k for k, (u, m) in enumerate(zip(utts, minimal)) if u.speaker == CLINICIAN and not m]

    # Interruptions.
    n_int = 0
    for k in takeovers:
        if holding(utts[k].t0) is not None:
            n_int += 1
            events.append(TimingEvent("interruption", utts[k].t0, "clinician started while the patient held the floor", order[k]))

    # Opening statement.
    opening_s: float | None = None
    opening_interrupted = False
    solicit = next((u for u in utts if u.speaker == CLINICIAN and _SOLICITATION.search(u.text)), None)
    opening_floors = floors if solicit is None else [f for f in floors if f[0] >= solicit.t1 - transition_s]
    if opening_floors:
        start = opening_floors[0][0]
        events.append(TimingEvent("opening_start", start, "patient's first statement"))
        after = [k for k in takeovers if utts[k].t0 > start]
        if after:
            k = after[0]
            at = utts[k].t0
            if holding(at) is not None:
                opening_interrupted = True
                opening_s = at - start
                events.append(TimingEvent("opening_interrupted", at, "opening statement taken over", order[k]))
            else:
                yielded = max(b for a, b in floors if a < at)
                opening_s = max(0.0, yielded - start)
                events.append(TimingEvent("opening_yielded", yielded, "patient finished the opening statement"))
        else:
            opening_s = max(b for _, b in floors) - start
            events.append(TimingEvent("opening_yielded", start + opening_s, "patient finished the opening statement"))

    # Talk share over the union of each side's speech.
    clin = _union_length([(u.t0, u.t1) for u in utts if u.speaker == CLINICIAN])
    others = _union_length([(u.t0, u.t1) for u in utts if u.speaker != CLINICIAN and u.speaker in (PATIENT, "other")])
    share = clin / (clin + others) if clin + others > 0 else None

    # Longest clinician stretch with no patient turn starting inside it.
    longest, longest_at, best_k = 0.0, 0.0, -1
    s_start: float | None = None
    s_end = 0.0
    s_first = -1
    patient_onsets = [a for a, _ in floors]
    for k, u in enumerate(utts):
        if u.speaker != CLINICIAN:
            continue
        if s_start is None or any(s_start < p <= u.t0 for p in patient_onsets):
            s_start, s_end, s_first = u.t0, u.t1, k
        else:
            s_end = max(s_end, u.t1)
        if s_end - s_start > longest:
            longest, longest_at, best_k = s_end - s_start, s_start, s_first
    if best_k >= 0:
        events.append(TimingEvent("longest_monologue", longest_at, f"{longest:.0f} s without a patient turn", order[best_k]))

    # Wait after a clinician question: silence until the patient's answer.
    waits: list[float] = []
    wait_at: list[tuple[float, float, int]] = []
    clin_idx = [k for k, u in enumerate(utts) if u.speaker == CLINICIAN]
    for pos, k in enumerate(clin_idx):
        q = utts[k]
        if not is_question(q.text):
            continue
        next_clin = next((utts[j].t0 for j in clin_idx[pos + 1:] if utts[j].t0 > q.t0 and not minimal[j]), float("inf"))
        answer = next((u for u in utts if u.speaker == PATIENT and u.t0 >= q.t0 and u.t1 > q.t1), None)
        if answer is None or answer.t0 >= next_clin:
            continue  # the clinician went on: no answer to time
        w = max(0.0, answer.t0 - q.t1)
        waits.append(w)
        wait_at.append((w, q.t1, order[k]))
    if wait_at:
        w, at, idx = max(wait_at)
        events.append(TimingEvent("longest_wait", at, f"{w:.1f} s before the patient answered", idx))

    n_words = sum(_word_count(u) for u in utts if u.speaker == CLINICIAN)
    wpm = n_words / (clin / 60.0) if clin > 0 else None
    events.sort(key=lambda e: e.at_s)
    return TimingMetrics(opening_s, opening_interrupted, n_int, share, longest, waits, wpm, events)
