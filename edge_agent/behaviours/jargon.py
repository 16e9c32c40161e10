"""Lexicon-based detector of unexplained medical terms and abbreviations.

A term counts as jargon only if it is NOT explained nearby: in the same
sentence or the next one, either by an explicit gloss phrase ("which means",
"that's a ...", "in other words", "called", an apposition) or by the lay
words the lexicon lists for it ("ECG ... a tracing of the heart").

The lexicon (``models/jargon_lexicon.tsv``) is written for this project; see
its header for provenance. Lay-known words are deliberately left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edge_agent.behaviours.text import split_sentences
from edge_agent.errors import ModelError

LEXICON_NAME = "jargon_lexicon.tsv"


@dataclass(frozen=True)
class LexiconEntry:
    term: str
    kind: str  # "term" | "abbrev"
    case_sensitive: bool
    gloss_cues: str  # regex alternatives whose presence nearby explains the term
    plain: str  # suggested lay wording (used in coaching alternatives)


@dataclass(frozen=True)
class JargonHit:
    term: str  # as written in the text
    entry: LexiconEntry
    sentence_index: int
    explained: bool


# Phrases that introduce an explanation of the word just before them.
_GLOSS_AFTER = re.compile(
    r"^\W{0,3}(?:,\s*)?(?:\(|-|–|—|:|which (?:means|is|are|basically)|that (?:means|is|'s)|meaning|i\.e\.|in other words|"
    r"(?:is|are|was) (?:when|where|what|how|basically|simply|essentially|another word|a fancy|a medical|just a (?:fancy|medical|word))|"
    r"basically|otherwise known|also (?:called|known))",
    re.IGNORECASE,
)
# Phrases before the term that show a lay description came first ("a heart tracing, called an ECG").
_GLOSS_BEFORE = re.compile(r",\s*(?:called|known as|what we call|the (?:medical|fancy|technical) (?:term|word|name) (?:is|for (?:it|this|that) is))\W*(?:an? |the )?$", re.IGNORECASE)
# Next sentence that opens with an explanation ("That's a tracing of your heart.").
_GLOSS_NEXT = re.compile(
    r"^\W*(?:(?:and|so|um|uh|ok|okay),?\s+)*(?:that'?s|that is|it'?s|it is|this is|these are|they'?re|which|it means|that means|this means|basically|in other words|"
    r"so it'?s|so that'?s|essentially|what (?:that|it|this) means|(?:this|that|it) (?:is|means) (?:a|an|when|where|that))\b",
    re.IGNORECASE,
)


def default_lexicon_path() -> Path:
    return verified_lexicon_path(None)


def verified_lexicon_path(models_root: Path | None) -> Path:
    """The lexicon of a models folder after its MANIFEST sha256 check: an edited or damaged lexicon silently changes
    which words count as jargon, so it is refused like any other model file."""
    from edge_agent.models import verify_model  # local import: keeps this module light for the dataset build

    return verify_model(LEXICON_NAME, models_root)


@lru_cache(maxsize=4)
def load_lexicon(path: Path) -> tuple[LexiconEntry, ...]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"jargon lexicon {path} cannot be read ({exc.strerror}); restore models/{LEXICON_NAME} from the repository") from None
    except UnicodeDecodeError:
        raise ModelError(f"jargon lexicon {path} is not UTF-8 text (damaged?); restore models/{LEXICON_NAME} from the repository") from None
    entries = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 5 or cols[1] not in ("term", "abbrev") or cols[2] not in ("ci", "cs"):
            raise ModelError(f"jargon lexicon {path} line {n} is malformed; expected 5 tab-separated columns")
        entries.append(LexiconEntry(cols[0], cols[1], cols[2] == "cs", cols[3], cols[4]))
    return tuple(entries)


class JargonDetector:
    """Finds lexicon terms and decides whether each is explained nearby."""

    def __init__(self, lexicon_path: Path | None = None) -> None:
        self.entries = load_lexicon(lexicon_path or default_lexicon_path())
        # Longest terms first so "contact dermatitis" wins over "dermatitis".
        ordered = sorted(self.entries, key=lambda e: -len(e.term))
        self._by_key = {}
        ci_alts, cs_alts = [], []
        for e in ordered:
            key = e.term if e.case_sensitive else e.term.lower()
            self._by_key[key] = e
            (cs_alts if e.case_sensitive else ci_alts).append(re.escape(e.term))
        bound_l, bound_r = r"(?<![A-Za-z0-9&-])", r"(?![A-Za-z0-9&])"
        self._ci = re.compile(bound_l + "(" + "|".join(ci_alts) + ")" + bound_r, re.IGNORECASE) if ci_alts else None
        self._cs = re.compile(bound_l + "(" + "|".join(cs_alts) + ")" + bound_r) if cs_alts else None
        self._cues = {e.term: re.compile(r"\b(?:" + e.gloss_cues + r")", re.IGNORECASE) for e in self.entries if e.gloss_cues}

    def _matches(self, sentence: str) -> list[tuple[re.Match[str], LexiconEntry]]:
        found: list[tuple[re.Match[str], LexiconEntry]] = []
        taken: list[tuple[int, int]] = []
        for rx, ci in ((self._ci, True), (self._cs, False)):
            if rx is None:
                continue
            for m in rx.finditer(sentence):
                if any(m.start() < b and a < m.end() for a, b in taken):
                    continue
                entry = self._by_key.get(m.group(1).lower() if ci else m.group(1))
                if entry is None:
                    continue
                taken.append((m.start(), m.end()))
                found.append((m, entry))
        return sorted(found, key=lambda x: x[0].start())

    def _explained(self, m: re.Match[str], entry: LexiconEntry, sentence: str, nxt: str, prev: str) -> bool:
        after = sentence[m.end():]
        before = sentence[: m.start()]
        if _GLOSS_AFTER.match(after) or _GLOSS_BEFORE.search(before):
            return True
        if nxt and _GLOSS_NEXT.match(nxt):
            return True
        cue = self._cues.get(entry.term)
        if cue is not None:
            rest = before + " " + after
            if cue.search(rest) or cue.search(nxt) or cue.search(prev):
                return True
        return False

    def find(self, text: str, next_text: str = "", prev_text: str = "") -> list[JargonHit]:
        """All lexicon hits in ``text`` (any number of sentences), each marked explained or not.

        ``next_text``/``prev_text`` are the clinician's neighbouring words, when known.
        """
        sentences = split_sentences(text)
        hits = []
        for i, sent in enumerate(sentences):
            nxt = sentences[i + 1] if i + 1 < len(sentences) else next_text
            prev = sentences[i - 1] if i > 0 else prev_text
            for m, entry in self._matches(sent):
                hits.append(JargonHit(m.group(1), entry, i, self._explained(m, entry, sent, nxt, prev)))
        return hits

    def has_unexplained(self, text: str, next_text: str = "", prev_text: str = "") -> bool:
        return any(not h.explained for h in self.find(text, next_text, prev_text))
