"""Labelling units of the behaviour classifier: sentences, a trailing question clause, question form.

The classifier labels **sentences** (docs/labelling.md §1). A text handed to it may hold
several (a whole utterance: "You've been drinking more. What do you make of that?"), and
one sentence may be a statement followed by a question in one breath ("It sounds like
work has piled up, how are you coping with that?"). Both are split here, the same way on
the device and in training (tools/training/behaviour_heads.py calls these functions):

- ``split_sentences`` (edge_agent.behaviours.text) cuts at . ? ! ;
- a sentence ending in "?" (or in no punctuation at all) is cut once more before a clause that is a question by form
  (a wh-word or an auxiliary + subject after any discourse markers: MISC/MITI decide
  question type by form), when the part before it is a statement of three or more
  words that is not a subordinate clause ("If you had to choose, ...") and the question
  part is not a tag ("..., is that right?"); version 2 (the shipped models) also cuts a
  question followed by another question ("Can you tell me about the pain, what kind of
  pain is it?"), except before a hedge ("..., would you say?");
- a unit with no end punctuation (ASR text with weak punctuation) that is a question by
  form gets its "?" back (``normalise``).

``combine`` turns the per-unit probabilities back into one row per text: within a
sentence the question type comes from its **last** part (guide Q1: the patient answers
what is left on the table) and every other label is the maximum over the parts; across
sentences every label is the maximum (each sentence has its own labels; the text has
their union).
"""

from __future__ import annotations

import re

import numpy as np

from edge_agent.behaviours.text import split_sentences

_TOKEN = re.compile(r"[a-z0-9][a-z0-9'-]*")
_FILLERS = frozenset({"um", "umm", "uh", "uhh", "er", "erm", "ah", "mm", "hmm", "mhm", "mm-hmm", "uh-huh"})
_MARKERS = frozenset({"ok", "okay", "right", "alright", "yeah", "yes", "no", "well", "and", "so", "but", "now", "then",
                      "oh", "sorry", "just", "also", "fine", "great", "good", "sure", "like", "i", "mean", "see"})
_WH = frozenset({"what", "how", "why", "when", "where", "who", "which", "whereabouts", "whose"})
_WH_CONTRACTED = frozenset({"what's", "how's", "where's", "who's", "why's", "when's", "what're", "how're", "what'd", "how'd"})
_AUX = frozenset({"is", "are", "was", "were", "do", "does", "did", "have", "has", "had", "can", "could", "would", "will",
                  "should", "shall", "may", "might", "isn't", "aren't", "wasn't", "don't", "doesn't", "didn't", "haven't",
                  "hasn't", "can't", "won't", "wouldn't", "couldn't", "shouldn't", "d'you"})
_SUBJECT = frozenset({"you", "i", "we", "it", "that", "this", "there", "they", "he", "she", "your", "the", "any", "anything",
                      "anyone", "anybody", "someone", "something", "things", "everything", "all", "these", "those", "my", "his",
                      "her", "their", "our", "a", "an", "ya", "y'all"})
# A wh-word followed by a subject pronoun opens a statement ("What I'd suggest is ...", "How you feel matters"),
# except "how come", which keeps statement word order in a question.
_PRONOUN = frozenset({"i", "you", "we", "they", "he", "she", "i'd", "i'll", "i'm", "you'd", "you'll", "you're", "we'd",
                      "we'll", "we're", "they'd", "they're"})
_SUBORDINATE = frozenset({"if", "when", "whenever", "because", "as", "since", "before", "after", "while", "although", "though",
                          "unless", "until", "once", "whether", "given", "in", "for", "with", "without", "to", "on", "at",
                          "about", "from", "of", "by", "during", "apart", "besides", "compared", "thinking", "looking"})
_TAG = re.compile(r"^(is|isn't|are|aren't|was|wasn't|do|don't|does|doesn't|did|didn't|have|haven't|has|hasn't|can|can't|will"
                  r"|won't|would|wouldn't|could|couldn't)( (it|you|they|he|she|that|we|there|i|this))?( (right|correct|true|so|fair|ok|okay))?$")
_BOUNDARY = re.compile(r"\s*(?:[,;:\u2013\u2014]|\s-\s|\.\.\.)\s*")


def _words(text: str) -> list[str]:
    return [w for w in _TOKEN.findall(text.lower().replace("\u2019", "'")) if w not in _FILLERS]


def _after_markers(ws: list[str]) -> list[str]:
    k = 0
    while k < len(ws) - 1 and ws[k] in _MARKERS:
        k += 1
    return ws[k:]


def question_form(text: str) -> bool:
    """Interrogative by form (wh-word, "how come", or auxiliary + subject), after discourse markers and fillers."""
    ws = _after_markers(_words(text))
    if len(ws) < 2:
        return False
    a, b = ws[0], ws[1]
    if a in _WH_CONTRACTED:
        return True
    if a in _WH:
        return b == "come" or b not in _PRONOUN
    return a in _AUX and b in _SUBJECT


def normalise(text: str) -> str:
    """The unit as the classifier reads it: a question by form with no end punctuation gets its "?"."""
    s = text.strip()
    if s and s[-1] not in ".?!\"')" and question_form(s):
        return s.rstrip(" ,;:-\u2013\u2014") + "?"
    return s


# Hedges that close a question without asking a new one ("How many a day, would you say?").
_HEDGE = re.compile(r"^(would you say|do you think|d'you think|do you reckon|would you agree|do you know what i mean|you know|if you like)$")
VERSIONS = (1, 2)


def clause_split(sentence: str, version: int = 1) -> list[str]:
    """A statement followed by a question in one sentence -> [statement, question]; otherwise [sentence].

    Version 2 also cuts a question followed by another question (guide Q1: the last part decides the
    type), but not before a hedge ("..., would you say?").
    """
    s = sentence.strip()
    if not s or s[-1] in ".!":  # a question sentence, or one with no end punctuation (ASR)
        return [s]
    for m in _BOUNDARY.finditer(s):
        head, tail = s[: m.start()].strip(), s[m.end() :].strip()
        hw, tw = _words(head), _after_markers(_words(tail))
        if len(_after_markers(hw)) < 3 or len(tw) < 3:
            continue
        if _after_markers(hw)[0] in _SUBORDINATE or (version < 2 and question_form(head)):
            continue
        joined = " ".join(tw).rstrip("?")
        if _TAG.match(joined) or (version >= 2 and _HEDGE.match(joined)):
            continue
        if question_form(tail):
            return [head + ",", tail]
    return [s]


def units(text: str, version: int = 1) -> list[tuple[int, str]]:
    """(sentence index, unit text) of every labelling unit of ``text``, in order."""
    sents = split_sentences(text) or [text.strip()]
    out: list[tuple[int, str]] = []
    for i, s in enumerate(sents):
        for part in clause_split(normalise(s), version):
            out.append((i, normalise(part)))
    return out


def expand(texts: list[str], version: int = 1) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """All units of ``texts`` (flat) and, per text, (sentence index, flat index) of its units."""
    flat: list[str] = []
    where: list[list[tuple[int, int]]] = []
    for t in texts:
        mine = []
        for si, u in units(t, version):
            mine.append((si, len(flat)))
            flat.append(u)
        where.append(mine)
    return flat, where


def combine(probs: np.ndarray, where: list[list[tuple[int, int]]], question_cols: tuple[int, ...]) -> np.ndarray:
    """One row per text from the units' rows (see the module docstring)."""
    out = np.zeros((len(where), probs.shape[1]), dtype=probs.dtype)
    qc = list(question_cols)
    for r, mine in enumerate(where):
        if len(mine) == 1:
            out[r] = probs[mine[0][1]]
            continue
        by_sent: dict[int, list[int]] = {}
        for si, j in mine:
            by_sent.setdefault(si, []).append(j)
        rows = []
        for js in by_sent.values():
            row = probs[js].max(axis=0)
            row[qc] = probs[js[-1], qc]
            rows.append(row)
        out[r] = np.max(rows, axis=0)
    return out
