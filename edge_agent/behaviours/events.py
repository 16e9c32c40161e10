"""Events of one visit, computed from the conversation (the turns around each moment).

The events mirror the adjudicated event gold (docs/gold-events.md, files
``tools/gold/gold/events/*.json``) so that every detector can be measured against it
(``edge-agent bench coaching``), and the coaching observations are built from them
(``edge_agent.feedback.observations``). Definitions, one line each, are in
docs/coaching.md; the published sources are Beckman & Frankel 1984 and Marvel et al.
1999 (opening statement and redirection), Mulder-Vos et al. 2023 (floor-taking
interruptions vs back-channels and turn-end overlaps), Rowe 1986 (wait times 1 and 2),
Heritage et al. 2007 (agenda wording), Silverman, Kurtz & Draper 2013 (ICE,
chunk-and-check, safety-netting, multiple questions), Schillinger et al. 2003
(teach-back), Levinson et al. 2000 (patient cues) and Castro et al. 2007 (jargon).

Turn indices are positions in the visit's utterances sorted by start time (the same
indices as the gold's ``tNNN``).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from edge_agent.behaviours.conversation import (
    CLINICIAN,
    PATIENT,
    WINDOW,
    Sentence,
    Turn,
    asks_question,
    build_turns,
    ends_open,
    is_backchannel_text,
    is_confirmation,
    is_social,
    overlapping_patient_turn,
    sentence_act,
    tokens,
)
from edge_agent.behaviours.floor import FloorParams, holds_floor
from edge_agent.behaviours.functions import SentenceFunctions, anything_wording, ice_components
from edge_agent.transcript import Utterance

if TYPE_CHECKING:
    from edge_agent.behaviours.jargon import JargonDetector

# A clinician turn that starts this soon after a patient turn ending on an open trailer
# takes a floor the patient still held (a "silent" interruption; protocol gap 3).
SILENT_FLOOR_S = 1.7
# An interruption takes the floor: the patient stops "within about one second" (docs/gold-events.md §2(c) rule 4);
# 2 s allows for the silence a transcribed segment keeps at its end.
PATIENT_STOPS_S = 2.0
# Rule 5 (attempted interruption): the patient "goes on with new content for more than about one second" and the clinician stops.
KEEPS_FLOOR_S = 1.0
# The interruption detector's three numbers, chosen by leave-one-visit-out CV on the development half
# (python3 -m tools.bench.interruption_cv; docs/coaching.md "Interruptions").
FLOOR = FloorParams()
MONOLOGUE_REPORT_S = 60.0
STACK_SILENCE_S = 1.0  # consecutive clinician turns closer than this are one stretch of speech
STACK_BREAK_S = 0.5  # a patient turn starting this soon after the next question answered the first

_NON_FLOOR_ACTS = ("backchannel", "empathy", "social", "fragment", "continuer")


@dataclass
class OpeningQuestion:
    turn: int
    start: float
    end: float
    text: str
    notes_led: bool
    notes_text: str = ""  # the sentence that refers to the booking notes (quoted by the notes-led observation)


@dataclass
class OpeningStatement:
    start_turn: int
    start: float
    outcome: str  # finished | redirected
    end: float
    end_turn: int
    redirect_turn: int | None = None
    overlap: bool | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class Overlap:
    turn: int  # clinician turn
    time: float
    patient_turn: int
    kind: str  # interruption | attempted_interruption | backchannel | repair | turn_end_overlap
    overlap: bool  # False: a silent interruption (the clinician took a floor the patient held in a pause)


@dataclass
class Monologue:
    start_turn: int
    end_turn: int
    start: float
    end: float
    duration: float
    ended_by_turn: int | None


@dataclass
class Utterance_:  # noqa: N801  (a gold "utterance event"; the transcript's Utterance is another thing)
    turn: int
    time: float
    text: str
    sentence: int = 0
    components: tuple[str, ...] = ()  # ICE: idea / concern / expectation
    wording: str = ""  # agenda: some / any / other


@dataclass
class StackedQuestion:
    turn: int
    turns: list[int]
    time: float
    questions: list[str]
    kind: str  # different | menu | rephrase


@dataclass
class Wait:
    """Wait time 1 (Rowe 1986): from the end of a clinician question to the patient's answer."""

    turn: int
    at: float  # end of the question
    seconds: float
    how: str  # answered | overlapped | clinician_went_on


@dataclass
class Pause:
    """Wait time 2: the clinician's pause after the patient's answer before speaking."""

    patient_turn: int
    at: float  # end of the patient's answer
    seconds: float
    clinician_turn: int


@dataclass
class JargonUse:
    turn: int
    sentence: int
    time: float
    term: str
    plain: str
    explained: bool
    patient_first: bool

    @property
    def unexplained(self) -> bool:
        return not self.explained and not self.patient_first


@dataclass
class Cue:
    """A patient's worry or emotion put into words (Levinson et al. 2000) and what came next."""

    patient_turn: int
    time: float
    response_turn: int | None
    response: str  # explored | acknowledged | biomedical_question | other
    feeling: str = "worry"  # worry | stress | fear | low mood | coping | serious illness (a category, never the patient's words)


@dataclass
class Flag:
    value: bool
    turn: int | None = None
    time: float | None = None
    text: str | None = None


@dataclass
class PlanSaidBack:
    value: bool
    turns: list[int] = field(default_factory=list)
    time: float | None = None
    prompted_by_teach_back: bool | None = None


@dataclass
class VisitEvents:
    turns: list[Turn]
    opening_question: OpeningQuestion | None = None
    opening_statement: OpeningStatement | None = None
    overlaps: list[Overlap] = field(default_factory=list)
    stretches: list[Monologue] = field(default_factory=list)  # every clinician stretch (monologues: > 60 s)
    ice_questions: list[Utterance_] = field(default_factory=list)
    teach_back_requests: list[Utterance_] = field(default_factory=list)
    safety_netting: list[Utterance_] = field(default_factory=list)
    agenda_questions: list[Utterance_] = field(default_factory=list)
    reassurance: list[Utterance_] = field(default_factory=list)
    plan_sentences: list[Utterance_] = field(default_factory=list)
    plan_start_turn: int | None = None  # where the clinician starts giving the plan
    stacked_questions: list[StackedQuestion] = field(default_factory=list)
    waits: list[Wait] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    jargon: list[JargonUse] = field(default_factory=list)
    cues: list[Cue] = field(default_factory=list)
    emergency_escalation: Flag = field(default_factory=lambda: Flag(False))
    plan_said_back: PlanSaidBack = field(default_factory=lambda: PlanSaidBack(False))
    labels: dict[str, set[str]] = field(default_factory=dict)  # sentence id -> classifier + function labels

    @property
    def interruptions(self) -> list[Overlap]:
        return [o for o in self.overlaps if o.kind == "interruption"]

    @property
    def monologues(self) -> list[Monologue]:
        return [m for m in self.stretches if m.duration > MONOLOGUE_REPORT_S]

    def to_gold(self) -> dict[str, object]:
        """The events in the gold file's shape (docs/gold-events.md §4), for comparison."""
        def utt(u: Utterance_, extra: dict[str, object] | None = None) -> dict[str, object]:
            return {"turn": u.turn, "time": round(u.time, 2), "text": u.text, **(extra or {})}

        oq = self.opening_question
        os_ = self.opening_statement
        return {
            "schema": "edge-agent/gold-events/1",
            "annotator": "edge-agent",
            "opening_question": None if oq is None else {**asdict(oq), "start": round(oq.start, 2), "end": round(oq.end, 2)},
            "opening_statement": None if os_ is None else {**asdict(os_), "note": ""},
            "overlaps": [{**asdict(o), "time": round(o.time, 2), "note": ""} for o in self.overlaps],
            "monologues": [asdict(m) for m in self.monologues],
            "ice_questions": [utt(u, {"components": list(u.components)}) for u in self.ice_questions],
            "teach_back_requests": [utt(u) for u in self.teach_back_requests],
            "safety_netting": [utt(u) for u in self.safety_netting],
            "agenda_questions": [utt(u, {"wording": u.wording}) for u in self.agenda_questions],
            "stacked_questions": [asdict(s) for s in self.stacked_questions],
            "emergency_escalation": asdict(self.emergency_escalation),
            "plan_said_back": asdict(self.plan_said_back),
            "notes": "",
        }


# ---- opening -------------------------------------------------------------------------------

_OPENING = re.compile(
    r"\bhow (?:can|may|could|might) (?:i|we) (?:help|be of help)|\bwhat (?:can|could|shall) (?:i|we) do for you\b|"
    r"\bwhat (?:has |'s )?(?:brings?|brought) you\b|\bwhat(?:'s| has| is) been (?:going on|happening|the matter)\b|"
    r"\bwhat(?:'s| is) (?:the problem|the matter|going on|up)\b|\bwhat seems to be\b|\btell me (?:what|about what|a (?:bit|little) "
    r"(?:more )?about what|what the problem is|what'?s)\b|\bwhat would you like to (?:talk|discuss|speak)\b|\bwhy (?:have|did) you "
    r"(?:come|called|booked|call|book|contact)|\bwhat (?:made|prompted) you\b|\bwhat(?:'s| is) (?:brought|bringing) you\b|"
    r"\bhow (?:are|have) (?:things|you been)\b.{0,20}\?|\bwhat (?:are|were) you (?:hoping|wanting) to (?:talk|discuss)\b"
)
_NOTES = re.compile(
    r"\b(?:notes?|booking|form|questionnaire|triage|records?|the system|the screen|e-?consult|online)\b|\bit says\b|\bi(?:'ve| have) "
    r"(?:got|had) a (?:note|message)\b|\bi can see (?:that )?(?:you|here|on)\b|\bi understand (?:that )?you(?:'ve| have| are|'re)\b|"
    r"\byou(?:'ve| have)? (?:booked|put|written|wrote|typed|filled|submitted|told us|told the|reported)\b"
)
_MENTIONED = re.compile(r"\byou(?:'ve| have)? (?:mentioned|said|been saying|described|told)\b")
_TELL_MORE = re.compile(r"\b(?:tell|talk) (?:me )?(?:a (?:little |tiny )?(?:bit )?|a little )?more\b|\btell me about\b|\bdescribe\b")


def _patient_content_before(turns: Sequence[Turn], k: int) -> bool:
    """Has the patient already said something about a problem before turn ``k``?"""
    for t in turns[:k]:
        if t.patient and t.act == "content" and len(tokens(t.text)) >= 6 and not asks_question(t.text):
            asked = next((c for c in reversed(turns[: t.index]) if c.clinician and c.t0 <= t.t0), None)
            if asked is not None and (asked.act == "admin" or (asked.sentences and sentence_act(asked.sentences[-1].text) == "admin")):
                continue  # an ID answer ("Jack Smith, thirty first October nineteen ninety"): protocol §2(b) skips it
            if not re.search(r"\b(?:my name|date of birth|born|years old|i'?m \w+ (?:years|yrs)|hear you|see you|i'?m fine|i'?m good|"
                             r"i'?m ok|i'?m well|not bad|e-?mail|address|postcode|dot com|live (?:at|on|in))\b", t.text.lower()):
                return True
    return False


# A second-person statement of a complaint ("You've been having some difficulty breathing.", "You said you're a bit
# short of breath.") said before the patient has described any problem can only come from the booking notes: the
# protocol codes such a turn notes-led even when an open invitation precedes it (docs/gold-events.md §2(a); Marvel
# et al. 1999 count an opening that names a specific concern as narrowing the agenda before the patient speaks).
_PROBLEM_STATED = re.compile(r"\byou(?:'ve| have)? (?:been )?(?:having|had|got|suffering|experiencing|noticed|feeling)\b|"
                             r"\byou(?:'re| are) (?:having|feeling|suffering|experiencing|a (?:bit|little))\b")
_CHECK_AFTER = re.compile(r"(?:is|was) (?:that|this|it) (?:right|correct|true)|(?:that'?s|am i) (?:right|correct)|\b(?:right|correct|yeah|yes)$")
_ID_WORDS = re.compile(r"\b(?:name|date of birth|born|address|e-?mail|postcode|years old|age)\b")
_FUNCTION_WORDS = frozenset("""you you're you've your yours that this there they them then than been being have having has had
    said saying told mentioned described about some with just like also still really quite little bit what when well okay yeah
    right sure good great lovely fine thanks thank today here into from were will would could should does doing mean feel
    feeling felt getting going problem problems issue issues things something""".split())


def _echoes_patient(turns: Sequence[Turn], k: int, low: str) -> bool:
    """Does a "you mentioned / you said" sentence at turn ``k`` repeat words the patient said earlier in this visit?

    Then it recaps this conversation (an ID answer, a complaint put in reply to "how are you?"), not the booking notes,
    and it is not itself the opening question: the invitation that follows is (docs/gold-events.md §2(a))."""
    mine = {w for w in low.split() if len(w) >= 4 and w not in _FUNCTION_WORDS}
    theirs = {w for t in turns[:k] if t.patient for w in tokens(t.text)}
    return bool(mine & theirs)


def _notes_sentence(turns: Sequence[Turn], t: Turn, i: int, before: bool) -> bool:
    """Sentence ``i`` of clinician turn ``t`` refers to the booking notes (names them, or states a complaint the
    patient has not yet described: reported "you've been saying…", or "you've been having…" with a check)."""
    low = " ".join(tokens(t.sentences[i].text))
    if _NOTES.search(low):
        return True
    if before or _ID_WORDS.search(low) or _echoes_patient(turns, t.index, low):
        return False
    if _MENTIONED.search(low):
        return True
    rest = " ".join(" ".join(tokens(x.text)) for x in t.sentences[i : i + 2])
    return bool(_PROBLEM_STATED.search(low)) and bool(_CHECK_AFTER.search(rest))


# The opening solicitation is the clinician's invitation at the start of the visit (Beckman & Frankel 1984; Marvel et al.
# 1999): once the patient has described their problem for this long without one, they opened on their own, and a
# sentence found later ("it says here…", "you mentioned…" minutes in) is not an opening question or a notes-led opening.
_PATIENT_OPENED_S = 30.0


def _opening_candidate(turns: Sequence[Turn], start: int) -> tuple[int, Sentence, bool, str] | None:
    """The first clinician sentence from ``start`` that invites the reason for the visit, whether the turn refers to the
    booking notes, and the sentence that does (a notes-led opening is quoted by it)."""
    told = 0.0  # seconds the patient has spent describing a problem before turn t
    for t in turns[start:]:
        if t.patient and t.act == "content":
            told += t.t1 - t.t0
        if told >= _PATIENT_OPENED_S:
            return None  # the patient opened on their own: a later "it says…" or invitation is not the opening question
        if not t.clinician or t.act in ("admin", "social", "backchannel", "repair", "empathy", "fragment"):
            continue
        before = _patient_content_before(turns, t.index)
        notes_at = [i for i in range(len(t.sentences)) if _notes_sentence(turns, t, i, before)]
        for i, s in enumerate(t.sentences):
            low = " ".join(tokens(s.text))
            # a recap of what the patient said in this visit ("you're forty years old, you said, yeah?", "you mentioned that
            # you are wheezy" after "I'm feeling a bit wheezy") is neither the notes nor the opening question
            mentioned = bool(_MENTIONED.search(low)) and not _ID_WORDS.search(low) and not _echoes_patient(turns, t.index, low)
            if _OPENING.search(low) or i in notes_at or mentioned:
                later = [j for j in notes_at if j >= i]
                return t.index, s, bool(later), t.sentences[later[0]].text if later else ""
            if _TELL_MORE.search(low) and t.index > 0 and s.question:
                return t.index, s, False, ""
    return None


def detect_opening(turns: Sequence[Turn]) -> tuple[OpeningQuestion | None, OpeningStatement | None, list[Overlap]]:
    """Opening question, the opening statement and how it ended (Beckman & Frankel; Marvel et al.)."""
    oq: OpeningQuestion | None = None
    k0 = 0
    for _ in range(4):  # the question, then repeats after a repair ("Sorry, say that again?")
        cand = _opening_candidate(turns, k0)
        if cand is None:
            break
        k, s, notes, notes_text = cand
        text = s.text
        t = turns[k]
        oq = OpeningQuestion(k, t.t0, t.t1, text, notes, notes_text)
        nxt = next((x for x in turns[k + 1 :] if x.patient and x.t0 >= t.t0), None)
        if nxt is not None and nxt.act == "repair":
            k0 = nxt.index + 1
            continue
        break
    first = oq.turn + 1 if oq is not None else 0
    start_turn: Turn | None = None
    for t in turns[first:]:
        if not t.patient:
            continue
        if oq is not None and t.t0 < turns[oq.turn].t0:
            continue
        if t.act in ("backchannel", "repair") or is_social(t.text) or is_confirmation(t.text):
            continue
        if asks_question(t.text) and len(tokens(t.text)) <= 8:
            continue
        start_turn = t
        break
    if start_turn is None:
        return oq, None, []
    end = start_turn.t1
    end_turn = start_turn
    for t in turns[start_turn.index + 1 :]:
        if t.patient:
            if t.act == "content" or t.act == "backchannel":
                if t.t1 > end:
                    end, end_turn = t.t1, t
            continue
        if t.act in _NON_FLOOR_ACTS or t.act in ("repair", "admin"):
            continue
        # a substantive clinician turn: did the patient still hold the floor?
        kind, p, overlapped = _classify(turns, t)
        if kind == "interruption" and p is not None and p.index >= start_turn.index:
            stmt = OpeningStatement(start_turn.index, start_turn.t0, "redirected", t.t0, p.index, t.index, overlapped)
            return oq, stmt, []
        if kind == "attempted_interruption":
            continue
        stmt = OpeningStatement(start_turn.index, start_turn.t0, "finished", end, end_turn.index)
        return oq, stmt, []
    return oq, OpeningStatement(start_turn.index, start_turn.t0, "finished", end, end_turn.index), []


# ---- overlaps ------------------------------------------------------------------------------


def _classify(turns: Sequence[Turn], c: Turn, floor: FloorParams | None = None) -> tuple[str | None, Turn | None, bool]:
    """(kind, patient turn, overlap) for clinician turn ``c``; kind None: not an overlap.

    ``floor`` None: the opening statement's reading (the last-word lists of ``ends_open`` and
    ``SILENT_FLOOR_S`` / ``PATIENT_STOPS_S``). With ``floor``: the interruption detector's
    reading, whose incomplete endings are grammatical word classes and whose three numbers
    were chosen by leave-one-visit-out CV (edge_agent/behaviours/floor.py).

    docs/gold-events.md §2(c), after Mulder-Vos et al. 2023: back-channels, empathy
    tokens, echoes, continuers and fragments are back-channels; repairs are repairs; a
    substantive turn over the end of a complete patient sentence is a turn-end overlap;
    a substantive turn taking a floor the patient still held (an open trailer, a
    cut-off, a clause stopped at its auxiliary) after which the patient stops is an
    interruption (rule 4); if the patient talks on well past the onset, or for more than
    about a second while the clinician stops first, or takes the floor straight back, it
    was only attempted (rule 5). Thresholds: cross-validated inside the development half
    (``python3 -m tools.bench.interruption_cv``; docs/coaching.md §4).
    """
    if floor is None:
        holds, silent_s, stops_s = ends_open, SILENT_FLOOR_S, PATIENT_STOPS_S
    else:
        def holds(text: str) -> bool:
            return holds_floor(text, floor.level)
        silent_s, stops_s = floor.silent_s, floor.stop_s
    p = overlapping_patient_turn(list(turns), c)
    overlapped = True
    if p is None:
        prev = next((t for t in reversed(turns[max(0, c.index - WINDOW) : c.index]) if t.patient), None)
        if prev is None or prev.act != "content" or c.act != "substantive":
            return None, None, False
        between = [t for t in turns[prev.index + 1 : c.index] if t.clinician and t.act not in _NON_FLOOR_ACTS and t.t0 >= prev.t1]
        gap = c.t0 - prev.t1
        if between or not (0.0 <= gap <= silent_s) or not holds(prev.text):
            return None, None, False
        p, overlapped = prev, False
    if c.act in _NON_FLOOR_ACTS:
        return "backchannel", p, overlapped
    if c.act == "repair":
        return "repair", p, overlapped
    if c.act == "admin" or p.act != "content":
        return "turn_end_overlap", p, overlapped
    if not holds(p.text):
        return "turn_end_overlap", p, overlapped
    went_on = p.t1 - c.t0  # how long the patient kept talking after the clinician's onset
    if overlapped and (went_on > stops_s or (c.t1 < p.t1 and went_on > KEEPS_FLOOR_S)):
        # rule 5: the patient went on well past the onset, or went on for more than about a
        # second and the clinician stopped first; a short clinician question over the patient's
        # last half-second, after which the patient stops unfinished, is rule 4 (interruption)
        return "attempted_interruption", p, overlapped
    resumed = next((t for t in turns[c.index + 1 :] if t.patient and t.t0 > p.t1), None)
    if resumed is not None and resumed.act == "content" and resumed.t0 <= c.t0 + 1.0 and resumed.t0 < c.t1:
        return "attempted_interruption", p, overlapped  # the patient took the floor back at once
    return "interruption", p, overlapped


def detect_overlaps(turns: Sequence[Turn], floor: FloorParams = FLOOR) -> list[Overlap]:
    out = []
    for c in turns:
        if not c.clinician:
            continue
        kind, p, overlapped = _classify(turns, c, floor)
        if kind is not None and p is not None:
            out.append(Overlap(c.index, c.t0, p.index, kind, overlapped))
    return out


# ---- monologues ----------------------------------------------------------------------------

_EVALUATION = re.compile(r"\b(?:thank|thanks|cheers|sounds? (?:good|great|fine)|makes? sense|that'?s (?:great|good|fine|helpful|brilliant)|"
                         r"great|brilliant|perfect|lovely|excellent|wonderful|i see|understood|got it|fair enough|oh right)\b")


def _last_clinician_sentence_before(turns: Sequence[Turn], at: float, upto: int) -> Sentence | None:
    best: Sentence | None = None
    for t in turns[max(0, upto - WINDOW) : upto]:
        if not t.clinician or t.t0 >= at:
            continue
        for s in t.sentences:
            if s.t1 <= at + 0.3 and (best is None or s.t1 >= best.t1):
                best = s
    return best


def _answers(turns: Sequence[Turn], p: Turn) -> bool:
    """Does the patient's minimal turn answer the clinician's question or check?

    The clinician's last sentence before it is a question (not a ritual tag on a plan
    statement, labelling §4.1) or a short declarative check, and the clinician has not
    already moved on when the patient speaks.
    """
    s = _last_clinician_sentence_before(turns, p.t0, p.index)
    if s is None:
        return False
    owner = turns[s.turn]
    moved_on = any(x.t0 > s.t1 - 0.05 and x.t0 < p.t0 - 0.5 for t in turns[max(0, p.index - WINDOW) : p.index] if t.clinician
                   for x in t.sentences)
    if moved_on:
        return False
    text = s.text.rstrip()
    if text.endswith("?"):
        return not _RITUAL_TAG.search(text.lower()) or len(tokens(text)) <= 2
    # a short check said as a statement ("socially with work.") answered at once
    return owner.act in ("substantive", "fragment") and len(tokens(text)) <= 5 and 0 <= p.t0 - s.t1 <= 1.5 and s.index == len(owner.sentences) - 1


_ACCEPT_WORDS = frozenset({"that's", "that'd", "thats", "fine", "good", "great", "be", "sounds", "sound", "makes", "sense", "o", "oh", "ohh",
                           "right", "i", "see", "interesting", "brilliant", "thank", "thanks", "you", "lovely", "perfect", "excellent",
                           "wonderful", "yeah", "yes", "ok", "okay", "sure", "alright", "mm", "mm-hmm", "cool", "great", "really", "very",
                           "much", "would", "will", "do", "got", "it", "understood", "understand", "k", "no", "problem"})


def _inside_clinician_turn(turns: Sequence[Turn], p: Turn) -> bool:
    return any(t.clinician and t.t0 < p.t0 and t.t1 > p.t1 for t in turns[max(0, p.index - 6) : p.index])


def ends_stretch(turns: Sequence[Turn], p: Turn) -> bool:
    """A patient turn ends a clinician stretch unless it is a back-channel that answers nothing.

    docs/gold-events.md §2(d) and protocol gap 9: any answer, even "No." or "Yeah.",
    ends it; so do a question, content, a repair, and thanks or an evaluation said as a
    turn of its own; "Mm-hm", "OK", "oh right", "that's fine" said over the clinician's
    continuing speech do not.
    """
    ws = tokens(p.text)
    minimal = p.act == "backchannel" or (len(ws) <= 6 and all(w in _ACCEPT_WORDS for w in ws))
    if not minimal:
        return True
    if p.act == "repair" or _answers(turns, p):
        return True
    if _inside_clinician_turn(turns, p):
        return False
    low = " ".join(ws)
    return bool(_EVALUATION.search(low)) and low not in ("right", "oh right", "ohh right", "ok right", "okay right")


def detect_stretches(turns: Sequence[Turn]) -> list[Monologue]:
    """Every clinician stretch without a patient turn (docs/gold-events.md §2(d))."""
    out: list[Monologue] = []
    first: Turn | None = None
    last_end = 0.0
    last_turn: Turn | None = None
    for t in turns:
        if t.clinician:
            if first is None:
                first, last_end = t, t.t1
            last_end = max(last_end, t.t1)
            last_turn = t
        elif t.patient and first is not None and ends_stretch(turns, t):
            end = min(last_end, t.t0)
            assert last_turn is not None
            out.append(Monologue(first.index, last_turn.index, first.t0, end, round(end - first.t0, 2), t.index))
            first = None
    if first is not None and last_turn is not None:
        out.append(Monologue(first.index, last_turn.index, first.t0, last_end, round(last_end - first.t0, 2), None))
    return out


# ---- questions: wait times and stacks -------------------------------------------------------

_RITUAL_TAG = re.compile(r",? (?:ok|okay|alright|all right)\s*\?$|\b(?:i'?ll|we'?ll|i will|we will|i'?m going|we'?re going|i'?m gonna|let'?s|"
                         r"i'?d like you|you (?:should|need to|can|could))\b[^?]*,\s*(?:yeah|right|ok|okay)\s*\?$")

# A sentence that is only an acknowledgement or continuer ("Right?", "Yeah?", "Mm-hm?"): the gold stacks hold one in 288.
_ACK_ONLY = re.compile(r"(?:(?:right|okay|ok|alright|all right|yeah|yes|yep|mm|mhm|mm-hm|hm|hmm|uh huh|uh-huh|great|oh|ah)\s*)+")


def clinical_question(t: Turn, s: Sentence) -> bool:
    """A question the patient is asked to answer (not an ID/audio check, a repair or a ritual tag)."""
    if not s.question or t.act in ("admin", "repair", "social"):
        return False
    low = s.text.lower().strip()
    if _RITUAL_TAG.search(low):
        return False
    if _ACK_ONLY.fullmatch(" ".join(tokens(low))):
        return False  # "Right?" after an answer: ASR's question mark on an acknowledgement (labelling §4.1), nothing to answer
    if re.fullmatch(r"(?:(?:um|uh|so|and|ok|okay|right)[ ,]*)*(?:do you,? )?(?:can|could|may) i (?:just )?ask(?: you)?(?: (?:a|some|a few|a couple(?: of)?) "
                    r"(?:\w+ )?questions?)?(?: (?:about|on) [^?]*)?\?", " ".join(tokens(low)) + "?"):
        return False  # a preface asking permission to ask is signposting (labelling §4.1)
    from edge_agent.behaviours.conversation import sentence_act

    return sentence_act(s.text) not in ("admin", "repair", "social", "backchannel", "empathy")


def _next_turn_after(turns: Sequence[Turn], k: int, at: float) -> Turn | None:
    """The first turn after index ``k`` that starts at or after ``at`` (clinician turns inside a patient turn count)."""
    for t in turns[k + 1 :]:
        if t.t0 >= at - 1e-9:
            return t
    return None


def detect_waits(turns: Sequence[Turn]) -> list[Wait]:
    """Wait time 1 for every clinical question; 0 when the clinician went on or was overlapped."""
    out = []
    for t in turns:
        if not t.clinician:
            continue
        qs = [s for s in t.sentences if clinical_question(t, s)]
        for s in qs:
            later = [x for x in t.sentences[s.index + 1 :] if not is_backchannel_text(x.text)]
            answer = next((p for p in turns[t.index + 1 :] if p.patient and p.t0 >= s.t0), None)
            if later:
                # the clinician said more in the same turn; an answer at the boundary still counts as immediate
                if answer is not None and answer.t0 <= later[0].t0 + STACK_BREAK_S:
                    out.append(Wait(t.index, s.t1, 0.0, "overlapped"))
                else:
                    out.append(Wait(t.index, s.t1, 0.0, "clinician_went_on"))
                continue
            nxt_c = next((c for c in turns[t.index + 1 :] if c.clinician and c.t0 > t.t0 and c.act not in _NON_FLOOR_ACTS), None)
            if answer is None or (nxt_c is not None and nxt_c.t0 < answer.t0):
                out.append(Wait(t.index, t.t1, 0.0, "clinician_went_on"))
            elif answer.t0 <= t.t1:
                out.append(Wait(t.index, t.t1, 0.0, "overlapped"))
            else:
                out.append(Wait(t.index, t.t1, round(answer.t0 - t.t1, 3), "answered"))
    return out


def detect_pauses(turns: Sequence[Turn]) -> list[Pause]:
    """Wait time 2: after a patient's answer, the clinician's silence before speaking (0 if overlapped)."""
    out = []
    for p in turns:
        if not p.patient or p.act != "content":
            continue
        nxt = next((t for t in turns[p.index + 1 :] if not (t.clinician and t.t1 <= p.t1) and not (t.patient and t.act == "backchannel")), None)
        if nxt is None or not nxt.clinician:
            continue  # the patient went on (or the visit ended)
        if nxt.act in ("social",):
            continue
        out.append(Pause(p.index, p.t1, round(max(0.0, nxt.t0 - p.t1), 3), nxt.index))
    return out


def _content(words: list[str]) -> set[str]:
    stop = {"you", "your", "any", "do", "did", "have", "has", "is", "are", "was", "it", "the", "a", "an", "and", "or", "so", "at", "all",
            "to", "of", "in", "that", "this", "um", "uh", "ok", "okay", "with", "for", "on", "been", "be", "there", "about", "what",
            "how", "i", "me", "my", "just", "like", "can", "could", "would", "does", "get", "got", "feel", "feeling", "any", "anything"}
    return {w for w in words if w not in stop}


def _same_question(a: str, b: str) -> bool:
    """Near-verbatim restart: the same content words, at most one changed or added (protocol gap 6)."""
    ca, cb = _content(tokens(a)), _content(tokens(b))
    if not ca or not cb:
        return len(tokens(a)) <= 3 or len(tokens(b)) <= 3  # a cut-off start ("Do you, can I ask?")
    return len(ca ^ cb) <= 1 or ca <= cb and len(cb - ca) <= 1 or cb <= ca and len(ca - cb) <= 1


_MENU = re.compile(r"^(?:(?:um|uh|so|and|or)[ ,]*)*(?:or\b|for example|like\b|such as|is it (?:\w+ ){0,4}or\b|things like|"
                   r"(?:any|no) \w+(?: \w+)?$)|\bor\b[^?]*$")


def stack_kind(qs: list[str]) -> str:
    a, b = " ".join(tokens(qs[0])), " ".join(tokens(qs[1]))
    ca, cb = _content(a.split()), _content(b.split())
    if _MENU.search(b) or (len(b.split()) <= 4 and not re.match(r"(?:and )?(?:what|how|when|where|why|who|which|do|did|have|has|is|are)\b", b)):
        return "menu"
    if ca & cb and len(ca & cb) >= max(1, min(len(ca), len(cb)) // 2):
        return "rephrase"
    return "different"


# A clinician sentence that only echoes the patient's answer ("No, OK.", "Yes, right.") shows an answer came between two
# questions, seen rather than heard (a video visit); the protocol's "a nod you cannot see" (docs/gold-events.md §2(e)).
_ANSWER_ECHO = re.compile(r"(?:no|nope|yes|yeah|yep)(?:[ ,]*(?:no|ok|okay|right|good|fine|alright|all right))*")


def detect_stacks(turns: Sequence[Turn]) -> list[StackedQuestion]:
    """Two or more questions before the patient can answer (docs/gold-events.md §2(e))."""
    out: list[StackedQuestion] = []
    run: list[tuple[Turn, Sentence]] = []

    def flush() -> None:
        qs: list[tuple[Turn, Sentence]] = []
        for t, s in run:
            if qs and _same_question(qs[-1][1].text, s.text):
                qs[-1] = (t, s)  # a restart of the same question: keep the complete one
                continue
            qs.append((t, s))
        if len(qs) >= 2:
            texts = [s.text for _, s in qs]
            turns_ = sorted({t.index for t, _ in qs})
            out.append(StackedQuestion(turns_[0], turns_, qs[0][1].t0, texts, stack_kind(texts)))
        run.clear()

    prev_c: Turn | None = None
    for t in turns:
        if t.patient:
            continue
        if prev_c is not None and (t.t0 - prev_c.t1 >= STACK_SILENCE_S or _patient_between(turns, prev_c, t)):
            flush()
        for s in t.sentences:
            if run and _ANSWER_ECHO.fullmatch(" ".join(tokens(s.text))):
                flush()  # "Any discharge? No, OK. Any fever?": the clinician echoes an answer they saw (a shake of the head)
                continue
            if not clinical_question(t, s):
                continue
            if run and _patient_breaks(turns, run[-1][1], s):
                flush()
            run.append((t, s))
        prev_c = t
    flush()
    return out


def _patient_between(turns: Sequence[Turn], a: Turn, b: Turn) -> bool:
    return any(x.patient and x.t0 < b.t0 + STACK_BREAK_S and x.t1 > a.t1 - 0.05 for x in turns[a.index + 1 : b.index + 2] if x.index != a.index)


def _patient_breaks(turns: Sequence[Turn], q1: Sentence, q2: Sentence) -> bool:
    """A patient turn running at the boundary of the two questions, or starting just after the second begins."""
    lo = max(0, min(q1.turn, q2.turn) - WINDOW)
    for x in turns[lo : max(q1.turn, q2.turn) + WINDOW]:
        if not x.patient or x.t0 > q2.t0 + STACK_BREAK_S:
            continue
        if x.t1 >= q1.t1 - 0.05 and x.t0 <= q2.t0 + STACK_BREAK_S and x.t1 > q1.t1 and x.t0 >= q1.t0 - 0.01:
            return True
    return False


# ---- plans, escalation, restatement, cues ---------------------------------------------------

_PLAN = re.compile(
    r"\b(?:i'?ll|i will|i'?m going to|i'?m gonna|we'?ll|we will|we'?re going to|i'?d like to|let me) (?:\w+ )?(?:prescribe|refer|send|arrange|"
    r"book|give|write|organi[sz]e|request|get you|put you|start you|order|do some|take some|check|call|ring|pass)\b|"
    r"\b(?:i'?d|i would|we'?d|we would) (?:like|advise|suggest|recommend)(?: you)? (?:to )?\b|\b(?:you (?:should|need to|can|could|must|might "
    r"want to)|try (?:to|and)|make sure you|keep) (?:\w+ )?(?:take|use|apply|drink|rest|avoid|stop|keep|try|get|go|come|book|call|see|eat|have)\b|"
    r"\b(?:take|use|apply) (?:one|two|three|a|the|this|these|it|them|some|\d)\b|\b(?:tablets?|capsules?|creams?|ointments?|sprays?|inhalers?|"
    r"antibiotics?|antihistamines?|painkillers?|paracetamol|ibuprofen|prescription|referral|appointment|blood tests?|x-ray|scan|"
    r"rehydration|fluids|time off|days off|sick note|fit note)\b"
)
_RESTATE = re.compile(
    r"\bso (?:i|we) (?:should|need|will|'ll|can|have to|just|don'?t|do|must|shall|am|'m|would)\b|\bi'?ll (?:\w+ )?(?:take|go|call|ring|book|"
    r"try|rest|keep|use|get|pick|do|make|see|phone|speak|contact|stay|drink|avoid|stop|wait|come|buy|apply|look|check|put)\b|"
    r"\bi will (?:\w+ )?(?:take|go|call|ring|book|try|rest|keep|use|get|pick|make|see|phone|speak|contact|stay|drink|avoid|stop|wait|come|"
    r"buy|apply|look|check)\b|\bi'?m going to (?:\w+ )?(?:take|go|call|book|try|rest|keep|use|get|do|see|stay|avoid|stop|wait)\b|\bi should\b|"
    r"\bi can (?:just )?(?:come|go|get|take|do|call|book|pick|make|use|buy|try|carry on|still)\b|\bso,? (?:then )?(?:we|you) (?:would|will|'ll|can)\b|"
    r"\b(?:when|where|how) (?:can|do|should|shall|would) i (?:come|go|get|book|call|take|use|pick|collect)\b|\bbook me\b|"
    r"\b(?:can|should|do|shall|could) i (?:\w+ )?(?:get|take|use|buy|go|call|still|carry on|stop|keep|have|pick|continue|drink|eat|apply)\b|"
    r"\bhow (?:do|should|would|will|can) i (?:\w+ )?(?:call|take|use|get|book|report|contact|apply|know)\b|\bso (?:you'?re|you are|you'?ll|you will) "
    r"(?:going to |gonna )?(?:send|refer|prescribe|call|book|give|arrange|get|do)\b|\bso (?:it'?s|that'?s) (?:\w+ ){0,3}(?:times|tablets?|days?|"
    r"a day|puffs?)\b|\b(?:i (?:need|have|should) to|i don'?t need)\b|\bso (?:basically|just) (?:i|take|keep|use|rest|drink)\b"
)
_CUE = re.compile(
    r"\b(?:i'?m|i am|i was|i'?ve been|i get|i got|i feel|i'?m feeling|it'?s got me|it'?s making me|it makes me|getting|gets me|got me|"
    r"been|am|feel|feeling)(?: \w+){0,2} (?:a (?:bit|little) |really |quite |very |so |kind of |sort of |pretty |a bit )?(?:worried|concerned|"
    r"anxious|scared|frightened|nervous|stressed|panick(?:ed|y|ing)|upset|afraid|terrified|freaked|paranoid|overwhelmed|depressed|"
    r"low|down)\b|\bworr(?:ying|ies) me\b|\b(?:my|the) (?:main |biggest |only )?(?:worry|concern|fear) (?:is|was)\b|"
    r"\bi (?:thought|think|was worried|was scared|was afraid|wondered|was wondering) (?:that )?(?:it|this|that|i) (?:might|could|may|was|"
    r"is) (?:be |have )?(?:something|serious|cancer|a stroke|a heart|infect|broken|dying)|\b(?:could|might|is) (?:it|this) be "
    r"(?:something )?(?:serious|cancer|dangerous|a stroke|a heart attack)\b|\bi don'?t know what to do\b|\b(?:struggling|can'?t cope|"
    r"hard to cope|getting me down|really difficult for me)\b|\bi'?m (?:a bit |really |quite )?worried\b"
)
_ACK = re.compile(r"\b(?:worr|concern|anxious|anxiety|scar|frighten|stress|difficult|hard for you|tough|sorry to hear|must be|"
                  r"understand(?:able)?|imagine|upsetting|nerv)\w*")


_PLAN_STRONG = re.compile(
    r"\b(?:i'?ll|i will|i'?m going to|i'?m gonna|we'?ll|we will|we'?re going to|we'?re gonna|i'?d like to|let me) (?:\w+ )?(?:prescribe|refer|send|"
    r"arrange|book|give you|write|organi[sz]e|request|get you|put you|start you|order)\b|\b(?:i'?d|i would|we'?d|we would) (?:like you to|advise|"
    r"suggest|recommend)\b|\bwhat (?:i|we)(?:'d| would) (?:suggest|recommend|advise)\b|\bi (?:think|suggest) (?:you|we) (?:should|need to|take|try|"
    r"start|use|go)\b|\bthe plan\b"
)


# A recap of what the patient already had or did ("So you had a blood test done", "You've tried the antihistamines and
# it didn't work") is history taking, not the plan: the plan is what will be done (docs/gold-events.md §2(f)), so a
# past-tense statement about the patient with no word for what comes next does not start it.
_HISTORY_RECAP = re.compile(
    r"^(?:(?:so|and|ok|okay|right|um|uh|now|but|yeah|alright)\s)*(?:you|you'?ve|you have|you'?d|he|she|they|he'?s|she'?s)\s"
    r"(?:\w+\s)?(?:had|tried|took|taken|used|bought|got|were|was|been|did|mentioned|said|told)\b"
)
_NEXT = re.compile(r"\b(?:will|'ll|going to|gonna|should|need|needs|can|could|would|'d|let'?s|try|want|now|today|tomorrow|next)\b")


def is_history_recap(text: str) -> bool:
    low = " ".join(tokens(text))
    return bool(_HISTORY_RECAP.match(low)) and not _NEXT.search(low)


def _plan_sentences(turns: Sequence[Turn], labels: Mapping[str, set[str]]) -> list[Utterance_]:
    out = []
    for t in turns:
        if not t.clinician:
            continue
        for s in t.sentences:
            if is_history_recap(s.text):
                continue
            labs = labels.get(s.id, set())
            if "advice" in labs or "safety_netting" in labs or (_PLAN.search(s.text.lower()) and not s.question):
                out.append(Utterance_(t.index, s.t0, s.text, s.index))
    return out


_ASKS_HISTORY = re.compile(r"\b(?:ever|before|in the past|last time|previously)\b|^(?:(?:um|uh|so|and|right|ok|okay)\s)*(?:did|have|has|had|"
                           r"were|was)\b")


def detect_emergency(turns: Sequence[Turn], labels: Mapping[str, set[str]]) -> Flag:
    for t in turns:
        if not t.clinician:
            continue
        for s in t.sentences:
            if "emergency" not in labels.get(s.id, set()):
                continue
            if s.question and _ASKS_HISTORY.search(" ".join(tokens(s.text))):
                continue  # "has your mum ever said you had to go to hospital…?" asks about the past, it arranges nothing
            prev = t.sentences[s.index - 1].text.lower() if s.index > 0 else ""
            low = " ".join(tokens(s.text))
            if re.search(r"\b(?:if|should|in case|unless)\b", prev) and re.match(r"(?:(?:um|uh|so|and|then)\s)*(?:either|or|then|just|do|go|call)\b", low):
                continue  # "if anything deteriorates. Either …, or go straight to A and E." continues a contingency
            if re.search(r"\b(?:in (?:that|this|which|those) (?:case|instance|situation)s?|otherwise|if so|if that happens)\b", low):
                continue
            return Flag(True, t.index, s.t0, s.text)
    return Flag(False)


def _content_words(text: str) -> set[str]:
    stop = _content([]) | {"i'll", "i'm", "so", "not", "no", "yes", "yeah", "need", "don't", "will", "should", "going", "think", "know",
                           "then", "well", "really", "bit", "some", "much", "more", "thank", "thanks", "take", "go", "see"}
    return {w[:6] for w in tokens(text) if len(w) > 3 and w not in stop}


def plan_start(turns: Sequence[Turn], plan: list[Utterance_]) -> int | None:
    """The turn where the clinician starts giving the plan: the first plain plan statement ("I'll prescribe…",
    "I'd like you to…"), or the first advice or plan word in the later part of the visit (not a medicine named while
    taking the history)."""
    if not turns or not plan:
        return None
    t_end = max(t.t1 for t in turns)
    strong = [u.turn for u in plan if _PLAN_STRONG.search(" ".join(tokens(u.text)))]
    late = [u.turn for u in plan if u.time >= 0.5 * t_end and len(tokens(u.text)) >= 6]
    return min(strong[:1] + late[:1]) if strong or late else None


def detect_plan_said_back(turns: Sequence[Turn], plan: list[Utterance_], teach_back: list[Utterance_]) -> PlanSaidBack:
    """The patient restates an element of the plan (docs/gold-events.md §2(f)); judged liberally."""
    first = plan_start(turns, plan)
    if first is None:
        return PlanSaidBack(False)
    hits: list[Turn] = []
    for p in turns[first + 1 :]:
        if not p.patient or p.act != "content":
            continue
        low = re.sub(r"\b([\w']+)(?: \1\b)+", r"\1", " ".join(tokens(p.text)))  # "i'll, i'll try" -> "i'll try"
        if not _RESTATE.search(low) or re.search(r"\bi(?:'ll| will) do (?:it|that|so)?\W*$|\bi'?ll see how (?:i|it)", low):
            continue
        hits.append(p)
    if not hits:
        return PlanSaidBack(False)
    tb_turns = {u.turn for u in teach_back}
    prompted = any(any(k in tb_turns for k in range(h.index - 3, h.index)) for h in hits)
    return PlanSaidBack(True, [h.index for h in hits], hits[0].t0, prompted)


_FEELINGS = (
    ("fear", re.compile(r"\b(?:scared|frightened|afraid|terrified|freaked|paranoid)\b")),
    ("serious illness", re.compile(r"\b(?:serious|cancer|stroke|heart attack|dangerous|dying)\b")),
    ("stress", re.compile(r"\b(?:anxious|stressed|nervous|panick\w*|overwhelmed)\b")),
    ("low mood", re.compile(r"\b(?:low|down|depressed|upset)\b")),
    ("coping", re.compile(r"\b(?:don'?t know what to do|struggling|cope|difficult for me)\b")),
)


def _feeling(text: str) -> str:
    return next((name for name, rx in _FEELINGS if rx.search(text)), "worry")


_ACCEPTANCE = frozenset({"ok", "okay", "yeah", "yes", "yep", "right", "alright", "sure", "fine", "great", "good", "perfect", "lovely",
                         "thank", "thanks", "you", "very", "much", "so", "that", "that's", "sounds", "makes", "sense", "brilliant",
                         "cool", "excellent", "i", "see", "understand", "oh", "ohh", "mm", "mm-hmm", "um", "uh", "no", "problem",
                         "will", "do", "bye", "cheers", "wonderful", "appreciate", "it", "that'd", "be", "too", "a", "lot", "all",
                         "got", "for", "your", "help", "time", "doctor", "great", "really", "helpful", "and", "take", "care"})


def maybe_plan_said_back(turns: Sequence[Turn], start_turn: int | None) -> bool:
    """Could the patient have said part of the plan back? Any patient turn after the plan starts that is more than
    acceptance and thanks might be (used before claiming that nobody did)."""
    if start_turn is None:
        return False
    for p in turns[start_turn + 1 :]:
        if p.patient and p.act == "content":
            low = " ".join(tokens(p.text))
            if _MAYBE_RESTATE.search(low) or _RESTATE.search(low):
                return True
    return False


_MAYBE_RESTATE = re.compile(r"\b(?:i'?ll|i will|i'?m going|i'?m gonna|i can|i could|i should|i need|i have to|i'?ve got to|i don'?t need|"
                            r"i won'?t|so i|so you|so it|so we|should i|can i|could i|do i|will i|would i|shall i|how (?:do|often|long|many|much) |"
                            r"when (?:can|do|should|will) i|where (?:can|do|should) i|what (?:do|should) i)\b|^(?:ok |okay |right |yeah )*so\b")


def detect_cues(turns: Sequence[Turn], labels: Mapping[str, set[str]]) -> list[Cue]:
    out = []
    for p in turns:
        if not p.patient or p.act != "content":
            continue
        low = " ".join(tokens(p.text))
        if not _CUE.search(low):
            continue
        resp = next((t for t in turns[p.index + 1 :] if t.clinician and t.t0 >= p.t1 - 1.5 and t.act not in ("backchannel", "fragment")), None)
        if resp is None:
            out.append(Cue(p.index, p.t0, None, "other", _feeling(low)))
            continue
        labs = set().union(*(labels.get(s.id, set()) for s in resp.sentences)) if resp.sentences else set()
        text = resp.text.lower()
        if "ice_question" in labs or re.search(r"\b(?:what|tell me)\b[^?]*\b(?:worr|concern|scar|frighten|think)\w*", text):
            how = "explored"
        elif resp.act == "empathy" or "empathy" in labs or "reflection" in labs or _ACK.search(text):
            how = "acknowledged"
        elif any(s.question for s in resp.sentences):
            how = "biomedical_question"
        else:
            how = "other"
        out.append(Cue(p.index, p.t0, resp.index, how, _feeling(low)))
    return out


# ---- jargon --------------------------------------------------------------------------------


def detect_jargon(turns: Sequence[Turn], jargon: "JargonDetector") -> list[JargonUse]:
    """Lexicon terms with their context: glossed nearby (same, previous or next clinician sentence,
    or explained earlier in the visit) or said by the patient first (labelling §5.12)."""
    sents = [(t, s) for t in turns if t.clinician for s in t.sentences]
    explained_terms: set[str] = set()
    out = []
    for i, (t, s) in enumerate(sents):
        prev = sents[i - 1][1].text if i > 0 else ""
        nxt = sents[i + 1][1].text if i + 1 < len(sents) and sents[i + 1][0].index <= t.index + 2 else ""
        for hit in jargon.find(s.text, nxt, prev):
            key = hit.entry.term.lower()
            patient_first = any(p.patient and p.t0 < s.t0 and re.search(r"(?<![a-z])" + re.escape(hit.term.lower()) + r"(?![a-z])", p.text.lower())
                                for p in turns[: t.index])
            explained = hit.explained or key in explained_terms
            if hit.explained:
                explained_terms.add(key)
            out.append(JargonUse(t.index, s.index, s.t0, hit.term, hit.entry.plain, explained, patient_first))
    return out


# ---- all of it -----------------------------------------------------------------------------


def detect_events(
    utterances: Sequence[Utterance] | None = None,
    *,
    turns: list[Turn] | None = None,
    classifier_labels: Mapping[str, Sequence[str]] | None = None,
    functions: SentenceFunctions | None = None,
    jargon: "JargonDetector | None" = None,
) -> VisitEvents:
    """All events of a visit. ``classifier_labels``: sentence id (``tNNN:sNN``) -> the classifier's labels."""
    if turns is None:
        turns = build_turns(list(utterances or []))
    functions = functions or SentenceFunctions()
    fl = functions.label(turns, classifier_labels)
    labels: dict[str, set[str]] = {sid: set(classifier_labels.get(sid, ())) if classifier_labels else set() for sid in fl}
    for sid, got in fl.items():
        labels[sid] = (labels[sid] - {"agenda_solicitation", "teach_back"}) | got  # conversation-aware rules decide these two
    ev = VisitEvents(turns=turns, labels=labels)
    ev.opening_question, ev.opening_statement, _ = detect_opening(turns)
    ev.overlaps = detect_overlaps(turns)
    ev.stretches = detect_stretches(turns)
    ev.waits = detect_waits(turns)
    ev.pauses = detect_pauses(turns)
    ev.stacked_questions = detect_stacks(turns)
    statement_end_turn = ev.opening_statement.end_turn if ev.opening_statement else -1
    for t in turns:
        if not t.clinician:
            continue
        for s in t.sentences:
            labs = labels.get(s.id, set())
            if "ice_question" in labs:
                ev.ice_questions.append(Utterance_(t.index, t.t0, s.text, s.index, ice_components(s.text) or ("concern",)))
            if "teach_back" in labs:
                ev.teach_back_requests.append(Utterance_(t.index, t.t0, s.text, s.index))
            if "safety_netting" in labs:
                ev.safety_netting.append(Utterance_(t.index, t.t0, s.text, s.index))
            if "reassurance" in labs:
                ev.reassurance.append(Utterance_(t.index, s.t0, s.text, s.index))
            bare_else = re.fullmatch(r"(?:(?:ok|okay|and|so|right|um|uh)\s)*(?:anything|something|what) else", " ".join(tokens(s.text)))
            if "agenda_solicitation" in labs or (bare_else and statement_end_turn >= 0 and t.index <= statement_end_turn + 3):
                ev.agenda_questions.append(Utterance_(t.index, t.t0, s.text, s.index, wording=anything_wording(s.text)))
    # one entry per turn, as in the gold
    for name in ("ice_questions", "teach_back_requests", "safety_netting", "agenda_questions"):
        seen: set[int] = set()
        kept = []
        for u in getattr(ev, name):
            if u.turn not in seen:
                seen.add(u.turn)
                kept.append(u)
        setattr(ev, name, kept)
    candidates_ = _plan_sentences(turns, labels)
    start = plan_start(turns, candidates_)
    ev.plan_sentences = [u for u in candidates_ if start is not None and u.turn >= start]
    ev.plan_start_turn = start
    ev.emergency_escalation = detect_emergency(turns, labels)
    ev.plan_said_back = detect_plan_said_back(turns, candidates_, ev.teach_back_requests)
    ev.cues = detect_cues(turns, labels)
    if jargon is not None:
        ev.jargon = detect_jargon(turns, jargon)
    return ev


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


__all__ = [
    "CLINICIAN",
    "PATIENT",
    "Cue",
    "Flag",
    "JargonUse",
    "Monologue",
    "OpeningQuestion",
    "OpeningStatement",
    "Overlap",
    "Pause",
    "PlanSaidBack",
    "StackedQuestion",
    "VisitEvents",
    "Wait",
    "detect_events",
]
