"""Pick up to 3 coaching observations for one visit (none where no evidence holds), and one strength, from the visit's events.

Every observation kind has a **truth condition** stated on the visit's events in the
shape of the event gold (docs/gold-events.md §4; the conditions are listed in
docs/coaching.md, "Truth conditions"). :func:`truth_condition` is that condition as
code: the report emits an observation only when its own evidence (the detected events)
meets it, and ``edge-agent bench coaching`` applies the very same function to the
adjudicated gold to measure how often what the clinician reads is true.

Candidates are ranked by their impact on the patient (a two-minute monologue or a
worry nobody asked about before one jargon term), advice that does not fit the moment
is suppressed (an emergency with the ambulance called; a plan the patient already said
back), and each alternative is phrased from what happened (the medicine, the referral,
the questions asked). Only the clinician's own words are quoted, never the patient's,
never an identity/audio/privacy check; quotes can be switched off. There is no score:
the impact order is internal and never shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edge_agent.behaviours.conversation import Sentence, Turn, sentence_act, tokens
from edge_agent.behaviours.events import StackedQuestion, VisitEvents, clinical_question, ends_stretch, maybe_plan_said_back, stack_kind
from edge_agent.behaviours.functions import maybe_agenda, maybe_emergency, maybe_ice, maybe_safety_net

MAX_QUOTE_WORDS = 20
MAX_OBSERVATIONS = 3
MIN_INTERRUPTIONS = 2  # one floor-taking interruption in a visit is ordinary conversation
MIN_STACKS = 2
REPORT_MONOLOGUE_S = 70.0  # observations name stretches well over the 60 s event threshold
OPENING_TOL_S = 2.0
INTERRUPTION_TOL_S = 1.0
MONOLOGUE_IOU = 0.5
ESCALATION_TURNS = 6  # the reason for emergency care is given within a few turns of arranging it
_REASON = re.compile(r"\b(?:because|'cause|cause your|so that|in case|can get worse|could get worse|might get worse|the reason)\b")
_MEANTIME = re.compile(r"\b(?:in the meantime|meanwhile|while (?:you(?:'re| are)? )?wait\w*|while the ambulance|until (?:the ambulance|they|"
                       r"help|someone) (?:arrives?|comes?|gets? there))\b")

# Observations that give the same lesson from different evidence: at most one per group.
GROUPS = {
    "ice_not_elicited": "ice", "cue_not_explored": "ice", "premature_reassurance": "ice",
    "agenda_not_set": "agenda", "agenda_anything": "agenda", "opening_redirected": "opening", "notes_led_opening": "opening",
}
# Kinds the report does not emit: their measured precision on the held-out gold is below the
# 0.90 bar. ``edge-agent bench coaching`` still scores them, so they can come back when they earn it.
WITHHELD = {
    "interruptions": "true in 2 of 4 held-out visits; annotators agreed on interruptions at F1 0.49 (docs/coaching.md §4)",
}
# A count or a timeline mark states the same thing as the observation: they are withheld with it
# (report timing, the phone's picture of the visit, the population record).
WITHHELD_TIMING = frozenset({"interruptions"})
WITHHELD_MARKS = frozenset({"interruption"})
# Advice that does not fit a visit where emergency care was arranged.
NOT_IN_EMERGENCY = frozenset({"agenda_not_set", "agenda_anything", "ice_not_elicited", "cue_not_explored", "premature_reassurance",
                              "teach_back", "safety_net_missing", "notes_led_opening", "stacked_questions"})


@dataclass(frozen=True)
class Observation:
    behaviour: str  # the observation kind (docs/coaching.md)
    at_s: float
    moment: str  # "m:ss" from the start of the visit
    clinician_quote: str  # the clinician's own words, or "" (quotes off / nothing quotable)
    alternative: str
    rationale: str
    happened: str = ""  # what was observed, plainly and without judgement ("you asked ... before ...")
    # What the truth condition is checked with (turns, times); stays on the device, never rendered or sent.
    evidence: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    impact: float = field(default=0.0, compare=False, repr=False)  # internal ranking only; never shown

    def to_dict(self) -> dict[str, object]:
        return {"behaviour": self.behaviour, "at_s": self.at_s, "moment": self.moment, "clinician_quote": self.clinician_quote,
                "alternative": self.alternative, "rationale": self.rationale, "happened": self.happened}


@dataclass(frozen=True)
class LabelledSentence:
    """One clinician sentence with its labels and (approximate) time."""

    utterance_index: int
    at_s: float
    text: str
    labels: tuple[str, ...]
    jargon_terms: tuple[tuple[str, str], ...] = ()  # (term as said, plain wording)
    sentence_index: int = 0


def moment(seconds: float) -> str:
    s = max(0, int(seconds))  # floor, like a media player's clock
    return f"{s // 60}:{s % 60:02d}"


def duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s} s" if s < 90 else f"{s // 60} min {s % 60:02d} s"


_LEAD = re.compile(r"^(?:(?:um|uh|erm|er|ok|okay|right|alright|all right|so|and|yeah|yes|mm|fine|great|sure|good|well)\b[ ,.]*)+", re.IGNORECASE)


def clean_quote(text: str) -> str:
    """Tidy transcript gaps (" , ", "?," from untranscribed words) and leading acknowledgements; the words stay the clinician's."""
    t = re.sub(r"\s+([,.?!])", r"\1", text.strip())
    t = re.sub(r"([,.?!])(?:\s*,)+", r"\1", t)
    t = re.sub(r"([.?!])(?=[A-Z])", r"\1 ", t)
    t = re.sub(r"\s{2,}", " ", t)
    trimmed = _LEAD.sub("", t).lstrip(" ,.")
    if len(trimmed.split()) >= 3:
        t = trimmed  # the words as said, case included
    return t.strip()


_NOT_NAMES = frozenset(
    """i i'm i'll i've i'd ok okay gp gps nhs a e ecg tia uti covid right so now well yes yeah no good great sure fine alright
    perfect lovely excellent brilliant um uh and but or also then because sorry hello hi thanks thank please sir madam
    monday tuesday wednesday thursday friday saturday sunday january february march may june july august september october
    november december english doctor""".split()
).union(
    # sentence adverbs and connectives that open a sentence with a comma ("However, …"): a closed class of English
    # words, never a name; left out as "…" they misquoted the clinician and read as if a name had been said
    """however obviously basically essentially unfortunately fortunately actually honestly generally usually normally
    typically hopefully ideally personally certainly definitely absolutely apparently clearly otherwise therefore anyway
    anyways meanwhile also again firstly secondly thirdly finally lastly additionally alternatively importantly
    interestingly overall equally similarly likewise instead besides plus next luckily sadly frankly
    presumably possibly probably maybe perhaps initially originally previously currently recently""".split()
)
# "Dr. Mesa" but not "…Doctor. How can I help?": a full stop after a title spelt out ends the sentence
_TITLE = re.compile(r"\b(?:(?:Mr|Mrs|Ms|Dr)\.?|Miss|Doctor|Mister) ([A-Z][a-z'-]+)")
_VOCATIVE = re.compile(r"(?:(?<=, )|(?<=^))([A-Z][a-z'-]+)(?=\s*[,.?!]|$)")


def redact_names(text: str, not_names: frozenset[str] = frozenset()) -> str:
    """Names said to or about someone ("…, Lou.", "April, how…", "Doctor Jacob") become "…": a quote carries
    the clinician's words about the care, never who anyone is (proto/edge_agent/v1/feedback.proto).
    ``not_names``: words known not to be names here (a word just before a transcript gap)."""
    out = _TITLE.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + "…", text)
    out = _VOCATIVE.sub(lambda m: m.group(1) if m.group(1).lower() in _NOT_NAMES or m.group(1) in not_names
                        or _DRUG.fullmatch(m.group(1)) else "…", out)
    # a name left out just before a full stop: one mark, not "…." (stray punctuation)
    return re.sub(r"…\.+", "…", out)


# A transcript gap: PriMock57 (and the quote gate's own redaction) leave " ," or " ." where words were not
# transcribed or were removed. The word before the gap is the clinician's own (a verb cut off: "Examine , and we're
# gonna need…"), not a name said to someone: the vocative rule must not take it for one. A sentence that starts with
# one or two words cut off by a gap is quoted from after the gap, so the quote is words the clinician said in a row.
_GAP_BEFORE = re.compile(r"([A-Za-z][a-z'-]*)\s+[,.](?=\s|$)")
_LEADING_FRAGMENT = re.compile(r"^\s*(?:\S+\s+){0,1}\S+\s+,\s*(?:(?:and|but|so|then)\s+)?", re.IGNORECASE)


def short_quote(text: str, max_words: int = MAX_QUOTE_WORDS) -> str:
    """The clinician's words, cut to ``max_words`` (an ellipsis marks the cut); names left out."""
    # a sentence split after a comma leaves it leading ("…, sore throat?"): not part of the quote
    rest = _LEADING_FRAGMENT.sub("", text, count=1)
    if rest != text and len(rest.split()) >= 3:
        text = rest
    gap_words = frozenset(m.group(1) for m in _GAP_BEFORE.finditer(text))
    words = redact_names(clean_quote(text), gap_words).lstrip(",;: ").split()
    if len(words) <= max_words:
        return " ".join(words)
    return " ".join(words[:max_words]).rstrip(",;:") + " …"


# ---- truth conditions ----------------------------------------------------------------------


def _near(turn: int, items: Sequence[Mapping[str, Any]], tol: int = 1) -> list[Mapping[str, Any]]:
    return [x for x in items if abs(int(x["turn"]) - int(turn)) <= tol]


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def truth_condition(obs: Observation, gold: Mapping[str, Any], labels: Mapping[str, Sequence[str]] | None = None,
                    consultation: str = "") -> bool | None:
    """Is ``obs`` true against ``gold`` (events in the gold file's shape)? None: the gold cannot say.

    ``labels``: sentence labels by id ``<consultation>:tNNN:sNN`` (the label gold), used
    only by the kinds that rest on a sentence's label (jargon, reassurance).
    """
    e = obs.evidence
    k = obs.behaviour
    emergency = bool((gold.get("emergency_escalation") or {}).get("value"))
    os_ = gold.get("opening_statement")
    oq = gold.get("opening_question")
    if k == "opening_redirected":
        return bool(os_) and os_["outcome"] == "redirected" and abs(float(os_["end"]) - float(e["end"])) <= OPENING_TOL_S
    if k == "strength_escalation":
        esc = gold.get("emergency_escalation") or {}
        return bool(esc.get("value")) and (esc.get("turn") is None or abs(int(esc["turn"]) - int(e["turn"])) <= ESCALATION_TURNS)
    if k == "strength_opening":
        return bool(os_) and os_["outcome"] == "finished" and abs(float(os_["end"]) - float(e["end"])) <= OPENING_TOL_S
    if k == "notes_led_opening":
        return bool(oq) and bool(oq.get("notes_led")) and abs(int(oq["turn"]) - int(e["turn"])) <= 1 and not emergency
    if k == "interruptions":
        g = [float(o["time"]) for o in gold.get("overlaps", []) if o["kind"] == "interruption"]
        return all(any(abs(t - x) <= INTERRUPTION_TOL_S for x in g) for t in e["times"])
    if k == "monologue":
        return any(_iou((float(e["start"]), float(e["end"])), (float(m["start"]), float(m["end"]))) >= MONOLOGUE_IOU
                   for m in gold.get("monologues", []))
    if k == "agenda_not_set":
        return not gold.get("agenda_questions") and not emergency
    if k == "agenda_anything":
        return any(x.get("wording") == "any" for x in _near(e["turn"], gold.get("agenda_questions", []))) and not emergency
    if k == "strength_agenda":
        return any(x.get("wording") == "some" for x in _near(e["turn"], gold.get("agenda_questions", [])))
    if k == "ice_not_elicited":
        return not gold.get("ice_questions") and not emergency
    if k == "cue_not_explored":
        lo, hi = int(e["cue_turn"]), int(e["response_turn"]) + 3
        return not any(lo <= int(x["turn"]) <= hi for x in gold.get("ice_questions", [])) and not emergency
    if k == "premature_reassurance":
        if any(int(x["turn"]) <= int(e["turn"]) for x in gold.get("ice_questions", [])) or emergency:
            return False
        sid = f"{consultation}:{e['sentence']}"
        if labels is not None and sid in labels:
            return "reassurance" in labels[sid]
        return True
    if k == "strength_ice":
        return bool(_near(e["turn"], gold.get("ice_questions", [])))
    if k == "teach_back":
        return not gold.get("teach_back_requests") and not (gold.get("plan_said_back") or {}).get("value") and not emergency
    if k == "strength_teach_back":
        return bool(_near(e["turn"], gold.get("teach_back_requests", [])))
    if k == "safety_net_missing":
        return not gold.get("safety_netting") and not emergency
    if k == "strength_safety_net":
        return bool(_near(e["turn"], gold.get("safety_netting", [])))
    if k == "stacked_questions":
        return any(any(abs(int(t) - int(e["turn"])) <= 1 for t in x.get("turns", [x["turn"]])) for x in gold.get("stacked_questions", []))
    if k == "jargon":
        sid = f"{consultation}:{e['sentence']}"
        if labels is not None and sid in labels:
            return "jargon" in labels[sid]
        return None
    return None


# ---- building the candidates --------------------------------------------------------------


def _quotable(s: Sentence | None) -> bool:
    return s is not None and sentence_act(s.text) not in ("admin", "social", "backchannel", "repair", "fragment")


def _best_sentence(t: Turn, prefer_question: bool = False) -> Sentence | None:
    sents = [s for s in t.sentences if _quotable(s)]
    if prefer_question:
        qs = [s for s in sents if s.question]
        if qs:
            return qs[0]
    return max(sents, key=lambda s: len(s.text.split()), default=None) if sents else None


_DRUG = re.compile(
    r"\b(?:[a-z]{3,}(?:cillin|mycin|cycline|floxacin|prazole|tidine|olol|pril|sartan|statin|profen|etamol|xetine|triptan|lukast|"
    r"phylline|tadine|amine)|codeine|morphine|salbutamol|inhalers?|antibiotics?|antihistamines?|steroids?|steroid cream|cream|"
    r"ointment|emollients?|nasal spray|spray|eye drops|drops|tablets?|capsules?|painkillers?|rehydration salts|dioralyte|gaviscon|"
    r"senna|laxatives?|paracetamol|ibuprofen|naproxen|epipen|adrenaline|night nurse|day nurse|medication|medicine)\b",
    re.IGNORECASE,
)
_REFERRAL = re.compile(r"\b(?:refer(?:ral|ring|red)?|specialist|clinic|hospital team|letter (?:to|for) your gp)\b", re.IGNORECASE)
_TEST = re.compile(r"\b(?:blood tests?|bloods|x-?ray|scan|swab|sample|urine test|ecg|echo|tests?)\b", re.IGNORECASE)
_SELFCARE = re.compile(r"\b(?:fluids|rest|time off|days off|sleep|hydrat|diet|exercise|steam|warm|cold compress|avoid)\w*", re.IGNORECASE)


def _plan_kind(ev: VisitEvents) -> tuple[str, str]:
    """What the plan was about ("medicine", "referral", "test", "self-care", "plan") and the clinician's own word for it."""
    # a medicine named only to advise against it ("don't take any other paracetamol", "painkillers wouldn't be helpful")
    # is not what the plan is about: the alternative would name a medicine the clinician did not suggest
    text = " ".join(u.text for u in ev.plan_sentences if not _ADVISED_AGAINST.search(" ".join(tokens(u.text))))
    focus = _medicine_focus(ev) if _DRUG.search(text) else None
    if focus is not None:
        return "medicine", focus
    for kind, rx in (("medicine", _DRUG), ("referral", _REFERRAL), ("test", _TEST), ("self-care", _SELFCARE)):
        m = rx.search(text)
        if m:
            return kind, m.group(0)
    return "plan", ""


# How to take or use a medicine: amount, frequency, duration, method. What the patient must get right is what a
# teach-back checks (Schillinger et al. 2003: the patient restates the key instructions; Silverman, Kurtz & Draper 2013,
# Calgary-Cambridge "explanation and planning": give specific instructions and check understanding).
_INSTRUCTION = re.compile(
    r"\b(?:once|twice|three times|four times|\w+ times a day|(?:a|per) day|daily|every (?:\w+ )?(?:hours?|morning|evening|night|day)|"
    r"at night|in the morning|before bed|fingertips?|milligrams?|mg|puffs?|dose|doses|thin(?:ly| layer)|small amounts?|apply|rub|"
    r"with food|for (?:the next )?(?:a |one |two |three |five |seven |ten |fourteen |\d+ |couple of |few )?(?:days?|weeks?))\b")
# A medicine named by its own name ("it's called Fexofenadine", "some Betnovate"): an open class no lexicon holds.
_NAMED_MEDICINE = re.compile(r"\b(?:called|like|some|prescribe|try|of)\s+([A-Z][a-z]{4,})\b")
_GENERIC_MEDICINE = frozenset({"cream", "ointment", "tablet", "tablets", "capsule", "capsules", "drops", "spray", "medication",
                               "medicine", "painkiller", "painkillers"})


def _medicine_focus(ev: VisitEvents) -> str | None:
    """The medicine the plan is about: the one the clinician gave the most specific instructions for.

    Each clinician sentence from the start of the plan names at most one medicine (a name of its own before a class
    word, a class word before "tablet" or "cream"); a sentence that names none but points back ("use it twice a day",
    "it's one tablet three times a day") speaks of the last one named; one about something else (fluids, sleep)
    does not. The medicine with the most instructions wins; with none, the first named (what the alternative
    said before). Naming the first medicine of the plan had the teach-back check an antihistamine mentioned in
    passing instead of the new cream with its fingertip amounts (docs/coaching-audit-2026-12.md)."""
    if ev.plan_start_turn is None:
        return None
    order: list[str] = []
    score: dict[str, int] = {}
    last: str | None = None
    for s in _clinician_sentences(ev, since=ev.plan_start_turn):
        low = " ".join(tokens(s.text))
        if _ADVISED_AGAINST.search(low):
            last = None
            continue
        named = [m.group(1) for m in _NAMED_MEDICINE.finditer(s.text) if not _NAMED_MEDICINE_STOP.match(m.group(1).lower())]
        classes = [m.group(0) for m in _DRUG.finditer(s.text)]
        specific = [w for w in classes if w.lower() not in _GENERIC_MEDICINE]
        name = (named or specific or ([] if last is not None else classes) or [None])[0]
        if name is not None:
            key = next((k for k in order if k.lower() == name.lower()), name)
            if key not in score:
                order.append(key)
                score[key] = 0
            last = key
        elif not (classes or _ANAPHOR.search(low)):
            last = None  # fluids, sleep, a referral: the instructions are not about the medicine named before
            continue
        if last is not None:
            score[last] += len(_INSTRUCTION.findall(low))
    if not order:
        return None
    return max(order, key=lambda k: (score[k], -order.index(k)))


_APPLIED = re.compile(r"\b(?:creams?|ointments?|emollients?|gels?|lotions?|apply|applied|rub|fingertips?|sprays?|inhalers?|"
                      r"drops|puffs?|paste|skin)\b")


def _take_or_use(ev: VisitEvents, word: str) -> str:
    """"use" for a cream, spray, inhaler or drops ("how are you going to take the steroid?" for a cream misread the plan)."""
    if _APPLIED.search(word.lower()):
        return "use"
    sents = _clinician_sentences(ev, since=ev.plan_start_turn)
    near = [" ".join(tokens(x.text)) for i, s in enumerate(sents) if word.lower() in s.text.lower() for x in sents[i : i + 2]]
    return "use" if any(_APPLIED.search(x) for x in near) else "take"


# "use it twice a day", "one tablet three times a day" after a medicine was named: the same medicine
_ANAPHOR = re.compile(r"\b(?:it|them|that|this|those|these|one)\b")
_NAMED_MEDICINE_STOP = re.compile(r"(?:this|that|these|those|there|their|about|maybe|things|something|which|where|what|when|"
                                  r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|boots|babylon|doctor)$")


_ADVISED_AGAINST = re.compile(r"\b(?:don'?t|do not|shouldn'?t|should not|wouldn'?t|would not|won'?t|isn'?t|is not|not (?:be )?"
                              r"(?:helpful|advisable|needed|necessary)|no need|avoid|stop taking)\b")


def _the(word: str) -> str:
    w = word.strip()
    if not w:
        return "it"
    if w[0].isupper() and not w.isupper():
        return w  # a brand or drug name
    return "the " + w.lower()


_PLAIN_TRAILERS = ("and", "but", "or", "like", "because", "cause", "so")


_OPENISH = re.compile(r"\b(?:tell me|talk me through|describe|explain|how (?:has|have|is|are|was|were|do you feel)|what (?:happened|was it like))\b")
_FEELING_WORDS = {"worry": "a worry", "fear": "being frightened", "serious illness": "a fear of something serious",
                  "stress": "feeling stressed", "low mood": "feeling low", "coping": "finding it hard to cope"}


def _trailing(text: str) -> str:
    ws = [w for w in tokens(text) if w not in ("um", "uh", "er", "erm")]
    return ws[-1] if ws else ""


def _clinician_sentences(ev: VisitEvents, upto: int | None = None, since: int | None = None) -> list[Sentence]:
    return [s for t in ev.turns if t.clinician and (upto is None or t.index <= upto) and (since is None or t.index >= since)
            for s in t.sentences]


def might_be_emergency(ev: VisitEvents) -> bool:
    """The strict escalation flag, or any unconditional mention of an ambulance, 999, A&E or going to hospital."""
    return ev.emergency_escalation.value or any(maybe_emergency(s.text) for s in _clinician_sentences(ev))


def _no_ice_before(ev: VisitEvents, upto: int | None = None) -> bool:
    """No ICE question up to turn ``upto`` (all visit: None), by the precise rule or the liberal one."""
    if any(upto is None or u.turn <= upto for u in ev.ice_questions):
        return False
    return not any(s.text.rstrip().endswith("?") and maybe_ice(s.text) for s in _clinician_sentences(ev, upto))


_YES_NO_START = re.compile(r"(?:(?:um|uh|and|so|ok|okay|right|now)\s)*(?:do|did|does|is|are|was|were|have|has|had|could|would|can|will)\b")


# What a patient says when they volunteer an idea, a concern or an expectation ("I'm worried it's something serious",
# "I was hoping for antibiotics"), judged liberally: it blocks a claim of absence, it never makes one.
# (An illness named alone is not one: "my father died of bowel cancer" is family history.)
_PATIENT_ICE = re.compile(r"\b(?:worr\w*|concern\w*|scared|frighten\w*|afraid|anxious|anxiety|panic\w*|frantic|terrified|serious|"
                          r"hop(?:e|ed|ing)|expect\w*|was thinking it|could it be|is it something|something (?:bad|wrong))\b")


_TAKEN_UP = re.compile(r"\b(?:worr\w*|concern\w*|reassur\w*|serious|frighten\w*|scar\w*|afraid|anxious|anxiety|in answer to|"
                       r"your question|you (?:were )?ask(?:ed|ing)|you(?:'re| are| were) (?:hoping|expecting|thinking))\b")


def patient_voiced_concern(ev: VisitEvents, upto: int | None) -> bool:
    """The patient put an idea, concern or expectation into words before turn ``upto`` (all visit: None), and the
    clinician took it up: a clinician turn among the next few, or a plan sentence, speaks to it.

    Then "you did not ask what worried them" and "you reassured before asking what they were worried about" do not fit:
    the concern was on the table and answered (Calgary-Cambridge asks that it be elicited *or* picked up when
    volunteered). A volunteered concern left unanswered keeps the observation; a cue answered with a question is the
    other observation, ``cue_not_explored``."""
    plan = " ".join(tokens(" ".join(u.text for u in ev.plan_sentences)))
    for p in ev.turns:
        if not (p.patient and p.act == "content" and (upto is None or p.index < upto) and _PATIENT_ICE.search(" ".join(tokens(p.text)))):
            continue
        replies = [t for t in ev.turns[p.index + 1 :] if t.clinician and t.act not in ("backchannel", "fragment")][:3]
        if any(_TAKEN_UP.search(" ".join(tokens(t.text))) for t in replies) or _TAKEN_UP.search(plan):
            return True
    return False


_CLINICAL_JOB = r"(?:nurse|doctor|gp|medic|paramedic|pharmacist|physio(?:therapist)?|midwife|dentist|surgeon|physician|radiographer|" \
    r"medical student|healthcare professional|health care professional)"
_PATIENT_JOB = re.compile(rf"\bi(?:'m| am) (?:a |an )?(?:\w+ )?{_CLINICAL_JOB}\b|\bi work (?:as|in) (?:a |an )?(?:\w+ )?{_CLINICAL_JOB}\b|"
                          rf"\bi'?ve been (?:a |an )?{_CLINICAL_JOB}\b")
_CLINICIAN_SAYS_JOB = re.compile(rf"\byou'?re (?:a |an )?(?:\w+ )?{_CLINICAL_JOB}\b|\byou are (?:a |an )?(?:\w+ )?{_CLINICAL_JOB}\b|"
                                 rf"\b{_CLINICAL_JOB} yourself\b")


def patient_in_health_care(ev: VisitEvents) -> bool:
    """The patient said they work as a clinician ("I work as a nurse"), or the clinician said so ("you're a medic yourself")."""
    return any(_PATIENT_JOB.search(" ".join(tokens(t.text))) if t.patient else _CLINICIAN_SAYS_JOB.search(" ".join(tokens(t.text)))
               for t in ev.turns)


def _robust_monologue(ev: VisitEvents, start: float, end: float) -> bool:
    """The stretch stays over a minute even if every patient token after a "?" or outside the clinician's speech ends it."""
    cuts = [p.t0 for p in ev.turns if p.patient and start < p.t0 < end and (ends_stretch(ev.turns, p) or _after_question(ev, p))]
    bounds = [start, *sorted(cuts), end]
    return max(b - a for a, b in zip(bounds, bounds[1:])) > 60.0


def _after_question(ev: VisitEvents, p: Turn) -> bool:
    prev = [s for t in ev.turns[max(0, p.index - 40) : p.index] if t.clinician for s in t.sentences if s.t1 <= p.t0 + 0.3]
    last = max(prev, key=lambda s: s.t1, default=None)
    return last is not None and last.text.rstrip().endswith("?")


MayQuote = Callable[[Sentence], bool]


def _may(may_quote: MayQuote | None, sentences: Sequence[Sentence | None]) -> bool:
    """Whether the quote gate lets every one of ``sentences`` be quoted (no gate: a human transcript's labels)."""
    return may_quote is None or all(s is not None and may_quote(s) for s in sentences)


def candidates(events: VisitEvents, labels: Mapping[str, Sequence[str]] | None = None, quotes: bool = True,
               may_quote: MayQuote | None = None) -> list[Observation]:
    """Every observation the events support (each meets its own truth condition), strongest first.

    ``may_quote``: the per-utterance quote gate (:mod:`edge_agent.feedback.quote_gate`); a sentence it refuses
    is not quoted and its observation is phrased as with ``quotes=False``.
    """
    ev = events
    turns = ev.turns
    gold_like = ev.to_gold()
    out: list[Observation] = []

    def add(kind: str, at: float, s: Sentence | None, happened: str, alternative: str, rationale: str, impact: float, **evidence: Any) -> None:
        quote = short_quote(s.text) if (quotes and _quotable(s)) and s is not None and _may(may_quote, [s]) else ""
        obs = Observation(kind, round(at, 2), moment(at), quote, alternative, rationale, happened, dict(evidence), impact)
        if truth_condition(obs, gold_like, labels) is not False:  # only what the evidence supports
            out.append(obs)

    emergency = might_be_emergency(ev)
    stmt = ev.opening_statement
    oq = ev.opening_question

    # Opening statement redirected (Beckman & Frankel 1984; Marvel et al. 1999; Langewitz et al. 2002).
    plain_redirect = stmt is not None and stmt.outcome == "redirected" and _trailing(turns[stmt.end_turn].text) in _PLAIN_TRAILERS
    if stmt is not None and stmt.outcome == "redirected" and stmt.redirect_turn is not None and plain_redirect:
        t = turns[stmt.redirect_turn]
        s = _best_sentence(t, prefer_question=True)
        what = "asked" if s is not None and s.question else "came in"
        add("opening_redirected", stmt.end, s,
            f"you {what} {stmt.duration:.0f} s into the patient's opening statement, before they had finished",
            "Let the opening statement run to its end with a nod or \"mm-hm\" (most patients finish within a minute), then ask "
            "\"Is there something else?\" before narrowing down.",
            "Redirected after a median of about 20 s, patients rarely return to the rest of their agenda, while letting them "
            "finish takes only seconds longer (Beckman & Frankel 1984; Marvel et al. 1999; Langewitz et al. 2002).",
            95.0, end=stmt.end, turn=stmt.redirect_turn)
    elif oq is not None and oq.notes_led and stmt is not None:
        t = turns[oq.turn]
        notes_s = oq.notes_text or oq.text
        s = next((x for x in t.sentences if x.text == notes_s), None) or _best_sentence(t)
        short = stmt.duration < 20
        # an open invitation said first and then narrowed to the note before the patient could answer ("Tell me what's
        # been going on. You've been saying there's a problem with your hearing. Is that right?"): the invitation was
        # there, the lesson is to let it stand (Marvel et al. 1999: the agenda is solicited before any one concern)
        narrowed = bool(oq.notes_text) and oq.notes_text != oq.text
        add("notes_led_opening", oq.start, s,
            ("you asked an open question and then named the problem from the booking notes before the patient could answer"
             if narrowed else "you opened with the problem from the booking notes")
            + (f"; the patient confirmed it and spoke for {stmt.duration:.0f} s" if short else ""),
            ("Let the open question stand and wait for the answer; bring in the note afterwards (\"I also see you mentioned … "
             "on the form\") to check it against what they said." if narrowed else
             "Start with an open invitation before the notes: \"Before I look at what you wrote, what would you like to talk about "
             "today?\"; then check the note against what they say."),
            "An opening built on the booking note narrows the agenda to one problem before the patient has spoken; an open "
            "opening question brings out the concerns that otherwise surface at the door (Silverman, Kurtz & Draper 2013; "
            "Marvel et al. 1999).",
            55.0 if short else 35.0, turn=oq.turn)

    # Floor-taking interruptions after the opening (Mulder-Vos et al. 2023; Rowe 1986).
    later = [o for o in ev.interruptions if stmt is None or stmt.redirect_turn != o.turn]
    if len(later) >= MIN_INTERRUPTIONS and any(_trailing(turns[o.patient_turn].text) in _PLAIN_TRAILERS for o in later):
        # cite the moments with the plainest evidence: the patient stopped on "and / but / like / because"
        strong = [o for o in later if _trailing(turns[o.patient_turn].text) in _PLAIN_TRAILERS]
        cited = strong[:2]
        t = turns[cited[0].turn]
        s = _best_sentence(t, prefer_question=True)
        when = " and ".join(moment(o.time) for o in cited)
        add("interruptions", cited[0].time, s,
            f"you took the floor while the patient was mid-sentence {len(later)} times (e.g. at {when}), and the patient stopped",
            "When the patient trails off (\"and…\", \"but…\"), wait a second or two; if you need to steer, acknowledge first "
            "(\"Sorry, go on — you were saying…\").",
            "Most overlaps in consultations are encouraging back-channels; the ones that take the floor cut the patient's "
            "account short (Mulder-Vos et al. 2023; Rowe 1986).",
            30.0 + 12.0 * len(later), times=[o.time for o in cited])

    # Monologue: the longest stretch over a minute (Silverman, Kurtz & Draper 2013, chunk and check).
    robust = [x for x in ev.monologues if x.duration >= REPORT_MONOLOGUE_S and _robust_monologue(ev, x.start, x.end)]
    if robust:
        m = max(robust, key=lambda x: x.duration)
        inside = [u for u in ev.plan_sentences if m.start_turn <= u.turn <= m.end_turn]
        t = turns[m.start_turn]
        s = next((turns[u.turn].sentences[u.sentence] for u in inside if _quotable(turns[u.turn].sentences[u.sentence])), None) or _best_sentence(t)
        more = f" ({len(ev.monologues)} stretches over a minute)" if len(ev.monologues) > 1 else ""
        if inside:
            kind, word = _plan_kind(ev)
            piece = {"medicine": f"after explaining {_the(word)}", "referral": "after explaining the referral",
                     "test": f"after explaining {_the(word)}", "self-care": "after each thing to do at home"}.get(kind, "after each part of the plan")
            alt = (f"Give the plan in chunks and check after each: stop {piece} and ask \"What questions do you have about that so "
                   "far?\" before going on.")
        else:
            alt = "Break the explanation into two or three chunks and check after each: \"Does that fit with how it's been for you?\""
        add("monologue", m.start, s,
            f"you spoke for {duration(m.duration)} without a patient turn{more}",
            alt,
            "Chunk-and-check keeps information at the patient's pace and shows what to explain next; long uninterrupted "
            "explanations are poorly recalled (Silverman, Kurtz & Draper 2013).",
            20.0 + 0.4 * m.duration, start=m.start, end=m.end, turn=m.start_turn)

    # Ideas, concerns and expectations (Silverman, Kurtz & Draper 2013; Levinson et al. 2000).
    if not ev.ice_questions and not emergency:
        missed = [c for c in ev.cues if c.response == "biomedical_question" and c.response_turn is not None
                  and _no_ice_before(ev, c.response_turn + 3)]
        reassure = [r for r in ev.reassurance if (stmt is None or r.turn > stmt.end_turn) and _STRICT_REASSURE.search(r.text.lower())
                    and _no_ice_before(ev, r.turn) and not patient_voiced_concern(ev, r.turn)]
        if missed:
            c = missed[0]
            t = turns[c.response_turn]  # type: ignore[index]
            s = _best_sentence(t, prefer_question=True)
            pick = {
                "worry": "\"You said you're worried about it — what worries you most?\"",
                "fear": "\"That sounds frightening — what is it you're afraid it might be?\"",
                "serious illness": "\"You wondered whether it could be something serious — what were you thinking of?\"",
                "stress": "\"You mentioned feeling stressed by it — how has that been for you?\"",
                "low mood": "\"You said it's been getting you down — tell me a bit more about that.\"",
                "coping": "\"It sounds like it's been hard going — how are you managing with it all?\"",
            }[c.feeling]
            add("cue_not_explored", t.t0, s,
                # the next question may be about symptoms, work or smoking: say only what is certain
                f"you went on to your next question just after the patient mentioned {_FEELING_WORDS[c.feeling]}",
                f"Pick the cue up before the checklist — {pick} — then come back to your questions.",
                "Patients voice concerns indirectly; when a cue is answered with a biomedical question it rarely comes back, "
                "and the visit ends with the worry unaddressed (Levinson et al. 2000; Silverman, Kurtz & Draper 2013).",
                85.0, cue_turn=c.patient_turn, response_turn=c.response_turn, turn=c.response_turn)
        if reassure:
            r = reassure[0]
            s = turns[r.turn].sentences[r.sentence]
            earlier = [c for c in ev.cues if c.patient_turn < r.turn]
            alt = (f"The patient had mentioned {_FEELING_WORDS[earlier[0].feeling]}: ask what exactly worried them (\"What were you "
                   "afraid it might be?\") and aim the reassurance at that." if earlier else
                   "Ask first — \"Was there anything you were worried this might be?\" — then reassure about that worry in particular.")
            add("premature_reassurance", r.time, s,
                "you reassured the patient before asking what they had been worried it might be",
                alt,
                "Reassurance before the patient's concern is known often misses it and does not stick (Silverman, Kurtz & "
                "Draper 2013).",
                70.0, turn=r.turn, sentence=f"t{r.turn:03d}:s{r.sentence:02d}")
        if ev.plan_sentences and _no_ice_before(ev) and not patient_voiced_concern(ev, ev.plan_start_turn):
            u = ev.plan_sentences[0]
            s = turns[u.turn].sentences[u.sentence]
            kind, word = _plan_kind(ev)
            alt = {
                "medicine": f"Before suggesting {_the(word)}, ask what they were hoping for (\"Was there anything you were hoping "
                            "we'd do today?\") — some hope for a medicine, some fear one — and what they thought was going on.",
                "referral": "Before explaining the referral, ask \"What were you thinking it might be?\": a referral frightens or "
                            "reassures depending on the answer, and you can speak to it.",
                "test": f"Before arranging {_the(word)}, ask what they were worried it might show (\"Was there anything in "
                        "particular you were worried about?\"), and say what the test will and won't tell.",
                "self-care": "Before the advice, ask \"What were you thinking was going on?\" and \"Was there anything you were "
                             "hoping we'd do today?\", then show how the advice answers that.",
            }.get(kind, "Before explaining the plan, ask \"What were you thinking it might be?\" and \"Was there anything you "
                        "were hoping for today?\", and link the plan to the answers.")
            add("ice_not_elicited", u.time, s,
                "you did not ask what the patient thought was going on, what worried them or what they hoped for",
                alt,
                "Plans built on the patient's own ideas, concerns and expectations are understood and followed more often "
                "(Silverman, Kurtz & Draper 2013).",
                60.0, turn=u.turn)

    # Agenda (Heritage et al. 2007; Marvel et al. 1999).
    if not emergency:
        if not ev.agenda_questions and stmt is not None and not any(maybe_agenda(x.text) for x in _clinician_sentences(ev)):
            # the first *specific* question: an invitation to say more ("Do you want to tell me a bit more about it?") or a
            # check on a summary ("Is that right?") still belongs to hearing the patient out
            first_q = next((s for t in turns[stmt.end_turn + 1 :] if t.clinician for s in t.sentences if clinical_question(t, s)
                            and not _CHECK_TAG.fullmatch(" ".join(tokens(s.text))) and not _INVITE_MORE.search(" ".join(tokens(s.text)))),
                           None)
            if first_q is not None:
                if oq is not None and oq.notes_led:
                    alt = ("You started from the booking note; before the first specific question, ask \"Is there something else "
                           "you'd like to deal with today?\": a note rarely holds the whole agenda.")
                elif stmt.duration < 15:
                    alt = (f"The opening statement was short ({stmt.duration:.0f} s); before going into specifics, ask \"Is there "
                           "something else you'd like to deal with today?\" and agree the list together.")
                elif stmt.duration >= 30:
                    alt = ("After the opening statement, sum it up in one sentence and ask \"Is there something else you'd like "
                           "to deal with today?\" before your first specific question.")
                else:
                    alt = ("Before your first specific question, ask \"Is there something else you'd like to deal with today?\" "
                           "and agree with the patient what to cover first.")
                add("agenda_not_set", first_q.t0, first_q,
                    "you did not ask whether there was something else the patient wanted to deal with today",
                    alt,
                    "Asking \"something else?\" early reduces concerns left unmet at the end of the visit (Heritage et al. 2007; "
                    "Marvel et al. 1999).",
                    50.0, turn=first_q.turn)
        any_q = next((u for u in ev.agenda_questions if u.wording == "any"), None)
        if any_q is not None:
            s = turns[any_q.turn].sentences[any_q.sentence]
            add("agenda_anything", any_q.time, s,
                "you asked for further concerns with \"anything\"",
                "Ask \"Is there something else you'd like to address today?\": \"something\" expects a yes, \"anything\" "
                "invites a no.",
                "In a randomised study, \"something else\" reduced patients' unmet concerns while \"anything else\" did not "
                "(Heritage et al. 2007).",
                35.0, turn=any_q.turn)

    # Closing the loop: teach-back and safety-netting (Schillinger et al. 2003; Almond et al. 2009).
    strong_plan = [u for u in ev.plan_sentences if u.turn > (stmt.end_turn if stmt else -1)]
    if strong_plan and not emergency:
        kind, word = _plan_kind(ev)
        last = strong_plan[-1]
        s = turns[last.turn].sentences[last.sentence]
        firm = [u for u in strong_plan if re.search(r"\b(?:i'?ll|i will|we'?ll|i'?d like you|you (?:should|need|can)|take|use|"
                                                      r"come back|call|book|refer|prescri)\w*", u.text.lower())]
        quote_s = turns[firm[-1].turn].sentences[firm[-1].sentence] if firm else s
        if not ev.teach_back_requests and not ev.plan_said_back.value and not maybe_plan_said_back(turns, ev.plan_start_turn):
            ask = {
                "medicine": f"\"So I know I've explained it well, how are you going to {_take_or_use(ev, word)} {_the(word)}?\"",
                "referral": "\"So I know I've been clear, what happens next with the referral, and what would you do if you hadn't heard?\"",
                "test": f"\"So I know I've been clear, can you tell me what {_the(word)} is for and how you'll get the result?\"",
                "self-care": "\"So I know I've been clear, what are you going to do over the next few days?\"",
            }.get(kind, "\"So I know I've explained it well, can you tell me in your own words what we've agreed?\"")
            if ev.safety_netting:
                ask = ask[:-1] + " And what would make you call us back?\""
            add("teach_back", last.time, quote_s,
                "you gave the plan and the patient did not say any of it back in their own words",
                f"Close the loop with a teach-back: {ask}",
                "Asking patients to say the plan back, and correcting what they miss, improves recall and outcomes, "
                "especially with limited health literacy (Schillinger et al. 2003).",
                55.0 + (10.0 if len(strong_plan) >= 4 else 0.0), turn=last.turn)
        if not ev.safety_netting and not any(maybe_safety_net(x.text) for x in _clinician_sentences(ev, since=ev.plan_start_turn)):
            what = {"medicine": f"if it isn't better a few days after starting {_the(word)}", "referral": "while waiting for the referral",
                    "test": "before the result is back"}.get(kind, "if things don't settle")
            add("safety_net_missing", last.time, s,
                "you gave the plan without saying what to watch for or when to come back",
                f"Add a safety-net: name two or three warning signs, and what to do {what} (\"If …, call us; if …, go to A&E\").",
                "A clear contingency plan is how a diagnosis made under uncertainty is kept safe (Almond et al. 2009; "
                "Silverman, Kurtz & Draper 2013).",
                60.0, turn=last.turn)

    # Stacked questions (Silverman, Kurtz & Draper 2013: one question at a time).
    stacks = [x for x in map(_coachable_stack, ev.stacked_questions) if x is not None]
    if len(stacks) >= MIN_STACKS and not emergency:
        st = max(stacks, key=lambda x: (len(x.questions), -x.time))
        s = next((x for k in st.turns for x in turns[k].sentences if x.text == st.questions[0]), None)
        quote_text = " ".join(st.questions[:3])
        obs_s = Sentence(s.turn, s.index, quote_text, s.t0, s.t1, True) if s is not None else None
        first_open = bool(_OPENISH.search(" ".join(tokens(st.questions[0]))))
        # every question the quote and the alternative repeat must pass the gate, or none is repeated
        stack_quotes = quotes and _may(may_quote, [x for k in st.turns for x in turns[k].sentences if x.text in st.questions[:3]]
                                       or [None])
        # with quotes on, the alternative names the clinician's own questions: one script for every visit
        # was the audit's complaint (issue 13); with quotes off it may not repeat their words
        first = f"\"{short_quote(st.questions[0], 8)}\"" if stack_quotes else "the first question"
        then = f"\"{short_quote(st.questions[1], 8)}\"" if stack_quotes else "the next one"
        n_q, times = len(st.questions), f"this happened {len(stacks)} times in the visit"
        real_menu = st.kind == "menu" and not _is_checklist(st.questions)
        if not stack_quotes:
            # no words to name the questions by: the lesson is matched to the shape of the stack instead,
            # with the visit's own figures (the same sentence in every report was the audit's complaint)
            alt = _stack_alternative(st, first_open, n_q, times)
        elif st.kind == "rephrase":
            # one question in several wordings: "the patient can answer only one" is not what happened
            alt = (f"Ask {first} once and wait: put again in other words before the answer ({n_q} versions here), a question "
                   f"makes the patient start over ({times}).")
        elif real_menu:
            alt = (f"Ask {first} on its own and let the patient describe it in their words before offering options: offered "
                   f"{n_q - 1} at once, the patient picks one of yours ({times}).")
        elif first_open:
            alt = (f"Let {first} stand on its own and wait: {then} can come after the patient's story, and is often "
                   "answered in it.")
        elif len(st.questions) >= 3:
            alt = (f"Ask {first} on its own and wait for the whole answer: with {len(st.questions)} questions at once the "
                   "patient can answer only one, and the answer often leads to the next.")
        else:
            alt = (f"Ask {first}, pause until the answer is complete, then ask {then} — the checklist goes no slower "
                   f"(this happened {len(stacks)} times).")
        add("stacked_questions", st.time, obs_s if stack_quotes else None,
            (f"you put one question {n_q} ways" if st.kind == "rephrase" else f"you asked {n_q} questions in a row")
            + f" before the patient could answer ({len(stacks)} times in the visit)",
            alt,
            ("A question reworded before the answer makes the patient start again; one question and then silence gets the "
             "fuller answer (Silverman, Kurtz & Draper 2013; Rowe 1986)." if st.kind == "rephrase" else
             "Several questions at once leave the patient to choose which to answer, and the others go unanswered "
             "(Silverman, Kurtz & Draper 2013)."),
            20.0 + 5.0 * min(len(stacks), 6), turn=st.turn)

    # Jargon (Castro et al. 2007): a term is jargon for a lay patient; not coached when the patient works in health care.
    j = next((x for x in ev.jargon if x.unexplained), None)
    if j is not None and not patient_in_health_care(ev):
        s = turns[j.turn].sentences[j.sentence]
        add("jargon", j.time, s,
            f"you said \"{j.term}\" without explaining it nearby",
            f"Say it in everyday words, or add a short gloss: \"{j.term}, which means {j.plain}\".",
            "Patients often do not understand medical terms that clinicians assume are familiar, and rarely say so "
            "(Castro et al. 2007).",
            28.0, turn=j.turn, sentence=f"t{j.turn:03d}:s{j.sentence:02d}")
    out.sort(key=lambda o: -o.impact)
    return out


_STRICT_REASSURE = re.compile(r"\b(?:nothing (?:too |really |much )?(?:to worry|serious|sinister|dangerous)|(?:don'?t|no need to) worry|"
                              r"(?:not|isn'?t|nothing) (?:anything )?(?:serious|sinister|dangerous|worrying)|very common|nothing to be "
                              r"(?:worried|concerned)|(?:not|(?:don'?t|do not) think there'?s) (?:a lot|much|too much|anything much) to worry)\b")


def select(cands: list[Observation], events: VisitEvents | None = None, limit: int = MAX_OBSERVATIONS) -> list[Observation]:
    """The strongest ``limit`` candidates that fit the visit, one per lesson, shown in time order."""
    emergency = events is not None and might_be_emergency(events)
    plan_back = events is not None and events.plan_said_back.value
    chosen: list[Observation] = []
    groups: set[str] = set()
    for c in sorted(cands, key=lambda o: -o.impact):
        if c.behaviour in WITHHELD:
            continue
        if emergency and c.behaviour in NOT_IN_EMERGENCY:
            continue
        if plan_back and c.behaviour == "teach_back":
            continue
        g = GROUPS.get(c.behaviour, c.behaviour)
        if g in groups:
            continue
        groups.add(g)
        chosen.append(c)
        if len(chosen) == limit:
            break
    return sorted(chosen, key=lambda o: o.at_s)


# What a safety-net named, in plain words from a fixed list (never the clinician's own phrasing).
_SN_SIGNS = (
    (re.compile(r"\b(?:fever|feverish|temperature|hot or sweaty|shivery)"), "a fever"),
    (re.compile(r"\b(?:getting worse|gets? (?:a lot |any )?worse|worsening|progress\w*|spreading)"), "it getting worse"),
    (re.compile(r"\b(?:not (?:getting )?(?:any )?better|not got better|hasn'?t got better|isn'?t (?:getting )?better|"
                r"(?:isn'?t|not) settling|not helping)"), "it not getting better"),
    (re.compile(r"\bbreath"), "trouble breathing"),
    (re.compile(r"\b(?:sick|vomit\w*)\b"), "being sick"),
    (re.compile(r"\bweak(?:ness)?\b"), "weakness"),
    (re.compile(r"\b(?:blood|bleed\w*)\b"), "bleeding"),
    (re.compile(r"\b(?:pain|ache|headache)\b"), "new or worse pain"),
)
_SN_ACTIONS = (
    (re.compile(r"\b(?:999|ambulance)\b"), "call 999"),
    (re.compile(r"\b(?:a (?:and|&) e|emergency department|hospital)\b"), "go to A&E"),
    (re.compile(r"\b111\b"), "call 111"),
    (re.compile(r"\b(?:come back|see me|follow[- ]up|appointment|book)\b"), "come back"),
    (re.compile(r"\b(?:call|ring|phone|contact)\b"), "call the practice"),
)


def _safety_net_said(sentences: Sequence[Any]) -> str:
    """What the safety-net named: the warning signs and what to do, from a fixed plain list."""
    text = " ".join(x.text.lower() for x in sentences)
    signs = [name for rx, name in _SN_SIGNS if rx.search(text)][:3]
    actions = [name for rx, name in _SN_ACTIONS if rx.search(text)][:2]
    watch = f"what to watch for ({_listed(signs)})" if signs else "what to watch for"
    do = f"what to do then ({' or '.join(actions)})" if actions else "what to do if it happened"
    return f"you told the patient {watch} and {do}"


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _minutes(seconds: float) -> str:
    m = int(round(seconds / 60))
    return "a minute" if m <= 1 else f"{m} minutes"


_INVITE_MORE = re.compile(r"\b(?:tell me|talk me through|describe|explain)\b(?: \w+){0,3} (?:more|what'?s (?:been )?(?:going on|happening))\b|"
                          r"^(?:(?:so|and|ok|okay|um|uh)\s)*(?:go on|carry on|and then)\b")


# A check on a summary ("…, is that right?") asks the patient to confirm what was just said back: summarising and
# checking is a Calgary-Cambridge skill, not a second question competing for the answer.
_CHECK_TAG = re.compile(r"(?:(?:so|and|ok|okay|um|uh|yeah|right)\s)*(?:is that (?:right|correct|true|ok|okay|fair)|"
                        r"is that what you (?:mean|meant)|am i right|have i got that right|did i get that right|"
                        r"does that sound right|(?:is )?that right|correct|isn'?t it|is it)")


def _coachable_stack(st: StackedQuestion) -> StackedQuestion | None:
    """The stack as coaching sees it: summary checks dropped; kept if what is left is two different questions, or three or more."""
    qs = [q for q in st.questions if not _CHECK_TAG.fullmatch(" ".join(tokens(q)))]
    if len(qs) < 2:
        return None
    if len(qs) < len(st.questions):
        st = replace(st, questions=qs, kind=stack_kind(qs))
    return st if st.kind == "different" or len(qs) >= 3 else None


def _is_checklist(questions: Sequence[str]) -> bool:
    """Short symptom-list questions ("Any nausea? Any vomiting?", "Sore throat? Runny nose?")."""
    short = [q for q in questions if len(tokens(q)) <= 4 or re.match(r"(?:and |or )?any\b", " ".join(tokens(q)))]
    return len(short) * 3 >= len(questions) * 2


def _stack_alternative(st: Any, first_open: bool, n_q: int, times: str) -> str:
    """The stacked-questions advice without the clinician's words, matched to what kind of stack it was."""
    if st.kind == "menu" and not _is_checklist(st.questions):  # "Any fever? Any sweats?" is a checklist, not options
        return (f"Ask one open question about it (\"What is it like?\") and let the patient describe it before offering "
                f"options: offered {n_q} at once, the patient picks one of yours instead of their own word ({times}).")
    if st.kind == "rephrase":
        return (f"Ask it once and wait: put again in other words before the answer ({n_q} versions here), a question makes "
                f"the patient start over ({times}).")
    if _is_checklist(st.questions):
        return (f"Ask once what else they have noticed (\"What else has come with it?\"), let them list it, then check the "
                f"ones they left out one at a time: {n_q} symptoms in one breath get a single \"no\" ({times}).")
    if first_open:
        rest = "the question after it can come" if n_q == 2 else f"the {n_q - 1} after it can come"
        return (f"Let the open question stand on its own and wait: {rest} after the patient's story, and is often "
                f"answered in it ({times}).")
    return (f"Ask the first of the {n_q} questions on its own and wait for the whole answer; the patient can answer only one, "
            f"and the answer often leads to the next ({times}).")


def strength(events: VisitEvents, labels: Mapping[str, Sequence[str]] | None = None, quotes: bool = True,
             avoid: Sequence[Observation] = (), may_quote: MayQuote | None = None) -> Observation | None:
    """One specific thing that went well, phrased from what happened (None if nothing stands out).

    Its bracketed quote obeys the same gate as the observations' (``may_quote``, see :func:`candidates`).
    """
    ev = events
    turns = ev.turns
    gold_like = ev.to_gold()
    cands: list[Observation] = []

    def add(kind: str, at: float, s: Sentence | None, happened: str, why: str, **evidence: Any) -> None:
        quote = short_quote(s.text) if quotes and s is not None and _quotable(s) and _may(may_quote, [s]) else ""
        o = Observation(kind, round(at, 2), moment(at), quote, "", why, happened, dict(evidence))
        if truth_condition(o, gold_like, labels) is not False:
            cands.append(o)

    esc = ev.emergency_escalation
    if esc.value and esc.turn is not None:
        # in an emergency every suggestion is withheld; what can go well is the escalation itself, said with its reason
        # and what to do while waiting (Silverman, Kurtz & Draper 2013: explain the rationale of the plan)
        near = [x for t in turns[esc.turn : esc.turn + ESCALATION_TURNS + 1] if t.clinician for x in t.sentences]
        why = next((x for x in near if _REASON.search(" ".join(tokens(x.text)))), None)
        if why is not None:
            meantime = any(_MEANTIME.search(" ".join(tokens(x.text))) for x in near)
            add("strength_escalation", esc.time or why.t0, why,
                "you arranged emergency care and told the patient why" + (" and what to do while waiting" if meantime else ""),
                "Saying why urgent care is needed, and what to do until it comes, helps the patient act on an alarming "
                "instruction (Silverman, Kurtz & Draper 2013: explaining the rationale of the plan).", turn=esc.turn)
    if ev.ice_questions:
        u = ev.ice_questions[0]
        s = turns[u.turn].sentences[u.sentence]
        what = {"idea": "what they thought was going on", "concern": "what was worrying them",
                "expectation": "what they hoped for from the visit"}[u.components[0] if u.components else "concern"]
        low = " ".join(tokens(u.text))
        if u.components[:1] == ("idea",) and _YES_NO_START.match(low) and not re.search(r"\b(?:what|why|how)\b", low):
            # "Do you think that might be related to the stress?" offers the clinician's idea for a yes or no: it asks for
            # the patient's view on it, not their own account of what is going on ("Any thoughts as to what…?" still is)
            what = "whether they linked it to a possible cause"
        later = [p for p in ev.plan_sentences if p.turn > u.turn and re.search(r"\b(?:worr|concern|you mentioned|you said|you thought|"
                                                                                r"you were thinking|hoping|expect)\w*", p.text.lower())]
        stmt_ = ev.opening_statement
        if later:
            tail = f", and came back to it at {moment(later[0].time)} when you explained the plan"
        elif stmt_ is not None and stmt_.end_turn < u.turn <= stmt_.end_turn + 3:
            tail = ", right after their opening statement"
        elif ev.plan_start_turn is not None and u.turn < ev.plan_start_turn:
            tail = f", {_minutes(ev.plan_sentences[0].time - u.time) if ev.plan_sentences else 'well'} before you explained the plan"
        elif ev.plan_start_turn is not None:
            tail = ", after explaining the plan, before the visit ended"
        else:
            tail = ""
        add("strength_ice", u.time, s, f"you asked the patient {what}{tail}",
            "Eliciting ideas, concerns and expectations is what lets the plan fit the patient (Silverman, Kurtz & Draper 2013).",
            turn=u.turn)
    if ev.teach_back_requests:
        u = ev.teach_back_requests[0]
        add("strength_teach_back", u.time, turns[u.turn].sentences[u.sentence], "you asked the patient to say the plan back in their own words",
            "Teach-back closes the loop on understanding (Schillinger et al. 2003).", turn=u.turn)
    some = next((u for u in ev.agenda_questions if u.wording == "some"), None)
    if some is not None:
        add("strength_agenda", some.time, turns[some.turn].sentences[some.sentence], "you asked whether there was \"something else\" to deal with",
            "\"Something else?\" brings out concerns that \"anything else?\" does not (Heritage et al. 2007).", turn=some.turn)
    plain = [x for x in ev.safety_netting if re.search(r"\b(?:worse|better|look out|watch|warning|a (?:and|&) e|999|settle|improv)\w*", x.text.lower())]
    if plain and not ev.emergency_escalation.value:
        u = max(plain, key=lambda x: len(x.text))
        add("strength_safety_net", u.time, turns[u.turn].sentences[u.sentence], _safety_net_said(ev.safety_netting),
            "A concrete safety-net keeps a plan made under uncertainty safe (Almond et al. 2009).", turn=u.turn)
    stmt = ev.opening_statement
    if stmt is not None and stmt.outcome == "finished" and stmt.duration >= 20:
        add("strength_opening", stmt.end, None, f"you let the patient's opening statement run to its end ({stmt.duration:.0f} s) before your first question",
            "An opening statement heard to its end brings out the patient's agenda early (Beckman & Frankel 1984).",
            end=stmt.end)
    cited = {o.evidence.get("turn") for o in avoid} - {None}
    cands = [c for c in cands if c.evidence.get("turn") not in cited] or []
    return cands[0] if cands else None
