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
Weights: (1 + log tf) * idf, then L2-normalised; the q: cues are appended
after the normalisation with the fixed value CUE_VALUE, so that a handful of
form cues is not drowned by a hundred character n-grams.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

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

FEATURISER_VERSIONS = (2, 3)
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


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _DISFLUENCY]


def extract(text: str, version: int = 2) -> Counter[str]:
    """Features of one sentence; ``version`` 3 adds the sentence-form cues (``q3:``)."""
    toks = tokens(text)
    feats: Counter[str] = Counter()
    words = [t for t in toks if t != "?"]
    for w in words:
        feats["w:" + w] += 1
    for a, b in zip(words, words[1:]):
        feats["b:" + a + " " + b] += 1
    for a, b, c in zip(words, words[1:], words[2:]):
        feats["t:" + a + " " + b + " " + c] += 1
    if words:
        feats["f:" + words[0]] += 1
        feats["f2:" + " ".join(words[:2])] += 1
        k = 0
        while k < len(words) - 1 and words[k] in _MARKERS:
            k += 1
        feats["g:" + words[k]] += 1
        feats["g2:" + " ".join(words[k : k + 2])] += 1
        feats["g3:" + " ".join(words[k : k + 3])] += 1
    if toks:
        feats["e:" + toks[-1]] += 1
    for w in words:
        padded = f" {w} "
        for n in range(CHAR_MIN, CHAR_MAX + 1):
            for i in range(len(padded) - n + 1):
                feats["c:" + padded[i : i + n]] += 1
    for cue in cues(text, words):
        feats[cue] = 1
    if version >= 3:
        for cue in form_cues(text):
            feats["q3:" + cue] = 1
    return feats


@dataclass
class Vocabulary:
    index: dict[str, int]
    idf: list[float]

    @property
    def size(self) -> int:
        return len(self.idf)


def weights(counts: Counter[str], vocab: Vocabulary) -> list[tuple[int, float]]:
    """Indices and weights of the features known to ``vocab``: L2-normalised tf-idf, then the cues."""
    pairs, cue_pairs = [], []
    for f, tf in counts.items():
        j = vocab.index.get(f)
        if j is None:
            continue
        if f.startswith(("q:", "q3:")):
            cue_pairs.append((j, CUE_VALUE))
        else:
            pairs.append((j, (1.0 + math.log(tf)) * vocab.idf[j]))
    norm = math.sqrt(sum(v * v for _, v in pairs)) or 1.0
    return [(j, v / norm) for j, v in pairs] + cue_pairs


def batch_arrays(texts: list[str], vocab: Vocabulary, version: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Padded (indices int64, values float32) arrays for the ONNX model.

    Padding points at row ``vocab.size`` of the weight matrix, which is zero.
    """
    rows = [weights(extract(t, version), vocab) for t in texts]
    width = max(1, max((len(r) for r in rows), default=1))
    idx = np.full((len(rows), width), vocab.size, dtype=np.int64)
    val = np.zeros((len(rows), width), dtype=np.float32)
    for i, r in enumerate(rows):
        if r:
            idx[i, : len(r)] = [j for j, _ in r]
            val[i, : len(r)] = [v for _, v in r]
    return idx, val
