"""Small text helpers shared by the behaviour detectors and the dataset build."""

from __future__ import annotations

import re

# A sentence ends at . ? ! (or an ellipsis) followed by whitespace. Abbreviations
# such as "Dr." are rare in transcripts; merging them back is not worth a model.
_SPLIT = re.compile(r"(?<=[.?!])\s+(?=\S)")
_WORD = re.compile(r"[a-z][a-z'-]*")

# Back-channels and discourse markers: a sentence made only of these carries no
# behaviour (and, as speech, does not take the floor).
FILLER_WORDS = frozenset(
    {
        "ok", "okay", "k", "yeah", "yep", "yes", "no", "um", "umm", "uh", "er", "erm", "right", "alright", "all",
        "mm", "mmm", "mm-hmm", "mm-hm", "mhm", "hmm", "uh-huh", "fine", "great", "sure", "good", "perfect", "so",
        "and", "oh", "ah", "cool", "lovely", "excellent", "brilliant", "then", "well", "i", "see", "nope", "yup",
        "hm", "uhh", "mmhm", "sorry", "pardon", "huh", "ahh", "aha", "yeh", "ya", "absolutely", "exactly",
        "course", "of", "gotcha", "true", "indeed", "wow", "really", "sure-", "ok-", "mm-mm", "uh-uh", "hmm-mm",
    }
)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SPLIT.split(text.strip()) if s.strip()]


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def is_filler(text: str) -> bool:
    """True when every word is a back-channel or discourse marker (or there are no words)."""
    return all(w.strip("-'") in FILLER_WORDS or w in FILLER_WORDS for w in words(text))
