"""Pick 1–3 specific, timestamped coaching observations for one visit.

Each observation quotes only the clinician's own words (never the patient's),
names the moment, and offers a concrete alternative grounded in the
literature listed in docs/coaching.md. There is no score: candidates are
ordered by a fixed list of what tends to matter most to patients, not by any
comparison with other clinicians.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from edge_agent.behaviours.timing import TimingMetrics
from edge_agent.transcript import Utterance

MAX_QUOTE_WORDS = 20
MAX_OBSERVATIONS = 3
LONG_MONOLOGUE_S = 60.0
MANY_INTERRUPTIONS = 3
CLOSED_PER_OPEN = 8.0


@dataclass(frozen=True)
class Observation:
    behaviour: str
    at_s: float
    moment: str  # "m:ss" from the start of the visit
    clinician_quote: str
    alternative: str
    rationale: str
    happened: str = ""  # what was observed, plainly and without judgement ("you asked ... before ...")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class LabelledSentence:
    """One clinician sentence with its labels and (approximate) time."""

    utterance_index: int
    at_s: float
    text: str
    labels: tuple[str, ...]
    jargon_terms: tuple[tuple[str, str], ...] = ()  # (term as said, plain wording)


def moment(seconds: float) -> str:
    s = max(0, int(seconds))  # floor, like a media player's clock
    return f"{s // 60}:{s % 60:02d}"


def short_quote(text: str, max_words: int = MAX_QUOTE_WORDS) -> str:
    """The clinician's words, cut to ``max_words`` (an ellipsis marks the cut)."""
    words = text.split()
    if len(words) <= max_words:
        return text.strip()
    return " ".join(words[:max_words]).rstrip(",;:") + " …"


def _first(sentences: list[LabelledSentence], pred: Callable[[LabelledSentence], bool]) -> LabelledSentence | None:
    return next((s for s in sentences if pred(s)), None)


def _sentence_at(sentences: list[LabelledSentence], utterance_index: int) -> LabelledSentence | None:
    return _first(sentences, lambda s: s.utterance_index == utterance_index)


_ANYTHING_ELSE = re.compile(r"\banything else\b", re.IGNORECASE)


def candidates(utterances: list[Utterance], timing: TimingMetrics, sentences: list[LabelledSentence]) -> list[Observation]:
    """All observations that apply, most useful first."""
    out: list[Observation] = []

    def add(behaviour: str, s: LabelledSentence, happened: str, alternative: str, rationale: str, at: float | None = None) -> None:
        at_s = round(s.at_s if at is None else at, 2)
        out.append(Observation(behaviour, at_s, moment(at_s), short_quote(s.text), alternative, rationale, happened))

    # 1. Opening statement taken over before the patient finished.
    ev = next((e for e in timing.events if e.kind == "opening_interrupted"), None)
    if ev is not None:
        s = _sentence_at(sentences, ev.utterance_index)
        if s is not None:
            secs = timing.opening_uninterrupted_s or 0.0
            add(
                "opening_statement",
                s,
                "you came in during the patient's opening statement",
                f"The patient's opening statement ran {secs:.0f} s before you came in. Let it run to its natural end "
                "(with nods or \"mm-hm\"), then ask \"What else?\" before focusing on one problem.",
                "Uninterrupted opening statements usually take under a minute and bring out concerns that otherwise "
                "surface late in the visit (Beckman & Frankel 1984; Marvel et al. 1999; Langewitz et al. 2002).",
                at=ev.at_s,
            )

    # 2. Unexplained jargon.
    s = _first(sentences, lambda x: "jargon" in x.labels and bool(x.jargon_terms))
    if s is not None:
        term, plain = s.jargon_terms[0]
        add(
            "jargon",
            s,
            f"you said \"{term}\" without an explanation nearby",
            f"Say it in everyday words, or add a short gloss: \"{term}, which means {plain}\".",
            "Patients often do not understand medical terms that clinicians assume are familiar, and rarely say so "
            "(Castro et al. 2007).",
        )

    # 3. Agenda: never asked for further concerns, or asked "anything else?".
    agenda = [x for x in sentences if "agenda_solicitation" in x.labels]
    if agenda:
        s = _first(agenda, lambda x: bool(_ANYTHING_ELSE.search(x.text)))
        if s is not None:
            add(
                "agenda_solicitation",
                s,
                "you asked for further concerns with \"anything else\"",
                "Ask \"Is there something else you'd like to address today?\" instead of \"anything else?\".",
                "In a randomised study, \"something else\" reduced patients' unmet concerns, while \"anything else\" "
                "invites a \"no\" (Heritage et al. 2007).",
            )
    else:
        after_open = (timing.opening_uninterrupted_s or 0.0) + next((e.at_s for e in timing.events if e.kind == "opening_start"), 0.0)
        # A quotable question: the first specific (4+ word) closed question after the opening.
        s = _first(sentences, lambda x: "closed_question" in x.labels and x.at_s >= after_open and len(x.text.split()) >= 4) or _first(
            sentences, lambda x: "closed_question" in x.labels
        )
        if s is not None:
            add(
                "agenda_solicitation",
                s,
                "you moved to specific questions before asking what else the patient wanted to cover",
                "Before narrowing in with specific questions, ask \"Is there something else you'd like to address "
                "today?\" and list the concerns together.",
                "Eliciting the full agenda early avoids \"by the way\" concerns at the door (Marvel et al. 1999; "
                "Heritage et al. 2007).",
            )

    # 4. Information or advice without a teach-back.
    if not any("teach_back" in x.labels for x in sentences):
        given = [x for x in sentences if {"advice", "information"} & set(x.labels)]
        if given:
            s = given[-1]
            add(
                "teach_back",
                s,
                "you gave information or advice, and the patient was not asked to say the plan back",
                "Close the loop: \"To make sure I explained it clearly, can you tell me how you'll take these and "
                "when you'd get back in touch?\"",
                "Asking patients to explain the plan back improves recall and outcomes, especially with limited "
                "health literacy (Schillinger et al. 2003).",
            )

    # 5. Long monologue.
    if timing.longest_monologue_s >= LONG_MONOLOGUE_S:
        ev = next((e for e in timing.events if e.kind == "longest_monologue"), None)
        s = _sentence_at(sentences, ev.utterance_index) if ev is not None else None
        if s is not None and ev is not None:
            add(
                "monologue",
                s,
                f"you spoke for {timing.longest_monologue_s:.0f} s without a patient turn",
                f"You spoke for {timing.longest_monologue_s:.0f} s without a patient turn. Give information in "
                "small chunks and check after each: \"What questions do you have so far?\"",
                "Chunk-and-check keeps explanations at the patient's pace and shows what to explain next "
                "(Silverman, Kurtz & Draper 2013).",
                at=ev.at_s,
            )

    # 6. Repeated interruptions later in the visit.
    if timing.interruptions >= MANY_INTERRUPTIONS:
        evs = [e for e in timing.events if e.kind == "interruption"]
        s = next((x for e in evs if (x := _sentence_at(sentences, e.utterance_index)) is not None), None)
        if s is not None:
            add(
                "interruptions",
                s,
                f"you started speaking while the patient was mid-sentence ({timing.interruptions} times)",
                f"You started speaking {timing.interruptions} times while the patient was mid-sentence. Let each "
                "answer finish and leave a short pause before the next question.",
                "A pause of a few seconds after an answer brings out more and longer patient contributions "
                "(Rowe 1986; Beckman & Frankel 1984).",
            )

    # 7. Mostly closed questions.
    n_open = sum("open_question" in x.labels for x in sentences)
    n_closed = sum("closed_question" in x.labels for x in sentences)
    if n_closed >= 10 and n_closed > CLOSED_PER_OPEN * max(1, n_open):
        s = _first(sentences, lambda x: "closed_question" in x.labels)
        if s is not None:
            add(
                "open_questions",
                s,
                f"you asked {n_closed} closed questions and {n_open} open ones",
                "Start each new topic with an open invitation, e.g. \"Tell me more about the pain\", and move to "
                "specific questions after the patient's account.",
                "The open-to-closed cone gathers the patient's story before the checklist (Silverman, Kurtz & "
                "Draper 2013).",
            )
    return out


def select(cands: list[Observation], limit: int = MAX_OBSERVATIONS) -> list[Observation]:
    """The first ``limit`` candidates with distinct behaviours, shown in time order."""
    chosen: list[Observation] = []
    for c in cands:
        if c.behaviour not in {x.behaviour for x in chosen}:
            chosen.append(c)
        if len(chosen) == limit:
            break
    return sorted(chosen, key=lambda o: o.at_s)
