"""The streaming decoding rules for speech segments, free of threads.

:class:`SegmentDecoder` turns what the VAD says about a segment into text:

* **Partials** while a segment is open (``on_update``): the window from the
  last committed sentence to the newest audio is re-decoded greedily, but at
  most ``partial_window_s`` of it: past that, a partial decodes only a *tail*
  from a boundary of the previous partial (a timestamped sentence end, else a
  word boundary from its alignment) at least ``partial_tail_s`` before the
  end, with the text before the boundary kept from that partial (provisional,
  already shown) and its tokens given as prompt context. A partial's cost is
  thus bounded whatever the segment's length (docs/realvoice.md 8). A
  partial is decoded at least every ``partial_max_gap_s`` of new audio (the
  first once the window holds ``partial_first_s``); extra partials between
  those only from a CPU budget, none by default (``partial_cpu_share`` 0, as
  ``PipelineConfig``). Local agreement (two consecutive hypotheses, kept
  text plus tail) marks the stable prefix.
* **A final at a pause** (``commit_at_pause``, off by default): the VAD's
  look-ahead decode after 300 ms of silence is handed out as a committed piece
  at once when it agrees with the live hypothesis, whether or not the segment
  then closes. Off, the look-ahead is used only when the segment closes on
  exactly its audio.
* **Sentences committed inside long segments**: when two consecutive decodes
  agree on a whole timestamped sentence that ends well before the window
  does (the first sentence of each decode, its end in window time whether the
  decode was of the whole window or of a tail), the audio up to its end is decoded as a final (wider beam, context) and
  handed out as a :class:`Committed` piece at once; the window moves past it.
  Long turns therefore give finals sentence by sentence instead of waiting for
  a pause (LocalAgreement-2 with buffer trimming at sentence ends, as in
  whisper_streaming).
* **The final** when the segment closes (``on_closed``): the rest after the
  last committed sentence, from features computed when the segment closed
  (its raw audio is already zeroed). A decode that fails is retried on two
  halves; only if that fails too is the segment reported as failed.

The caller (``edge_agent.device.pipeline``) owns threads, buffers and zeroing;
this class owns no audio and keeps, between segments, only the last finals'
tokens as context (cleared by :meth:`forget`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from edge_agent.asr.agreement import LocalAgreement
from edge_agent.asr.backend import Decoded, DecodedWord, Recognizer
from edge_agent.asr.events import PartialTranscript

log = logging.getLogger(__name__)

_SENTENCE_END = (".", "?", "!")  # a word or kept text ending in one of these ends a sentence



@dataclass(frozen=True)
class DecoderConfig:
    partials: bool = True  # live partial transcripts (finals are always decoded)
    # a partial at least this often (seconds of new speech) once a segment has speech...
    partial_max_gap_s: float = 1.5
    # ...and more often (down to partial_min_step_s) while the CPU budget allows
    partial_min_step_s: float = 0.5
    partial_cpu_share: float = 0.0  # share of one core extra partials may use on average (none: the cadence above is the rule)
    partial_cpu_burst_s: float = 0.5
    context_tokens: int = 64  # tokens of recent finals given to a final as context
    commit_min_s: float = 0.5  # a committed sentence is at least this long ...
    commit_margin_s: float = 1.0  # ... and ends at least this far before the window does
    commit_after_s: float = 5.0  # a window this long commits its first sentence even before two decodes agree
    # the look-ahead decode at a pause (the VAD's final candidate) is handed out as a final at once,
    # whether or not the segment then closes: a turn that the next speaker follows within the VAD's
    # hang-over no longer waits for the segment (docs/realvoice.md 8)
    # off by default: on the real-voice bench (docs/realvoice.md 8) it moved no latency figure measurably
    # and cost word attribution (0.87-0.89 against 0.89-0.90, three rounds) and turn boundaries
    commit_at_pause: bool = False
    partial_after_pause_s: float = 1.0  # the first partial after such a commit, once this much new audio came
    # a segment's first partial once its window holds this much audio (0.24 s of it is pre-roll): a
    # window of half a second rarely holds a whole word, and its decode would not show the turn's start
    partial_first_s: float = 1.0
    # a partial decodes at most this much audio (0: the whole window since the last commit, whose cost
    # grew with the segment): past it, only a tail from a boundary of the previous partial at least
    # partial_tail_s before the end; the text before the boundary is kept from that partial
    partial_window_s: float = 0.0
    partial_tail_s: float = 2.0
    partial_context_tokens: int = 32  # tokens of the kept text given to a tail decode as prompt
    pause_commit_min_s: float = 0.0  # shorter look-ahead windows wait for the segment to close
    # ... and so does one whose words do not contain this share of the live hypothesis's words
    # (a context-conditioned decode of a short window can invent a sentence; the partial has no context)
    pause_commit_agreement: float = 0.6


class CpuBudget:
    """Token bucket of CPU seconds for optional decodes, filled as audio arrives."""

    def __init__(self, share: float, burst_s: float) -> None:
        self.share = share
        self.burst = burst_s
        self._tokens = burst_s
        self._audio_samples = 0

    def audio_at(self, sample: int, rate: int) -> None:
        if sample > self._audio_samples:
            self._tokens = min(self.burst, self._tokens + (sample - self._audio_samples) / rate * self.share)
            self._audio_samples = sample

    def allows(self) -> bool:
        return self.share > 0 and self._tokens > 0

    def spend(self, cpu_s: float) -> None:
        self._tokens -= cpu_s


@dataclass
class DecodeStats:
    partial_decodes: int = 0
    partials_over_budget: int = 0
    candidate_decodes: int = 0
    candidate_reused: int = 0  # look-ahead decodes that became a final (at the pause, or when the segment closed)
    pause_commits: int = 0  # ... of which handed out at the pause, before the segment closed
    finals_without_rest: int = 0  # closed segments whose audio was all committed already (no decode)
    sentences_committed: int = 0
    retried: int = 0  # finals decoded again on halves after a failure
    failed_open_decodes: int = 0  # partial/look-ahead decodes that failed (the final still covers their audio)
    tail_partials: int = 0  # partials that decoded a tail of their window (partial_window_s)
    partial_audio_s: float = 0.0  # seconds of audio the partials decoded
    partial_window_max_s: float = 0.0  # ... the longest of them
    repeats_dropped: int = 0  # finals handed out without the repeat of their last words Whisper invented
    repeat_words_dropped: int = 0  # ... the words of those copies
    skips_recovered: int = 0  # finals decoded again without context: with it, Whisper skipped speech
    stretches_filled: int = 0  # stretches of speech a final's decode skipped, decoded alone and put in


@dataclass(frozen=True)
class Committed:
    """A sentence finalised inside a still-open segment (samples relative to the segment)."""

    segment_id: int
    start: int
    stop: int
    decoded: Decoded
    words: list[DecodedWord]  # seconds from ``start``


@dataclass(frozen=True)
class Final:
    """The text of a closed segment after its last committed sentence."""

    decoded: Decoded
    words: list[DecodedWord]  # seconds from ``start``
    start: int  # samples into the segment where the decoded audio begins
    # (start, stop) samples from ``start`` whose decode failed on the retry too: lost, the rest kept
    lost: tuple[tuple[int, int], ...] = ()


@dataclass
class _Open:
    """Per-segment state, dropped when the segment is finalised."""

    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    window_start: int = 0  # samples of the segment already committed
    committed_text: str = ""
    segment_start: int | None = None  # absolute sample of the segment's start, when known
    previous_first: tuple[tuple[str, ...], float] | None = None
    candidate: tuple[int, Decoded] | None = None  # (window_start, decode of the final's exact audio)
    last_partial: str = ""
    last_partial_end: int = 0  # segment sample the last partial decode reached
    next_partial_at: int = 0  # a partial is due once the segment is this long (the cadence)
    window_heard: bool = False  # a decode of the current window (since the last commit) gave words
    partials: int = 0
    tail_start: int = 0  # segment sample a partial's decode starts at (window_start, or a boundary past it)
    tail_prefix: list[str] = field(default_factory=list)  # provisional words of window_start:tail_start
    tail_context: list[int] = field(default_factory=list)  # ... their last tokens (the tail decode's prompt)
    # the last partial's text in units (sentences or words: text, tokens) and the boundaries between
    # them (segment sample, units before it), kept only when the next partial will need a new tail
    tail_units: list[tuple[str, list[int]]] = field(default_factory=list)
    tail_bounds: list[tuple[int, int]] = field(default_factory=list)
    # sentence ends seen in the window (segment sample, the sentence's words): each partial's
    # timestamped ends but its last, those before a tail's start kept from the partial that saw them
    sentence_ends: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)


class SegmentView(Protocol):
    """What the decoder reads of an open segment: features, never audio (the raw samples are gone).

    Samples are relative to the segment's start. Both methods raise :class:`SegmentGoneError`
    once the segment closed (its features moved to the closed segment's store)."""

    def features(self, start: int, stop: int, final: bool) -> np.ndarray:
        """Decoder features of ``start:stop`` plus the silence a final (or a partial) window gets, normalised
        over the window; scratch the caller zeroes once decoded."""
        ...

    def energy(self, start: int, stop: int) -> np.ndarray:
        """Energies of the 10 ms blocks from the block holding ``start`` up to ``stop`` (a copy)."""
        ...


class SegmentGoneError(Exception):
    """Raised by a :class:`SegmentView` whose segment closed before the read."""


class SegmentDecoder:
    # the process clock, not the thread's: CTranslate2 decodes on its own threads
    def __init__(self, recognizer: Recognizer, config: DecoderConfig, cpu_clock: Callable[[], float] = time.process_time) -> None:
        self.asr = recognizer
        self.cfg = config
        self.stats = DecodeStats()
        self._open: dict[int, _Open] = {}
        self._budget = CpuBudget(config.partial_cpu_share, config.partial_cpu_burst_s)
        self._context: deque[int] = deque(maxlen=max(1, config.context_tokens))
        self._cpu = cpu_clock
        self._done_until = 0  # absolute sample up to which text was handed out as committed pieces
        self._aligned: tuple[Decoded, list[DecodedWord]] | None = None  # the last partial and its words

    def forget(self) -> None:
        """End of a run: drop every segment's state and the context (transcript tokens)."""
        self._open.clear()
        self._context.clear()
        self._done_until = 0

    # -- open segments -------------------------------------------------------------------------------

    def wants_update(self, segment_id: int, length: int, final_candidate: bool) -> bool:
        """Whether an update is worth a decode (lets the caller skip copying/locking for nothing)."""
        if final_candidate:
            return True
        if not self.cfg.partials:
            return False
        state = self._open.get(segment_id)
        done = state.last_partial_end if state else 0
        new = (length - done) / self.asr.sample_rate
        return new >= self.cfg.partial_min_step_s

    def on_update(
        self, segment_id: int, t0: float, length: int, final_candidate: bool, audio: SegmentView,
        absolute_end_sample: int, onset_arrival: float | None,
    ) -> tuple[list[Committed], PartialTranscript | None]:
        """A segment grew to ``length`` samples: maybe commit sentences, maybe give a partial.

        A decode that fails here costs only this partial or look-ahead (counted): the
        segment's final, decoded from its features at close, still covers the audio.
        """
        try:
            return self._on_update(segment_id, t0, length, final_candidate, audio, absolute_end_sample, onset_arrival)
        except SegmentGoneError:
            raise
        except Exception as exc:  # noqa: BLE001 - counted; the final is retried and reported if it fails too
            self.stats.failed_open_decodes += 1
            log.warning("decode of an open segment failed (%s); its final will cover the audio", type(exc))
            return [], None

    def _on_update(
        self, segment_id: int, t0: float, length: int, final_candidate: bool, audio: SegmentView,
        absolute_end_sample: int, onset_arrival: float | None,
    ) -> tuple[list[Committed], PartialTranscript | None]:
        rate = self.asr.sample_rate
        state = self._state(segment_id, absolute_end_sample - length)
        self._budget.audio_at(absolute_end_sample, rate)
        if length - state.window_start < rate // 4:
            return [], None
        committed: list[Committed] = []
        if final_candidate:
            self.stats.candidate_decodes += 1
            start = state.window_start
            decoded = self._decode_window(audio, start, length, final=True)
            self.stats.partial_decodes += 1
            if (decoded.text and self.cfg.commit_at_pause and length - start >= self.cfg.pause_commit_min_s * rate
                    and _shared_share(state.agreement.last_hypothesis, decoded.text) >= self.cfg.pause_commit_agreement):
                # the speech paused here: this is a final whether or not the segment closes now
                self.stats.candidate_reused += 1
                self.stats.pause_commits += 1
                piece = self._commit(segment_id, state, start, length, decoded)
                state.next_partial_at = length + int(self.cfg.partial_after_pause_s * rate)
                return [piece], None
            state.candidate = (start, decoded)
        else:
            due = length >= state.next_partial_at
            if not due and not self._budget.allows():
                self.stats.partials_over_budget += 1
                return [], None
            spent = self._cpu()
            start = self._partial_start(state, length)
            context = state.tail_context[-self.cfg.partial_context_tokens :] if start > state.window_start else None
            decoded = self._trim_invented(self._decode_window(audio, start, length, final=False, context=context or None))
            self._budget.spend(self._cpu() - spent)
            self.stats.partial_decodes += 1
            self.stats.tail_partials += start > state.window_start
            self.stats.partial_audio_s += (length - start) / rate
            self.stats.partial_window_max_s = max(self.stats.partial_window_max_s, (length - start) / rate)
            state.last_partial_end = length
            # the gap counts decodes, not shown partials (a window that decodes to nothing, noise or a
            # guard, is not decoded again at every update); only an utterance's first words are
            # looked for again sooner, while its window is short (onset of text)
            soon = not decoded.text and not state.window_heard and length - state.window_start < 2 * rate
            state.window_heard = state.window_heard or bool(decoded.text)
            gap = self.cfg.partial_min_step_s if soon else self.cfg.partial_max_gap_s
            state.next_partial_at = length + int(gap * rate)
            piece = self._maybe_commit(segment_id, state, decoded, audio, start)
            if piece is not None:
                committed.append(piece)
                decoded = None  # type: ignore[assignment]  # the window moved: the old hypothesis no longer applies
            else:
                spent = self._cpu()
                self._keep_boundaries(state, start, decoded)  # may align the partial's words
                self._budget.spend(self._cpu() - spent)
            self._aligned = None  # (its encoder output)
        if not self.cfg.partials or decoded is None or not decoded.text:
            return committed, None
        hypothesis = " ".join(state.tail_prefix + [decoded.text]) if not final_candidate else decoded.text
        stable, unstable = state.agreement.update(hypothesis)
        stable = f"{state.committed_text} {stable}".strip()
        text = f"{stable} {unstable}".strip()
        if text == state.last_partial:
            return committed, None
        state.last_partial = text
        onset_latency = None
        if state.partials == 0 and onset_arrival is not None:
            onset_latency = time.monotonic() - onset_arrival
        state.partials += 1
        return committed, PartialTranscript(segment_id, t0, t0 + length / rate, stable, unstable, onset_latency)

    def _state(self, segment_id: int, segment_start: int | None) -> _Open:
        """The open state of a segment; a new one starts after audio already finalised.

        A segment that begins before the end of the last committed piece (a split placed
        just before a pause where the text was already handed out) starts its window there,
        so no word is finalised twice.
        """
        state = self._open.get(segment_id)
        if state is None:
            state = self._open[segment_id] = self._new_state(segment_start)
            state.next_partial_at = state.window_start + int(self.cfg.partial_first_s * self.asr.sample_rate)
            state.tail_start = state.window_start
        return state

    def _partial_start(self, state: _Open, length: int) -> int:
        """Where a partial ending at ``length`` starts decoding: the window start while the window
        is at most ``partial_window_s`` long, else a boundary of the previous partial (its text
        before the boundary joins the kept prefix), else ``partial_window_s`` before the end."""
        rate = self.asr.sample_rate
        cap = int(self.cfg.partial_window_s * rate)
        if cap <= 0 or length - state.tail_start <= cap:
            return state.tail_start
        min_tail = min(int(self.cfg.partial_tail_s * rate), cap)
        cut, keep = length - cap, 0
        usable = [(b, n) for b, n in state.tail_bounds if state.tail_start < b <= length - min_tail and length - b <= cap]
        # the latest boundary after a sentence's last word (the kept text then ends a sentence: a
        # commit point, as a timestamped end would be), else the latest
        ends = [(b, n) for b, n in usable if state.tail_units[n - 1][0].endswith(_SENTENCE_END)]
        if usable:
            cut, keep = (ends or usable)[-1]
        else:  # no boundary where one is needed (the worker came late, or the last partial had no words)
            keep = max((n for b, n in state.tail_bounds if b <= cut), default=0)
        units = state.tail_units[:keep]
        state.tail_prefix += [w for text, _ in units for w in text.split()]
        state.tail_context = (state.tail_context + [t for _, tokens in units for t in tokens])[-max(1, self.cfg.partial_context_tokens):]
        state.tail_start = cut
        state.tail_units, state.tail_bounds = [], []
        return cut

    def _words(self, decoded: Decoded) -> list[DecodedWord]:
        """A partial's aligned words (aligned once, whoever asks first)."""
        if self._aligned is None or self._aligned[0] is not decoded:
            self._aligned = (decoded, self.asr.align_words(decoded) if decoded.text else [])
        return self._aligned[1]

    def _trim_invented(self, decoded: Decoded) -> Decoded:
        """A partial's text without what Whisper invents when a window is cut mid-speech: sentences
        timed into the last half second at under 0.1 s a word, and a re-reading (a run of 4 words
        said again, case and punctuation aside) from its second copy on. Finals are not trimmed."""
        duration = decoded.n_samples / self.asr.sample_rate
        sentences = decoded.sentences
        keep = sum(len(sentence.tokens) for sentence in sentences)
        for i, sentence in enumerate(sentences):
            n_words = len(self.asr.text_of(sentence.tokens).split())
            if i > 0 and sentence.start >= duration - 0.5 and sentence.end - sentence.start < 0.1 * max(2, n_words):
                keep = sum(len(s.tokens) for s in sentences[:i])
                break
        tokens = [t for sentence in sentences for t in sentence.tokens][:keep]
        words = _words_of(self.asr.text_of(tokens))
        seen: set[tuple[str, ...]] = set()
        for j in range(len(words) - 3):
            gram = tuple(words[j : j + 4])
            if gram in seen:  # cut at the token where word j starts
                keep = next(k for k in range(1, len(tokens) + 1) if len(_words_of(self.asr.text_of(tokens[:k]))) > j) - 1
                break
            seen.add(gram)
        if keep >= len(decoded.tokens) and tokens == decoded.tokens:
            return decoded
        tokens = tokens[:keep]
        kept, used = [], 0
        for sentence in sentences:
            if used >= keep:
                break
            part = sentence.tokens[: keep - used]
            kept.append(sentence if len(part) == len(sentence.tokens) else replace(sentence, tokens=part))
            used += len(part)
        return replace(decoded, text=self.asr.text_of(tokens), tokens=tokens, sentences=kept)

    def _keep_boundaries(self, state: _Open, start: int, decoded: Decoded) -> None:
        """Remember where the next partial may start its tail: the partial's sentence ends when one
        falls where the tail would start, else its aligned word boundaries; when the next partial
        should not need a tail, only the end of this one's text (in case the worker comes late)."""
        state.tail_units, state.tail_bounds = [], []
        rate = self.asr.sample_rate
        cap = int(self.cfg.partial_window_s * rate)
        if cap <= 0 or not decoded.text:
            return
        if state.next_partial_at - state.tail_start <= cap:
            state.tail_units = [(decoded.text, list(decoded.tokens))]
            state.tail_bounds = [(start + decoded.n_samples, 1)]
            return
        due, min_tail = state.next_partial_at, min(int(self.cfg.partial_tail_s * rate), cap)
        sentences = decoded.sentences
        bounds = [(start + int((a.end + b.start) / 2 * rate), i + 1) for i, (a, b) in enumerate(zip(sentences, sentences[1:]))]
        if sentences and any(due - cap <= b <= due - min_tail for b, _ in bounds):
            state.tail_units = [(self.asr.text_of(s.tokens), list(s.tokens)) for s in sentences]
            state.tail_bounds = [*bounds, (start + int(sentences[-1].end * rate), len(sentences))]
            return
        words = self._words(decoded)
        if not words:
            return
        state.tail_units = [(w.text, list(w.tokens)) for w in words]
        state.tail_bounds = [(start + int((a.end + b.start) / 2 * rate), i + 1) for i, (a, b) in enumerate(zip(words, words[1:]))]
        state.tail_bounds.append((start + int(words[-1].end * rate), len(words)))

    def committed_until(self, segment_id: int) -> int:
        """Samples of an open segment whose text is final already (0 if none or unknown)."""
        state = self._open.get(segment_id)
        return state.window_start if state is not None else 0

    def _commit(self, segment_id: int, state: _Open, start: int, stop: int, final: Decoded) -> Committed:
        """Hand out ``final`` (the decode of ``start:stop``) and move the window past it."""
        # aligned first: a failure here must leave the window where it was (the final then covers these
        # words); moved first, the sentence was never handed out and never decoded again
        words = self.asr.align_words(final)
        state.window_start = stop
        state.tail_start = stop
        state.tail_prefix, state.tail_context, state.tail_units, state.tail_bounds = [], [], [], []
        state.sentence_ends = []
        state.window_heard = False
        state.agreement = LocalAgreement()
        state.previous_first = None
        state.candidate = None
        state.committed_text = f"{state.committed_text} {final.text}".strip()
        if state.segment_start is not None:
            self._done_until = max(self._done_until, state.segment_start + stop)
        self._remember(final)
        return Committed(segment_id, start, stop, final, words)

    def _maybe_commit(self, segment_id: int, state: _Open, decoded: Decoded, audio: SegmentView, decoded_from: int) -> Committed | None:
        """Two consecutive decodes agree on a whole first sentence well inside the window: finalise it.

        ``decoded_from`` is the segment sample the decode started at (a tail partial starts past the
        window's start): sentence ends are kept and compared in window time, those before a tail
        as the partials that decoded them saw them (plus the tail's start when the kept text
        ends a sentence), so a long window commits at its first sentence end as a whole-window
        decode would; the final always decodes from the window's start.
        """
        rate = self.asr.sample_rate
        # the window's sentence ends: those before this decode's start as earlier partials saw them
        # (with the start itself when the kept text ends a sentence), then this decode's
        ends = [(b, words) for b, words in state.sentence_ends if b < decoded_from]
        if decoded_from > state.window_start and state.tail_prefix and state.tail_prefix[-1].endswith(_SENTENCE_END):
            if not ends or ends[-1][0] < decoded_from:
                ends.append((decoded_from, tuple(_words_of(" ".join(state.tail_prefix[-8:])))))
        if decoded.text:
            ends += [(decoded_from + int(s.end * rate), tuple(_words_of(self.asr.text_of(s.tokens)))) for s in decoded.sentences[:-1]]
            window_end = decoded_from + decoded.n_samples
            if (decoded_from > state.window_start and window_end - state.window_start >= self.cfg.commit_after_s * rate
                    and not any(state.window_start + self.cfg.commit_min_s * rate <= b <= window_end - self.cfg.commit_margin_s * rate for b, _ in ends)):
                # a long window whose tails show no timestamped end: the sentence ends its punctuation
                # marks (a whole-window decode would have had more audio to place timestamps in)
                ends = sorted({*ends, *self._punctuation_ends(decoded_from, decoded)})
        state.sentence_ends = ends
        # the first end that leaves a sentence long enough to commit (a short "Okay." before it goes with it)
        ends_from = [(b, words) for b, words in ends if b - state.window_start >= self.cfg.commit_min_s * rate]
        if not ends_from:
            state.previous_first = None
            return None
        first_end, first_words = (ends_from[0][0] - state.window_start) / rate, ends_from[0][1]
        # agreement on the words (case and punctuation aside) and on where the sentence ends:
        # exact token identity almost never held on real speech, so nothing was ever committed
        key = (first_words, first_end)
        previous = state.previous_first
        state.previous_first = key
        window_s = (decoded_from - state.window_start + decoded.n_samples) / rate
        agreed = previous is not None and bool(key[0]) and previous[0] == key[0] and abs(previous[1] - key[1]) <= 0.3
        # a long window commits its first sentence without waiting for agreement: partials then
        # stay short (their cost grows with the window) and the sentence's final comes sooner
        long_window = window_s >= self.cfg.commit_after_s
        if not (agreed or long_window) or not self.cfg.commit_min_s <= first_end <= window_s - self.cfg.commit_margin_s:
            return None
        start = state.window_start
        # Cut in the pause nearest the agreed end (Whisper's timestamps are coarse; cutting
        # exactly at one could clip the last word) and decode that audio as a final.
        cut = start + self._quiet_point(audio, start, int(first_end * rate))
        final = self._decode_window(audio, start, cut, final=True)
        if not final.text:
            state.previous_first = None
            return None  # the guards found no speech in it: try again on a later partial
        self.stats.sentences_committed += 1
        return self._commit(segment_id, state, start, cut, final)

    def _punctuation_ends(self, decoded_from: int, decoded: Decoded) -> list[tuple[int, tuple[str, ...]]]:
        """(segment sample, words since the previous end) after each word but the last that ends a sentence."""
        rate = self.asr.sample_rate
        words = self._words(decoded)
        out, since = [], []
        for word in words[:-1]:
            since.append(word.text)
            if word.text.endswith((*_SENTENCE_END, ",")):  # a clause's end too: Whisper's timestamps break there as often
                out.append((decoded_from + int(word.end * rate), tuple(_words_of(" ".join(since)))))
                since = []
        return out

    def _quiet_point(self, audio: SegmentView, start: int, offset: int) -> int:
        """``offset`` moved to the middle of the quietest 20 ms within 0.15 s (the pause after the sentence):
        20 ms blocks from 0.15 s before it, made of the segment's 10 ms energies."""
        rate, hop = self.asr.sample_rate, self.asr.hop
        reach = int(0.15 * rate)
        lo = (max(0, start + offset - reach) + hop // 2) // hop * hop  # segment sample of the first block
        energy = audio.energy(lo, start + offset + reach)
        k = len(energy) // 2
        if k < 3:
            return offset
        quiet = int(np.argmin(energy[0 : 2 * k : 2] + energy[1 : 2 * k : 2]))
        return lo + quiet * 2 * hop + hop - start

    def _decode_window(self, audio: SegmentView, start: int, stop: int, final: bool, context: list[int] | None = None) -> Decoded:
        features = audio.features(start, stop, final)
        try:
            return self.asr.decode_features(features, stop - start, final=final, context=self._final_context() if final else context)
        finally:
            features.fill(0.0)

    # -- closed segments -----------------------------------------------------------------------------

    def on_closed_without_text(self, segment_id: int) -> None:
        """A closed segment that will not be decoded (noise, or no buffer): drop its state."""
        self._open.pop(segment_id, None)

    def on_closed(self, segment_id: int, features: np.ndarray, n_samples: int, segment_start: int | None = None) -> Final:
        """The rest of a closed segment, from its features (frames at ``hop`` samples).

        ``segment_start`` (absolute samples) lets a segment never seen open start after
        the text already committed. A segment whose audio was all committed already (the
        pause's look-ahead became its last piece) gives an empty final with ``start`` at
        its end, without a decode. Raises the last error if the decode and the retry on
        halves both fail.
        """
        state = self._open.pop(segment_id, None) or self._new_state(segment_start)
        start = state.window_start
        hop = self.asr.hop
        if start > 0 and n_samples - start < self.asr.sample_rate // 4:
            self.stats.finals_without_rest += 1
            return Final(Decoded("", [], 0.0, 0.0, max(0, n_samples - start), rejected="committed"), [], min(start, n_samples))
        if state.candidate is not None:
            candidate_start, candidate = state.candidate
            if candidate_start == start and start + candidate.n_samples == n_samples:
                self.stats.candidate_reused += 1
                self._remember(candidate)
                return Final(candidate, self.asr.align_words(candidate) if candidate.text else [], start)
        tail = features[:, start // hop :]
        lost: tuple[tuple[int, int], ...] = ()
        try:
            decoded = self.asr.decode_features(tail, n_samples - start, final=True, context=self._final_context())
            words = self.asr.align_words(decoded) if decoded.text else []
        except Exception as exc:  # noqa: BLE001 - retried below; the caller reports a second failure
            log.warning("final decode failed (%s); retrying on two halves", type(exc))
            self.stats.retried += 1
            decoded, words, lost = self._decode_halves(tail, n_samples - start)
        self._remember(decoded)
        if state.segment_start is not None and decoded.text:
            self._done_until = max(self._done_until, state.segment_start + n_samples)
        return Final(decoded, words, start, lost)

    def _new_state(self, segment_start: int | None) -> _Open:
        """A segment's state, its window starting after the text already committed (when its start is known)."""
        state = _Open()
        if segment_start is not None:
            state.segment_start = segment_start
            state.window_start = max(0, self._done_until - segment_start)
        return state

    def _decode_halves(self, features: np.ndarray, n_samples: int) -> tuple[Decoded, list[DecodedWord], tuple[tuple[int, int], ...]]:
        """Each half decoded on its own: a half that fails again is lost (returned as a sample span), the
        other's words are kept. Raises the last error only when no half decodes."""
        hop = self.asr.hop
        # halve the audio, not the frames: the features end in pad_s of silence, so half of the frames was the
        # whole of any segment shorter than the pad (the "retry" decoded the same audio, the second half none).
        # The first half gets the same silence after it (its frames then the pad's, a temporary zeroed below).
        audio_frames = min(features.shape[1], -(-n_samples // hop))
        mid_frame = audio_frames // 2
        mid = min(n_samples, mid_frame * hop)
        first = np.concatenate([features[:, :mid_frame], features[:, audio_frames:]], axis=1)
        try:
            return self._decode_parts(((first, mid, 0), (features[:, mid_frame:], n_samples - mid, mid)), n_samples)
        finally:
            first.fill(0.0)

    def _decode_parts(self, parts: tuple[tuple[np.ndarray, int, int], ...], n_samples: int
                      ) -> tuple[Decoded, list[DecodedWord], tuple[tuple[int, int], ...]]:
        rate = self.asr.sample_rate
        tokens: list[int] = []
        words: list[DecodedWord] = []
        last: Decoded | None = None
        lost: list[tuple[int, int]] = []
        repeat_dropped = 0
        error: Exception | None = None
        for feats, samples, first in parts:
            if samples <= 0:
                continue
            offset = first / rate
            try:
                part = self.asr.decode_features(feats, samples, final=True, context=self._final_context())
                part_words = self.asr.align_words(part) if part.text else []
            except Exception as exc:  # noqa: BLE001 - this half is lost (reported by the caller); the other may decode
                error = exc
                lost.append((first, first + samples))
                continue
            last = part
            tokens += part.tokens
            repeat_dropped += part.repeat_dropped
            words += [DecodedWord(w.text, w.start + offset, w.end + offset, w.probability) for w in part_words]
        if last is None:
            assert error is not None
            raise error
        text = self.asr.text_of(tokens)
        decoded = Decoded(text, tokens, last.avg_logprob, last.no_speech_prob, n_samples, None, rejected="" if text else "empty",
                          repeat_dropped=repeat_dropped)
        return decoded, words, tuple(lost)

    # -- context ---------------------------------------------------------------------------------------

    def _remember(self, decoded: Decoded) -> None:
        """A final is handed out: count what its guards dropped, keep its tokens as context."""
        self.stats.skips_recovered += decoded.skip_recovered
        self.stats.stretches_filled += decoded.filled
        if decoded.repeat_dropped:
            self.stats.repeats_dropped += 1
            self.stats.repeat_words_dropped += decoded.repeat_dropped
        if self.cfg.context_tokens > 0 and decoded.tokens:
            self._context.extend(decoded.tokens)

    def _final_context(self) -> list[int] | None:
        if self.cfg.context_tokens <= 0:
            return None
        tokens = list(self._context)[-self.cfg.context_tokens :]
        return tokens or None


def _words_of(text: str) -> list[str]:
    return [w for w in (word.strip(".,!?;:\"'").lower() for word in text.split()) if w]


def _shared_share(reference: list[str], text: str) -> float:
    """Share of ``reference``'s words found in order in ``text`` (1.0 when both are empty of words)."""
    ref = _words_of(" ".join(reference))
    hyp = _words_of(text)
    if not ref:
        return 0.0 if hyp else 1.0
    prev = [0] * (len(hyp) + 1)
    for a in ref:
        cur = [0] * (len(hyp) + 1)
        for j, b in enumerate(hyp, 1):
            cur[j] = prev[j - 1] + 1 if a == b else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1] / len(ref)
