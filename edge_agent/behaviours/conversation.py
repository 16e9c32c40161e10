"""The visit as a conversation: turns, their sentences, what each turn does, and where
the words fall in time.

Everything the event detectors (``edge_agent.behaviours.events``) need to judge a moment
*with the surrounding turns* lives here: a clinician turn is a back-channel, an empathy
token, a repair, an identity/audio/consent check, a greeting, a continuer ("tell me
more"), a fragment, or substantive; a patient turn is a back-channel, a repair or
content; a patient turn ends *open* (a trailing "and / but / like / so I", a cut-off)
or *closed*. Definitions follow docs/gold-events.md §1 (the event protocol the gold set
was annotated with) and are summarised in docs/coaching.md.

Times inside a turn come from word timings when the utterance has them (live ASR) and
otherwise from an even speaking rate across the turn (PriMock57 TextGrids), as the
protocol tells annotators to assume.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from edge_agent.behaviours.features import Context
from edge_agent.behaviours.text import FILLER_WORDS, split_sentences
from edge_agent.transcript import Utterance, Word

CLINICIAN, PATIENT = "clinician", "patient"
WINDOW = 40  # turns looked back for what is still running (keeps long visits linear)

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")

# Minimal tokens: back-channels, discourse markers, acknowledgements.
BACKCHANNEL_WORDS = FILLER_WORDS | frozenset(
    {"mm-hmm", "mhmm", "uh-huh", "ohh", "ooh", "yes", "yeah", "ok", "okay", "k", "right", "sure", "fine", "alright",
     "lovely", "perfect", "great", "cool", "gosh", "god", "dear", "wow", "hmm", "mmm", "see", "i", "got", "it", "fair",
     "enough", "understood", "understand", "noted", "correct", "definitely", "certainly", "totally", "agreed", "thanks",
     "thank", "you", "very", "much", "so"}
)
_GREETING_WORDS = frozenset(
    {"hello", "hi", "hiya", "hey", "morning", "afternoon", "evening", "good", "thanks", "thank", "you", "very", "much",
     "bye", "bye-bye", "cheers", "take", "care", "nice", "meet", "to", "see", "too", "lovely", "doctor", "dr", "there",
     "how", "are", "have", "a", "day", "great", "all", "best", "goodbye", "welcome", "speak", "soon", "now", "then",
     "and", "i'm", "well", "fine", "not", "bad"}
)

_EMPATHY_TOKEN = re.compile(
    r"^(?:(?:oh|ohh|ah|aw|um|uh|well|okay|ok|right|yeah|mm)[ ,]*)*"
    r"(?:(?:i'?m |i am |so |really |very )*sorry(?: to hear| about)?(?: that| this| about that)?|oh dear|oh no|poor you|bless you|"
    r"(?:i )?can imagine|(?:that|it)(?:'s| is| must be| must have been| sounds?)(?: really| very| quite| so)? (?:not nice|horrible|awful|"
    r"difficult|tough|hard|rough|frightening|scary|worrying|annoying|uncomfortable|painful|unpleasant|frustrating|stressful)"
    r"(?: for you)?|i understand|i see|what a shame|that'?s a shame)"
    r"(?:[ ,]*(?:yeah|yes|okay|ok|then|now|though|indeed|really|actually|there|for you|mm))*$"
)
# Requests to hear or clarify what was just said (docs/gold-events.md §1 "Repair").
_REPAIR = re.compile(
    r"^(?:(?:um|uh|oh|ohh|so|okay|ok|yeah|and)[ ,]*)*(?:sorry|pardon|excuse me|come again|what was that|say (?:that|it) again|"
    r"(?:sorry,? )?(?:can|could) you (?:say|repeat) (?:that|it)|(?:sorry,? )?i (?:didn'?t|did not|can'?t|cannot|couldn'?t) (?:quite )?"
    r"(?:catch|hear|get|understand)|you'?re breaking up|(?:sorry,? )?say that again|what did you say|"
    r"(?:sorry,? )?(?:the )?(?:line|connection|sound) (?:is|was|isn'?t|wasn'?t))"
    r"(?:[^.?!]{0,60})$"
)
# Identity, audio/video, privacy and consent checks (docs/gold-events.md §1).
_ADMIN = re.compile(
    r"\bcan you (?:hear|see) me\b|\b(?:can|could) (?:you )?hear (?:me|you)\b|\bhear me (?:ok|okay|well|alright|all right)\b|"
    r"\b(?:confirm|tell me|give me|what'?s|what is|and|just|your) (?:your |the )?(?:full )?(?:name|date of birth|d\.?o\.?b|"
    r"address|e-?mail|postcode|post code|phone number|first line)\b|"
    r"^(?:and |so |ok |okay |um |uh |,|\s)*(?:your )?(?:date of birth|name|address|postcode|e-?mail(?: address)?|age)\??$|"
    r"\b(?:private|secure|safe|quiet|confidential) (?:place|location|space|room|area|conversation|consultation)\b|"
    r"\b(?:ok|okay|alright|all right|happy|fine) (?:for me |for us )?to (?:go ahead|record|proceed|carry on|continue|start)\b|"
    r"\b(?:shall|should|can) we (?:start|begin|get started|go ahead|continue|proceed)\b|\blet'?s (?:start|begin|continue|get started)\b|"
    r"\b(?:sound|audio|video|connection|line|signal|internet|wi-?fi|camera|microphone|mic)\b.{0,40}\b(?:quality|bad|poor|great|clear|"
    r"good|better|worse|breaking|working|frozen|freez|dropp|not)\b|\bon mute\b|\bcan you see\b|\bhow old are you\b|"
    r"\bare you (?:able|ok|okay|happy|free) to (?:talk|speak)\b|\bhow old (?:is|are)\b|\bwhere are you (?:calling|speaking) from\b|"
    r"\bmy name is\b|\bi'?m (?:doctor|dr\.?) \w+|\bi'?m (?:one of )?the (?:doctors?|gps?|clinicians?)\b|\bwork(?:s|ing)? for (?:babylon|the practice)\b"
)
_CONTINUER = re.compile(
    r"^(?:(?:um|uh|okay|ok|right|yeah|so|and|sure|mm|alright|all right|well|oh)[ ,]*)*(?:go on|carry on|go ahead|"
    r"(?:do you want to |would you (?:like|mind) (?:to )?|(?:can|could) you |if you (?:can|could) |are you able to |just )?"
    r"(?:tell|talk) (?:me )?(?:a (?:little |tiny )?(?:bit )?|a little )?more(?: (?:about|on) (?:that|it|this|those|these|them|[^.?!]{1,60}))?"
    r"(?:,? (?:if you (?:can|could|like|want)|please))?|and then|what else|anything else|mm-?hmm|continue)[ ,.?!]*$"
)
# A patient turn that only confirms or acknowledges ("Yeah, yeah.", "That's right.").
_CONFIRM = re.compile(
    r"^(?:(?:yes|yeah|yep|yup|no|nope|ok|okay|right|correct|exactly|that'?s (?:right|correct)|that is (?:right|correct)|"
    r"indeed|absolutely|sure|mm-?hmm|mhm|uh-huh|mm|it is|i am|i do|i have|it was|yes please|um|uh|so)[ ,.!]*)+$"
)

# Last words after which the speaker still holds the floor (docs/gold-events.md §1 and
# protocol gap 2: the last word decides; "so" alone after a complete clause yields).
_OPEN_LAST = frozenset(
    {"and", "but", "or", "like", "because", "cause", "'cause", "cos", "coz", "the", "a", "an", "my", "your", "his", "her",
     "their", "our", "to", "of", "with", "be", "been", "being", "it's", "i'm", "i've", "i'd", "i'll", "i", "we", "he", "she",
     "they", "we're", "they're", "he's", "she's", "there's", "if", "when", "whether", "than", "quite",
     "although", "until", "um", "uh", "er", "erm", "so", "just"}
)
# Closing words: a turn ending with one of these after a complete clause yields the floor.
_CLOSE_TRAIL = frozenset({"yeah", "yes", "so", "really", "anyway", "though", "actually", "now", "then", "okay", "ok", "right", "mm", "um", "uh"})
_CLOSING_PHRASE = re.compile(
    r"(?:that'?s (?:it|all|why|about it|everything|the main thing)(?: really)?|that'?s why i'?m (?:here|calling)|"
    r"(?:so|and) (?:yeah|that'?s it)|but yeah|i don'?t know|i'?m not sure|not really|i think|i guess|or something(?: like that)?|"
    r"and stuff|and things|anything like that|something like that|as well|at all|thank you(?: very| so)?|thanks(?: so)?|"
    r"i (?:can )?(?:know|think) of|feel like it|like that|like this|to be honest|to do|to say|to me|to you)[ ,.!?]*$"
)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _norm(text: str) -> str:
    return " ".join(tokens(text))


def is_backchannel_text(text: str) -> bool:
    """Only minimal tokens ("mm-hm", "okay, yeah", "right, sure"), no question."""
    ws = tokens(text)
    return bool(ws) and "?" not in text and all(w in BACKCHANNEL_WORDS or w.strip("-'") in BACKCHANNEL_WORDS for w in ws)


def is_social(text: str) -> bool:
    ws = tokens(text)
    return bool(ws) and len(ws) <= 12 and all(w in _GREETING_WORDS or w in BACKCHANNEL_WORDS for w in ws) and any(w in _GREETING_WORDS for w in ws)


def is_empathy_token(text: str) -> bool:
    return bool(_EMPATHY_TOKEN.match(_norm(text)))


def is_repair(text: str) -> bool:
    return bool(_REPAIR.match(_norm(text))) and len(tokens(text)) <= 14


def is_admin(text: str) -> bool:
    return bool(_ADMIN.search(_norm(text)))


def is_continuer(text: str) -> bool:
    return bool(_CONTINUER.match(_norm(text)))


# News receipts and assessments said to the patient's telling ("Oh, really?", "Did you?", "That's
# good.", "Of course."): they acknowledge and start no new content, so for turn-taking they are
# back-channels (docs/gold-events.md §1 "does not start new content"; Heritage 1984 on "oh" and
# news receipts, Goodwin 1986 on assessments as continuers). Only for clinician turns.
_RECEIPT = re.compile(
    r"^(?:(?:oh|ohh|ah|ahh|ok|okay|right|yeah|yes|mm|wow|gosh|um|uh|well|alright|all right|no)[ ,]*)*"
    r"(?:really|(?:did|do|does|have|has|had|is|was|were|are|can|could|would|will) (?:you|it|they|he|she|there)(?: not)?|"
    r"(?:that'?s|that is|it'?s|it is)(?: (?:really|very|quite|so))? (?:good|great|fine|ok|okay|alright|all right|nice|lovely|"
    r"brilliant|excellent|interesting|helpful|useful|fair|understandable|reassuring|good to (?:know|hear)|not bad)|of course|"
    r"no problem|no worries|not to worry|fair enough|good good|very good|how interesting|goodness|wow|gosh)"
    r"(?:[ ,]*(?:then|now|though|indeed|yeah|yes|ok|okay|mm|there))*$"
)


def is_receipt(text: str) -> bool:
    return bool(_RECEIPT.match(_norm(text)))


def is_confirmation(text: str) -> bool:
    return bool(_CONFIRM.match(_norm(text)))


def is_question_sentence(sentence: str) -> bool:
    """A question sentence: marked with "?" or a request to tell/describe (labelling §4.1)."""
    s = sentence.strip()
    if s.endswith("?"):
        return True
    return bool(_REQUEST.search(_norm(s)))


_REQUEST = re.compile(
    r"^(?:(?:um|uh|okay|ok|right|so|and|yeah|now|well|just|alright|all right)[ ,]*)*(?:can you |could you |if you (?:can|could) |"
    r"do you want to |would you mind |just )?(?:tell me|talk me through|describe|explain to me|walk me through|take me through)\b"
)


@dataclass
class Sentence:
    turn: int  # index of the turn in the visit
    index: int  # index in the turn (split at . ? !)
    text: str
    t0: float
    t1: float
    question: bool = False

    @property
    def id(self) -> str:
        return f"t{self.turn:03d}:s{self.index:02d}"


@dataclass
class Turn:
    """One utterance of one speaker, with its sentences and what it does."""

    index: int
    speaker: str
    t0: float
    t1: float
    text: str
    words: tuple[Word, ...] = ()
    sentences: list[Sentence] = field(default_factory=list)
    act: str = "substantive"  # see turn_act / patient_act

    @property
    def clinician(self) -> bool:
        return self.speaker == CLINICIAN

    @property
    def patient(self) -> bool:
        return self.speaker == PATIENT

    @property
    def n_words(self) -> int:
        return len(self.words) if self.words else max(1, len(self.text.split()))

    def time_of_word(self, k: int) -> float:
        """Start time of the k-th word (even rate without word timings)."""
        if self.words:
            k = min(max(k, 0), len(self.words) - 1)
            return self.words[k].t0
        n = max(1, len(self.text.split()))
        return self.t0 + (self.t1 - self.t0) * min(max(k, 0), n) / n

    def words_after(self, at: float) -> int:
        """How many of the turn's words are spoken at or after ``at``."""
        if at <= self.t0:
            return self.n_words
        if at >= self.t1:
            return 0
        if self.words:
            return sum(1 for w in self.words if w.t1 > at)
        n = self.n_words
        return max(0, round(n * (self.t1 - at) / max(1e-6, self.t1 - self.t0)))

    def text_before(self, at: float) -> str:
        """The words of the turn spoken before ``at``."""
        ws = self.text.split()
        keep = len(ws) - self.words_after(at) if not self.words else sum(1 for w in self.words if w.t1 <= at)
        return " ".join(ws[: max(0, keep)])

    def sentence_at(self, at: float) -> Sentence | None:
        for s in self.sentences:
            if s.t0 <= at < s.t1:
                return s
        return self.sentences[-1] if self.sentences and at >= self.t1 else None


def _sentence_spans(u: Utterance, sents: list[str]) -> list[tuple[float, float]]:
    """Start/end time of each sentence: word times when present, else by word position at an even rate."""
    counts = [max(1, len(s.split())) for s in sents]
    total = sum(counts) or 1
    spans = []
    if u.words:
        k = 0
        for n in counts:
            a = u.words[min(k, len(u.words) - 1)].t0
            b = u.words[min(k + n, len(u.words)) - 1].t1
            spans.append((a, b))
            k += n
        return spans
    k = 0
    for n in counts:
        a = u.t0 + (u.t1 - u.t0) * k / total
        k += n
        spans.append((a, u.t0 + (u.t1 - u.t0) * k / total))
    return spans


def has_finite_times(u: Utterance) -> bool:
    """Whether an utterance can be placed in time at all (:func:`clean_utterances` drops the others)."""
    return math.isfinite(u.t0) and math.isfinite(u.t1)


def clean_utterances(utterances: list[Utterance]) -> list[Utterance]:
    """Utterances a live transcript can hand over made safe to reason about in time.

    Drops utterances whose times are not finite; an end before the start becomes the
    start (zero length); word timings that are not finite are dropped, the rest sorted
    and clipped to the utterance. Well-formed input (every PriMock57 TextGrid) passes
    through unchanged.
    """
    out = []
    for u in utterances:
        if not has_finite_times(u):
            continue
        t1 = max(u.t0, u.t1)
        words = u.words
        if words:
            good = sorted((w for w in words if math.isfinite(w.t0) and math.isfinite(w.t1)), key=lambda w: (w.t0, w.t1))
            fixed = tuple(w if u.t0 <= w.t0 <= w.t1 <= t1 else replace(w, t0=min(max(w.t0, u.t0), t1), t1=min(max(w.t1, w.t0, u.t0), t1))
                          for w in good)
            words = fixed if fixed != words else words
        out.append(u if (t1 == u.t1 and words is u.words) else replace(u, t1=t1, words=words))
    return out


def build_turns(utterances: list[Utterance]) -> list[Turn]:
    """Utterances (any order) -> turns in start-time order, sentences and acts filled in."""
    utts = sorted(clean_utterances(list(utterances)), key=lambda u: (u.t0, u.t1))
    turns: list[Turn] = []
    for i, u in enumerate(utts):
        sents = split_sentences(u.text) or [u.text.strip()]
        t = Turn(i, u.speaker, u.t0, u.t1, u.text, u.words)
        for j, (s, (a, b)) in enumerate(zip(sents, _sentence_spans(u, sents))):
            t.sentences.append(Sentence(i, j, s, a, b, u.speaker == CLINICIAN and is_question_sentence(s)))
        turns.append(t)
    for t in turns:
        t.act = clinician_act(t, _previous(turns, t.index, PATIENT)) if t.clinician else patient_act(t)
    return turns


def _previous(turns: list[Turn], k: int, speaker: str) -> Turn | None:
    for j in range(k - 1, -1, -1):
        if turns[j].speaker == speaker:
            return turns[j]
    return None


def sentence_contexts(turns: list[Turn]) -> dict[str, Context]:
    """The dialogue context of every clinician sentence, by sentence id (``tNNN:sNN``): the text of the last
    patient turn before it, and whether it is the first sentence of a clinician turn that directly follows a
    patient turn. The behaviour classifier reads it (featuriser version 5); the training rows of PriMock57
    get theirs the same way from the same turns (tools/training/behaviour_sources.py)."""
    out: dict[str, Context] = {}
    for t in turns:
        if not t.clinician:
            continue
        prev = _previous(turns, t.index, PATIENT)
        starts = t.index > 0 and turns[t.index - 1].patient
        for s in t.sentences:
            out[s.id] = Context(prev.text if prev is not None else None, starts and s.index == 0)
    return out


def _is_echo(text: str, other: Turn | None, max_content: int = 3) -> bool:
    """A repeat of one to three of the other speaker's words (plus minimal tokens)."""
    if other is None:
        return False
    content = [w for w in tokens(text) if w not in BACKCHANNEL_WORDS]
    if not content or len(content) > max_content:
        return False
    theirs = set(tokens(other.text))
    return all(w in theirs for w in content)


def _is_fragment(text: str) -> bool:
    """A cut-off start ("So he", "But not .", "Are you ."): at most three words, no complete clause."""
    ws = tokens(text)
    return 0 < len(ws) <= 3 and (not text.rstrip().endswith(("?", "!")) or text.rstrip().endswith(" ?"))


SENTENCE_ACTS = ("backchannel", "empathy", "social", "fragment", "repair", "admin", "continuer", "substantive")


def sentence_act(text: str, other: Turn | None = None) -> str:
    if is_backchannel_text(text):
        return "backchannel"
    if is_empathy_token(text):
        return "empathy"
    if is_repair(text):
        return "repair"
    if is_admin(text):
        return "admin"
    if is_continuer(text):
        return "continuer"
    if is_social(text):
        return "social"
    if not text.rstrip().endswith("?") and _is_echo(text, other):
        return "backchannel"
    if text.rstrip().endswith("?") and _is_echo(text, other, 2):
        return "repair"
    return "substantive"


def clinician_act(t: Turn, prev_patient: Turn | None) -> str:
    """What a clinician turn does, for turn-taking: the strongest act of its sentences."""
    if not tokens(t.text):
        return "backchannel"  # nothing but a gap marker or a sound
    acts = [sentence_act(s.text, prev_patient) for s in t.sentences]
    if "substantive" in acts:
        if len(tokens(t.text)) <= 3 and _is_fragment(t.text) and not any(s.question for s in t.sentences):
            return "fragment"
        if all(a != "substantive" or is_receipt(s.text) for a, s in zip(acts, t.sentences)):
            return "backchannel"
        return "substantive"
    for a in ("admin", "repair", "continuer", "empathy", "social", "backchannel"):
        if a in acts:
            return a
    return "backchannel"


def patient_act(t: Turn) -> str:
    if not tokens(t.text):
        return "backchannel"
    if is_repair(t.text) and len(tokens(t.text)) <= 10:
        return "repair"
    if is_backchannel_text(t.text):
        return "backchannel"
    return "content"


def ends_open(text: str) -> bool:
    """The turn stops where the speaker still holds the floor: an open trailer or a cut-off.

    docs/gold-events.md §1 and protocol gap 2: a last word such as "and / but / like /
    so I / I / the / to" holds the floor; a complete clause, a question, a closing
    phrase ("that's it really", "so.", "yeah.", "but yeah") yields it.
    """
    raw = text.strip()
    if not raw:
        return False
    if raw.endswith("?"):
        return False
    ws = tokens(raw)
    if not ws:
        return False
    if _CLOSING_PHRASE.search(_norm(raw)):
        return False
    if asks_question(raw):
        return False
    last = ws[-1]
    prev = ws[-2] if len(ws) > 1 else ""
    tail = _norm(split_sentences(raw)[-1]) if split_sentences(raw) else ""
    if last in ("um", "uh", "er", "erm", "mm"):
        # a hesitation holds the floor after an open word, not as a new sentence after a complete one
        return len(tokens(tail)) > 1 and prev in _STRONG_OPEN
    if last == "so":
        return prev in ("and", "but")
    if last == "had":
        return prev in ("i", "just", "haven't", "hadn't", "we", "she", "he")
    if last == "be":
        return prev in ("to", "gonna", "might", "could")
    if last == "just":
        return prev in ("i", "it", "we", "you", "he", "she", "they", "it's", "i'm", "and", "but", "was", "is")
    if last == "not":
        return prev in ("but", "and", "or", "like")
    if last in _OPEN_LAST:
        return True
    if prev == "so" and last in _SUBJECTS:
        return True
    # a clause begun after a conjunction that stops at its auxiliary ("…but I can", "…and it was"):
    # subject and auxiliary without the verb or complement the conjunction promised (protocol §1:
    # "a new subject" after "and / but" holds the floor). A bare "Yes, I can." answers and yields.
    prev2 = ws[-3] if len(ws) > 2 else ""
    return last in _AUXILIARIES and prev in _SUBJECTS and prev2 in _CONJUNCTIONS


_SUBJECTS = frozenset({"i", "we", "it", "he", "she", "they", "you", "that", "there"})
_AUXILIARIES = frozenset({"can", "could", "will", "would", "shall", "should", "might", "may", "must", "was", "were", "am", "is",
                          "are", "have", "has", "had", "do", "did", "does"})
_CONJUNCTIONS = frozenset({"and", "but", "or", "so", "because", "cause", "'cause", "cos", "coz", "like", "if", "when", "although",
                           "though", "until", "that"})


_STRONG_OPEN = frozenset({"and", "but", "or", "like", "because", "cause", "'cause", "cos", "the", "a", "an", "my", "your", "that",
                          "to", "of", "with", "i", "we", "it's", "i'm", "just", "quite", "some", "if", "when"})


_ASKING = re.compile(
    r"^(?:(?:um|uh|so|and|or|but|well|okay|ok|yeah|like)[ ,]*)*(?:should|shall|can|could|do|does|did|is|are|will|would|what|how|"
    r"why|when|where|which|who)\b[^.?!]*(?:\b(?:i|you|it|we|that|this|there|they)\b)"
)


def asks_question(text: str) -> bool:
    """The speaker's last sentence is a question (marked, or interrogative in form)."""
    sents = split_sentences(text.strip())
    if not sents:
        return False
    last2 = sents[-2:]
    if any(s.rstrip().endswith("?") for s in last2):
        return True
    return bool(_ASKING.match(_norm(sents[-1])))


def overlapping_patient_turn(turns: list[Turn], c: Turn) -> Turn | None:
    """The patient turn running when clinician turn ``c`` starts (the latest-starting one)."""
    def running(t: Turn) -> bool:  # a patient turn of some length under way at the clinician's onset
        return t.patient and t.t0 <= c.t0 <= t.t1 and t.t1 > t.t0

    best = None
    for t in turns[max(0, c.index - WINDOW) : c.index]:
        if running(t) and (best is None or t.t0 >= best.t0):
            best = t
    if best is None:
        for t in turns[c.index + 1 :]:
            if t.t0 > c.t0:
                break
            if running(t):
                best = t
    return best
