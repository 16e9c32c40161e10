"""Sentence functions the coaching needs that the language classifier does not give (yet).

The classifier (``BehaviourClassifier.classify``: sentence -> labels) is the place these
belong once it is trained on the gold guide (docs/labelling.md §5). Until then these
small rules decide them, each with the surrounding turns in view, after the guide's
definitions:

========================  ==============================================================
``ice_question``          asks the patient's ideas, concerns or expectations (§5.14)
``teach_back``            asks the patient to say back what they were told (§5.11)
``safety_netting``        a contingency: what to watch for / what to do if (§5.9)
``agenda_solicitation``   asks for *further* concerns for this visit, not a checklist
                          "anything else?" (§5.3; Heritage et al. 2007)
``emergency``             arranges or instructs immediate emergency care
                          (docs/gold-events.md §2(f))
``reassurance``           tells the patient it is not serious / nothing to worry about
                          (§5.10; used for "premature reassurance")
========================  ==============================================================

**The seam.** :class:`SentenceFunctions` takes the classifier's labels per sentence and
``model_labels``: the labels for which the model's decision is used instead of the
rule. A label goes into ``model_labels`` (``MODEL_FUNCTION_LABELS`` below, or the
constructor argument) once the classifier emits it in the gold guide's sense and its
F1 on the label gold (``edge-agent bench coaching``) is at least the rule's. The context
filters that need other turns (an agenda "anything else?" inside a history checklist, a
teach-back request that only checks understanding) stay here either way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from edge_agent.behaviours.conversation import Turn, tokens

FUNCTION_LABELS = ("ice_question", "teach_back", "safety_netting", "agenda_solicitation", "emergency", "reassurance")
# Labels whose per-sentence decision comes from the classifier (empty until the retrained
# model is measured against the gold; see the module docstring).
MODEL_FUNCTION_LABELS: frozenset[str] = frozenset()


def _n(text: str) -> str:
    return " ".join(tokens(text))


_ICE_IDEA = re.compile(
    r"\b(?:any|some|have you (?:got |had )?any|do you have any|did you have any|what are your|what were your|your own) "
    r"(?:ideas?|thoughts?|theor(?:y|ies))\b(?: (?:as to|about|on|of))? (?:what|why|how|whether|if)\b|"
    r"\bwhat (?:do|did|would) you (?:think|reckon|feel)\b.{0,40}\b(?:caus|going on|wrong|the (?:problem|reason|cause)|"
    r"(?:it|this|that) (?:is|was|might be|could be|may be)|trigger|brought (?:it|this|that) on|behind)|"
    r"\bwhat (?:were|are) you thinking\b|\bwhat'?s your (?:own )?(?:understanding|thinking|take)\b|"
    r"\b(?:anything|something|what|which|that) (?:that )?you (?:think|thought|feel|reckon) (?:might|may|could|would)(?: have)?(?: of)? "
    r"(?:be(?:en)?|caus|trigger|contribut|brought|set|made|started|done)|"
    r"\bdo you think (?:that|it|this)(?:'s| is| was| might| may| could| would)?(?: have)?(?: be(?:en)?)?(?: any)? "
    r"(?:related|linked|connected|correlation|caus|due|because|down to|the reason|the cause|trigger|contribut|something to do)|"
    r"\bwhat do you (?:make|think) of (?:it|this|that|your symptoms)\b|\bhave you (?:got|had) any (?:idea|thoughts?) (?:what|why)\b"
)
_ICE_CONCERN = re.compile(
    r"\b(?:are|were) you (?:particularly |especially |at all |a bit |really |quite |very )?(?:worried|concerned|anxious|scared|"
    r"frightened) (?:about|that|it|this|there|of|in)\b|"
    r"\b(?:is|was) there (?:anything|something)(?: else)?(?: (?:in particular|specific|particular))? (?:that )?(?:you'?re|you are|you were|"
    r"that'?s|is|was)? ?(?:particularly |especially |really )?(?:worr(?:ied|ying)|concern(?:ed|ing)|bother(?:ed|ing)|scar(?:ed|ing))\b|"
    r"\b(?:any|what are your|what were your|your main|anything|what'?s your (?:main |biggest )?) ?(?:particular |specific |other )?"
    r"(?:worries|concerns?|worry|fears?)\b(?! about (?:your|the) (?:medication|prescription))|"
    r"\bwhat (?:worries|concerns|bothers|scares|frightens) you\b|\bwhat (?:are|were|is) you (?:most )?(?:worried|concerned|afraid)\b|"
    r"\b(?:anything|something) (?:that'?s |which is )?(?:worrying|concerning|bothering) you\b|"
    r"\byou'?re (?:particularly )?worried\b.{0,40}\bis it (?:because|that)\b|\bhow (?:worried|concerned|anxious) are you\b"
)
_ICE_EXPECT = re.compile(
    r"\b(?:hop(?:e|ed|ing)|expect(?:ed|ing)?|want(?:ed|ing)?|like) (?:to get |to have |us to |me to |to come )?(?:out of|from) "
    r"(?:this|today|the|our)\b|"
    r"\bwhat (?:were|are|was|is) you (?:hoping|expecting|wanting|looking)\b|"
    r"\b(?:anything|something|what) (?:you (?:had|have|were|are) )?(?:particularly |specifically )?(?:hop(?:ed|ing)|expect(?:ed|ing))\b|"
    r"\bwhat would (?:you (?:feel|think) )?(?:would )?be (?:most )?helpful\b|\bwhat would you like (?:me|us) to do\b|"
    r"\bhow (?:can|could|would) (?:i|we) (?:best )?help you (?:with (?:that|this|it)|further|most)\b|"
    r"\bwhat (?:do|did) you (?:want|expect|hope)\b.{0,30}\b(?:today|from|out of|us|me)\b"
)
_NOT_ICE = re.compile(r"\b(?:harm(?:ing)? yourself|hurt(?:ing)? yourself|end(?:ing)? your life|suicid|self-harm)\b|\bdid the (?:gp|doctor|nurse)\b")


def ice_components(sentence: str) -> tuple[str, ...]:
    """The ICE components a clinician sentence asks about (empty: not an ICE question)."""
    s = _n(sentence)
    if _NOT_ICE.search(s):
        return ()
    out = []
    if _ICE_IDEA.search(s):
        out.append("idea")
    if _ICE_CONCERN.search(s):
        out.append("concern")
    if _ICE_EXPECT.search(s):
        out.append("expectation")
    return tuple(out)


_TEACH_BACK = re.compile(
    r"\b(?:can|could|would) you (?:just )?(?:tell|explain|repeat|say|summari[sz]e|go over|run (?:me )?through)\b.{0,40}"
    r"\b(?:back|in your own words|what (?:you'?re|you are|you'?ll|you will) (?:going to )?(?:do|take)|how (?:you'?ll|you will|you'?re going to|you are going to) "
    r"(?:take|use|do)|what (?:we|i) (?:said|discussed|agreed|talked about)|the plan)\b|"
    r"\bin your own words\b|\bjust (?:so|to make sure|to check) (?:that )?(?:i|i'?ve|i have) (?:explained|been clear|made)\b|"
    r"\bhow (?:are|will|would) you (?:going to )?(?:take|use|explain)\b.{0,40}\b(?:these|them|it|this|the \w+|to (?:your|him|her))\b.{0,20}\?|"
    r"\bwhat (?:will|would|are) you (?:going to )?do if\b|\bwhat are you going to do (?:now|next|when)\b|"
    r"\b(?:tell|explain to) me what (?:you'?re|you are|you'?ll|you will) (?:going to )?do\b|\bwhat'?s the plan (?:then|now)\b.{0,10}\?"
)
# Yes/no checks of understanding: never teach-back (labelling §5.11).
_CHECK_ONLY = re.compile(r"\b(?:does (?:that|this|it) make sense|is (?:that|this|it|the plan|everything) (?:all )?clear|any questions|do you understand|"
                         r"are you happy with|is that ok|is that alright|does that sound)\b")


def is_teach_back(sentence: str) -> bool:
    s = _n(sentence)
    return bool(_TEACH_BACK.search(s)) and not (_CHECK_ONLY.search(s) and not re.search(r"\bback\b|own words", s))


_CONDITION = re.compile(
    r"\b(?:if|should|in case|as soon as|whenever|once|when|unless)\b[^.?!]{0,120}?"
    r"\b(?:worse|worsen|not (?:getting |feeling )?(?:any )?better|\w*n'?t (?:get(?:ting)? |got(?:ten)? |feel(?:ing)? )?(?:any )?better|not improv|"
    r"\w*n'?t improv|(?:still|persist|carr(?:y|ies) on|continu|last(?:s|ing)? (?:more|longer|over|beyond)|go(?:es)? on (?:for )?longer)|"
    r"doesn'?t settle|don'?t settle|not settl|\w*n'?t (?:go(?:ne)? away|clear|resolve|stop|settle)|develop|weakness|headache|sick|numb|notice|start(?:s|ed)? to|becom|new|"
    r"change|any (?:of (?:those|these|them)|concerns?|problems?|symptoms?)|high (?:fever|temperature)|short(?:ness)? of breath|"
    r"(?:chest )?pain|bleed|blood|vomit|rash|swell|breath|fever|temperature|unwell|poorly|faint|dizz|confus|drowsy|spread|"
    r"back|recur|return|more than|longer than|beyond|over (?:the next|a|two|three)|(?:in|after) (?:a|two|three|four|five|\d+) "
    r"(?:days?|weeks?)|by (?:monday|tuesday|wednesday|thursday|friday|the weekend|next week|tomorrow)|chang|deteriorat|happen|"
    r"return|recur|persist|progress|again|hold(?:ing)? (?:any )?(?:fluids|food|water) down)"
)
_ACTION = re.compile(
    r"\b(?:come back|come (?:and|to) see|call|ring|phone|get in touch|contact|seek|go (?:to|and see|straight)|see (?:us|me|you|a doctor|your gp|the gp|someone)|"
    r"let (?:us|me) know|book|speak to|a ?(?:&|and) ?e|999|nine nine nine|111|one one one|emergency|hospital|urgent|"
    r"straight away|immediately|right away|don'?t wait|make (?:an|another) appointment|review|get (?:help|checked|seen|medical)|"
    r"medical (?:attention|advice|help)|another look|worry|concern|look at (?:it|that|you)|reassess|examine|we (?:may|might|would|will|can) "
    r"(?:need|look|consider|give|try|start|do|refer)|give you|start you|get back to|feel free|(?:need|want) to (?:speak|talk) to you|"
    r"should see you|attend|take (?:you|your)|lower threshold|have a chat|speak to (?:us|you) again|follow-?up|x-?ray|scan|"
    r"(?:blood )?tests?|refer|antibiotics?)\b"
)
_WATCH = re.compile(r"\b(?:things to (?:look|watch) out for|look out for|watch (?:out )?for|warning signs?|red flags?|keep an eye (?:on|out))\b"
                    r"|\bwhen we (?:start|would) (?:worry|worrying|be worried)\b|\bdon'?t wait\b")
_NOT_NET = re.compile(r"\bif you(?:'re| are)? (?:happy|ok|okay|want|wish|like|prefer|don'?t mind|have any (?:other )?questions)\b|"
                      r"\binconvenient\b|\bif you(?:'d| would) rather\b|\bif you can'?t (?:make|come|get)\b|"
                      r"\bif you (?:don'?t|do not) (?:get|hear|receive) (?:a )?(?:call|text|letter|message|appointment)\b")


def is_safety_netting(sentence: str) -> bool:
    s = _n(sentence)
    if _WATCH.search(s):
        return True
    if _NOT_NET.search(s) and not re.search(r"\b(?:worse|better|improv|settle)\b", s):
        return False  # "if you're happy to…", "if it's inconvenient…": not a contingency about the illness
    if re.match(r"(?:(?:um|uh|and|so|but)\s)*(?:or\b|any of (?:those|these|them)\b)", s) and re.search(r"\bthen\b|\ba (?:and|&) e\b|\b999\b", s):
        return True  # the next item of a contingency list ("..., or you're not keeping fluids down, then we should see you")
    if not _CONDITION.search(s):
        return False
    return bool(_ACTION.search(s)) or bool(re.search(r"\b(?:worse|not (?:getting )?better|n'?t (?:get(?:ting)? )?better)\b", s))


_AGENDA_MARKER = re.compile(r"\b(?:anything|something|any|what) else\b|\b(?:any|some) other\b|\banything (?:further|more)\b|"
                            r"\bis that (?:all|everything|it)\b|\bwhat other\b|\bany more\b|\banything you (?:wanted|want|would like|'?d like) to\b|"
                            r"\banything\b.{0,30}\bbefore (?:we|you) (?:go|finish|wrap|end|leave)\b")
_AGENDA_OBJECT = re.compile(
    r"\b(?:talk|discuss|mention|raise|bring up|ask|tell me|cover|address|deal with|go through|sort out|look at)\b|\b(?:concerns?|"
    r"worries|worried|queries|topics?|on your mind|today|this morning|this afternoon|right now|before we "
    r"(?:go|finish|wrap|end)|while you'?re here|while i'?ve got you|for me today)\b"
)
_NOT_AGENDA = re.compile(r"\b(?:any|other) questions?\b(?! or)|\bsymptoms?\b|\bmedic(?:ation|ines?)|\ballerg|\btablets?\b|\boperations?\b|"
                         r"\bconditions?\b|\billness|\bhistory\b|\bfamily\b|\bin the family\b|\btaking\b|\bproblems? with your\b|"
                         r"\bi should (?:be aware of|know)\b|\bsignificant\b|\brelevant\b|\bhappened\b|\bnoticed\b|\bpain\b|\bmedical\b|\bsurgery\b|"
                         r"\bin the past\b")


def is_agenda_question(sentence: str, question: bool) -> bool:
    """Asks for further concerns for this visit (labelling §5.3), judged on the sentence alone."""
    s = _n(sentence)
    if not question and not sentence.rstrip().endswith("?"):
        return False
    if not _AGENDA_MARKER.search(s):
        return False
    if _NOT_AGENDA.search(s) and not re.search(r"\b(?:worried|concern|talk about|discuss|wanted to)\b", s):
        return False
    return bool(_AGENDA_OBJECT.search(s))


def anything_wording(sentence: str) -> str:
    """Heritage et al. 2007: "some" (something else) vs "any" (anything else / any other)."""
    s = _n(sentence)
    if re.search(r"\bsome(?:thing)? (?:else|other)\b", s):
        return "some"
    if re.search(r"\bany(?:thing)? (?:else|other|further|more)\b|\bany other\b", s):
        return "any"
    return "other"


_EMERGENCY = re.compile(
    r"\b(?:call|calling|ring|phone|dial|get|send|sending|arrange|arranging|order)(?:ing)? (?:for )?(?:an? |the )?(?:ambulance|999|nine nine nine|112|paramedics?)\b|"
    r"\b(?:ambulance|paramedics?) (?:is|are|will be|should be|'s)(?: \w+){0,3} (?:on (?:its|their) way|coming|there|with you|arriv)|"
    r"\b(?:go|going|get|head|come|take you|taken|attend|need to be seen)(?: \w+){0,4} (?:to|into|at) (?:the )?(?:a ?(?:&|and) ?e|emergency|"
    r"accident and emergency|hospital|casualty)\b|"
    r"\b(?:need|needs|require|get) (?:to have |to get )?(?:urgent |immediate |emergency )?medical (?:attention|help|care) "
    r"(?:straight away|immediately|now|right away|urgently|today)\b|\bneed (?:to be )?seen (?:urgently|straight away|immediately|today) "
    r"(?:in|at|by) (?:hospital|a ?(?:&|and) ?e|the emergency)"
)
_CONDITIONAL = re.compile(r"\b(?:if|should|in case|unless|whenever)\b")


def is_emergency(sentence: str) -> bool:
    """Immediate emergency care arranged or instructed (not a conditional safety-net)."""
    s = _n(sentence)
    m = _EMERGENCY.search(s)
    if not m:
        return False
    before = s[: m.start()]
    # "if it gets worse, go to A&E" is safety-netting, not an escalation
    return not _CONDITIONAL.search(before[-90:])


_REASSURE = re.compile(
    r"\b(?:nothing|not anything|no need) (?:too |to |really |much |at all )?(?:to )?(?:worr|serious|sinister|concern|dangerous|to be "
    r"(?:worried|concerned))|\bdon'?t (?:you )?worry\b|\b(?:not|isn'?t|nothing) (?:anything )?(?:serious|sinister|dangerous|"
    r"worrying|concerning)\b|\b(?:very|quite|really|extremely|pretty) common\b|\b(?:should|will|tends? to|usually|normally) "
    r"(?:settle|get better|clear up|go away|resolve|pass)\b|\bit'?s (?:just|only|probably just) (?:a |an )?(?:viral|virus|bug|cold|"
    r"simple|minor|mild|normal)\b|\bnothing to (?:be )?(?:worried|concerned) about\b|\breassur(?:ing|ed)\b|"
    # the hedged form of "no need to worry" (labelling §5.10): "I don't think there's a lot to worry about"
    r"\b(?:not|(?:don'?t|do not) think there'?s) (?:a lot|much|too much|anything much) to worry\b"
)


def is_reassurance(sentence: str) -> bool:
    return bool(_REASSURE.search(_n(sentence)))


class SentenceFunctions:
    """Decides the function labels of clinician sentences, with the conversation in view.

    ``model_labels`` names the function labels taken from the classifier's output
    instead of the rules (the seam for the retrained model).
    """

    def __init__(self, model_labels: frozenset[str] | None = None) -> None:
        self.model_labels = frozenset(MODEL_FUNCTION_LABELS if model_labels is None else model_labels)

    def label(self, turns: Sequence[Turn], classifier_labels: Mapping[str, Sequence[str]] | None = None) -> dict[str, set[str]]:
        """sentence id (``tNNN:sNN``) -> function labels, for every clinician sentence."""
        out: dict[str, set[str]] = {}
        classifier_labels = classifier_labels or {}
        for t in turns:
            if not t.clinician:
                continue
            for s in t.sentences:
                got: set[str] = set()
                model = set(classifier_labels.get(s.id, ()))
                for lab in FUNCTION_LABELS:
                    if lab in self.model_labels:
                        if lab in model:
                            got.add(lab)
                    elif self._rule(lab, s.text, s.question):
                        got.add(lab)
                out[s.id] = got
        return out

    def rule_labels(self, text: str) -> set[str]:
        """The rules' labels for one sentence on its own (no context): for measuring the rules."""
        q = text.rstrip().endswith("?")
        return {lab for lab in FUNCTION_LABELS if self._rule(lab, text, q)}

    @staticmethod
    def _rule(label: str, text: str, question: bool) -> bool:
        if label == "ice_question":
            return bool(ice_components(text))
        if label == "teach_back":
            return is_teach_back(text)
        if label == "safety_netting":
            return is_safety_netting(text)
        if label == "agenda_solicitation":
            return is_agenda_question(text, question)
        if label == "emergency":
            return is_emergency(text)
        if label == "reassurance":
            return is_reassurance(text)
        return False


# ---- liberal detectors for claims of absence ----------------------------------------------
#
# A report that says "you did not ask about X" is false whenever X happened in words the
# precise rule does not know. So before a claim of absence is made, a deliberately liberal
# version of the rule must also come up empty: anything that *might* be X blocks the claim.
# (Claims of presence use the precise rules above.)

_MAYBE_ICE = re.compile(r"\b(?:worr\w*|concern\w*|scar\w*|frighten\w*|afraid|think|thought|thoughts|ideas?|expect\w*|hop(?:e|ed|ing)|"
                        r"understanding|make of|feel about|looking for|wanting from|want from)\b")
_MAYBE_AGENDA = re.compile(r"\b(?:anything|something|what) else\b|\bany other (?:concerns?|questions?|issues?|things?|problems?|worries)\b|"
                           r"\banything (?:you (?:want|wanted|would like|'?d like)|further|more)\b|\bis that (?:all|everything|it)\b|"
                           r"\bbefore we (?:go|finish|wrap|end)\b")
_MAYBE_NET = re.compile(r"\bif\b[^.?!]*\b(?:worse|better|change|symptom|problem|concern|worr|any|still|happen|develop|notice|not)\w*|"
                        r"\b(?:come back|call us|ring us|contact us|get in touch|a (?:and|&) e|999|look out|watch (?:out )?for|"
                        r"warning|in the meantime|don'?t wait)\b")
_MAYBE_EMERGENCY = re.compile(r"\b(?:ambulance|999|nine nine nine|paramedics?|a (?:and|&) e|accident and emergency|emergency department|"
                              r"(?:go|going|get|head|come) (?:\w+ )?(?:straight |directly )?(?:to|into) (?:the )?hospital)\b")


def maybe_ice(sentence: str) -> bool:
    """Could this clinician question be asking the patient's ideas, concerns or expectations?"""
    return bool(_MAYBE_ICE.search(_n(sentence))) and (sentence.rstrip().endswith("?") or bool(ice_components(sentence)))


def maybe_agenda(sentence: str) -> bool:
    """Any "anything / something else", "any other concerns", "before we finish" not plainly about a history checklist."""
    s = _n(sentence)
    if not _MAYBE_AGENDA.search(s):
        return False
    return not (_NOT_AGENDA.search(s) and not re.search(r"\b(?:worr|concern|talk|discuss|wanted|today)\w*", s))


def maybe_safety_net(sentence: str) -> bool:
    return bool(_MAYBE_NET.search(_n(sentence)))


def maybe_emergency(sentence: str) -> bool:
    s = _n(sentence)
    return bool(_MAYBE_EMERGENCY.search(s)) and not re.match(r"(?:\w+ ){0,3}if\b", s)
