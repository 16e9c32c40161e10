"""Coaching report: 1-3 timestamped observations quoting only the clinician, never a score."""

from __future__ import annotations

import json
import re

import pytest

from edge_agent.feedback.observations import WITHHELD, candidates, moment, short_quote
from edge_agent.feedback.report import build_feedback
from edge_agent.transcript import Utterance
from tools.corpus.primock import consultation_ids, load_consultation, primock_dir, utterances_from_consultation

needs_primock = pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
EVALUATIVE = re.compile(
    r"\b(score[sd]?|scoring|grade[sd]?|rank(ed|ing|s)?|rating|rated|percentile|colleagues?|peers?|compared|"
    r"benchmark|better than|worse than|average clinician|top \d+|bottom \d+|pass(ed)?|fail(ed)?|excellent|poor)\b",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def classifier():
    from edge_agent.behaviours import BehaviourClassifier

    return BehaviourClassifier(threads=1)


def _words(text):
    return re.findall(r"[a-z0-9']+", text.lower())


def _check(fb, utts, at_least=1):
    clinician = [u.text for u in utts if u.speaker == "clinician"]
    patient = [u.text for u in utts if u.speaker == "patient"]
    assert at_least <= len(fb.observations) <= 3
    for o in [*fb.observations, *([fb.strength] if fb.strength else [])]:
        assert re.fullmatch(r"\d+:\d\d", o.moment)
        assert o.moment == moment(o.at_s)
        quote = o.clinician_quote.removesuffix(" …")
        assert len(quote.split()) <= 20
        # the clinician's own words (tidied, names left out as "…"), in order, from the clinician's turns
        qw = [w for w in _words(quote) if w]
        assert not qw or any(" ".join(qw) in " ".join(_words(c)) or set(qw) <= set(_words(" ".join(clinician))) for c in clinician), quote
        assert o.rationale and o.happened.startswith("you ")
        if o in fb.observations:
            assert o.alternative and f"At {o.moment}: {o.happened}" in fb.render()
    text = fb.render()
    # the report's own language; the clinician's quoted words are theirs ("do you pass urine?")
    own = re.sub(r'You said: ".*"', "", text)
    assert not EVALUATIVE.search(own), EVALUATIVE.search(own)
    blob = text + json.dumps(fb.to_dict())
    # No patient words: no patient utterance of 4+ words appears anywhere in the report.
    for p in patient:
        if len(p.split()) >= 4 and not any(p in c for c in clinician):
            assert p not in blob


@needs_primock
@pytest.mark.parametrize("cid", ["day1_consultation01", "day2_consultation05", "day4_consultation04", "day5_consultation10"])
def test_primock_visit_report(cid, classifier):
    utts = utterances_from_consultation(load_consultation(cid))
    fb = build_feedback(utts, classifier)
    _check(fb, utts)
    d = fb.to_dict()
    assert set(d) == {"visit_duration_s", "timing", "label_counts", "observations", "strength"}
    assert d["label_counts"]["closed_question"] > 0
    json.dumps(d)  # serialisable


@needs_primock
def test_all_visits_have_grounded_observations_without_repeated_scripts(classifier):
    alternatives = []
    withheld_supported = 0
    for cid in consultation_ids():
        utts = utterances_from_consultation(load_consultation(cid))
        fb = build_feedback(utts, classifier)
        _check(fb, utts, at_least=0)  # nothing is said when nothing is supported by the events
        # kinds below the precision bar stay out of reports even where the events support them
        withheld_supported += any(c.behaviour in WITHHELD for c in candidates(fb.events))
        assert not WITHHELD.keys() & {o.behaviour for o in fb.observations}
        alternatives += [(o.behaviour, o.alternative) for o in fb.observations]
        if fb.events.emergency_escalation.value:  # no agenda, ICE or teach-back advice when the ambulance is called
            assert not {"agenda_not_set", "agenda_anything", "ice_not_elicited", "teach_back", "safety_net_missing"} & {o.behaviour for o in fb.observations}
        if fb.events.plan_said_back.value:
            assert "teach_back" not in {o.behaviour for o in fb.observations}
    # the same script in most reports was the audit's complaint (teach-back in 52 of 57): no alternative text
    # in more than a tenth of the visits; stacked questions name the clinician's own questions
    counts = {}
    for kind, alt in alternatives:
        counts[alt] = counts.get(alt, 0) + 1
    assert max(counts.values()) <= len(consultation_ids()) // 10, max(counts.items(), key=lambda kv: kv[1])
    stacked = [alt for kind, alt in alternatives if kind == "stacked_questions"]
    assert len(stacked) >= 10 and all(alt.count('"') >= 2 for alt in stacked), stacked
    assert withheld_supported >= 2  # the withholding was exercised, not vacuous


def test_redirected_opening_is_observed_with_the_clinician_words(classifier):
    utts = [
        Utterance(0.0, 2.0, "Hello, what brings you in today?", speaker="clinician"),
        Utterance(3.0, 10.4, "My chest has been hurting for two days and my left arm feels heavy when I climb stairs and", speaker="patient"),
        Utterance(9.6, 12.0, "Is the pain sharp or dull?", speaker="clinician"),
        Utterance(12.5, 13.0, "Dull.", speaker="patient"),
        Utterance(13.5, 18.0, "We will check your bloods and do a tracing of your heart today.", speaker="clinician"),
    ]
    fb = build_feedback(utts, classifier)
    first = fb.observations[0]
    assert first.behaviour == "opening_redirected"
    assert first.moment == "0:09"
    assert first.clinician_quote == "Is the pain sharp or dull?"
    assert "7 s into the patient's opening statement" in first.happened
    _check(fb, utts)


def test_quotes_can_be_switched_off_and_never_hold_names(classifier):
    utts = [
        Utterance(0.0, 2.0, "Hello John, what brings you in today?", speaker="clinician"),
        Utterance(3.0, 10.4, "My chest has been hurting for two days and my left arm feels heavy when I climb stairs and", speaker="patient"),
        Utterance(9.6, 12.0, "Is the pain sharp or dull, John?", speaker="clinician"),
        Utterance(12.5, 13.0, "Dull.", speaker="patient"),
    ]
    fb = build_feedback(utts, classifier)
    assert fb.observations and all("John" not in o.clinician_quote for o in fb.observations)
    assert fb.observations[0].clinician_quote == "Is the pain sharp or dull, …?"
    off = build_feedback(utts, classifier, quotes=False)
    assert all(o.clinician_quote == "" for o in off.observations) and "You said" not in off.render()


def test_emergency_suppresses_advice_that_does_not_fit(classifier):
    utts = [
        Utterance(0.0, 2.0, "How can I help?", speaker="clinician"),
        Utterance(2.5, 12.0, "I've got crushing chest pain going down my left arm and I feel sweaty.", speaker="patient"),
        Utterance(12.5, 14.0, "When did it start?", speaker="clinician"),
        Utterance(14.5, 15.5, "Ten minutes ago.", speaker="patient"),
        Utterance(16.0, 22.0, "I'm going to call an ambulance for you now. Stay where you are and keep the door unlocked.", speaker="clinician"),
        Utterance(22.5, 23.0, "OK.", speaker="patient"),
    ]
    fb = build_feedback(utts, classifier)
    assert fb.events.emergency_escalation.value
    kinds = {o.behaviour for o in fb.observations}
    assert not kinds & {"agenda_not_set", "ice_not_elicited", "teach_back", "safety_net_missing"}


def test_short_quote_cuts_long_sentences():
    q = short_quote(" ".join(f"w{i}" for i in range(40)))
    assert q.endswith(" …") and len(q.split()) == 21


def test_render_has_no_evaluative_words_in_templates(classifier):
    # Every template at once: a visit that triggers many candidates.
    utts = [Utterance(0.0, 1.0, "How can I help?", speaker="clinician")]
    t = 2.0
    for i in range(12):
        utts.append(Utterance(t, t + 6, "I have had a cough and a fever and my back hurts too", speaker="patient"))
        utts.append(Utterance(t + 2, t + 3, "Any fever at night?", speaker="clinician"))
        t += 8
    utts.append(Utterance(t, t + 70, "Your blood pressure is high. You should take this tablet every day. It could be a TIA.", speaker="clinician"))
    fb = build_feedback(utts, classifier)
    assert not EVALUATIVE.search(fb.render())


def test_stacked_questions_alternative_names_the_questions_only_when_quotes_are_on(classifier):
    C, P = "clinician", "patient"
    utts = [
        Utterance(0.0, 3.0, "Hello, what brings you in today?", speaker=C),
        Utterance(3.5, 40.0, "I have had a cough for two weeks and it keeps me awake at night, and I feel tired all day long.", speaker=P),
        Utterance(40.5, 44.0, "Any fever? Any night sweats? Any weight loss?", speaker=C),
        Utterance(44.5, 46.0, "No, none of those.", speaker=P),
        Utterance(46.5, 50.0, "Any chest pain? Any blood in the phlegm? Any wheeze?", speaker=C),
        Utterance(50.5, 52.0, "No.", speaker=P),
        Utterance(52.5, 56.0, "Is there something else you wanted to talk about today?", speaker=C),
        Utterance(56.5, 58.0, "No, that's all.", speaker=P),
    ]
    on = [o for o in build_feedback(utts, classifier).observations if o.behaviour == "stacked_questions"]
    off = [o for o in build_feedback(utts, classifier, quotes=False).observations if o.behaviour == "stacked_questions"]
    assert len(on) == 1 and len(off) == 1
    assert '"Any fever?"' in on[0].alternative or '"Any chest pain?"' in on[0].alternative, on[0].alternative
    assert "Any" not in off[0].alternative and off[0].clinician_quote == "", off[0].alternative


def test_short_quote_drops_punctuation_left_by_a_sentence_split():
    assert short_quote(", sore throat?") == "sore throat?"
