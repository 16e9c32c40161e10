"""Metrics for real-voice visits: pure functions over reference intervals and pipeline output.

Definitions (docs/realvoice.md has the reasoning):

* A hypothesis word belongs to the reference speaker active at its midpoint.
  Midpoints inside an overlap (two speakers active, back-channels included)
  are scored separately; midpoints in a gap go to the nearest speaker within
  ``tolerance_s`` (Whisper's word times are ±0.1-0.2 s), else they are
  "unmatched" (babble, hallucination).
* Attribution accuracy uses the best one-to-one mapping of hypothesis labels
  to reference speakers (``mapped``) and, where labels carry meaning (with
  enrolment), the labels as they are (``labelled``).
* Identity swaps: the best mapping in each 30 s window, carried forward
  through windows without decisive evidence; a swap is a change of it.
* Turn-boundary error: for every reference speaker change (the interval from
  the end of one turn to the start of the next, or the overlap), the distance
  to the nearest hypothesised change (the interval between two consecutive
  words with different labels); 0 when the intervals meet.
* Coverage: share of offline words that a word alignment (Levenshtein) of
  the streaming finals against the offline transcript matches exactly;
  disagreement WER = edit distance / offline words.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

# ------------------------------------------------------------------ data


@dataclass(frozen=True)
class Interval:
    speaker: str
    start: float  # seconds
    stop: float
    kind: str = "turn"  # "turn" | "backchannel"


@dataclass(frozen=True)
class HypWord:
    text: str
    t0: float
    t1: float
    speaker: str = "unknown"
    segment: int = -1

    @property
    def mid(self) -> float:
        return 0.5 * (self.t0 + self.t1)


@dataclass(frozen=True)
class ScoredWord:
    word: HypWord
    ref: str | None  # reference speaker, None when unmatched
    overlap: tuple[str, ...] = ()  # all speakers active when the midpoint lies in an overlap


@dataclass(frozen=True)
class Event:
    """One JSON line of the pipeline, with the wall time it was read."""

    kind: str  # "partial" | "final" | "discarded"
    t0: float
    t1: float
    wall: float
    text: str = ""
    segment: int = -1
    words: tuple[HypWord, ...] = ()


def percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


# ------------------------------------------------------------------ attribution


def active_speakers(t: float, intervals: Sequence[Interval]) -> list[str]:
    return sorted({i.speaker for i in intervals if i.start <= t < i.stop})


def nearest_speaker(t: float, intervals: Sequence[Interval], tolerance_s: float) -> str | None:
    best: tuple[float, str] | None = None
    for i in intervals:
        d = i.start - t if t < i.start else t - i.stop if t >= i.stop else 0.0
        if d <= tolerance_s and (best is None or d < best[0]):
            best = (d, i.speaker)
    return best[1] if best else None


def score_words(words: Iterable[HypWord], intervals: Sequence[Interval], tolerance_s: float = 0.3) -> list[ScoredWord]:
    out = []
    for w in words:
        active = active_speakers(w.mid, intervals)
        if len(active) >= 2:
            out.append(ScoredWord(w, None, tuple(active)))
        elif active:
            out.append(ScoredWord(w, active[0]))
        else:
            out.append(ScoredWord(w, nearest_speaker(w.mid, intervals, tolerance_s)))
    return out


def best_mapping(pairs: Sequence[tuple[str, str]], prefer: dict[str, str] | None = None) -> dict[str, str]:
    """One-to-one hypothesis label -> reference speaker with the most agreeing pairs.

    Labels left over (more labels than speakers) map to nothing. Ties go to
    ``prefer`` (e.g. the global mapping), then to the lexicographic order.
    """
    counts = Counter(pairs)
    hyps = sorted({h for h, _ in pairs} | set(prefer or {}))
    refs = sorted({r for _, r in pairs} | set((prefer or {}).values()))
    best: tuple[int, int, dict[str, str]] | None = None
    slots = refs + [None] * len(hyps)  # None = unmapped
    for perm in itertools.permutations(slots, len(hyps)):
        mapping = {h: r for h, r in zip(hyps, perm) if r is not None}
        score = sum(counts[(h, r)] for h, r in mapping.items())
        agree = sum(1 for h, r in mapping.items() if prefer and prefer.get(h) == r)
        key = (score, agree)
        if best is None or key > best[:2]:
            best = (score, agree, mapping)
    return best[2] if best else {}


@dataclass
class Attribution:
    words: int  # scored outside overlaps
    mapped: float | None  # accuracy under the best one-to-one mapping
    labelled: float | None  # accuracy taking labels literally (clinician = clinician)
    mapping: dict[str, str]
    overlap_words: int
    overlap_mapped: float | None  # an overlap word is right if it maps to either active speaker
    unmatched_words: int
    per_speaker_mapped: dict[str, float | None] = field(default_factory=dict)


def attribution(scored: Sequence[ScoredWord]) -> Attribution:
    clean = [s for s in scored if s.ref is not None]
    pairs = [(s.word.speaker, s.ref) for s in clean]
    mapping = best_mapping(pairs)
    right = sum(1 for h, r in pairs if mapping.get(h) == r)
    literal = sum(1 for h, r in pairs if h == r)
    overlap = [s for s in scored if s.overlap]
    overlap_right = sum(1 for s in overlap if mapping.get(s.word.speaker) in s.overlap)
    per_speaker: dict[str, float | None] = {}
    for ref in sorted({r for _, r in pairs}):
        mine = [(h, r) for h, r in pairs if r == ref]
        per_speaker[ref] = round(sum(1 for h, r in mine if mapping.get(h) == r) / len(mine), 4) if mine else None
    return Attribution(
        words=len(pairs),
        mapped=round(right / len(pairs), 4) if pairs else None,
        labelled=round(literal / len(pairs), 4) if pairs else None,
        mapping=mapping,
        overlap_words=len(overlap),
        overlap_mapped=round(overlap_right / len(overlap), 4) if overlap else None,
        unmatched_words=sum(1 for s in scored if s.ref is None and not s.overlap),
        per_speaker_mapped=per_speaker,
    )


@dataclass
class Swaps:
    swaps: int
    windows: list[dict[str, str]]  # the mapping in force in each window (carried forward)
    decisive: list[bool]
    disagreeing_windows: int  # windows whose mapping differs from the global one


def identity_swaps(
    scored: Sequence[ScoredWord], window_s: float = 30.0, min_words: int = 8, min_margin: float = 0.2
) -> Swaps:
    """Count changes of the locally best label mapping over time.

    A window is decisive when it has ``min_words`` scored words and its best
    mapping beats the mapping in force by at least ``min_margin`` of its
    words; otherwise the mapping in force is carried forward. This way a
    window with only a few mislabelled words is not a swap, and a whole
    stretch with exchanged labels counts once, when it begins (and once more
    if it ends).
    """
    clean = [s for s in scored if s.ref is not None]
    if not clean:
        return Swaps(0, [], [], 0)
    global_map = best_mapping([(s.word.speaker, s.ref) for s in clean])
    end = max(s.word.mid for s in clean)
    current = dict(global_map)
    started = False
    windows: list[dict[str, str]] = []
    decisive: list[bool] = []
    swaps = 0
    for k in range(int(end // window_s) + 1):
        lo, hi = k * window_s, (k + 1) * window_s
        pairs = [(s.word.speaker, s.ref) for s in clean if lo <= s.word.mid < hi]
        local = best_mapping(pairs, prefer=current) if pairs else current
        gain = _agree(pairs, local) - _agree(pairs, current)
        is_decisive = len(pairs) >= min_words and (local == current or gain >= min_margin * len(pairs))
        if is_decisive:
            if not started:
                started = True  # the first decisive window sets where we start from
            elif local != current:
                swaps += 1
            current = local
        windows.append(dict(current))
        decisive.append(is_decisive)
    disagreeing = sum(1 for w, d in zip(windows, decisive) if d and w != global_map)
    return Swaps(swaps, windows, decisive, disagreeing)


def _agree(pairs: Sequence[tuple[str, str]], mapping: dict[str, str]) -> int:
    return sum(1 for h, r in pairs if mapping.get(h) == r)


# ------------------------------------------------------------------ turn boundaries


@dataclass(frozen=True)
class Change:
    start: float  # seconds: a change happens somewhere in [start, stop]
    stop: float


def reference_changes(turns: Sequence[Interval]) -> list[Change]:
    """Speaker changes between consecutive turns: the gap, or the overlap, between them."""
    ordered = sorted((t for t in turns if t.kind == "turn"), key=lambda t: t.start)
    out = []
    for prev, nxt in itertools.pairwise(ordered):
        if prev.speaker != nxt.speaker:
            out.append(Change(min(prev.stop, nxt.start), max(prev.stop, nxt.start)))
    return out


def hypothesis_changes(words: Sequence[HypWord]) -> list[Change]:
    ordered = sorted(words, key=lambda w: (w.t0, w.t1))
    return [Change(min(a.t1, b.t0), max(a.t1, b.t0)) for a, b in itertools.pairwise(ordered) if a.speaker != b.speaker]


def interval_distance(a: Change, b: Change) -> float:
    return max(0.0, b.start - a.stop, a.start - b.stop)


@dataclass
class Boundaries:
    errors: list[float]  # one per reference change (None-free; missing = distance to nothing = cap)
    p50: float | None
    p90: float | None
    spurious: int  # hypothesised changes farther than 1 s from every reference change
    hyp_changes: int


def turn_boundaries(ref: Sequence[Change], hyp: Sequence[Change], cap_s: float = 10.0, spurious_s: float = 1.0) -> Boundaries:
    errors = [min([interval_distance(r, h) for h in hyp] + [cap_s]) for r in ref]
    spurious = sum(1 for h in hyp if all(interval_distance(r, h) > spurious_s for r in ref))
    return Boundaries([round(e, 3) for e in errors], percentile(errors, 50), percentile(errors, 90), spurious, len(hyp))


def turn_edge_errors(scored: Sequence[ScoredWord], turns: Sequence[Interval], mapping: dict[str, str], edge_s: float = 1.0) -> dict[str, float | int | None]:
    """Words in the last/first ``edge_s`` of a turn given to the other speaker (after mapping).

    Separates "the last words of a turn go to the next speaker" from errors
    in the middle of turns.
    """
    ordered = sorted((t for t in turns if t.kind == "turn"), key=lambda t: t.start)
    end_total = end_wrong = start_total = start_wrong = 0
    for prev, nxt in itertools.pairwise(ordered):
        if prev.speaker == nxt.speaker:
            continue
        for s in scored:
            if s.ref is None:
                continue
            label = mapping.get(s.word.speaker)
            if s.ref == prev.speaker and prev.stop - edge_s <= s.word.mid <= prev.stop + 0.3:
                end_total += 1
                end_wrong += label == nxt.speaker
            elif s.ref == nxt.speaker and nxt.start - 0.3 <= s.word.mid <= nxt.start + edge_s:
                start_total += 1
                start_wrong += label == prev.speaker
    return {
        "turn_end_words": end_total,
        "turn_end_to_next_speaker": round(end_wrong / end_total, 4) if end_total else None,
        "turn_start_words": start_total,
        "turn_start_to_previous_speaker": round(start_wrong / start_total, 4) if start_total else None,
    }


# ------------------------------------------------------------------ transcripts

_PUNCT = re.compile(r"[^\w\s']")
_FILLERS = {"um", "uh", "er", "ah", "hmm", "mm", "mmm", "mhm", "erm", "uhm"}


def normalise(text: str) -> list[str]:
    """Lower case, no punctuation, hyphens split, fillers dropped (as Whisper's normaliser does)."""
    words = _PUNCT.sub(" ", text.lower().replace("-", " ")).split()
    return [w.strip("'") for w in words if w.strip("'") and w not in _FILLERS]


@dataclass
class Alignment:
    matched: int
    substitutions: int
    deletions: int  # offline words missing from streaming
    insertions: int  # streaming words not in offline
    ref_len: int
    lost: list[int]  # indices of offline words not matched (deleted or substituted)
    deleted: list[int] = field(default_factory=list)  # indices of offline words with no counterpart at all

    @property
    def coverage(self) -> float | None:
        return round(self.matched / self.ref_len, 4) if self.ref_len else None

    @property
    def deletion_rate(self) -> float | None:
        """Offline words with nothing in their place: lost, not merely recognised differently."""
        return round(self.deletions / self.ref_len, 4) if self.ref_len else None

    @property
    def wer(self) -> float | None:
        edits = self.substitutions + self.deletions + self.insertions
        return round(edits / self.ref_len, 4) if self.ref_len else None


def align(ref: Sequence[str], hyp: Sequence[str]) -> Alignment:
    """Levenshtein alignment of hyp against ref, with a backtrace (numpy rows, O(n*m))."""
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1), np.int32)
    cost[0, :] = np.arange(m + 1)
    cost[:, 0] = np.arange(n + 1)
    hyp_arr = np.array(hyp, dtype=object)
    for i in range(1, n + 1):
        sub = cost[i - 1, :-1] + (hyp_arr != ref[i - 1]).astype(np.int32) if m else np.zeros(0, np.int32)
        row = cost[i]
        row[1:] = np.minimum(sub, cost[i - 1, 1:] + 1)
        # insertions run left to right: a cumulative minimum of (row[j] - j) + j
        j = np.arange(m + 1)
        row[:] = np.minimum.accumulate(row - j) + j
        row[0] = i
    i, j = n, m
    matched = subs = dels = ins = 0
    lost: list[int] = []
    deleted: list[int] = []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] == hyp[j - 1]:
                matched += 1
            else:
                subs += 1
                lost.append(i - 1)
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            dels += 1
            lost.append(i - 1)
            deleted.append(i - 1)
            i -= 1
        else:
            ins += 1
            j -= 1
    return Alignment(matched, subs, dels, ins, n, sorted(lost), sorted(deleted))


def bag_coverage(ref: Sequence[str], hyp: Sequence[str]) -> float | None:
    """Order-free share of offline words present in streaming (multiset intersection)."""
    if not ref:
        return None
    have = Counter(hyp)
    found = sum(min(c, have[w]) for w, c in Counter(ref).items())
    return round(found / len(ref), 4)


# ------------------------------------------------------------------ latency


def estimate_stream_start(events: Sequence[Event]) -> float | None:
    """Wall time at which the paced source started.

    Audio up to ``t1`` exists only from ``start + t1`` on, so every event
    satisfies ``wall - t1 >= start``; the smallest such difference (a fast
    partial decode) bounds it within a few tens of milliseconds. Latencies
    computed from it are therefore slight underestimates.
    """
    diffs = [e.wall - e.t1 for e in events if e.kind in ("partial", "final")]
    return min(diffs) if diffs else None


def final_latencies(events: Sequence[Event], turns: Sequence[Interval], start: float) -> tuple[list[float], int]:
    """End of each reference turn -> wall time of the final holding its last word.

    Returns (latencies, turns whose end no final covers).
    """
    finals = sorted((e for e in events if e.kind == "final"), key=lambda e: e.wall)
    out: list[float] = []
    missing = 0
    for turn in (t for t in turns if t.kind == "turn"):
        holder: tuple[float, float] | None = None  # (word midpoint, wall)
        for e in finals:
            for w in e.words:
                if turn.start <= w.mid <= turn.stop + 0.2 and (holder is None or w.mid > holder[0]):
                    holder = (w.mid, e.wall)
        if holder is None or holder[0] < turn.stop - 1.5:  # the turn's ending produced no words
            missing += 1
            continue
        out.append(round(holder[1] - (start + turn.stop), 4))
    return out, missing


def onset_latencies(events: Sequence[Event], turns: Sequence[Interval], start: float, into_s: float = 0.3) -> list[float]:
    """Onset of each reference turn -> first partial or final showing text from its audio."""
    ordered = sorted((e for e in events if e.kind in ("partial", "final") and e.text), key=lambda e: e.wall)
    out = []
    for turn in (t for t in turns if t.kind == "turn"):
        for e in ordered:
            if e.t1 >= turn.start + min(into_s, turn.stop - turn.start) and e.t0 < turn.stop and e.wall >= start + turn.start:
                out.append(round(e.wall - (start + turn.start), 4))
                break
    return out
