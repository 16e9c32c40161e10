"""Does the patient still hold the floor? A floor-taking interruption detector with few parameters.

The definition implemented (docs/coaching.md, "Interruptions"): a clinician turn is a
**floor-taking interruption** when it is *substantive* (not a back-channel, empathy token,
continuer, repair or ID/audio check: Mulder-Vos et al. 2023; the *cooperative* overlaps of
Murata 1994 / Li 2001), it starts while the patient **holds the floor** — inside a patient
turn, or in a short pause after one — and the patient's words at that point are
**syntactically incomplete** (Sacks, Schegloff & Jefferson 1974: a turn can change hands
only at a possible completion point; Ford & Thompson 1996: syntactic completion is the
main cue), and the patient **stops** (their turn ends soon after the onset and they do not
take the floor straight back). If the patient talks on, it was only *attempted*.

Syntactic incompleteness is judged from English grammar, not from examples: the last word
(hesitations and an untranscribed gap skipped) belongs to a closed word class that cannot
end a clause because it projects a complement. The classes are nested by how certainly
they project, and *how many* classes count is one ordinal parameter (``level``):

1. determiners and possessives ("the", "a", "my"), coordinating and subordinating
   conjunctions ("and", "but", "because", "if"), subject pronouns and subject+auxiliary
   contractions ("I", "we", "I'm", "it's"), and "gonna / wanna / gotta";
2. + prepositions and the infinitive "to" ("of", "with", "to"), which English can
   strand at a complete clause end ("what I'm referring to"), discourse "like", and
   degree words that need a head ("very", "quite");
3. + a clause stopped at its auxiliary after a conjunction ("…but I can"), a bare copula
   ("…seems to be") and "not" after a conjunction ("but not").

A clause-final preposition after a word that fronts its object ("what", "how", "that":
"what's going on", "not that I know of") is stranded and completes the clause.

A question, and a closing phrase the protocol names (docs/gold-events.md §1 and gap 2:
"that's it", "that's why", "but yeah", a turn-final "so" or "yeah" after a complete
clause, "anyway"), yield the floor whatever comes before.

The three numbers (``level``, ``stop_s``: the patient's turn ends within this long of the
clinician's onset; ``silent_s``: the longest pause after an incomplete ending in which a
clinician turn still takes the floor) are chosen by leave-one-visit-out cross-validation on
the development half of the gold (``python3 -m tools.bench.interruption_cv``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---- closed word classes (from English grammar; Quirk et al. 1985 / Biber et al. 1999 classes) ----

DETERMINERS = frozenset({"the", "a", "an", "my", "your", "our", "their", "its", "every", "each", "another", "whose"})
CONJUNCTIONS = frozenset({"and", "but", "or", "nor", "because", "cause", "'cause", "cos", "coz", "if", "when", "whether",
                          "although", "until", "unless", "than", "whereas"})
SUBJECT_PRONOUNS = frozenset({"i", "we", "he", "she", "they", "i'm", "i've", "i'd", "i'll", "it's", "there's", "we're",
                              "they're", "he's", "she's", "you're", "we've", "they've", "that's"})
SEMI_MODALS = frozenset({"gonna", "wanna", "gotta"})
PREPOSITIONS = frozenset({"of", "to", "with", "from", "for", "at", "in", "on", "into", "onto", "about", "by", "through",
                          "without", "towards", "between", "during", "like"})
DEGREE = frozenset({"very", "quite", "rather", "pretty", "too", "so"})
# Words after which a clause-final preposition is stranded (its object moved to the front: "what's
# going on", "not that I know of", "how I get on") and so completes the clause.
EXTRACTORS = frozenset({"what", "what's", "which", "who", "whom", "where", "how", "that", "whatever"})
COPULA = frozenset({"be", "been", "being"})
AUXILIARIES = frozenset({"can", "could", "will", "would", "shall", "should", "might", "may", "must", "was", "were", "am",
                         "is", "are", "have", "has", "had", "do", "did", "does"})
_SUBJECTS = frozenset({"i", "we", "it", "he", "she", "they", "you", "that", "there"})
HESITATIONS = frozenset({"um", "uh", "er", "erm", "umm", "uhh", "hmm", "mm"})

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")
# Closing phrases the protocol names (docs/gold-events.md §1, gap 2): the speaker winds down and yields.
_CLOSING = re.compile(
    r"(?:that'?s (?:it|all|why|about it|everything)(?: really)?|that'?s why i'?m (?:here|calling)|(?:so|but|and) yeah|"
    r"\byeah|\banyway|\bso|\bthough)$"
)
_ASKS = re.compile(r"^(?:(?:um|uh|so|and|or|but|well|okay|ok|yeah)\s)*(?:should|shall|can|could|do|does|did|is|are|will|would|"
                   r"what|how|why|when|where|which|who)\s(?:i|you|it|we|that|this|there|they)\b")
# An auxiliary before its subject starts a question inside a sentence too ("…, um, should I be taking…").
_INVERTED = re.compile(r"^(?:(?:um|uh|so|and|or|but|well|okay|ok|yeah)\s)*(?:should|shall|can|could|do|does|did|is|are|will|would)\s"
                       r"(?:i|you|it|we|they)\b")


@dataclass(frozen=True)
class FloorParams:
    """The detector's only free numbers (chosen by leave-one-visit-out CV on the development half)."""

    level: int = 3  # how many of the nested incomplete-ending word classes count (1-3)
    stop_s: float = 2.0  # the patient's turn ends within this long after the clinician's onset
    silent_s: float = 2.0  # a pause after an incomplete ending shorter than this is still the patient's floor


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _last_sentence(text: str) -> str:
    parts = [p for p in re.split(r"(?<=[.?!])\s+", text.strip()) if _words(p)]
    return parts[-1] if parts else ""


def ending_class(text: str) -> int:
    """The lowest level at which ``text`` ends incomplete (1-3), or 0 when it ends at a possible completion.

    Hesitations and an untranscribed gap (" ." left by a dropped marker) are skipped: a
    speaker who hesitates after "and" still holds the floor, one who hesitates after a
    complete clause does not (docs/gold-events.md §1).
    """
    raw = text.strip()
    if not raw or raw.endswith("?"):
        return 0
    last = _last_sentence(raw)
    ws = [w for w in _words(last)]
    while ws and ws[-1] in HESITATIONS:
        ws.pop()
    if not ws:
        return 0
    clauses = [" ".join(_words(c)) for c in last.split(",")]
    if _ASKS.match(clauses[0]) or any(_INVERTED.match(c) for c in clauses[1:]):
        return 0  # a question, also one trailing off in its alternatives ("…, should I be taking any drugs or, um")
    w = ws[-1]
    prev = ws[-2] if len(ws) > 1 else ""
    if w == "so" and prev in ("and", "but"):
        return 1  # "and so", "but so": a conjunction stacked on a conjunction
    if _CLOSING.search(" ".join(ws)):
        return 0
    if w in DETERMINERS or w in CONJUNCTIONS or w in SUBJECT_PRONOUNS or w in SEMI_MODALS:
        return 1
    if w in PREPOSITIONS:
        return 0 if any(x in EXTRACTORS for x in _words(clauses[-1])[:-1]) else 2
    if w in DEGREE:
        return 2
    if w in COPULA and prev == "to" or w == "not" and prev in CONJUNCTIONS:
        return 3  # "it seems to be", "but not": a complement still to come
    if w in AUXILIARIES and prev in _SUBJECTS and len(ws) > 2 and ws[-3] in CONJUNCTIONS:
        return 3
    return 0


def holds_floor(text: str, level: int) -> bool:
    """The patient's words end where they still hold the floor, counting word classes up to ``level``."""
    c = ending_class(text)
    return 0 < c <= level
