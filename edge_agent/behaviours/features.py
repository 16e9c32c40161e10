"""Sparse n-gram featuriser shared by training and the device.

The ONNX model is a linear layer over these features; the featuriser is plain
Python so the device needs no sklearn. Training (tools/training/train_behaviours.py)
builds the vocabulary with :func:`extract` and the runtime calls the very same
function, so features match by construction (a parity check in the training
script compares the ONNX output with sklearn's).

Features of one sentence (all lower-cased):
  w:<word>          word unigrams
  b:<w1> <w2>       word bigrams
  f:<w1>            first word, f2:<w1> <w2> first two words (questions are
                    decided by how a sentence opens)
  e:<last>          last token ("?" when the sentence is a question)
  t:<w1 w2 w3>      word trigrams
  g:, g2:, g3:      first 1-3 words after opening discourse markers
  c:<ngram>         character 3..5-grams inside word boundaries (spelling
                    variants, ASR slips, plurals)
  q:<cue>           question-form cues from docs/labelling.md (an invitation
                    to narrate, asking for the patient's ideas, a single-fact
                    form, a rating, an auxiliary-initial yes/no form, ...)
  q3:<cue>          (featuriser version 3 only) sentence-form cues for the
                    out-of-domain misses of issue 13: "how come", modal and
                    appraisal wh-openings ("what would you...", "how serious do
                    you think..."), tag questions, where the wh-word sits, a
                    statement followed by a question in one sentence (the last
                    part decides, guide Q1), declarative checks, and statement
                    openings of reflections ("so you...", "it sounds like",
                    "part of you"), of advice and of information.
  q4:<cue>          (featuriser version 4 only) embedded questions ("I wonder
                    what...", "I'm curious how...", "I'd like to hear more
                    about..."; MITI: open) against "I wonder whether..." (a
                    tentative statement), and statement forms of reflections
                    ("sounds like you...", "...matters to you", "that's
                    something you...", "what you're saying is") against
                    information with a third-person subject ("your test
                    came back...", "the tablets usually...").
  q5:<cue>          (featuriser version 5 and 6) dialogue context, from the
                    previous patient turn (``Context``; docs/behaviours-eval.md,
                    "Dialogue context"): whether there is one, whether the
                    sentence opens the clinician's reply to it, whether the
                    patient asked something or said very little, and how many
                    content-word stems the sentence shares with it (MITI/MISC: a
                    reflection restates what the client said). Without a context
                    (a caller that has none, a source of single sentences) the
                    only cue is ``q5:ctx-none``.
  q5:<cue> in v6    (featuriser version 6) the version-5 cues with the two
                    states ``ctx-none`` conflated kept apart: context unknown (a
                    caller that gives none, ``ctx`` None; a source of single
                    sentences) has no context cue at all, so the sentence is
                    featurised on its own words alone; a sentence of a dialogue
                    with no patient turn before it yet (``Context`` with
                    ``prev_patient`` None: the opening of a visit) gets
                    ``q5:ctx-no-patient-turn``. The other cues are version 5's.
Weights: (1 + log tf) * idf, then L2-normalised; the q: cues are appended
after the normalisation with the fixed value CUE_VALUE, so that a handful of
form cues is not drowned by a hundred character n-grams.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat

import numpy as np

_TOKEN = re.compile(r"[a-z0-9][a-z0-9'&-]*|\?")
# Disfluencies carry no behaviour; dropping them makes ASR and transcript text alike.
_DISFLUENCY = frozenset({"um", "umm", "uh", "uhh", "er", "erm", "ah", "mm", "hmm"})
CHAR_MIN, CHAR_MAX = 3, 5
# Discourse markers that open spoken sentences ("okay, so, and ..."); the words after
# them decide the sentence type, so the opening is also featurised without them.
_MARKERS = frozenset({"ok", "okay", "right", "alright", "all", "yeah", "yes", "no", "well", "and", "so", "but", "fine",
                      "great", "good", "sure", "now", "then", "just", "also", "oh", "sorry", "perfect", "lovely"})


CUE_VALUE = 0.6
# Each cue is a form that docs/labelling.md uses to decide open vs closed questions.
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx))
    for name, rx in (
        ("open:ideas", r"\bwhat (do|did) you (think|feel|make|understand|know|reckon)\b|\bany (ideas|thoughts)\b|\bwhat might\b"
                       r"|\bwhat (are|were) your (own )?(thoughts|concerns|worries|understanding)\b|\bwhat's your understanding\b"),
        ("open:narrate", r"\bin your own words\b|\btell me (more|about|a bit|a little|what|how|everything|the main|back)\b"
                         r"|\b(describe|explain|talk me through|walk me through|take me through|run through|go through|summari[sz]e)\b"
                         r"|\btalk to me about\b|\b(a (little )?bit|a little) more about\b"),
        ("open:account", r"\bhow (has|have|is|are|was|were|does|did|will) (it|this|that|things|you|your \w+|they)\b"
                         r"|\bwhat (is|was|are|were|has|have) (it|they|that|those|the \w+) (been )?like\b|\bin what way\b"),
        ("open:why", r"\bwhy\b"),
        ("open:happened", r"\bwhat (happened|happens)\b|\bwhat (would|will) you do\b|\bwhat are you going to do\b"),
        ("open:preference", r"\bwhat would (you prefer|work best)\b|\bwhat matters\b|\bhow (do|would) you feel about\b"),
        ("closed:fact", r"\bhow (long|many|much|often|old|far)\b|\b(when|where|whereabouts|which)\b|\bwhat time\b"
                        r"|\bwhat('s| is| was| are) (your|the) (name|job|weight|height|date|dose|reading|number)\b"),
        ("closed:rating", r"\b(rate|scale|out of (ten|10))\b"),
    )
)
_AUX_INITIAL = re.compile(r"(is|are|was|were|do|does|did|have|has|had|can|could|would|will|should|shall|may|any|anything)\b")
_WH_INITIAL = re.compile(r"(what|how|why|when|where|who|which)\b")


def cues(text: str, words: list[str]) -> list[str]:
    """Question-form cues of a sentence (``words``: its tokens without "?")."""
    lowered = text.lower()
    out = [f"q:{name}" for name, rx in _CUES if rx.search(lowered)]
    k = 0
    while k < len(words) - 1 and words[k] in _MARKERS:
        k += 1
    opening = " ".join(words[k : k + 2])
    if _AUX_INITIAL.match(opening):
        out.append("q:aux-initial")
    elif _WH_INITIAL.match(opening):
        out.append("q:wh-initial")
    if "?" in lowered:
        out.append("q:question-mark")
    return out


# ---- version 3: sentence-form cues (docs/labelling.md §4.2 and §5.5) ------------------------------

FEATURISER_VERSIONS = (2, 3, 4, 5, 6)
_WH = frozenset({"what", "how", "why", "when", "where", "who", "which", "whereabouts", "what's", "how's", "where's", "who's"})
_AUX = frozenset({"is", "are", "was", "were", "do", "does", "did", "have", "has", "had", "can", "could", "would", "will",
                  "should", "shall", "may", "might", "any", "anything", "isn't", "aren't", "don't", "doesn't", "didn't",
                  "haven't", "hasn't", "can't", "won't", "wouldn't", "couldn't", "shouldn't", "d'you"})
_CLAUSE = re.compile(r"[,;:\u2013\u2014]|\s-\s|\.\.\.")
_TAG = re.compile(r"^(is|isn't|are|aren't|was|wasn't|do|don't|does|doesn't|did|didn't|have|haven't|has|hasn't|can|can't|will|won't"
                  r"|would|wouldn't)( (it|you|they|he|she|that|we|there|i))?$|^(right|yeah|yes|ok|okay|correct|true|no)$"
                  r"|^(is that|was that) (right|correct|true|so|fair|ok|okay)$|^(am i|have i got that) (right|correct)$")
_APPRAISAL = ("important", "confident", "ready", "worried", "concerned", "serious", "sure", "likely", "committed", "motivated",
              "willing", "hard", "difficult", "easy", "helpful", "useful", "different", "comfortable", "bothered", "keen")
_DEGREE = frozenset({"long", "many", "much", "often", "old", "far", "soon", "frequently"})
_CUES3: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx))
    for name, rx in (
        ("how-come", r"\bhow come\b"),
        ("wh-modal", r"\b(what|how) (would|could|might|will|should) (you|it|that|things|life|this)\b"),
        ("wh-you-think", r"\b(what|how|why) (\w+ )?(do|did|would|does) you (think|feel|reckon|imagine|suppose|make of|see|hope|want|need|like)\b"),
        ("how-appraisal", r"\bhow (" + "|".join(_APPRAISAL) + r")\b"),
        ("what-else-helps", r"\bwhat (else )?(has|have|might|would|could|will) (help|helped|work|worked|make|made|get|stop|stopped)\b"),
        ("sounds-like", r"\b(it |that )?(sounds|seems|looks) (like|as if|as though)\b|\bsounds (really |quite |pretty )?\w+\b"),
        ("reflect-you", r"\byou('re| are| were|'ve| have)? ?(feeling|worried|concerned|wondering|thinking|hoping|finding|struggling|torn|"
                        r"tired|frustrated|fed up|not sure|unsure|scared|afraid|angry|upset|proud|ready|determined|saying|telling me)\b"
                        r"|\byou (said|mentioned|told me|described|feel|felt|want|wanted|don't want|mean|noticed|realised|realized|enjoy|like|"
                        r"value|care about|miss|hate|worry|wonder)\b|\bpart of you\b|\bon the one hand\b|\bon the other( hand)?\b"
                        r"|\bwhat i'm hearing\b|\bif i('ve)? (understand|heard|hear|got) (you|that|this|it)\b"),
        ("advice-modal", r"\b(you (should|need to|must|ought to|could try|might try|might want to|may want to|want to try)|i'?d (suggest|recommend|advise|like you to)"
                         r"|i would (suggest|recommend|advise|like you to)|try (to|and)|make sure|it (might|may|would|could) be (worth|a good idea|helpful|best)"
                         r"|it's (worth|best|a good idea)|please|don't|avoid|keep (taking|using|going)|remember to)\b"),
        ("info-we", r"\b(i'll|i will|we'll|we will|i'm going to|we're going to|i am going to|we are going to|they'll|they will|the \w+ will|this will|that will|it will)\b"),
        ("info-general", r"\b(usually|normally|typically|generally|often|most people|many people|some people|lots of people|can cause|causes|caused by"
                         r"|is a|are a|is the|means|tends to|is common|are common|the risk|research|studies|on average|per cent|percent)\b"),
    )
)


def _opening(words: list[str]) -> int:
    k = 0
    while k < len(words) - 1 and words[k] in _MARKERS:
        k += 1
    return k


def form_cues(text: str) -> list[str]:
    """Version-3 sentence-form cues (names without prefix)."""
    lowered = text.lower().strip()
    out = [name for name, rx in _CUES3 if rx.search(lowered)]
    question = "?" in lowered
    clauses = [[t for t in tokens(c) if t != "?"] for c in _CLAUSE.split(lowered)]
    clauses = [c for c in clauses if c]
    if not clauses:
        return out
    words = [w for c in clauses for w in c]
    first = clauses[0][_opening(clauses[0]):]
    last = clauses[-1][_opening(clauses[-1]):]

    def kind(ws: list[str]) -> str:
        if not ws:
            return "none"
        if ws[0] in _WH or (ws[0] == "in" and len(ws) > 1 and ws[1] == "what"):
            return "wh"
        if ws[0] in _AUX:
            return "aux"
        if ws[0] in ("you", "you're", "you've", "your", "you'd", "you'll"):
            return "you"
        if ws[0] in ("tell", "describe", "explain", "talk", "walk", "say"):
            return "imper"
        return "other"

    k_first, k_last = kind(first), kind(last)
    out.append(f"open-{k_first}" + ("-q" if question else "-s"))
    if question:
        if len(clauses) > 1:
            out.append(f"last-{k_last}")
            if len(last) <= 4 and _TAG.match(" ".join(last)):
                out.append("tag")
            elif k_first not in ("wh", "aux") and k_last in ("wh", "aux", "imper"):
                out.append("statement+question")
        if k_first in ("you", "other") and (len(clauses) == 1 or k_last not in ("wh", "aux")):
            out.append("declarative-check")
        wh_at = next((i for i, w in enumerate(words) if w in _WH), None)
        if wh_at is not None:
            out.append("wh-initial" if wh_at <= _opening(words) else "wh-later")
        q_words = last if len(clauses) > 1 and k_last in ("wh", "aux") else first
        if q_words and q_words[0] in ("how", "how's") and len(q_words) > 1:
            out.append("how-degree" if q_words[1] in _DEGREE else "how-other")
    else:
        if words and words[0] == "so" and k_first in ("you", "other"):
            out.append("so-statement")
        if len(words) <= 4:
            out.append("short-statement")
    return out


_CUES4: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx))
    for name, rx in (
        ("embedded-open", r"\bi('m| am| was|'d| would)? ?(just |really |also )?(wonder|wondering|curious)\b( about)?( \w+){0,2}? (what|how|why)\b"
                          r"|\b(i'?d|i would) (like|love) to (know|hear|understand)\b|\b(can|could|would|will) you (tell|share|say|help me understand|let me know)\b"
                          r"[^?]*\b(what|how|why|about|more)\b"),
        ("wonder-whether", r"\bi('m| am| was)? ?(wonder|wondering)( if| whether)\b"),
        ("sounds-like-you", r"\b(sounds|seems|looks|feels) (like|as if|as though) (you|you're|you've|you'd|your|things|it's been|this has been|that's been|there's been|a lot)\b"),
        ("matters-to-you", r"\b(important|matters|matter|means|mean|a big deal|what counts|precious|special) (to|for) you\b|\bthat's (something|what|the thing|one thing|the bit|the part) (you|that you)\b"
                           r"|\bwhat you're (saying|telling me|describing)\b|\byou('re| are) (not sure|not ready|not keen|not convinced|fed up|tired of)\b"),
        ("you-subject-statement", r"^(\W*(so|and|okay|ok|right|yeah|well|um|uh|er)\W+)*(you|you're|you've|you'd|you'll)\b[^?]*$"),
        ("third-subject", r"^(\W*(so|and|okay|ok|right|well|um|uh|er)\W+)*(your|the|this|that|these|those|most|some|many|it) (\w+ )?(\w+ )?"
                          r"(is|are|was|were|has|have|had|came|comes|come|looks|showed|shows|will|can|usually|tends|tend|should|may|might|gives|lowers|raises)\b[^?]*$"),
    )
)


def form_cues4(text: str) -> list[str]:
    """Version-4 cues (names without prefix)."""
    lowered = " ".join(tokens(text)) if text else ""
    return [name for name, rx in _CUES4 if rx.search(lowered)]


# ---- version 5: dialogue context (the previous patient turn) ---------------------------------------


@dataclass(frozen=True)
class Context:
    """What the featuriser may know of a clinician sentence's place in the conversation.

    ``prev_patient``: the text of the last patient turn before the sentence (None: no patient turn
    before it yet; featuriser version 5 also featurises an unknown context so, version 6 keeps the two
    apart: a caller that does not know the context passes no ``Context`` at all); ``turn_start``: the sentence is the first of a clinician turn that directly
    follows that patient turn (the clinician's reply opens with it)."""

    prev_patient: str | None = None
    turn_start: bool = False


NO_CONTEXT = Context()
# Function words, pronouns, fillers and back-channel words: overlap in these says nothing about
# restating the patient (MITI reflection: the clinician restates the *content* of what was said).
_STOP = frozenset("""a an the and or but so if then than that this these those there here it its it's i i'm i've i'd i'll me my
mine you you're you've you'd you'll your yours he she him her his they them their we us our is are was were be been being am do
does did doing done have has had having can could would will should shall may might must not no yes yeah ok okay right well oh
just really very quite bit little lot of to in on at for with from by about as into over up down out off again also too any
some all what how why when where who which whether because like mm um uh er erm hmm yep yup sure thanks thank please sorry
got get gets getting go goes going went know think mean feel felt say said tell told see thing things one now kind sort
don't didn't doesn't isn't aren't wasn't weren't haven't hasn't can't won't wouldn't couldn't""".split())


def _stem(word: str) -> str:
    w = word.strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    for suf in ("ing", "ed", "ly", "es", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)]
    return w


@lru_cache(maxsize=1 << 12)
def content_stems(text: str) -> frozenset[str]:
    """Stems of the content words of ``text`` (cached: every sentence of a turn shares its patient turn)."""
    return frozenset(_stem(w) for w in tokens(text) if w != "?" and w not in _STOP and not w.isdigit() and len(w) > 2)


def context_cues(text: str, ctx: Context | None, version: int = 5) -> list[str]:
    """Version-5 (or 6) cues (names without prefix) of a sentence in its dialogue context. Version 5: one cue
    ``ctx-none`` both when the context is unknown (``ctx`` None) and when there is no patient turn before the
    sentence; version 6: nothing when unknown, ``ctx-no-patient-turn`` when no patient turn yet."""
    if version >= 6 and ctx is None:
        return []
    if ctx is None or ctx.prev_patient is None or not ctx.prev_patient.strip():
        return ["ctx-no-patient-turn" if version >= 6 else "ctx-none"]
    prev = ctx.prev_patient
    out = ["ctx-turn-start" if ctx.turn_start else "ctx-later"]
    if "?" in prev:
        out.append("ctx-patient-asked")
    if len([w for w in tokens(prev) if w != "?"]) <= 3:
        out.append("ctx-patient-short")
    mine = content_stems(text)
    shared = len(mine & content_stems(prev))
    out.append(f"ctx-overlap-{min(shared, 3)}")
    question = "?" in text
    if shared >= 1:
        out.append("ctx-echo-question" if question else "ctx-echo-statement")
        if len(mine) >= 2 and shared * 2 >= len(mine):
            out.append("ctx-echo-half")
    if ctx.turn_start:
        out.append("ctx-start-question" if question else "ctx-start-statement")
    return out


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _DISFLUENCY]


def extract(text: str, version: int = 2, ctx: Context | None = None) -> Counter[str]:
    """Features of one sentence; ``version`` 3 adds the sentence-form cues (``q3:``), 4 the ``q4:`` cues, 5 the
    dialogue-context cues (``q5:``) of ``ctx`` (None: no context), 6 the same cues with an unknown context
    (None) apart from no patient turn yet (``Context(None)``)."""
    toks = tokens(text)
    words = [t for t in toks if t != "?"]
    feats: list[str] = ["w:" + w for w in words]
    feats += ["b:" + a + " " + b for a, b in zip(words, words[1:])]
    feats += ["t:" + a + " " + b + " " + c for a, b, c in zip(words, words[1:], words[2:])]
    if words:
        k = 0
        while k < len(words) - 1 and words[k] in _MARKERS:
            k += 1
        feats += ["f:" + words[0], "f2:" + " ".join(words[:2]), "g:" + words[k], "g2:" + " ".join(words[k : k + 2]),
                  "g3:" + " ".join(words[k : k + 3])]
    if toks:
        feats.append("e:" + toks[-1])
    for w in words:
        feats += _char_grams(w)
    counts: Counter[str] = Counter(feats)  # counted in C: the featuriser runs once per sentence on the device
    for cue in cues(text, words):
        counts[cue] = 1
    if version >= 3:
        for cue in form_cues(text):
            counts["q3:" + cue] = 1
    if version >= 4:
        for cue in form_cues4(text):
            counts["q4:" + cue] = 1
    if version >= 5:
        for cue in context_cues(text, ctx, version):
            counts["q5:" + cue] = 1
    return counts


@lru_cache(maxsize=1 << 16)
def _char_grams(word: str) -> tuple[str, ...]:
    """``c:`` features of one word (character 3..5-grams of " word "), cached: words repeat."""
    padded = f" {word} "
    return tuple("c:" + padded[i : i + n] for n in range(CHAR_MIN, CHAR_MAX + 1) for i in range(len(padded) - n + 1))


def forget_text() -> None:
    """Empty the memo caches above: their keys are words and sentences (with context, patient turns) of the
    visit. Called at every visit end (docs/design.md §3.3: transcripts live for the visit only)."""
    content_stems.cache_clear()
    _char_grams.cache_clear()


@dataclass
class Vocabulary:
    index: dict[str, int]
    idf: list[float]

    @property
    def size(self) -> int:
        return len(self.idf)

    @property
    def idf_array(self) -> np.ndarray:
        arr = self.__dict__.get("_idf_array")
        if arr is None or len(arr) != len(self.idf):
            arr = self.__dict__["_idf_array"] = np.asarray(self.idf, dtype=np.float64)
        return arr


def weight_arrays(counts: Counter[str], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights of the features known to ``vocab``: L2-normalised (1 + log tf) * idf of the n-grams,
    then the cues at CUE_VALUE (extract adds the cues last; no other feature name starts with "q")."""
    keys = list(counts)
    n_cues = 0
    while n_cues < len(keys) and keys[-1 - n_cues][0] == "q":
        n_cues += 1
    split = len(keys) - n_cues
    js = np.fromiter(map(vocab.index.get, keys, repeat(-1, len(keys))), dtype=np.int64, count=len(keys))
    tf = np.fromiter(counts.values(), dtype=np.float64, count=len(keys))[:split]
    j_ng, j_cue = js[:split], js[split:]
    known = j_ng >= 0
    j_ng, tf = j_ng[known], tf[known]
    v = (1.0 + np.log(tf)) * vocab.idf_array[j_ng]
    norm = math.sqrt(float(v @ v)) or 1.0
    j_cue = j_cue[j_cue >= 0]
    return np.concatenate([j_ng, j_cue]), np.concatenate([v / norm, np.full(len(j_cue), CUE_VALUE)])


def weights(counts: Counter[str], vocab: Vocabulary) -> list[tuple[int, float]]:
    """``weight_arrays`` as (index, weight) pairs."""
    idx, val = weight_arrays(counts, vocab)
    return list(zip(idx.tolist(), val.tolist()))


def batch_arrays(texts: list[str], vocab: Vocabulary, version: int = 2,
                 contexts: list[Context | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Padded (indices int64, values float32) arrays for the ONNX model (``contexts``: one per text, or None).

    Padding points at row ``vocab.size`` of the weight matrix, which is zero.
    """
    ctxs = contexts if contexts is not None else [None] * len(texts)
    rows = [weight_arrays(extract(t, version, c), vocab) for t, c in zip(texts, ctxs)]
    if len(rows) == 1:  # the device's case: one sentence per call
        i, v = rows[0]
        if len(i):
            return i.reshape(1, -1), v.astype(np.float32).reshape(1, -1)
    width = max(1, max((len(r[0]) for r in rows), default=1))
    idx = np.full((len(rows), width), vocab.size, dtype=np.int64)
    val = np.zeros((len(rows), width), dtype=np.float32)
    for k, (i, v) in enumerate(rows):
        idx[k, : len(i)] = i
        val[k, : len(v)] = v
    return idx, val
