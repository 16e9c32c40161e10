"""Speaker attribution benchmark: % of speech time attributed to the right role.

Input: conversations as (16 kHz audio, reference turns with role/t0/t1/text).
Each conversation is segmented with webrtcvad using the pipeline's defaults
(30 ms frames, mode 2, 450 ms hang-over, 15 s max), every segment is
attributed (split at change points) by a fresh :class:`SpeakerAttributor` per
visit, and the hypothesis is compared with the reference frame by frame (10 ms).

Scoring: the denominator is reference speech time where exactly one role
speaks (overlapped time is reported separately, not scored); speech the VAD
missed counts as wrong. Reference roles ``doctor``/``clinician`` map to
clinician. The segment text given to the role classifier is the reference
words falling in the segment (word times interpolated over each turn), a
stand-in for the ASR text that keeps the benchmark fast; pass ``text_for`` to
plug in real ASR.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import webrtcvad

from edge_agent.audio.speaker_frontend import SAMPLE_RATE
from edge_agent.speakers.attribution import CLINICIAN, AttributionConfig, SpeakerAttributor
from edge_agent.speakers.encoder import SpeakerEncoder
from edge_agent.speakers.enrol import Voiceprint
from edge_agent.speakers.role import RoleClassifier

FRAME_S = 0.01
_VAD_FRAME = 480


@dataclass(frozen=True)
class RefTurn:
    role: str  # "clinician"/"doctor" or "patient" (anything else: "other")
    t0: float
    t1: float
    text: str = ""


@dataclass
class EvalConversation:
    id: str
    audio: np.ndarray  # 16 kHz mono float32
    turns: Sequence[RefTurn]
    voiceprint: Voiceprint | None = None  # the clinician's, for the "with enrolment" run


TextFor = Callable[[EvalConversation, float, float], str]


def _norm_role(role: str) -> str:
    role = role.lower()
    if role in ("doctor", "clinician"):
        return "clinician"
    return "patient" if role == "patient" else "other"


def vad_segments(audio: np.ndarray, aggressiveness: int = 2, hangover_s: float = 0.45, max_s: float = 15.0) -> list[tuple[int, int]]:
    """Speech segments (start, stop) in samples, roughly as the pipeline's segmenter cuts them."""
    vad = webrtcvad.Vad(aggressiveness)
    n = len(audio) // _VAD_FRAME
    scratch = np.zeros(_VAD_FRAME, np.int16)
    flags = np.zeros(n, bool)
    for i in range(n):
        np.multiply(np.clip(audio[i * _VAD_FRAME : (i + 1) * _VAD_FRAME], -1, 1), 32767, out=scratch, casting="unsafe")
        flags[i] = vad.is_speech(scratch.view(np.uint8).data, SAMPLE_RATE)
    scratch.fill(0)
    hang = int(hangover_s / 0.03)
    max_frames = int(max_s / 0.03)
    segs: list[tuple[int, int]] = []
    start, last, silence = -1, -1, 0
    for i, voiced in enumerate(flags):
        if start < 0:
            if voiced:
                start, last, silence = i, i, 0
            continue
        if voiced:
            last, silence = i, 0
        else:
            silence += 1
        if silence > hang or i - start >= max_frames:
            segs.append((start, last + 1))
            start = -1
    if start >= 0:
        segs.append((start, last + 1))
    pad = 5  # 150 ms tail/pre-roll like the pipeline
    return [(max(0, a - pad) * _VAD_FRAME, min(n, b + pad) * _VAD_FRAME) for a, b in segs if b - a >= 7]


def reference_text(conv: EvalConversation, t0: float, t1: float) -> str:
    """Words of the reference turns whose (interpolated) time falls in [t0, t1)."""
    return " ".join(word for word, _ in reference_words(conv, t0, t1))


def reference_words(conv: EvalConversation, t0: float, t1: float) -> list[tuple[str, float]]:
    """(word, seconds after t0) of reference words whose interpolated time falls in [t0, t1)."""
    out: list[tuple[str, float]] = []
    for turn in conv.turns:
        if turn.t1 <= t0 or turn.t0 >= t1 or not turn.text:
            continue
        words = turn.text.split()
        span = max(turn.t1 - turn.t0, 1e-3)
        for k, word in enumerate(words):
            at = turn.t0 + span * (k + 0.5) / len(words)
            if t0 <= at < t1:
                out.append((word, at - t0))
    out.sort(key=lambda item: item[1])
    return out


def _reference_frames(conv: EvalConversation, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms frame: role index (0 clinician, 1 patient, 2 other, -1 none) and overlap flag."""
    counts = np.zeros((3, n_frames), np.int32)
    index = {"clinician": 0, "patient": 1, "other": 2}
    for turn in conv.turns:
        a, b = int(turn.t0 / FRAME_S), int(turn.t1 / FRAME_S)
        counts[index[_norm_role(turn.role)], max(0, a) : min(n_frames, b)] = 1
    active = (counts > 0).sum(axis=0)
    role = np.where(active == 1, np.argmax(counts, axis=0), -1)
    return role, active > 1


def attribute_conversation(
    conv: EvalConversation,
    encoder: SpeakerEncoder,
    roles: RoleClassifier | None,
    use_voiceprint: bool,
    config: AttributionConfig | None = None,
    text_for: TextFor = reference_text,
    final: bool = True,
) -> np.ndarray:
    """Hypothesis role index per 10 ms frame (-1 where no segment).

    ``final``: each part gets its voice's final label (decided once with the whole
    conversation, as the report uses them); otherwise the live, provisional label.
    """
    n_frames = int(len(conv.audio) / SAMPLE_RATE / FRAME_S) + 1
    hyp = np.full(n_frames, -1, np.int8)
    index = {"clinician": 0, "patient": 1, "other": 2}
    vp = conv.voiceprint if use_voiceprint else None
    attributor = SpeakerAttributor(encoder, roles, vp, config)
    parts: list[tuple[int, int, int, str]] = []
    try:
        for a, b in vad_segments(conv.audio):
            words = reference_words(conv, a / SAMPLE_RATE, b / SAMPLE_RATE) if text_for is reference_text else None
            text = "" if words is not None else text_for(conv, a / SAMPLE_RATE, b / SAMPLE_RATE)
            for part in attributor.attribute_segment(conv.audio[a:b], text, words):
                f0 = int((a + part.start) / SAMPLE_RATE / FRAME_S)
                f1 = int((a + part.stop) / SAMPLE_RATE / FRAME_S)
                parts.append((f0, f1, part.entry, part.speaker))
        labels = attributor.final_labels() if final else []
    finally:
        attributor.forget()
    for f0, f1, entry, speaker in parts:
        if final and 0 <= entry < len(labels):
            speaker = labels[entry][0]
        hyp[f0:f1] = index[speaker] if speaker in index else -1
    return hyp


def score(conv: EvalConversation, hyp: np.ndarray) -> dict[str, float]:
    ref, overlap = _reference_frames(conv, len(hyp))
    scored = ref >= 0
    total = float(scored.sum())
    correct = float(((hyp == ref) & scored).sum())
    return {
        "speech_s": total * FRAME_S,
        "correct_s": correct * FRAME_S,
        "overlap_s": float(overlap.sum()) * FRAME_S,
        "missed_s": float(((hyp < 0) & scored).sum()) * FRAME_S,
        "accuracy": correct / total if total else 0.0,
    }


def evaluate(
    conversations: Sequence[EvalConversation],
    encoder: SpeakerEncoder | None = None,
    roles: RoleClassifier | None = None,
    config: AttributionConfig | None = None,
    text_for: TextFor = reference_text,
) -> dict[str, object]:
    """Attribution accuracy with and without enrolment (final labels, and live), plus embedding cost.

    Returns ``{"with_enrolment": %, "without_enrolment": %, "..._live": %, "per_conversation": [...],
    "embed_ms_per_audio_s": ..., "embed_cpu_share_1core": ..., "model_load_s": ...}``.
    "with_enrolment" covers only conversations that carry a voiceprint.
    """
    encoder = encoder or SpeakerEncoder()
    roles = roles or RoleClassifier()
    rows = []
    totals = {"with": [0.0, 0.0], "without": [0.0, 0.0], "with_live": [0.0, 0.0], "without_live": [0.0, 0.0]}
    cpu0, audio_s = time.process_time(), 0.0
    emb0, aud0 = encoder.embed_seconds, encoder.audio_seconds
    for conv in conversations:
        row: dict[str, object] = {"id": conv.id, "audio_s": round(len(conv.audio) / SAMPLE_RATE, 1)}
        modes = [("without", False)] + ([("with", True)] if conv.voiceprint is not None else [])
        for name, use_vp in modes:
            res = score(conv, attribute_conversation(conv, encoder, roles, use_vp, config, text_for))
            live = score(conv, attribute_conversation(conv, encoder, roles, use_vp, config, text_for, final=False))
            totals[name][0] += res["correct_s"]
            totals[name][1] += res["speech_s"]
            totals[name + "_live"][0] += live["correct_s"]
            totals[name + "_live"][1] += live["speech_s"]
            row[f"{name}_enrolment"] = round(100 * res["accuracy"], 2)
            row[f"{name}_enrolment_live"] = round(100 * live["accuracy"], 2)
            row["overlap_s"] = round(res["overlap_s"], 1)
            row["missed_s"] = round(res["missed_s"], 1)
            audio_s += len(conv.audio) / SAMPLE_RATE
        rows.append(row)
    cpu = time.process_time() - cpu0
    embed_s = encoder.embed_seconds - emb0
    embedded_audio = encoder.audio_seconds - aud0

    def pct(key: str) -> float | None:
        c, t = totals[key]
        return round(100 * c / t, 2) if t else None

    return {
        "with_enrolment": pct("with"),  # final labels: what the report is built on
        "without_enrolment": pct("without"),
        "with_enrolment_live": pct("with_live"),  # provisional labels of live finals
        "without_enrolment_live": pct("without_live"),
        "conversations": len(conversations),
        "per_conversation": rows,
        "embed_ms_per_audio_s": round(1000 * embed_s / embedded_audio, 2) if embedded_audio else None,
        "embed_cpu_share_1core": round(embed_s / embedded_audio, 4) if embedded_audio else None,
        "attribution_cpu_s_per_audio_s": round(cpu / audio_s, 4) if audio_s else None,
        "model_load_s": round(encoder.load_seconds, 3),
    }


def first_seconds(conv: EvalConversation, seconds: float) -> EvalConversation:
    """The conversation cut to its first ``seconds`` (turns that start later are dropped)."""
    n = int(seconds * SAMPLE_RATE)
    return EvalConversation(conv.id, conv.audio[:n], [t for t in conv.turns if t.t0 < seconds], conv.voiceprint)


def calibrate_threshold(
    conversations: Sequence[EvalConversation],
    encoder: SpeakerEncoder,
    candidates: Sequence[float] = tuple(round(0.80 + 0.01 * i, 2) for i in range(16)),
    min_turn_s: float = 1.0,
) -> dict[str, object]:
    """Cosine-to-voiceprint threshold that maximises time-weighted accuracy on clean turns.

    Scores every reference turn of at least ``min_turn_s`` that no other role
    overlaps against the conversation's voiceprint; returns the best threshold
    with miss / false-accept rates per candidate (how docs/speakers.md got 0.89).
    """
    pos: list[tuple[float, float]] = []
    neg: list[tuple[float, float]] = []
    for conv in conversations:
        if conv.voiceprint is None:
            continue
        for turn in conv.turns:
            if turn.t1 - turn.t0 < min_turn_s:
                continue
            if any(_norm_role(o.role) != _norm_role(turn.role) and o.t1 > turn.t0 and o.t0 < turn.t1 for o in conv.turns):
                continue
            seg = conv.audio[int(turn.t0 * SAMPLE_RATE) : int(turn.t1 * SAMPLE_RATE)]
            cos = float(encoder.embed(seg) @ conv.voiceprint.embedding)
            (pos if _norm_role(turn.role) == CLINICIAN else neg).append((cos, turn.t1 - turn.t0))
    p, n = np.array(pos).reshape(-1, 2), np.array(neg).reshape(-1, 2)
    table = []
    for thr in candidates:
        miss = float((p[:, 0] < thr) @ p[:, 1] / max(p[:, 1].sum(), 1e-9))
        fa = float((n[:, 0] >= thr) @ n[:, 1] / max(n[:, 1].sum(), 1e-9))
        acc = 1 - (miss * p[:, 1].sum() + fa * n[:, 1].sum()) / max(p[:, 1].sum() + n[:, 1].sum(), 1e-9)
        table.append({"threshold": thr, "miss": round(miss, 3), "false_accept": round(fa, 3), "accuracy": round(float(acc), 3)})
    best = max(table, key=lambda row: row["accuracy"])
    return {"threshold": best["threshold"], "turns": (len(p), len(n)), "table": table}


def score_words(conv: EvalConversation, utterances: Sequence[object]) -> dict[str, float]:
    """Word-time accuracy of pipeline utterances against the reference turns.

    Every final word (start, end, its utterance's speaker) is scored at its
    10 ms frames that exactly one reference role holds; frames of reference
    speech that no final word covers are reported as ``uncovered_s`` (ASR
    misses, not attribution errors) and left out of the accuracy.
    """
    n_frames = int(len(conv.audio) / SAMPLE_RATE / FRAME_S) + 1
    ref, _ = _reference_frames(conv, n_frames)
    hyp = np.full(n_frames, -1, np.int8)
    index = {"clinician": 0, "patient": 1, "other": 2}
    for utt in utterances:
        role = index.get(getattr(utt, "speaker", ""), 3)
        for word in getattr(utt, "words", ()):
            f0 = int(word.t0 / FRAME_S)
            f1 = max(int(word.t1 / FRAME_S), f0 + 1)
            hyp[max(0, f0) : min(n_frames, f1)] = role
    scored = (ref >= 0) & (hyp >= 0)
    total = float(scored.sum())
    correct = float(((hyp == ref) & scored).sum())
    return {
        "scored_s": total * FRAME_S,
        "correct_s": correct * FRAME_S,
        "uncovered_s": float(((ref >= 0) & (hyp < 0)).sum()) * FRAME_S,
        "accuracy": correct / total if total else 0.0,
    }


def pipeline_accuracy(
    conversations: Sequence[EvalConversation], modes: Sequence[bool] = (True, False), realtime: bool = False
) -> dict[str, object]:
    """The live figure: conversations through the real pipeline (VAD, Whisper, attribution).

    Each conversation is streamed by :class:`~edge_agent.device.session.TranscriptionSession`
    from a synthetic (espeak-ng) FLAC in a temporary directory that is removed
    afterwards (FileSource reads files only); the FinalTranscript words are
    scored by :func:`score_words`. ``modes``: with (True) / without (False) the voiceprint.
    ``realtime`` paces the file like a microphone: the device's operating
    condition, and the one where the speaker cost share is meaningful (unpaced,
    the number of speculative and partial decodes depends on thread timing and
    the pipeline's CPU per audio second swung between 0.036 and 0.056 here).
    """
    import tempfile
    from pathlib import Path

    import soundfile as sf

    from edge_agent.asr.events import FinalTranscript, SpeakerRelabel, apply_relabels
    from edge_agent.audio.file_source import FileSource
    from edge_agent.device.pipeline import PipelineConfig
    from edge_agent.device.session import TranscriptionSession

    session = TranscriptionSession.load(PipelineConfig(), speakers=True)
    totals = {m: [0.0, 0.0] for m in modes}
    rows = []
    cpu0, wall0, audio_s = time.process_time(), time.perf_counter(), 0.0
    assert session.speakers is not None
    emb0 = session.speakers.encoder.embed_seconds
    with tempfile.TemporaryDirectory(prefix="edge-agent-spkbench-") as tmp:
        for conv in conversations:
            path = Path(tmp) / "conversation.flac"
            sf.write(str(path), conv.audio, SAMPLE_RATE)
            row: dict[str, object] = {"id": conv.id}
            for use_vp in modes:
                if use_vp and conv.voiceprint is None:
                    continue
                events: list[object] = []
                session.run(FileSource(path, realtime=realtime), events.append, conv.voiceprint if use_vp else None)
                # scored on each voice's final label, as the report uses them
                finals = apply_relabels([e.utterance for e in events if isinstance(e, FinalTranscript)],
                                        [e for e in events if isinstance(e, SpeakerRelabel)])
                res = score_words(conv, finals)
                totals[use_vp][0] += res["correct_s"]
                totals[use_vp][1] += res["scored_s"]
                name = "with_enrolment" if use_vp else "without_enrolment"
                row[name] = round(100 * res["accuracy"], 2)
                row["uncovered_s"] = round(res["uncovered_s"], 1)
                audio_s += len(conv.audio) / SAMPLE_RATE
            path.unlink()
            rows.append(row)
    cpu = time.process_time() - cpu0
    embed = session.speakers.encoder.embed_seconds - emb0
    out: dict[str, object] = {"per_conversation": rows, "pipeline_cpu_s_per_audio_s": round(cpu / audio_s, 3) if audio_s else None,
                              "speaker_share_of_pipeline_cpu": round(embed / cpu, 4) if cpu else None,
                              "wall_s": round(time.perf_counter() - wall0, 1)}
    for m in modes:
        c, t = totals[m]
        out["with_enrolment" if m else "without_enrolment"] = round(100 * c / t, 2) if t else None
    return out
