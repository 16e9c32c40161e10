"""Per-segment speaker attribution for one visit: clinician, patient or other.

How a segment is attributed:

1. Its GE2E embedding (mean of 1.6 s partial windows) is added to the visit's
   history: embeddings, durations and the role classifier's text evidence,
   never audio.
2. The history is clustered into two speakers with duration-weighted
   spherical k-means, restarted from pairs of long segments (each with the
   long segment least like it) and kept at the best objective. Re-clustering
   the whole (small) history at every segment is what makes this robust: a
   greedy online centroid drifts after one bad early decision, a
   re-clustering recovers (measured: greedy 53–97 %, restarts 96–100 % on
   PriMock57 espeak conversations with true turns).
3. Which cluster is the clinician:
   * with a voiceprint that the visit's channel matches (some segment reaches
     ``threshold``, as close-talk does): a two-means anchored at the
     voiceprint, weighted like ``anchor_seconds`` of speech. While the visit
     has one voice only, or the two clusters are nearly the same voice, the
     segment's cosine to the voiceprint is compared with ``threshold``;
   * with a voiceprint that no segment reaches (a room microphone scores
     everyone 0.2-0.3 lower than the close-talk enrolment): the voiceprint is
     used relatively, it names the visit's own two clusters (the one whose
     segments are nearer to it on average is the clinician);
   * without one: the cluster whose utterances read more like a doctor
     (summed log-odds of the role classifier, weighted by words).
   Live names are sticky; :meth:`SpeakerAttributor.final_labels` decides once
   more at the end with the whole visit (calibration and figures:
   docs/speakers.md).
4. A third voice (relative, interpreter) is reported as ``other`` when a
   segment long enough to shape the clusters is far from both (cosine below
   ``other_cos``) once both are well established.

Segments that hold two speakers (overlap, quick turn change) are split first:
1.6 s windows are scored against the two reference voices (the voiceprint
alone at the start of an enrolled visit), a two-state Viterbi with a switch
penalty labels them, and each change point is placed at the word boundary
that best separates the scores, a pause counting for it, or without words
at the quietest 20 ms nearby (:meth:`SpeakerAttributor._change_points`).
Where the voiceprint alone is the reference and every window of a segment
is above its absolute window threshold (two voices closer than two people,
such as the demo's espeak pair, or one voice), the segment is also tested
relative to itself: a step in its windows' cosine to the voiceprint
(:meth:`SpeakerAttributor._relative_step`). In a still-open segment a pair of
voices closer than two people (``separation_ref``) is scored against the
voiceprint and the visit's own midpoint (:class:`OpenSegmentWatcher`).

Privacy: the pipeline hands over :class:`SpeakerFeatures` (mel frames and a
10 ms energy envelope, computed when the segment closed and its audio was
zeroed); callers that still hold audio pass a read-only view, turned into
features here and wiped after. :meth:`forget` drops the voiceprint and the whole
history at visit stop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np

from edge_agent.audio.speaker_frontend import ENERGY_HOP, HOP, PARTIAL_FRAMES, SAMPLE_RATE, SpeakerFeatures
from edge_agent.speakers.encoder import SpeakerEncoder, l2_normalise
from edge_agent.speakers.enrol import Voiceprint
from edge_agent.speakers.role import RoleClassifier

CLINICIAN, PATIENT, OTHER = "clinician", "patient", "other"
# (word, start s[, end s]) from the segment start: ends let a change fall in the gap between words
WordTime = tuple[str, float] | tuple[str, float, float]


def _mid(word: Sequence[object]) -> float:
    start = float(word[1])  # type: ignore[arg-type]
    return (start + float(word[2])) / 2 if len(word) > 2 else start  # type: ignore[arg-type]


@dataclass(frozen=True)
class AttributionConfig:
    threshold: float = 0.75  # cosine to the voiceprint; real voices, close-talk: clinician 0.83-0.97, patient 0.46-0.66 (docs/realvoice.md 5.3)
    anchor_seconds: float = 10.0  # weight of the voiceprint in the clustering
    same_voice_cos: float = 0.96  # two centroids closer than this are one voice
    # no voiceprint: the visit's two voices at least this close (centroid cosine) are reported as hard to tell
    # apart. Real voices (docs/speakers.md "One voice or two"): one reader split in two 0.52-0.97 (median 0.87),
    # two readers 0.49-0.90 (median 0.69); above 0.80 are ~75 % of one-reader recordings and ~15 % of two-reader
    # ones (mostly same-sex, far-field), where the labels are least reliable
    uncertain_cos: float = 0.80
    # enrolled, the voiceprint heard: both clusters' mean cosine to it above ``threshold`` and within this of each
    # other are one voice, the clinician's. One real reader: 0.00-0.04 apart on 8 of 10 recordings (0.09 on a
    # ninth); the bundled demo's two synthetic voices, which sit closer to each other than real ones, 0.10 apart
    one_voice_spread: float = 0.05
    other_cos: float = 0.55  # a segment below this to both centroids is a third voice
    other_min_segments: int = 8  # history needed before "other" is considered
    min_embed_s: float = 0.3  # shorter segments get no embedding (too little voice)
    min_cluster_s: float = 1.0  # shorter segments are labelled by the clusters but do not shape them (nor are "other")
    max_restarts: int = 12
    kmeans_iters: int = 12
    # change points
    split_min_s: float = 3.2  # segments shorter than this are not split
    split_cos: float = 0.80  # no reference voice yet: left/right window means less similar -> two speakers
    split_step_s: float = 0.8  # 0.4 gains ~0.2-0.4 points at twice the encoder cost
    coarse_every: int = 2  # first pass: every n-th window; the rest only where a change may be
    refine_margin: float = 0.5  # both coarse neighbours beyond this log-likelihood ratio, same side: no fine windows between
    viterbi_scale: float = 20.0  # window score (cosine difference) -> log-likelihood ratio
    # open segment's watcher, enrolled with the voiceprint heard: the visit's two voices closer than this (1 - cosine of
    # their centroids) are scored voiceprint against patient centroid, centred on the visit's midpoint, with a
    # proportionally larger viterbi_scale (0: off; docs/speakers.md "Close voice pairs in the open segment")
    separation_ref: float = 0.25
    switch_penalty: float = 1.0  # log-likelihood a speaker change must win by
    window_threshold: float = 0.70  # enrolled, no patient voice yet: 1.6 s window cosine to the voiceprint (real voices, docs/realvoice.md 5.3)
    # enrolled, no patient voice yet, and every window above window_threshold: the segment is also tested relative to
    # itself; a step of at least this much in the windows' mean cosine to the voiceprint (before / after one point, the
    # window at it left out) is a change, the voice with the lower mean the patient (0: off)
    relative_step: float = 0.10
    relative_side_s: float = 3.2  # ... with the windows on each side of the step covering this much audio
    # a short part of the other voice at a segment's edge (docs/speakers.md "Edges"): word-bounded edges of this
    # length are scored alone against the two voices; a change when the edge sides with the voice the neighbouring
    # part does not by more than edge_margin (cosine difference); edge_max_s 0: off
    edge_min_s: float = 0.3
    edge_max_s: float = 1.6
    edge_margin: float = 0.10
    edge_lean: float = 0.03  # ... and the neighbouring part sides with its voice by more than this
    min_part_s: float = 0.8  # no part shorter than this ...
    min_word_part_s: float = 0.4  # ... or this, when word times place the change (one short word)
    word_reach_s: float = 0.8  # word boundaries this close to a window change are candidates
    word_distance_cost: float = 1.0  # log-likelihood per second a candidate lies from the window change
    word_gap_bonus: float = 4.0  # log-likelihood per second of pause between the two words (counted up to word_gap_cap_s)
    word_gap_cap_s: float = 0.5
    snap_s: float = 0.4  # change points move to the quietest 20 ms within this reach
    word_snap_s: float = 0.3  # ... then to the nearest word start within this reach
    anchored_init: str = "threshold+clusters"
    enrolled_method: str = "anchored"
    enrolled_bias: float = 0.0
    text_weight: float = 0.0  # enrolled: weight of the role classifier's log-odds against the voice score  # cos(clinician) - cos(patient) above this -> clinician
    role_logit_clip: float = 4.0
    # an open segment is closed where another voice takes over (so its final need not wait for a pause):
    # this many consecutive 1.6 s windows, each beyond refine_margin, must side with the new voice
    open_change_windows: int = 2
    # without enrolment, live names change only when the text evidence against them exceeds this (log-odds)
    rename_margin: float = 4.0
    # enrolled, but no segment of the visit reaches ``threshold`` (a room microphone: a close-talk voiceprint is
    # 0.2-0.3 lower in cosine for everyone): the voiceprint only names the visit's own two clusters, the one whose
    # segments are nearer to it on average; live names change when the other naming leads by this much (cosine)
    vp_rename_margin: float = 0.02
    # enrolled, no segment reaches ``threshold``: the voiceprint's voice counts as heard through a room microphone only
    # when the visit's voice nearer to it averages at least this (the clinician's own cluster in simulated rooms at 1-2 m:
    # 0.57-0.66; another clinician's voiceprint against a patient alone: 0.48-0.68, docs/speakers.md "A voiceprint never heard")
    room_floor: float = 0.55
    # ... unless it leans this much (cosine) nearer to one of the visit's two voices than to the other: then that voice is
    # the clinician heard through the room (seed 101 visit 4 far-field: 0.50 against 0.35, flagged and named backwards
    # without the voiceprint, 0.000 -> 1.000 with this; docs/speakers.md "A voiceprint never heard")
    room_lean: float = 0.10
    # the voiceprint counts as heard (its channel matches) once a part at least this long reaches ``threshold``: the
    # clinician's one opening sentence cut to 0.96 s was too short to shape clusters, but not to be the clinician
    # (patients' turns 0.46-0.66 close-talk, everyone under 0.72 far-field; docs/speakers.md "Enrolment no worse")
    heard_min_s: float = 0.3


@dataclass(frozen=True)
class Attribution:
    start: int  # sample offsets within the segment
    stop: int
    speaker: str  # provisional: the visit's final labels come from final_labels()
    confidence: float
    entry: int = -1  # index of this part's voice in the visit's history (-1: decided by text alone)
    # the part's cosine to the enrolled voiceprint (the voiceprint's verification of this voice); None without
    # a voiceprint or without an embedding (too short: decided by text alone)
    voiceprint_similarity: float | None = None


@dataclass
class _History:
    embeds: list[np.ndarray] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    role_logit: list[float] = field(default_factory=list)  # word-weighted log-odds of "doctor"
    # length of the mean of the entry's 1.6 s window embeddings (0: not from windows); embeds[i] * window_norm[i]
    # is that mean, so the entry's mean window score against any two voices follows without keeping the windows
    window_norm: list[float] = field(default_factory=list)

    def wipe(self) -> None:
        for e in self.embeds:
            e.fill(0.0)
        self.embeds.clear()
        self.seconds.clear()
        self.role_logit.clear()
        self.window_norm.clear()


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))


class SpeakerAttributor:
    """Attribution stage for one visit. Call :meth:`forget` at stop."""

    def __init__(
        self,
        encoder: SpeakerEncoder,
        role_classifier: RoleClassifier | None = None,
        voiceprint: Voiceprint | None = None,
        config: AttributionConfig | None = None,
    ) -> None:
        self.encoder = encoder
        self.roles = role_classifier
        self.config = config or AttributionConfig()
        self._voiceprint: np.ndarray | None = None
        if voiceprint is not None:
            # own copy: the caller's object may live on (it is the phone's), ours is wiped at stop
            self._voiceprint = np.array(voiceprint.embedding, np.float32, copy=True)
        self._history = _History()
        self._centroids: np.ndarray | None = None  # the visit's two voices, once established
        # enrolled: the visit's two voices as the un-enrolled clustering sees them (None while one voice), so the
        # splits it would make are still found where the voiceprint-anchored voices miss them
        self._visit_voices: np.ndarray | None = None
        self._named: np.ndarray | None = None  # (clinician, patient) centroids when the live names were last set
        self._vp_heard = False  # some segment of this visit reached the voiceprint threshold (its channel matches)
        self._unheard = False  # final_decision: enrolled, but the voiceprint named none of the visit's voices

    # -- public API ----------------------------------------------------------------------------------
    @property
    def has_voiceprint(self) -> bool:
        return self._voiceprint is not None

    def open_watcher(self) -> OpenSegmentWatcher:
        """A watcher that finds where another voice takes over inside a still-open segment."""
        return OpenSegmentWatcher(self)

    def features(self, audio: np.ndarray) -> SpeakerFeatures:
        """Everything attribution needs from a stretch of audio, so the audio can be zeroed (caller wipes)."""
        return self.encoder.features(_readonly(audio))

    def __call__(self, source: Source, text: str) -> tuple[str, float]:
        """The pipeline's SpeakerHook: same as :meth:`attribute`."""
        return self.attribute(source, text)

    def attribute(self, source: Source, text: str) -> tuple[str, float]:
        """Speaker and confidence (0–1) of one speech segment (its features, or 16 kHz float32 audio, not kept)."""
        n = _length(source)
        if n < self.config.min_embed_s * SAMPLE_RATE:
            return self._by_text_only(text)
        embed = self.encoder.embed(_checked(source))
        return self._decide(embed, n / SAMPLE_RATE, text)

    def attribute_segment(
        self, source: Source, text: str = "", words: Sequence[WordTime] | None = None
    ) -> list[Attribution]:
        """Like :meth:`attribute`, but splits the segment at speaker changes first.

        ``words`` (word, seconds from the segment start) lets each part get its
        own text; without them the whole text goes to a segment left in one piece.
        Parts are embedded as the mean of the window embeddings that fall in
        them (no second pass over the audio).
        """
        feats, owned = self._features(source)
        try:
            return self._attribute_features(feats, text, words)
        finally:
            if owned:
                feats.wipe()

    def _attribute_features(self, feats: SpeakerFeatures, text: str, words: Sequence[WordTime] | None) -> list[Attribution]:
        cfg = self.config
        n = feats.n_samples
        if n < cfg.split_min_s * SAMPLE_RATE:
            speaker, conf = self.attribute(feats, text)
            entry = self._last_entry(n)
            return [Attribution(0, n, speaker, conf, entry, self._voiceprint_similarity(entry))]
        wins = self.encoder.refined_window_embeddings(feats, cfg.split_step_s, self._fine_gaps, cfg.coarse_every)
        try:
            centres = (wins.starts + np.minimum(wins.stops, n)) // 2
            points, tau = self._change_points(feats, wins.embeds, centres, words)
            head, tail = self._edge_changes(feats, wins.embeds, centres, points, words) if tau is None else (None, None)
            points = sorted({*points, *(e[0] for e in (head, tail) if e is not None)})
            bounds = [0, *points, n]
            parts = []
            for a, b in zip(bounds, bounds[1:]):
                if words is not None:
                    part_text = " ".join(str(w[0]) for w in words if a <= _mid(w) * SAMPLE_RATE < b)
                else:
                    part_text = text if len(bounds) == 2 else ""
                inside = (centres >= a) & (centres < b)
                edge = tail[1] if tail is not None and a == tail[0] else head[1] if head is not None and b == head[0] else None
                if edge is not None:  # a short part at the segment's edge: its own (tiled) window, not its neighbours'
                    norm, embed = 0.0, edge
                else:
                    if not inside.any():
                        inside = np.abs(centres - (a + b) // 2) == np.abs(centres - (a + b) // 2).min()
                    mean = wins.embeds[inside].mean(axis=0)
                    norm = float(np.linalg.norm(mean))
                    embed = l2_normalise(mean)
                # split by the relative step: the part's side of it (while no patient voice is known)
                step = None
                if tau is not None and len(bounds) > 2 and self._voiceprint is not None:
                    step = float((wins.embeds[inside] @ self._voiceprint).mean()) - tau
                speaker, conf = self._decide(embed, (b - a) / SAMPLE_RATE, part_text, step, norm)
                entry = len(self._history.embeds) - 1
                parts.append(Attribution(a, b, speaker, conf, entry, self._voiceprint_similarity(entry)))
            return parts
        finally:
            wins.embeds.fill(0.0)

    def split_points(self, source: Source, words: Sequence[WordTime] | None = None) -> list[int]:
        """Sample offsets where another speaker takes over (empty when one voice)."""
        cfg = self.config
        if _length(source) < cfg.split_min_s * SAMPLE_RATE:
            return []
        feats, owned = self._features(source)
        wins = self.encoder.window_embeddings(feats, step_s=cfg.split_step_s)
        try:
            centres = (wins.starts + np.minimum(wins.stops, feats.n_samples)) // 2
            return self._change_points(feats, wins.embeds, centres, words)[0]
        finally:
            wins.embeds.fill(0.0)
            if owned:
                feats.wipe()

    def _features(self, source: Source) -> tuple[SpeakerFeatures, bool]:
        if isinstance(source, SpeakerFeatures):
            return source, False
        return self.encoder.features(_readonly(source)), True

    def _change_points(
        self, feats: SpeakerFeatures, embeds: np.ndarray, centres: np.ndarray, words: Sequence[WordTime] | None
    ) -> tuple[list[int], float | None]:
        """Change points from 1.6 s window embeddings every ``split_step_s``, and the relative step's midpoint.

        With two known voices (the voiceprint and the visit's patient voice, or
        the two clusters without enrolment) each window gets a score
        ``cos(clinician side) - cos(other side)`` and a two-state Viterbi with a
        switch penalty labels the windows; with the voiceprint but no second
        voice yet, the score is the window's cosine to the voiceprint against a
        window threshold. Without any reference, the single point where the
        windows before and after disagree most is taken if they disagree enough.
        Points are moved to the quietest 20 ms within ``snap_s`` (the pause
        between two turns), then to the nearest word start if words are given.
        The midpoint is not None when the relative step (:meth:`_relative_step`)
        placed the points: it then names the parts.
        """
        cfg = self.config
        n = feats.n_samples
        if len(embeds) < 3:
            return [], None
        llr, tau = self._window_scores(embeds, centres)
        if llr is None:
            return self._single_change_point(feats, embeds, centres), None
        points = self._viterbi_points(feats, llr, centres, words)
        visit_llr = self._visit_llr(embeds) if tau is None else None
        if visit_llr is not None:
            points = sorted({*points, *self._viterbi_points(feats, visit_llr, centres, words)})
        min_part = int((cfg.min_word_part_s if words else cfg.min_part_s) * SAMPLE_RATE)
        kept: list[int] = []
        for p in points:
            if p - (kept[-1] if kept else 0) >= min_part and n - p >= min_part:
                kept.append(p)
        return kept, tau

    def _viterbi_points(
        self, feats: SpeakerFeatures, llr: np.ndarray, centres: np.ndarray, words: Sequence[WordTime] | None
    ) -> list[int]:
        """Change points where the two-state Viterbi over the window scores ``llr`` changes state, placed (:meth:`_place`)."""
        labels = _viterbi(llr, self.config.switch_penalty)
        return [self._place(feats, int(i), labels, llr, centres, words) for i in np.flatnonzero(labels[1:] != labels[:-1])]

    def _visit_llr(self, embeds: np.ndarray) -> np.ndarray | None:
        """Enrolled: window scores against the visit's own two voices, as the un-enrolled path scores them (None without).

        The voiceprint-anchored clinician voice is the enrolment recording's more than the
        visit's: early in a visit (the clinician has said one sentence) it is the voiceprint
        itself, which every in-visit window matches less well than the in-visit patient
        centroid, so short clinician turns inside a patient's segment did not outweigh the
        switch penalty and stayed unsplit (docs/realvoice.md 13, seed 101 visit 06: four
        1-2 s turns in one segment, split without enrolment, not with it). The visit's own
        two voices are compared on equal terms; their change points are added to the
        enrolled ones and every part is still named by the enrolled decision.
        """
        v = self._visit_voices
        if v is None or self._voiceprint is None:
            return None
        return (embeds @ v[0] - embeds @ v[1]) * self.config.viterbi_scale

    def _edge_changes(
        self, feats: SpeakerFeatures, embeds: np.ndarray, centres: np.ndarray, points: list[int],
        words: Sequence[WordTime] | None,
    ) -> tuple[_Edge | None, _Edge | None]:
        """A short part of the other voice at the segment's start and at its end: (change point, the part's embedding).

        The 1.6 s windows step 0.8 s and stop short of the end, so the last (or first)
        0.3-1.5 s of a segment rarely dominates a window: a back-channel or the next
        turn's first words before the VAD closes went to the majority voice. Only with
        two reference voices and word ends (the words, not the VAD's hang-over, make
        the edge); see :meth:`_edge_change`.
        """
        cfg = self.config
        models = self._models()
        if cfg.edge_max_s <= 0 or models is None or not words or len(words) < 2 or any(len(w) < 3 for w in words):
            return None, None
        n = feats.n_samples
        bounds = _word_boundaries(words)
        first = int(float(words[0][1]) * SAMPLE_RATE)  # type: ignore[arg-type]
        last = int(float(words[-1][2]) * SAMPLE_RATE)  # type: ignore[arg-type]
        head = self._edge_change(feats, embeds, centres, models, bounds, (first, points[0] if points else n), False)
        tail = self._edge_change(feats, embeds, centres, models, bounds, (points[-1] if points else 0, last), True)
        return head, tail

    def _edge_change(
        self, feats: SpeakerFeatures, embeds: np.ndarray, centres: np.ndarray, models: tuple[np.ndarray, np.ndarray],
        bounds: np.ndarray, part: tuple[int, int], at_end: bool,
    ) -> _Edge | None:
        """The edge test on one end of ``part`` (samples from its first word's start, or to its last word's end).

        Each word boundary leaving ``edge_min_s``-``edge_max_s`` of words at that end is a
        candidate: the edge's mel frames repeated to one window are embedded and scored
        ``cos(other voice) - cos(neighbour's voice)``, the neighbour being the rest of the
        part (its windows clear of every candidate). A change needs the neighbour to side
        with its voice by more than ``edge_lean`` (one voice that the clustering split in
        two sides with neither: no change there, docs/speakers.md "Edges") and the edge to
        side with the other voice by more than ``edge_margin``; among such candidates the
        most evidence wins (score times length: a longer edge of the other voice is more of it).
        """
        cfg = self.config
        lo_part, hi_part = part
        near, far = (hi_part, lo_part) if at_end else (lo_part, hi_part)  # the edge's end of the part, and the other
        cands = [int(c) for c in bounds
                 if cfg.edge_min_s * SAMPLE_RATE <= abs(near - c) <= cfg.edge_max_s * SAMPLE_RATE
                 and abs(c - far) >= cfg.min_part_s * SAMPLE_RATE and lo_part < c < hi_part]
        if not cands:
            return None
        half = PARTIAL_FRAMES * HOP // 2
        lo, hi = (lo_part, min(cands)) if at_end else (max(cands), hi_part)
        inside = (centres - half >= lo) & (centres + half <= hi)
        if not inside.any():
            inside = (centres >= lo) & (centres < hi)
        if not inside.any():
            return None
        a, b = models
        neighbour = l2_normalise(embeds[inside].mean(axis=0))
        lean = float(neighbour @ a - neighbour @ b)  # > 0: the neighbour is voice a, so the edge must side with b
        if abs(lean) <= cfg.edge_lean:
            return None
        spans = [(c, near) if at_end else (near, c) for c in cands]
        edge_embeds = self._tiled_embeddings(feats, spans)
        try:
            z = (edge_embeds @ b - edge_embeds @ a) * np.sign(lean)
            if not (z > cfg.edge_margin).any():
                return None
            k = int(np.argmax(np.where(z > cfg.edge_margin, z * np.asarray([e - s for s, e in spans], np.float64), -np.inf)))
            return cands[k], edge_embeds[k].copy()
        finally:
            edge_embeds.fill(0.0)

    def _tiled_embeddings(self, feats: SpeakerFeatures, spans: list[tuple[int, int]]) -> np.ndarray:
        """One unit embedding per (start, stop) sample span shorter than a window: its mel frames repeated to fill one."""
        mels = np.stack([np.resize(feats.mel[s // HOP : max(s // HOP + 1, e // HOP)], (PARTIAL_FRAMES, feats.mel.shape[1])) for s, e in spans])
        try:
            raw = self.encoder._run(mels)
        finally:
            mels.fill(0.0)
        out = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-9)
        raw.fill(0.0)
        return out.astype(np.float32, copy=False)

    def _place(
        self, feats: SpeakerFeatures, i: int, labels: np.ndarray, llr: np.ndarray, centres: np.ndarray,
        words: Sequence[Sequence[object]] | None,
    ) -> int:
        """Where the change between windows ``i`` and ``i + 1`` really is.

        With words: the word boundary near it that best separates the window scores
        (windows before it siding with the left voice, after it with the right one),
        so a turn's last word stays with its speaker. A reader's pause inside a
        sentence is as quiet as the gap between two turns, so silence alone cannot
        tell them apart (docs/realvoice.md 5.4). Without words: the quietest 20 ms near it.
        """
        cfg = self.config
        point = int((centres[i] + centres[i + 1]) // 2)
        bounds = _word_boundaries(words)
        reach = cfg.word_reach_s * SAMPLE_RATE
        near = bounds[np.abs(bounds - point) <= reach] if len(bounds) else bounds
        if not len(near):
            return self._snap(feats, point, words)
        side = 1.0 if labels[i] == 0 else -1.0  # +: the left side is the voice positive llr favours
        span = PARTIAL_FRAMES * HOP  # windows within one window length of a candidate vote on it
        gaps = _word_gaps(words)
        best, best_score = point, -np.inf
        for b, gap in zip(bounds, gaps):
            if abs(b - point) > reach:
                continue
            close = np.abs(centres - b) <= span
            vote = np.where(centres[close] < b, 1.0, -1.0) * llr[close] * side
            score = float(vote.sum()) - cfg.word_distance_cost * abs(b - point) / SAMPLE_RATE
            score += cfg.word_gap_bonus * min(float(gap), cfg.word_gap_cap_s)
            if score > best_score:
                best, best_score = int(b), score
        return max(0, min(feats.n_samples, best))

    def _window_llr(self, embeds: np.ndarray, centres: np.ndarray | None = None) -> np.ndarray | None:
        """Per-window evidence for the clinician side (None without any reference voice)."""
        return self._window_scores(embeds, centres)[0]

    def _window_scores(self, embeds: np.ndarray, centres: np.ndarray | None = None) -> tuple[np.ndarray | None, float | None]:
        """Per-window evidence for the clinician side (None without any reference voice), and the relative midpoint.

        With ``centres`` (the windows' sample positions in a closed segment), a segment
        whose every window reads "clinician" on the voiceprint's absolute scale is also
        tested against itself (:meth:`_relative_step`); when it holds a step, the windows
        are scored against the step's midpoint, returned for naming the parts.
        Without ``centres`` (the open segment's watcher) a pair of voices closer than
        ``separation_ref`` is scored against the voiceprint and the visit's midpoint
        (:meth:`_separation_gain`, :meth:`_window_midpoint`); on closed segments that
        cost the espeak PriMock57 set 1-3 points (docs/speakers.md).
        """
        cfg = self.config
        models = self._models()
        if models is not None:
            a, b = models
            gain = self._separation_gain(a, b) if centres is None else 1.0  # the open segment's watcher only
            if gain > 1.0 and self._voiceprint is not None:
                a = self._voiceprint
            mid = self._window_midpoint(a, b) if gain > 1.0 else 0.0
            return (embeds @ a - embeds @ b - mid) * cfg.viterbi_scale * gain, None
        if self._voiceprint is not None:
            cos = embeds @ self._voiceprint
            llr = (cos - cfg.window_threshold) * cfg.viterbi_scale
            if centres is not None and bool((llr > 0).all()):
                tau = self._relative_step(cos, centres)
                if tau is not None:
                    return (cos - tau) * cfg.viterbi_scale, tau
            above = llr > 0
            if centres is not None and above.any() and not above.all() and float(cos[above].mean()) >= cfg.threshold:
                # the voiceprint heard in this segment, and another voice after or before it: the change is placed
                # between the two sides' own levels, not at the window threshold, which a window of one second of
                # the clinician and half a second of the patient misses (seed 101 visit 06: the opening question
                # cut 1 s early, its part too short to count as the clinician's voice; docs/realvoice.md 13)
                mid = (float(np.median(cos[above])) + float(np.median(cos[~above]))) / 2  # medians: a mixed window is in neither level
                return (cos - mid) * cfg.viterbi_scale, None
            # an absolute reference only where the voiceprint is heard at all: through a room microphone no
            # window reaches the threshold, every window would read "patient" and the clinician's opening
            # question would never be cut from the patient's answer; the caller then looks for a change unaided
            return (llr if self._vp_heard or bool((llr > 0).any()) else None), None
        return None, None

    def _separation_gain(self, a: np.ndarray, b: np.ndarray) -> float:
        """How much the two-centroid window score is scaled up for a pair of voices closer than ``separation_ref``.

        A window of one voice scores about ``1 - cos(a, b)`` towards it, so on a close pair
        (the demo's espeak voices: 0.09-0.15) a turn of two windows never outweighs the switch
        penalty that a pair of real voices (0.25-0.43 apart, close-talk) clears easily. Never
        below 1; 1 without a voiceprint heard in this visit's channel (the voiceprint is the
        clean reference the close-pair score needs, docs/speakers.md "Close voice pairs in the open segment").
        """
        ref = self.config.separation_ref
        sep = 1.0 - float(a @ b)
        if ref <= 0 or sep >= ref or self._voiceprint is None or not self._vp_heard:
            return 1.0
        return ref / max(sep, ref / 4)

    def _window_midpoint(self, a: np.ndarray, b: np.ndarray) -> float:
        """Halfway between the two voices' mean window scores ``cos(a) - cos(b)`` so far in the visit (0 if either has none).

        On a close pair zero is not halfway between the two voices' windows (the demo's
        espeak pair: its patient's windows score -0.03 to +0.01 against the voiceprint
        and the patient centroid, its clinician's +0.06 to +0.17). Each history entry split
        from windows knows its windows' mean length (``window_norm``), so its mean window
        score follows without any window kept. An entry is scored against its own voice's
        centroid without itself (a new window is not in the centroid either); the voices'
        sides are the current clusters'.
        """
        h = self._history
        if not h.embeds:
            return 0.0
        cfg = self.config
        x = np.stack(h.embeds).astype(np.float64)
        norm = np.asarray(h.window_norm, np.float64)
        w = np.asarray(h.seconds, np.float64)
        wl = np.where(w >= cfg.min_cluster_s, w, 0.0)
        use = (norm > 0) & (wl > 0)
        sides = self._centroids if self._centroids is not None else np.stack([a, b])
        side = (x @ sides[0]) >= (x @ sides[1])
        means = []
        for k, on_side in ((0, side), (1, ~side)):
            m = use & on_side
            if not m.any():
                return 0.0
            ref, other = (a, b) if k == 0 else (b, a)
            xs = x[m]
            if self._voiceprint is not None and ref is self._voiceprint:
                cos_own = xs @ ref
            else:  # this voice's centroid without the entry itself
                rest = (wl[:, None] * x)[on_side].sum(axis=0) - wl[m, None] * xs
                rest /= np.maximum(np.linalg.norm(rest, axis=1, keepdims=True), 1e-9)
                cos_own = np.einsum("ij,ij->i", xs, rest)
            d = cos_own - xs @ other
            means.append(float(np.average((d if k == 0 else -d) * norm[m], weights=w[m])))
        return (means[0] + means[1]) / 2

    def _relative_step(self, cos: np.ndarray, centres: np.ndarray) -> float | None:
        """The midpoint of a step in the windows' cosine to the voiceprint, or None.

        Voices that the voiceprint's absolute scale cannot separate (two synthetic
        voices score 0.73-0.94 against one of them, where real patients score
        0.46-0.66) still differ relative to each other: the windows before a turn
        change sit higher or lower than those after it. The best single split
        (the window at it left out) is a change when the two means differ by
        ``relative_step`` and the windows on each side cover ``relative_side_s``
        of audio: one real reader's first two windows (a sentence onset) can sit
        0.10 below the rest (docs/speakers.md, "Relative change test").
        """
        cfg = self.config
        if cfg.relative_step <= 0 or len(cos) < 3:
            return None
        win = PARTIAL_FRAMES * HOP
        side = cfg.relative_side_s * SAMPLE_RATE
        best, tau = 0.0, 0.0
        for k in range(1, len(cos) - 1):
            if centres[k - 1] - centres[0] + win < side or centres[-1] - centres[k + 1] + win < side:
                continue
            left, right = float(cos[:k].mean()), float(cos[k + 1 :].mean())
            if abs(left - right) > best:
                best, tau = abs(left - right), (left + right) / 2
        return tau if best >= cfg.relative_step else None

    def _fine_gaps(self, coarse: np.ndarray) -> np.ndarray:
        """Between which coarse windows the speaker may change (there all windows are embedded).

        A gap is skipped only when the windows on both sides side clearly with
        the same voice: a turn long enough to be split (``min_part_s``)
        overlaps a coarse window and pulls its score towards zero.
        """
        gaps = max(0, len(coarse) - 1)
        step = int(self.config.split_step_s * self.config.coarse_every * SAMPLE_RATE)  # the coarse pass's grid
        llr, tau = self._window_scores(coarse, np.arange(len(coarse)) * step)
        if llr is None or len(coarse) < 2 or tau is not None:
            return np.ones(gaps, bool)
        need = self._unclear_gaps(llr)
        visit_llr = self._visit_llr(coarse)
        return need if visit_llr is None else need | self._unclear_gaps(visit_llr)

    def _unclear_gaps(self, llr: np.ndarray) -> np.ndarray:
        """Gaps between windows not both clearly on the same side of ``llr``."""
        clear = np.abs(llr) > self.config.refine_margin
        same_side = np.sign(llr[:-1]) == np.sign(llr[1:])
        return ~(clear[:-1] & clear[1:] & same_side)

    def _single_change_point(self, feats: SpeakerFeatures, embeds: np.ndarray, centres: np.ndarray) -> list[int]:
        cfg = self.config
        cum = np.cumsum(embeds, axis=0)
        best_cos, best_at = 1.0, -1
        half = PARTIAL_FRAMES * HOP // 2
        for i in range(1, len(embeds)):
            point = int(centres[i - 1] + centres[i]) // 2
            left_n = int(np.searchsorted(centres + half, point, side="right"))
            right_i = int(np.searchsorted(centres - half, point, side="left"))
            if left_n < 1 or right_i >= len(embeds):
                continue
            left = cum[left_n - 1]
            right = cum[-1] - (cum[right_i - 1] if right_i > 0 else 0)
            cos = float(left @ right / (np.linalg.norm(left) * np.linalg.norm(right) + 1e-9))
            if cos < best_cos:
                best_cos, best_at = cos, point
        if best_at <= 0 or best_cos >= cfg.split_cos:
            return []
        return [self._snap(feats, best_at, None)]

    def _snap(self, feats: SpeakerFeatures, point: int, words: Sequence[WordTime] | None) -> int:
        """Move a change point to the quietest 20 ms nearby, then to the closest word start."""
        cfg = self.config
        reach = int(cfg.snap_s * SAMPLE_RATE)
        lo = max(0, point - reach) // ENERGY_HOP
        hi = min(len(feats.energy), (point + reach) // ENERGY_HOP)
        if hi - lo >= 6:
            pairs = feats.energy[lo : hi - 1] + feats.energy[lo + 1 : hi]  # 20 ms windows on a 10 ms grid
            quiet = int(np.argmin(pairs))
            point = (lo + quiet + 1) * ENERGY_HOP
        if words:
            starts = np.array([float(w[1]) for w in words], np.float64) * SAMPLE_RATE
            near = np.abs(starts - point) <= cfg.word_snap_s * SAMPLE_RATE
            if near.any():
                cand = starts[near]
                point = int(cand[np.argmin(np.abs(cand - point))]) - int(0.02 * SAMPLE_RATE)
        return max(0, min(feats.n_samples, point))

    def _voiceprint_similarity(self, entry: int) -> float | None:
        """History entry ``entry``'s cosine to the voiceprint (None without a voiceprint or an entry)."""
        if self._voiceprint is None or not 0 <= entry < len(self._history.embeds):
            return None
        return round(float(self._history.embeds[entry] @ self._voiceprint), 4)

    def _last_entry(self, n_samples: int) -> int:
        """The history entry a whole-segment decision just made (-1 if it was too short to embed)."""
        return len(self._history.embeds) - 1 if n_samples >= self.config.min_embed_s * SAMPLE_RATE else -1

    def final_labels(self) -> list[tuple[str, float]]:
        """The visit's labels for every history entry (see :meth:`final_decision`)."""
        return self.final_decision()[0]

    def final_decision(self) -> tuple[list[tuple[str, float]], bool]:
        """The visit's labels for every history entry, decided once with all its evidence, and whether they
        rest on two voices the encoder cannot reliably tell apart.

        Live labels are provisional: each is decided when its segment closes, from
        what was heard so far. Here the whole visit is clustered once more and the
        two voices are named with everything known: nearer the voiceprint is the
        clinician; without one, the voice whose words read more like a clinician's
        over the whole visit. One name per voice for the whole visit, so no
        identity can swap mid-visit in the report.

        Uncertain: without a voiceprint nothing says how many people spoke. The
        clustering always finds its best two groups, and for one person (a clinician
        alone, a dictation, a demo file) those are two halves of one voice about as
        far apart as two similar real voices (docs/speakers.md "One voice or two").
        Rather than guess, the report says so (the visit's audio quality), and an
        enrolled voiceprint settles it.
        """
        h = self._history
        self._unheard = False
        if not h.embeds:
            return [], False
        cfg = self.config
        x = np.stack(h.embeds)
        w = np.asarray(h.seconds, np.float64)
        labels, centroids = self._cluster(x, w, None)
        self._unheard = self._voiceprint_unheard(x, w, labels, centroids)
        uncertain = bool(  # a Python bool: numpy's (from labels.min() != labels.max()) breaks the JSON summary
            self._voiceprint is None and labels.min() != labels.max() and float(centroids[0] @ centroids[1]) >= cfg.uncertain_cos
        )
        return self._named_labels(x, w, labels, centroids), uncertain

    @property
    def voiceprint_unheard(self) -> bool:
        """After :meth:`final_decision`: a voiceprint was enrolled but the visit never showed its voice, so the
        report's speaker split did not use it (the run's and the report's quality say so)."""
        return self._unheard

    def _voiceprint_unheard(self, x: np.ndarray, w: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> bool:
        """Enrolled, but no segment reaches ``threshold`` and the voiceprint does not tell the visit's voices apart.

        Not reaching the threshold alone is the room microphone's normal case (a close-talk
        voiceprint is 0.2-0.3 lower in cosine for everyone there), and then the voiceprint still
        names the visit's two voices relatively: the clinician's segments sit 0.03-0.22 nearer to
        it than the patient's. Another clinician's voiceprint (the person enrolled is not in the
        room) is no nearer to one voice than to the other: with patient-only audio the clustering's
        two halves of one voice were 0.00-0.05 apart (20 of 20 reader / voiceprint pairs at or below
        0.054), the spread within which two halves are one voice when it *is* heard
        (``one_voice_spread``). Then the voiceprint names nothing, the report falls back to the
        un-enrolled decision and says so (docs/speakers.md "A voiceprint never heard").
        """
        vp = self._voiceprint
        if vp is None or self._voiceprint_heard(x, w, vp):
            return False
        two_voices = labels.min() != labels.max() and float(centroids[0] @ centroids[1]) < self.config.same_voice_cos
        if not two_voices:
            return True
        evidence = self._voiceprint_evidence(x, w, labels, vp)
        spread = float(evidence.max() - evidence.min())
        return bool(spread < self.config.one_voice_spread or (float(evidence.max()) < self.config.room_floor and spread < self.config.room_lean))

    def _named_labels(self, x: np.ndarray, w: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> list[tuple[str, float]]:
        """Clinician / patient / other for every history entry, given the whole-visit clustering."""
        h = self._history
        cfg = self.config
        two_voices = labels.min() != labels.max() and float(centroids[0] @ centroids[1]) < cfg.same_voice_cos
        vp = self._voiceprint
        if not two_voices:
            if vp is not None:
                clin = float(centroids[0] @ vp) >= cfg.threshold
            else:
                clin = sum(h.role_logit) > 0
            return [(CLINICIAN if clin else PATIENT, 0.5) for _ in h.embeds]
        if vp is not None and not self._unheard:
            evidence = self._voiceprint_evidence(x, w, labels, vp)
            if (
                self._voiceprint_heard(x, w, vp)
                and float(evidence.min()) >= cfg.threshold
                and float(evidence.max() - evidence.min()) <= cfg.one_voice_spread
            ):
                # both halves sound like the voiceprint, equally: the clinician alone, split in two by the clustering
                # (one real reader enrolled: 8 of 10 segments called patient; docs/speakers.md "One voice or two")
                return [(CLINICIAN, 0.5) for _ in h.embeds]
            clin_cluster = int(np.argmax(evidence))
        else:
            evidence = [sum(v for v, lab in zip(h.role_logit, labels) if lab == k) for k in (0, 1)]
            clin_cluster = int(np.argmax(evidence))
        out = []
        for i, e in enumerate(x):
            cos = centroids @ e
            if self._is_other(float(cos.max()), float(w[i])):
                out.append((OTHER, round(1.0 - float(cos.max()) / cfg.other_cos, 4)))
                continue
            conf = _sigmoid(abs(float(cos[0] - cos[1])) * 30) * 2 - 1
            out.append((CLINICIAN if labels[i] == clin_cluster else PATIENT, round(float(conf), 4)))
        return out

    def _is_other(self, best_cos: float, seconds: float) -> bool:
        """A third voice: far from both of the visit's voices, once they are well established.

        Only segments long enough to shape the clusters count: in a room a 1 s segment
        embeds so noisily that it sits below ``other_cos`` to both voices (0.37-0.55 on
        real far-field visits) while being one of them.
        """
        cfg = self.config
        return len(self._history.embeds) >= cfg.other_min_segments and seconds >= cfg.min_cluster_s and best_cos < cfg.other_cos

    def _models(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The two reference voices for window scoring, or None while the visit has fewer."""
        if self._centroids is None:
            return None
        return self._centroids[0], self._centroids[1]

    def forget(self) -> None:
        """Visit stop: wipe the voiceprint and every trace of the visit's voices."""
        if self._voiceprint is not None:
            self._voiceprint.fill(0.0)
        self._voiceprint = None
        self._history.wipe()
        if self._centroids is not None:
            self._centroids.fill(0.0)
        self._centroids = None
        if self._named is not None:
            self._named.fill(0.0)
        self._named = None
        if self._visit_voices is not None:
            self._visit_voices.fill(0.0)
        self._visit_voices = None
        self._vp_heard = False
        self._unheard = False

    # -- internals -----------------------------------------------------------------------------------
    def _role_logit(self, text: str) -> float:
        words = len(text.split())
        if self.roles is None or words == 0:
            return 0.0
        p = float(self.roles.p_doctor([text])[0])
        p = min(max(p, 1e-6), 1 - 1e-6)
        clip = self.config.role_logit_clip
        # more words, more evidence; capped so one monologue cannot decide the visit alone
        return max(-clip, min(clip, math.log(p / (1 - p)))) * min(words, 20) / 10.0

    def _by_text_only(self, text: str) -> tuple[str, float]:
        """Too little audio to embed: the text decides, weakly (no text: patient, confidence 0)."""
        logit = self._role_logit(text)
        if logit > 0:
            return CLINICIAN, round(_sigmoid(logit) * 2 - 1, 4) * 0.5
        return PATIENT, round(_sigmoid(-logit) * 2 - 1, 4) * 0.5

    def _decide(
        self, embed: np.ndarray, seconds: float, text: str, step: float | None = None, window_norm: float = 0.0
    ) -> tuple[str, float]:
        cfg = self.config
        h = self._history
        h.embeds.append(embed)
        h.seconds.append(seconds)
        h.role_logit.append(self._role_logit(text))
        h.window_norm.append(window_norm)
        x = np.stack(h.embeds)
        w = np.asarray(h.seconds, np.float64)
        vp = self._voiceprint
        if vp is not None:
            return self._decide_enrolled(embed, x, w, vp, step)

        labels, centroids = self._cluster(x, w, None)
        own = int(labels[-1])
        cos_c = centroids @ embed
        two_voices = labels.min() != labels.max() and float(centroids[0] @ centroids[1]) < cfg.same_voice_cos
        self._centroids = centroids if two_voices else None
        evidence = np.array([sum(l for l, lab in zip(h.role_logit, labels) if lab == k) for k in (0, 1)])
        if not two_voices:
            ev = float(evidence[own])
            if ev == 0.0:
                return CLINICIAN if len(h.embeds) == 1 else PATIENT, 0.0
            return (CLINICIAN if ev > 0 else PATIENT), _sigmoid(ev) * 2 - 1 if ev > 0 else _sigmoid(-ev) * 2 - 1
        clin_cluster = self._sticky_name(centroids, evidence, cfg.rename_margin)
        role_conf = _sigmoid(abs(float(evidence[0] - evidence[1]))) * 2 - 1
        if self._is_other(float(cos_c.max()), seconds):
            return OTHER, 1.0 - float(cos_c.max()) / cfg.other_cos
        margin = abs(float(cos_c[0] - cos_c[1]))
        conf = (_sigmoid(margin * 30) * 2 - 1) * role_conf
        return (CLINICIAN if own == clin_cluster else PATIENT), round(float(conf), 4)

    def _sticky_name(self, centroids: np.ndarray, evidence: np.ndarray, margin: float) -> int:
        """Which re-clustered voice is the clinician: named once, then carried by similarity.

        Re-deciding from the text evidence at every segment made the names exchange
        mid-visit whenever the two sums crossed (real voices: 0.68 -> 0.96 word accuracy
        with sticky names, docs/realvoice.md 5.2). A name is changed only when the
        evidence against it has grown clearly stronger (``margin``), so an early
        wrong guess does not stay wrong for the whole live view. The report re-decides
        once, at the end, with all the evidence (:meth:`final_labels`).
        """
        previous = self._named
        if previous is None:
            k = int(np.argmax(evidence))
        else:
            keep = float(centroids[0] @ previous[0] + centroids[1] @ previous[1])
            swap = float(centroids[1] @ previous[0] + centroids[0] @ previous[1])
            k = 0 if keep >= swap else 1
            if float(evidence[1 - k] - evidence[k]) > margin:
                k = 1 - k
        self._named = np.stack([centroids[k], centroids[1 - k]]).astype(np.float32)  # (clinician, patient)
        return k

    def _decide_enrolled(
        self, embed: np.ndarray, x: np.ndarray, w: np.ndarray, vp: np.ndarray, step: float | None = None
    ) -> tuple[str, float]:
        """With a voiceprint: nearest of the clinician (voiceprint-anchored) and patient voices.

        ``step``: the part's windows' mean cosine to the voiceprint less the midpoint of the
        relative step that split its segment; it replaces the absolute threshold while
        the visit has no patient voice.
        """
        cfg = self.config
        self._vp_heard = self._voiceprint_heard(x, w, vp)
        if cfg.enrolled_method == "clusters" or not self._vp_heard:
            clin, pat = self._named_by_voiceprint(x, w, vp)
        else:
            clin, pat = self._anchored(x, w, vp)
        self._visit_voices = self._weak_anchor_voices(x, w, clin, pat) if pat is not None else None
        if pat is None:
            self._centroids = None
            score = float(embed @ vp) - cfg.threshold if step is None else step
            z = score * 20 + cfg.text_weight * self._history.role_logit[-1]
            return (CLINICIAN if z >= 0 else PATIENT), round(_sigmoid(abs(z)) * 2 - 1, 4)
        self._centroids = np.stack([clin, pat])
        cos_c = self._centroids @ embed
        if self._is_other(float(cos_c.max()), float(w[-1])):
            return OTHER, 1.0 - float(cos_c.max()) / cfg.other_cos
        z = (float(cos_c[0] - cos_c[1]) - cfg.enrolled_bias) * 30 + cfg.text_weight * self._history.role_logit[-1]
        return (CLINICIAN if z > 0 else PATIENT), round(_sigmoid(abs(z)) * 2 - 1, 4)

    def _weak_anchor_voices(self, x: np.ndarray, w: np.ndarray, clin: np.ndarray, pat: np.ndarray) -> np.ndarray | None:
        """The visit's own two voices while the enrolled clinician voice is mostly the voiceprint, else None.

        The anchored clinician centroid weighs the voiceprint like ``anchor_seconds`` of speech;
        while the visit has given it less clinician speech than that, it is the enrolment
        recording's voice more than the visit's, and window scores against it lose short
        in-visit clinician turns to the in-visit patient centroid (:meth:`_visit_llr`). Once
        the clinician's own speech outweighs the anchor, the enrolled voices are the visit's
        and no second opinion is asked (the demo's close espeak pair: its un-enrolled
        clustering would add false splits, 0.09 -> 0.12 turn-end words to the next speaker).
        """
        cfg = self.config
        wl = np.where(w >= cfg.min_cluster_s, w, 0.0)
        if float(wl[(x @ clin) > (x @ pat)].sum()) >= cfg.anchor_seconds:
            return None
        labels, voices = self._cluster(x, w, None)
        # two voices at least as far apart as two people (``separation_ref``): the clustering of a closer pair
        # (the demo's espeak voices, 0.09-0.15) is not trusted to place a change
        two = labels.min() != labels.max() and 1.0 - float(voices[0] @ voices[1]) >= cfg.separation_ref
        return voices if two else None

    def _voiceprint_heard(self, x: np.ndarray, w: np.ndarray, vp: np.ndarray) -> bool:
        """Whether the voiceprint is in this visit's channel: some part of ``heard_min_s`` or more reaches ``threshold``.

        A voiceprint recorded close-talk is 0.2-0.3 lower in cosine for everyone through a
        room microphone (docs/realvoice.md 5.3): there no clinician segment reaches the
        threshold, the anchored two-means starts from "everyone is the patient" and the
        anchor pulls the clinician's centroid away from the clinician's real voice in the
        room, so the two voices collapse into one (docs/speakers.md, "Real voices").
        """
        long = w >= self.config.heard_min_s
        return bool(long.any() and float((x[long] @ vp).max()) >= self.config.threshold)

    def _named_by_voiceprint(self, x: np.ndarray, w: np.ndarray, vp: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The visit's own two voices, the one whose segments are nearer the voiceprint on average named clinician.

        Used relatively, the voiceprint survives the room: everyone's cosine drops, the
        order stays. Names are sticky (``vp_rename_margin``) so the live view does not
        flip while the two averages are close. Returns (clinician, patient) centroids,
        patient None while the visit has one voice.
        """
        cfg = self.config
        labels, centroids = self._cluster(x, w, None)
        if labels.min() == labels.max() or float(centroids[0] @ centroids[1]) >= cfg.same_voice_cos:
            return vp, None
        k = self._sticky_name(centroids, self._voiceprint_evidence(x, w, labels, vp), cfg.vp_rename_margin)
        return centroids[k], centroids[1 - k]

    def _voiceprint_evidence(self, x: np.ndarray, w: np.ndarray, labels: np.ndarray, vp: np.ndarray) -> np.ndarray:
        """Per cluster, the duration-weighted mean cosine of its segments to the voiceprint.

        Not the centroid's cosine: a centroid averages its segments' noise away, so the
        cluster with more speech (usually the patient's) scores higher against any
        reference; in the room that bias is as large as the gap between the two voices.
        """
        cos = x @ vp
        wl = np.where(w >= self.config.min_cluster_s, w, 0.0)
        out = np.full(2, -1.0)
        for k in (0, 1):
            m = labels == k
            weights = wl[m] if wl[m].sum() > 0 else w[m]
            if m.any() and weights.sum() > 0:
                out[k] = float(np.average(cos[m], weights=weights))
        return out

    def _anchored(self, x: np.ndarray, w: np.ndarray, vp: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Two-means with the clinician's centroid anchored at the voiceprint (weight ``anchor_seconds``).

        Started from (a) the calibrated threshold (below it: patient) and (b) the
        unanchored two-voice clustering (the cluster nearer the voiceprint is the
        clinician); the start with the better anchored objective wins. Returns
        unit (clinician, patient) centroids, patient None while the visit has
        no second voice.
        """
        cfg = self.config
        starts: list[np.ndarray] = []
        wl = np.where(w >= cfg.min_cluster_s, w, 0.0)
        cos_vp = x @ vp
        long_idx = np.flatnonzero(wl > 0)
        if len(long_idx) and float(cos_vp[long_idx].min()) < cfg.threshold and "threshold" in cfg.anchored_init:
            starts.append(cos_vp < cfg.threshold)
        if "clusters" in cfg.anchored_init:
            labels, centroids = self._cluster(x, w, None)
            if labels.min() != labels.max() and float(centroids[0] @ centroids[1]) < cfg.same_voice_cos:
                starts.append(labels != int(np.argmax(centroids @ vp)))
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        for pat in starts:
            clin_c, pat_c = vp, None
            for _ in range(cfg.kmeans_iters):
                mc = cfg.anchor_seconds * vp.astype(np.float64) + (wl[~pat, None] * x[~pat]).sum(axis=0)
                mp = (wl[pat, None] * x[pat]).sum(axis=0)
                if float(np.linalg.norm(mp)) == 0.0:
                    pat_c = None
                    break
                clin_c, pat_c = l2_normalise(mc), l2_normalise(mp)
                new = (x @ pat_c) > (x @ clin_c) + cfg.enrolled_bias
                if np.array_equal(new, pat):
                    break
                pat = new
            if pat_c is None:
                continue
            obj = float(wl @ np.maximum(x @ clin_c, x @ pat_c)) + cfg.anchor_seconds * float(vp @ clin_c)
            if best is None or obj > best[0]:
                best = (obj, clin_c, pat_c)
        if best is None:
            return vp, None
        return best[1], best[2]

    def _cluster(self, x: np.ndarray, w: np.ndarray, vp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Two-way duration-weighted spherical k-means; returns labels of x and unit centroids."""
        cfg = self.config
        if vp is not None:
            x = np.vstack([x, vp[None, :]])
            w = np.append(w, cfg.anchor_seconds)
        n = len(x)
        # short segments give noisy embeddings that k-means would happily make a cluster of
        w = np.where(w >= cfg.min_cluster_s, w, 0.0)
        long_idx = np.flatnonzero(w > 0)
        if len(long_idx) < 2:
            return np.zeros(n - (vp is not None), int), np.stack([x[-1], x[-1]]).astype(np.float32)
        # deterministic seeds: the longest segments first (their embeddings are the most reliable)
        pool = long_idx[np.argsort(-w[long_idx], kind="stable")][: cfg.max_restarts]
        seeds = pool
        if vp is not None:
            seeds = np.array([n - 1])  # the voiceprint seeds the clinician's cluster
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        sims = x @ x.T
        for i in seeds:
            # the second seed is the reliable segment least like the first: the least like it of *all* segments
            # was nearly always a noisy 1-1.5 s one, and in a room the short segments then won a cluster of their
            # own while the two real voices shared the other (committed same-sex far visit: 0.71 -> 0.94)
            j = int(pool[np.argmin(sims[i, pool])])
            cent = np.stack([x[i], x[j]]).astype(np.float64)
            labels = np.zeros(n, int)
            for _ in range(cfg.kmeans_iters):
                new = np.argmax(x @ cent.T, axis=1)
                if vp is not None:
                    new[-1] = 0
                for k in (0, 1):
                    m = (w[new == k, None] * x[new == k]).sum(axis=0)
                    norm = float(np.linalg.norm(m))
                    if norm > 0:
                        cent[k] = m / norm
                if np.array_equal(new, labels):
                    break
                labels = new
            obj = float(((x @ cent.T).max(axis=1) * w).sum())
            if best is None or obj > best[0]:
                best = (obj, labels.copy(), cent.copy())
        assert best is not None
        labels, cent = best[1], best[2].astype(np.float32)
        if vp is not None:
            labels = labels[:-1]
        return labels, cent


class OpenSegmentWatcher:
    """Finds where another voice takes over inside a segment that is still open.

    Real turn-taking rarely leaves a pause as long as the VAD's hang-over: 42 of 68
    turn changes fell inside one segment on real voices, so finals waited for the
    next pause, often many seconds (docs/realvoice.md 5.5). The ASR worker feeds the
    open segment's growing features here (never audio); every ``split_step_s`` one more 1.6 s window is
    embedded (a few milliseconds) and scored against the visit's two voices. When the
    last ``open_change_windows`` windows all side clearly with the other voice, the
    change point is returned and the segment is closed there, like at a pause.
    Window embeddings are kept for the open segment only; no audio is kept.
    """

    def __init__(self, attributor: SpeakerAttributor) -> None:
        self.attributor = attributor
        self._segment = -1
        self._embeds: list[np.ndarray] = []
        self._centres: list[int] = []

    def forget(self) -> None:
        for e in self._embeds:
            e.fill(0.0)
        self._embeds.clear()
        self._centres.clear()
        self._segment = -1

    def feed(self, segment_id: int, length: int, window: WindowReader) -> int | None:
        """Samples into the segment where another voice starts, or None."""
        att = self.attributor
        cfg = att.config
        if segment_id != self._segment:
            self.forget()
            self._segment = segment_id
        win = PARTIAL_FRAMES * HOP
        step = int(cfg.split_step_s * SAMPLE_RATE)
        start = len(self._centres) * step
        while start + win <= length:
            with window(start, start + win) as feats:
                self._embeds.append(att.encoder.embed(feats))
            self._centres.append(start + win // 2)
            start += step
        need = cfg.open_change_windows
        if len(self._embeds) < need + 1:
            return None
        llr = att._window_llr(np.stack(self._embeds))
        if llr is None:
            return None
        labels = _viterbi(llr, cfg.switch_penalty)
        tail = labels[-need:]
        if labels[0] == labels[-1] or (tail != labels[-1]).any() or (np.abs(llr[-need:]) <= cfg.refine_margin).any():
            return None
        i = int(np.flatnonzero(labels[1:] != labels[:-1])[-1])
        point = (self._centres[i] + self._centres[i + 1]) // 2
        reach = int(cfg.snap_s * SAMPLE_RATE)
        lo, hi = max(0, point - reach) // ENERGY_HOP * ENERGY_HOP, min(length, point + reach)
        with window(lo, hi) as feats:
            energy = feats.energy
            if len(energy) >= 4:  # the middle of the quietest 20 ms, on the 10 ms grid
                point = lo + int(np.argmin(energy[:-1] + energy[1:])) * ENERGY_HOP + ENERGY_HOP
        if point < cfg.min_part_s * SAMPLE_RATE:
            return None
        return int(point)


# (start, stop) samples of the open segment -> its speaker features (the caller wipes them after the block)
WindowReader = Callable[[int, int], AbstractContextManager[SpeakerFeatures]]
_Edge = tuple[int, np.ndarray]  # a change point near a segment's edge (samples) and the edge part's embedding


def _word_gaps(words: Sequence[Sequence[object]] | None) -> np.ndarray:
    """Seconds of pause between consecutive words (0 without word ends), in the order of :func:`_word_boundaries`."""
    if not words or len(words) < 2:
        return np.zeros(0)
    return np.asarray(
        [max(0.0, float(cur[1]) - float(prev[2])) if len(prev) > 2 else 0.0 for prev, cur in zip(words, words[1:])]  # type: ignore[arg-type]
    )


def _word_boundaries(words: Sequence[Sequence[object]] | None) -> np.ndarray:
    """Sample positions between consecutive words: the middle of the gap when word ends are known."""
    if not words or len(words) < 2:
        return np.zeros(0, np.int64)
    out = []
    for prev, cur in zip(words, words[1:]):
        start = float(cur[1])  # type: ignore[arg-type]
        end_prev = float(prev[2]) if len(prev) > 2 else start  # type: ignore[arg-type]
        out.append(int((min(end_prev, start) + start) / 2 * SAMPLE_RATE))
    return np.asarray(out, np.int64)


def _viterbi(llr: np.ndarray, penalty: float) -> np.ndarray:
    """Two-state labels (0 where ``llr`` favours the first voice) with a cost per switch."""
    n = len(llr)
    back = np.zeros((n, 2), np.int8)
    score = np.array([llr[0] / 2, -llr[0] / 2])
    for t in range(1, n):
        stay, switch = score, score[::-1] - penalty
        back[t] = np.where(stay >= switch, [0, 1], [1, 0])
        score = np.maximum(stay, switch) + np.array([llr[t] / 2, -llr[t] / 2])
    labels = np.zeros(n, np.int8)
    labels[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        labels[t - 1] = back[t, labels[t]]
    return labels


Source = SpeakerFeatures | np.ndarray  # features of a closed segment, or audio the caller still holds


def _length(source: Source) -> int:
    return source.n_samples if isinstance(source, SpeakerFeatures) else len(source)


def _checked(source: Source) -> Source:
    return source if isinstance(source, SpeakerFeatures) else _readonly(source)


def _readonly(audio: np.ndarray) -> np.ndarray:
    """A read-only float32 1-D view: we may read the caller's buffer but never write or keep it."""
    if audio.dtype != np.float32 or audio.ndim != 1:
        raise ValueError("attribution expects 1-D float32 audio at 16 kHz")
    view = audio.view()
    view.flags.writeable = False
    return view


__all__ = ["CLINICIAN", "OTHER", "PATIENT", "Attribution", "AttributionConfig", "OpenSegmentWatcher", "SpeakerAttributor", "l2_normalise"]
