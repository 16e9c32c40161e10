"""Diagnosis experiments on real-voice visits, calling edge_agent's library without changing it.

    python -m tools.realvoice.diagnose asr   --data DIR --bench OUT   # final-decode policies x VAD variants
    python -m tools.realvoice.diagnose vad   --data DIR               # segment lengths and how long turn ends stay open
    python -m tools.realvoice.diagnose edges --data DIR --bench OUT   # where turn-end words go wrong
    python -m tools.realvoice.diagnose swaps --data DIR --bench OUT   # attribution variants through the real pipeline
    python -m tools.realvoice.diagnose attr  --data DIR --bench OUT   # the same variants replayed on one ASR pass per audio
    python -m tools.realvoice.diagnose cosines --data DIR --bench OUT # turn embeddings against the voiceprint

``--bench OUT`` is a folder written by ``tools.realvoice.bench`` (its offline
and pseudo-reference transcripts and its streaming JSON lines are reused).
Each prints JSON lines and a short summary. The numbers in docs/realvoice.md
come from these commands.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import edge_agent  # noqa: F401  (first: pins BLAS to one thread before numpy loads, as the CLI does)
from edge_agent.asr.backend import AsrConfig, Decoded
from edge_agent.asr.whisper_ct2 import WhisperCT2 as WhisperEngine
from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.featurize import StreamFeaturizer
from edge_agent.audio.file_source import FileSource
from edge_agent.audio.frames import AudioFrame
from edge_agent.audio.pool import BufferPool
from edge_agent.audio.vad import FrameInfo, SegmentClosed, SegmentUpdate, VadConfig, VadSegmenter
from tools.realvoice import metrics as M
from tools.realvoice.tap import Tap

# ------------------------------------------------------------------ segments


@dataclass
class Seg:
    start: float  # seconds in the file
    audio: np.ndarray  # a copy (a measurement tool, not the device)
    reason: str
    is_speech: bool
    close_at: float  # audio time at which the VAD closed it

    @property
    def stop(self) -> float:
        return self.start + len(self.audio) / SAMPLE_RATE


class GatedVad(VadSegmenter):
    """webrtcvad AND an adaptive energy gate: a frame is voiced only above the noise floor + margin.

    The floor follows the quietest frames (drops at once, rises 0.05 dB per
    frame = 1.7 dB/s), so steady babble and ventilation noise stop counting
    as speech while real onsets, well above them, still do.
    """

    def __init__(self, config: VadConfig, featurizer: StreamFeaturizer, margin_db: float = 9.0) -> None:
        super().__init__(config, featurizer)
        self.margin_db = margin_db
        self.floor_db = -60.0
        inner = self.classifier
        outer = self

        class _Gate:
            def voiced(self, samples: np.ndarray) -> bool:
                x = samples.astype(np.float32) / 32768.0
                db = 10 * np.log10(float(np.mean(x * x)) + 1e-10)
                outer.floor_db = db if db < outer.floor_db else outer.floor_db + 0.05
                return inner.voiced(samples) and bool(db > outer.floor_db + outer.margin_db)

            def close(self) -> None:
                inner.close()

            def holds_audio(self) -> bool:
                return inner.holds_audio()

        self.classifier = _Gate()


class WebrtcKeptHybrid(VadSegmenter):
    """Exploratory (docs/realvoice.md, "A hybrid end", designed after the pre-registered rule was measured).

    webrtcvad decides start, kept end and speech time exactly as its own engine; Silero only ends a
    segment: after ``silero_hangover_ms`` of frames on which webrtcvad heard sound since Silero last
    scored >= ``silero_neg_threshold`` (kept end: that frame + tail). A segment in which Silero never
    heard voice is not speech (webrtcvad reopening on the noise of a noisy pause).
    """

    def __init__(self, config: VadConfig, featurizer: StreamFeaturizer) -> None:
        super().__init__(replace(config, engine="hybrid"), featurizer)
        self._noisy_frames = None  # the parent's rule is replaced by the one below
        self._n = config.frames_for(config.silero_hangover_ms)
        self._heard_end = 0
        self._heard_frames = 0
        self._quiet_sound = 0

    def process(self, frame: AudioFrame) -> list[Any]:
        self.frames_seen += 1
        self.classifier.voiced(frame.samples)
        w, s = self.classifier.sound, self.classifier.heard  # type: ignore[attr-defined]
        try:
            info = FrameInfo(frame.index, w, w, self.featurizer.push(frame.samples, frame.arrival), frame.arrival)
        finally:
            frame.release()
        if self._segment is None:
            events = self._idle(info)
            if self._segment is not None:
                self._heard_end, self._heard_frames, self._quiet_sound = 0, 0, 0
            return events
        seg = self._segment
        if seg.length + self.cfg.frame_samples > self.cfg.segment_capacity:
            return self._split() + self._step(info, s)
        return self._step(info, s)

    def _step(self, info: FrameInfo, s: bool) -> list[Any]:
        seg = self._segment
        assert seg is not None
        self._append(info)
        if s:
            self._heard_end, self._heard_frames, self._quiet_sound = seg.length, self._heard_frames + 1, 0
        else:
            self._quiet_sound += info.sound
        if self._silence_run >= self._hangover_frames:
            return self._judge(self._close("silence"))
        if self._quiet_sound >= self._n:
            self.noisy_pause_ends += 1
            self._last_voiced_end = min(self._last_voiced_end, self._heard_end)
            return self._judge(self._close("silence"))
        return self._maybe_update()

    def _judge(self, events: list[Any]) -> list[Any]:
        heard = self._heard_frames > 0
        return [replace(e, is_speech=e.is_speech and heard) if isinstance(e, SegmentClosed) else e for e in events]

    def _split_at(self, split: int, reason: str) -> list[Any]:
        events = self._judge(super()._split_at(split, reason))
        self._heard_end = max(0, self._heard_end - split)
        return events


def _silero(threshold: float, neg_threshold: float, hangover_ms: int) -> tuple[VadConfig, float | None]:
    return VadConfig(engine="silero", silero_threshold=threshold, silero_neg_threshold=neg_threshold,
                     silero_hangover_ms=hangover_ms), None


def _hybrid(end_threshold: float, noisy_ms: int) -> tuple[VadConfig, float | None]:
    return VadConfig(engine="hybrid", silero_neg_threshold=end_threshold, silero_hangover_ms=noisy_ms), None


# Silero VAD settings measured in docs/realvoice.md 8 (thresholds spelled out: the engine's defaults may move)
SILERO_VARIANTS: dict[str, tuple[VadConfig, float | None]] = {
    "silero 0.5/0.35 hang450": _silero(0.5, 0.35, 450),
    "silero 0.5/0.35 hang300": _silero(0.5, 0.35, 300),
    "silero 0.5/0.35 hang210": _silero(0.5, 0.35, 210),
    "silero 0.4/0.25 hang300": _silero(0.4, 0.25, 300),
    "silero 0.3/0.2 hang300": _silero(0.3, 0.2, 300),
    "silero 0.3/0.15 hang300": _silero(0.3, 0.15, 300),
    "silero 0.2/0.1 hang300": _silero(0.2, 0.1, 300),
    # the hybrid (webrtcvad starts; Silero below END for NOISY ms while webrtcvad hears sound ends): "hybrid END/NOISY"
    "hybrid 0.15/300": _hybrid(0.15, 300),
    "hybrid 0.1/300": _hybrid(0.1, 300),
    "hybrid 0.3/300": _hybrid(0.3, 300),
    # exploratory: webrtcvad keeps its own speech, Silero only ends noisy pauses (WebrtcKeptHybrid); gate -1 selects it
    "kept-hybrid 0.15/300": (VadConfig(silero_neg_threshold=0.15, silero_hangover_ms=300), -1.0),
    "kept-hybrid 0.3/300": (VadConfig(silero_neg_threshold=0.3, silero_hangover_ms=300), -1.0),
}

overflowing_updates: list[int] = []  # partial/candidate windows longer than the log-mel scratch (all calls)
noisy_pause_ends: list[int] = [0]  # segments the hybrid's noisy-pause rule closed in the last vad_segments call


def vad_segments(audio_path: Path, cfg: VadConfig, gate_db: float | None = None) -> list[Seg]:
    featurizer = StreamFeaturizer.standalone(cfg.frame_samples, cfg.segment_capacity)
    frames = BufferPool("frames", 256, cfg.frame_samples, np.int16)
    if gate_db == -1.0:
        vad: VadSegmenter = WebrtcKeptHybrid(cfg, featurizer)
    elif gate_db is not None:
        vad = GatedVad(cfg, featurizer, gate_db)
    else:
        vad = VadSegmenter(cfg, featurizer)
    tap = Tap()
    out: list[Seg] = []
    position = [0.0]

    def take(events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, SegmentUpdate) and ev.length > cfg.segment_capacity - cfg.frame_samples:
                overflowing_updates.append(ev.length)  # a partial decode of this window raises
            if isinstance(ev, SegmentClosed):
                seg = ev.segment
                out.append(Seg(seg.t0, tap.audio(seg), ev.reason, ev.is_speech, position[0]))

    frame: AudioFrame
    for frame in tap.frames(FileSource(audio_path).frames(frames)):
        position[0] = (frame.index + 1) * cfg.frame_samples / SAMPLE_RATE
        take(vad.process(frame))
    take(vad.flush())
    noisy_pause_ends[0] = vad.noisy_pause_ends
    return out


# ------------------------------------------------------------------ references


def load_refs(data: Path, only: str | None) -> list[tuple[Path, dict[str, Any]]]:
    refs = []
    for path in sorted(data.glob("visit*.json")):
        if only is None or only in path.stem:
            refs.append((path, json.loads(path.read_text())))
    return refs


def intervals_of(ref: dict[str, Any]) -> list[M.Interval]:
    return [M.Interval(i["speaker"], i["start_s"], i["stop_s"], i["kind"]) for i in ref["intervals"]]


def bench_offline(bench: Path, stem: str) -> dict[str, Any]:
    return json.loads((bench / "offline" / f"{stem}.json").read_text())


def bench_pseudo(bench: Path, visit: str) -> dict[str, Any]:
    return json.loads((bench / "pseudo" / f"{visit}.json").read_text())


# ------------------------------------------------------------------ ASR policies


@dataclass
class PolicyResult:
    text: str
    cpu_s: float
    early_ends: int  # decodes whose last timestamp ends > 1 s before the audio does
    continuations: int
    overflow: int  # segments longer than the pipeline's log-mel scratch (they raise in the pipeline)


def sentence_end(decoded: Decoded) -> float:
    return decoded.sentences[-1].end if decoded.sentences and decoded.text else 0.0


def decode_segments(engine: WhisperEngine, segs: list[Seg], beam: int, seek: bool | str, context_tokens: int = 64) -> PolicyResult:
    """The pipeline's final decode per segment (window = segment, 3 s pad, previous finals as context).

    ``seek``: when the decode's last timestamp ends more than 1 s before the
    audio, decode again from there (what Whisper's own transcribe loop does
    with its ``seek`` pointer) until the segment is covered (at most 3 times).
    ``seek="words"``: the same, but judged by the end of the last *aligned
    word* (the pipeline aligns words for every final anyway): catches
    decodes whose closing timestamp jumps to the window's end over speech
    they never transcribed.
    """
    engine.cfg = replace(engine.cfg, final_beam_size=beam)
    context: list[int] = []
    texts: list[str] = []
    cpu = 0.0
    early = cont = overflow = 0
    limit = int(15.0 * SAMPLE_RATE) + int(engine.cfg.pad_s * SAMPLE_RATE)
    for seg in segs:
        if not seg.is_speech:
            continue
        overflow += len(seg.audio) + engine.pad_samples > limit
        offset = 0
        for attempt in range(4 if seek else 1):
            window = seg.audio[offset:]
            if len(window) < SAMPLE_RATE // 2:
                break
            t = time.process_time()
            d = engine.decode_audio(window, final=True, context=(context[-context_tokens:] or None) if context_tokens else None)
            end = sentence_end(d)
            if seek == "words" and d.text:
                aligned = engine.align_words(d)
                end = aligned[-1].end if aligned else end
            cpu += time.process_time() - t
            if d.text:
                texts.append(d.text)
                context.extend(d.tokens)
            dur = len(window) / SAMPLE_RATE
            if dur - end <= 1.0:
                break
            early += attempt == 0
            if not seek:
                break
            cont += 1
            offset += max(int(end * SAMPLE_RATE), SAMPLE_RATE // 2)
    return PolicyResult(" ".join(texts), round(cpu, 2), early, cont, overflow)


def fw_per_segment(model: Any, segs: list[Seg]) -> PolicyResult:
    """faster-whisper's own transcribe() on each VAD segment (30 s windows, beam 5, seek)."""
    texts = []
    cpu = 0.0
    previous = ""
    for seg in segs:
        if not seg.is_speech:
            continue
        t = time.process_time()
        parts, _ = model.transcribe(seg.audio, initial_prompt=previous[-200:] or None)
        text = " ".join(p.text.strip() for p in parts)
        cpu += time.process_time() - t
        texts.append(text)
        previous = (previous + " " + text).strip()
    return PolicyResult(" ".join(texts), round(cpu, 2), 0, 0, 0)


def cmd_asr(args: argparse.Namespace) -> None:
    engine = WhisperEngine(AsrConfig(), int(28.0 * SAMPLE_RATE) + 480)  # scratch big enough for any segment: measure, don't crash
    fw = engine.model
    vads: dict[str, tuple[VadConfig, float | None]] = {
        "webrtc2": (VadConfig(), None),
        "webrtc2+gate9": (VadConfig(), 9.0),
        "webrtc2 hang300": (VadConfig(hangover_ms=300, candidate_ms=240), None),
        **SILERO_VARIANTS,
    }
    if args.vads:
        vads = {k: v for k, v in vads.items() if k in args.vads.split(",")}
    policies: dict[str, Callable[[list[Seg]], PolicyResult]] = {
        "beam2 (current)": lambda s: decode_segments(engine, s, 2, False),
        "beam1": lambda s: decode_segments(engine, s, 1, False),
        "beam5": lambda s: decode_segments(engine, s, 5, False),
        "beam2+seek": lambda s: decode_segments(engine, s, 2, True),
        "beam5+seek": lambda s: decode_segments(engine, s, 5, True),
        "beam2+wordseek": lambda s: decode_segments(engine, s, 2, "words"),
        "beam2 no context": lambda s: decode_segments(engine, s, 2, False, context_tokens=0),
        "fw.transcribe per segment": lambda s: fw_per_segment(fw, s),
    }
    for path, ref in load_refs(args.data, args.only):
        audio = path.parent / ref["audio"]
        offline = bench_offline(args.bench, path.stem)
        pseudo = bench_pseudo(args.bench, ref["visit"])
        off_words, clean = M.normalise(offline["text"]), M.normalise(pseudo["text"])
        for vad_name, (vcfg, gate) in vads.items():
            segs = vad_segments(audio, vcfg, gate)
            for name, run in policies.items():
                if vad_name != "webrtc2" and name not in ("beam2 (current)", "beam2+seek"):
                    continue
                if args.variant and not any(name.startswith(v) for v in args.variant.split(",")):
                    continue
                if args.variant and vad_name != "webrtc2" and "gate" not in args.variant and not args.vads:
                    continue
                r = run(segs)
                hyp = M.normalise(r.text)
                row = {"audio": path.stem, "vad": vad_name, "policy": name, "segments": int(sum(bool(s.is_speech) for s in segs)),
                       "coverage": M.align(off_words, hyp).coverage, "deletion_rate": M.align(off_words, hyp).deletion_rate, "wer_vs_offline": M.align(off_words, hyp).wer,
                       "wer_vs_clean": M.align(clean, hyp).wer, "offline_wer_vs_clean": M.align(clean, off_words).wer,
                       "cpu_s": r.cpu_s, "offline_cpu_s": offline["transcribe_cpu_s"], "early_ends": r.early_ends,
                       "continuations": r.continuations, "overflow_segments": r.overflow}
                print(json.dumps(row), flush=True)


# ------------------------------------------------------------------ VAD


def held_open(segs: list[Seg], turns: list[M.Interval], cfg: VadConfig) -> list[float]:
    """Reference turn end -> the VAD closing the segment that holds it (audio seconds)."""
    out = []
    for turn in turns:
        holder = [s for s in segs if s.start - 0.05 <= turn.stop <= s.stop + 0.3]
        if holder:
            out.append(round(holder[0].close_at - turn.stop, 3))
    return out


def cmd_vad(args: argparse.Namespace) -> None:
    variants: dict[str, tuple[VadConfig, float | None]] = {
        "webrtc2 (current)": (VadConfig(), None),
        "webrtc3": (VadConfig(aggressiveness=3), None),
        "webrtc2 hang300": (VadConfig(hangover_ms=300, candidate_ms=240), None),
        "webrtc2+gate6": (VadConfig(), 6.0),
        "webrtc2+gate9": (VadConfig(), 9.0),
        "webrtc2+gate9 hang300": (VadConfig(hangover_ms=300, candidate_ms=240), 9.0),
        **SILERO_VARIANTS,
    }
    if args.vads:
        variants = {k: v for k, v in variants.items() if k in args.vads.split(",")}
    for path, ref in load_refs(args.data, args.only):
        turns = [i for i in intervals_of(ref) if i.kind == "turn"]
        speech = sum(i.stop - i.start for i in turns)
        for name, (cfg, gate) in variants.items():
            segs = [s for s in vad_segments(path.parent / ref["audio"], cfg, gate) if s.is_speech]
            lengths = [s.stop - s.start for s in segs]
            held = held_open(segs, turns, cfg)
            covered = _covered_speech(segs, turns)
            print(json.dumps({
                "audio": path.stem, "vad": name, "segments": len(segs),
                "length_p50_s": M.percentile(lengths, 50), "length_p95_s": M.percentile(lengths, 95),
                "max_length_splits": sum(1 for s in segs if s.reason == "max_length"),
                "turn_end_held_p50_s": M.percentile(held, 50), "turn_end_held_p95_s": M.percentile(held, 95),
                "speech_in_segments": round(covered / speech, 4),
                "segments_spanning_a_turn_change": _spanning(segs, turns),
                "noisy_pause_ends": noisy_pause_ends[0],
            }), flush=True)


def _covered_speech(segs: list[Seg], turns: list[M.Interval]) -> float:
    total = 0.0
    for t in turns:
        for s in segs:
            total += max(0.0, min(t.stop, s.stop) - max(t.start, s.start))
    return total


def _spanning(segs: list[Seg], turns: list[M.Interval]) -> int:
    changes = M.reference_changes(turns)
    return sum(1 for c in changes if any(s.start < c.start - 0.3 and s.stop > c.stop + 0.3 for s in segs))


# ------------------------------------------------------------------ turn edges


def stream_events(bench: Path, name: str) -> list[dict[str, Any]]:
    out = []
    for line in (bench / "stream" / f"{name}.jsonl").read_text().splitlines():
        wall, rec = line.split("\t", 1)
        out.append(json.loads(rec) | {"wall": float(wall)})
    return out


def cmd_edges(args: argparse.Namespace) -> None:
    """Each turn-end word given to the next speaker: in what kind of segment did it sit?"""
    for path, ref in load_refs(args.data, args.only):
        for enrol in ("noenrol", "enrol"):
            name = f"{path.stem}_{enrol}"
            if not (args.bench / "stream" / f"{name}.jsonl").exists():
                continue
            events = stream_events(args.bench, name)
            finals = [e for e in events if e["type"] == "final"]
            words = [M.HypWord(w["w"], w["t0"], w["t1"], f["speaker"], f["segment"]) for f in finals for w in f["words"]]
            intervals = intervals_of(ref)
            scored = M.score_words(words, intervals)
            mapping = M.attribution(scored).mapping if enrol == "noenrol" else {"clinician": "clinician", "patient": "patient"}
            spans: dict[int, list[float]] = {}
            parts: dict[int, int] = {}
            for f in finals:
                lo, hi = spans.get(f["segment"], [f["t0"], f["t1"]])
                spans[f["segment"]] = [min(lo, f["t0"]), max(hi, f["t1"])]
                parts[f["segment"]] = parts.get(f["segment"], 0) + 1
            turns = sorted((t for t in intervals if t.kind == "turn"), key=lambda t: t.start)
            kinds: dict[str, int] = {}
            for prev, nxt in itertools.pairwise(turns):
                if prev.speaker == nxt.speaker:
                    continue
                for s in scored:
                    if s.ref != prev.speaker or not prev.stop - 1.0 <= s.word.mid <= prev.stop + 0.3:
                        continue
                    if mapping.get(s.word.speaker) != nxt.speaker:
                        continue
                    lo, hi = spans[s.word.segment]
                    spans_change = lo < prev.stop - 0.2 and hi > nxt.start + 0.2
                    if not spans_change:
                        kind = "segment holds one turn: whole segment mislabelled"
                    elif parts[s.word.segment] == 1:
                        kind = "segment spans the change, not split"
                    else:
                        kind = "segment spans the change, split at the wrong place"
                    kinds[kind] = kinds.get(kind, 0) + 1
            print(json.dumps({"condition": name, "turn_end_words_to_next_speaker": kinds}), flush=True)


# ------------------------------------------------------------------ identity swaps


def sticky_attributor_class() -> type:
    """SpeakerAttributor whose two clusters keep their names once both voices exist.

    The stock attributor (no voiceprint) re-clusters the whole history at
    every segment and re-decides which cluster is the clinician from the
    summed role-classifier log-odds of each cluster, so the names follow
    whichever cluster's text currently reads more like a doctor. Here the
    names are decided once, when two voices are first established, and then
    carried to the new clusters by centroid similarity.
    """
    from edge_agent.speakers.attribution import SpeakerAttributor

    class StickyAttributor(SpeakerAttributor):
        named: np.ndarray | None = None  # (clinician centroid, patient centroid) last time

        def _decide(self, embed: np.ndarray, seconds: float, text: str) -> tuple[str, float]:
            speaker, conf = super()._decide(embed, seconds, text)
            if self._voiceprint is not None or self._centroids is None or speaker == "other":
                return speaker, conf
            cents = self._centroids
            own = int(np.argmax(cents @ embed))
            if self.named is None:
                clin = own if speaker == "clinician" else 1 - own
            else:
                clin = int(np.argmax(cents @ self.named[0] - cents @ self.named[1]))
            self.named = np.stack([cents[clin], cents[1 - clin]])
            return ("clinician" if own == clin else "patient"), conf

    return StickyAttributor


def voiceprint_named_class() -> type:
    """Unsupervised clusters with sticky names, the voiceprint only says which one is the clinician.

    The voiceprint is enrolled close-talk on the phone; in a reverberant room
    the clinician's own segments score below the calibrated 0.89 against it,
    so the stock anchored two-means (and its threshold start) pulls the
    clinician into the patient's cluster. Here the voiceprint never takes
    part in clustering or thresholds: it names the clusters when two voices
    are first established (the nearer centroid is the clinician), and
    the names then follow the clusters by continuity.
    """
    sticky = sticky_attributor_class()

    class VoiceprintNamed(sticky):  # type: ignore[misc, valid-type]
        def __init__(self, encoder: Any, roles: Any, voiceprint: Any, config: Any = None) -> None:
            super().__init__(encoder, roles, None, config)
            self.vp = np.array(voiceprint.embedding, np.float32, copy=True)

        def _decide(self, embed: np.ndarray, seconds: float, text: str) -> tuple[str, float]:
            first = self.named is None
            speaker, conf = super()._decide(embed, seconds, text)
            if self._centroids is None:
                # one voice so far: the voiceprint decides, relative to nothing else: call it the clinician
                # when it is at least as close as the calibrated threshold minus the room's loss
                return ("clinician" if float(embed @ self.vp) >= 0.75 else "patient"), conf
            if first and self.named is not None and speaker != "other":
                cents = self._centroids
                clin = int(np.argmax(cents @ self.vp))
                self.named = np.stack([cents[clin], cents[1 - clin]])
                own = int(np.argmax(cents @ embed))
                return ("clinician" if own == clin else "patient"), conf
            return speaker, conf

        def forget(self) -> None:
            self.vp.fill(0.0)
            super().forget()

    return VoiceprintNamed


def run_pipeline(audio: Path, attributor: Any) -> list[M.HypWord]:
    from edge_agent.asr.events import FinalTranscript
    from edge_agent.device.pipeline import PipelineConfig, StreamingPipeline

    cfg = PipelineConfig()
    engine = _engine_cache.setdefault("e", WhisperEngine(cfg.asr, int(cfg.vad.max_segment_s * SAMPLE_RATE) + 480))
    words: list[M.HypWord] = []

    def sink(event: Any) -> None:
        if isinstance(event, FinalTranscript):
            u = event.utterance
            words.extend(M.HypWord(w.text, w.t0, w.t1, u.speaker, u.segment_id) for w in u.words)

    StreamingPipeline(cfg, engine, sink, attributor).run(FileSource(audio))
    attributor.forget()
    return words


_engine_cache: dict[str, WhisperEngine] = {}


def cmd_swaps(args: argparse.Namespace) -> None:
    """Attribution variants through the real pipeline (unpaced): names, enrolment use, thresholds."""
    from edge_agent.speakers.attribution import AttributionConfig, SpeakerAttributor
    from edge_agent.speakers.encoder import EncoderConfig, SpeakerEncoder
    from edge_agent.speakers.enrol import Voiceprint
    from edge_agent.speakers.role import RoleClassifier

    encoder, roles = SpeakerEncoder(EncoderConfig(threads=1)), RoleClassifier(threads=1)
    sticky = sticky_attributor_class()
    variants: dict[str, tuple[type, AttributionConfig | None, bool]] = {
        "no enrolment, stock": (SpeakerAttributor, None, False),
        "no enrolment, sticky names": (sticky, None, False),
        "enrolment, stock (anchored, threshold 0.89)": (SpeakerAttributor, None, True),
        "enrolment, voiceprint names the clusters": (SpeakerAttributor, AttributionConfig(enrolled_method="clusters"), True),
        "enrolment, voiceprint names sticky clusters": (voiceprint_named_class(), None, True),
        # real voices: clinician turns score 0.83-0.97 against a close-talk voiceprint, patients 0.46-0.66
        "enrolment, real-voice thresholds 0.75/0.70": (SpeakerAttributor, AttributionConfig(threshold=0.75, window_threshold=0.70), True),
    }
    wanted = [v for v in variants if args.variant is None or any(w in v for w in args.variant.split(","))]
    for path, ref in load_refs(args.data, args.only):
        intervals = intervals_of(ref)
        vp_path = args.bench / "voiceprints" / f"{ref['visit']}.json"
        vp = Voiceprint.from_list(json.loads(vp_path.read_text()))
        for name in wanted:
            cls, cfg, enrolled = variants[name]
            words = run_pipeline(path.parent / ref["audio"], cls(encoder, roles, vp if enrolled else None, cfg))
            scored = M.score_words(words, intervals)
            attr = M.attribution(scored)
            swaps = M.identity_swaps(scored)
            bounds = M.turn_boundaries(M.reference_changes(intervals), M.hypothesis_changes(words))
            edges = M.turn_edge_errors(scored, intervals, attr.mapping if not enrolled else {"clinician": "clinician", "patient": "patient"})
            print(json.dumps({"audio": path.stem, "attributor": name,
                              "attribution": attr.labelled if enrolled else attr.mapped,
                              "attribution_mapped": attr.mapped, "swaps": swaps.swaps,
                              "windows": [",".join(f"{k[0]}>{v[0]}" for k, v in sorted(m.items())) for m in swaps.windows],
                              "per_speaker": attr.per_speaker_mapped, "boundary_p90_s": bounds.p90, **edges}), flush=True)


def asr_cache(audio: Path, engine: WhisperEngine) -> list[tuple[Seg, str, list[Any]]]:
    """The pipeline's VAD segments with their final text and word timings, decoded once."""
    out = []
    context: list[int] = []
    for seg in vad_segments(audio, VadConfig()):
        if not seg.is_speech:
            continue
        d = engine.decode_audio(seg.audio, final=True, context=context[-64:] or None)
        if not d.text:
            continue
        context.extend(d.tokens)
        out.append((seg, d.text, engine.align_words(d)))
    return out


def replay(cache: list[tuple[Seg, str, list[Any]]], attributor: Any) -> list[M.HypWord]:
    """Attribute cached segments as pipeline.py does (spans, words by start time); no ASR."""
    words: list[M.HypWord] = []
    for k, (seg, text, decoded_words) in enumerate(cache):
        spans = attributor.attribute_segment(seg.audio, text, [(w.text, w.start) for w in decoded_words])
        spans = [(sp.start / SAMPLE_RATE, sp.stop / SAMPLE_RATE, sp.speaker) for sp in spans]
        for i, (a, b, speaker) in enumerate(spans):
            last = i == len(spans) - 1
            for w in decoded_words:
                if len(spans) == 1 or a <= w.start < b or (last and w.start >= b):
                    words.append(M.HypWord(w.text, seg.start + w.start, seg.start + w.end, speaker, k))
    attributor.forget()
    return words


def cmd_attr(args: argparse.Namespace) -> None:
    """Like ``swaps`` but decodes each audio once and replays every attribution variant on it."""
    from edge_agent.speakers.attribution import AttributionConfig, SpeakerAttributor
    from edge_agent.speakers.encoder import EncoderConfig, SpeakerEncoder
    from edge_agent.speakers.enrol import Voiceprint
    from edge_agent.speakers.role import RoleClassifier

    encoder, roles = SpeakerEncoder(EncoderConfig(threads=1)), RoleClassifier(threads=1)
    engine = WhisperEngine(AsrConfig(), int(15.1 * SAMPLE_RATE) + 480)
    variants: dict[str, tuple[type, AttributionConfig | None, bool]] = {
        "no enrolment, stock": (SpeakerAttributor, None, False),
        "no enrolment, sticky names": (sticky_attributor_class(), None, False),
        "enrolment, stock": (SpeakerAttributor, None, True),
        "enrolment, voiceprint names sticky clusters": (voiceprint_named_class(), None, True),
        "enrolment, real-voice thresholds 0.75/0.70": (SpeakerAttributor, AttributionConfig(threshold=0.75, window_threshold=0.70), True),
    }
    for path, ref in load_refs(args.data, args.only):
        intervals = intervals_of(ref)
        vp = Voiceprint.from_list(json.loads((args.bench / "voiceprints" / f"{ref['visit']}.json").read_text()))
        cache = asr_cache(path.parent / ref["audio"], engine)
        for name, (cls, cfg, enrolled) in variants.items():
            words = replay(cache, cls(encoder, roles, vp if enrolled else None, cfg))
            scored = M.score_words(words, intervals)
            attr = M.attribution(scored)
            swaps = M.identity_swaps(scored)
            bounds = M.turn_boundaries(M.reference_changes(intervals), M.hypothesis_changes(words))
            edges = M.turn_edge_errors(scored, intervals, attr.mapping if not enrolled else {"clinician": "clinician", "patient": "patient"})
            print(json.dumps({"audio": path.stem, "attributor": name, "attribution": attr.labelled if enrolled else attr.mapped,
                              "swaps": swaps.swaps, "per_speaker": attr.per_speaker_mapped,
                              "boundary_errors_s": bounds.errors, **edges}), flush=True)


def cmd_cosines(args: argparse.Namespace) -> None:
    """Cosine of each reference turn's GE2E embedding to the close-talk voiceprint, by speaker and mic."""
    import soundfile as sf

    from edge_agent.speakers.encoder import EncoderConfig, SpeakerEncoder
    from edge_agent.speakers.enrol import Voiceprint

    encoder = SpeakerEncoder(EncoderConfig(threads=1))
    for path, ref in load_refs(args.data, args.only):
        vp = np.array(Voiceprint.from_list(json.loads((args.bench / "voiceprints" / f"{ref['visit']}.json").read_text())).embedding, np.float32)
        audio, _ = sf.read(str(path.parent / ref["audio"]), dtype="float32")
        overlaps = [(o["start_s"], o["stop_s"]) for o in ref["overlaps"]]
        cos: dict[str, list[float]] = {"clinician": [], "patient": []}
        turn_embeds: dict[str, list[np.ndarray]] = {"clinician": [], "patient": []}
        for t in ref["turns"]:
            lo, hi = t["start_s"], t["stop_s"]
            for a, b in overlaps:  # keep the turn's part outside overlaps (its longest clean stretch)
                if a <= lo < b:
                    lo = b
                if a < hi <= b:
                    hi = a
            if hi - lo < 1.6:
                continue
            e = encoder.embed(np.ascontiguousarray(audio[int(lo * SAMPLE_RATE) : int(hi * SAMPLE_RATE)]))
            cos[t["speaker"]].append(round(float(e @ vp), 3))
            turn_embeds[t["speaker"]].append(e)
        centroid = {k: v and np.mean(v, axis=0) for k, v in turn_embeds.items()}
        between = float(centroid["clinician"] @ centroid["patient"] / (np.linalg.norm(centroid["clinician"]) * np.linalg.norm(centroid["patient"]))) if all(len(v) for v in turn_embeds.values()) else None
        print(json.dumps({"audio": path.stem, "cos_to_voiceprint": cos, "clinician_vs_patient_centroids": between and round(between, 3)}), flush=True)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("asr", "vad", "edges", "swaps", "cosines", "attr"))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--bench", type=Path, default=None)
    parser.add_argument("--only", default=None)
    parser.add_argument("--vads", default=None, help="asr, vad: comma list of VAD variant names (default: all)")
    parser.add_argument("--variant", default=None, help="swaps: only variants whose name contains this; asr: comma list of policy name prefixes")
    args = parser.parse_args(argv)
    {"asr": cmd_asr, "vad": cmd_vad, "edges": cmd_edges, "swaps": cmd_swaps, "cosines": cmd_cosines, "attr": cmd_attr}[args.what](args)


if __name__ == "__main__":
    main()
