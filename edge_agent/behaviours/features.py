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


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _DISFLUENCY]


def extract(text: str) -> Counter[str]:
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
        if f.startswith("q:"):
            cue_pairs.append((j, CUE_VALUE))
        else:
            pairs.append((j, (1.0 + math.log(tf)) * vocab.idf[j]))
    norm = math.sqrt(sum(v * v for _, v in pairs)) or 1.0
    return [(j, v / norm) for j, v in pairs] + cue_pairs


def batch_arrays(texts: list[str], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Padded (indices int64, values float32) arrays for the ONNX model.

    Padding points at row ``vocab.size`` of the weight matrix, which is zero.
    """
    rows = [weights(extract(t), vocab) for t in texts]
    width = max(1, max((len(r) for r in rows), default=1))
    idx = np.full((len(rows), width), vocab.size, dtype=np.int64)
    val = np.zeros((len(rows), width), dtype=np.float32)
    for i, r in enumerate(rows):
        if r:
            idx[i, : len(r)] = [j for j, _ in r]
            val[i, : len(r)] = [v for _, v in r]
    return idx, val
