"""Plain functions behind ``edge-agent enroll`` and ``edge-agent bench speakers`` (no typer here).

Both return data; the CLI decides how to print it. Neither writes a file:
the voiceprint goes back to the caller only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from edge_agent.errors import AudioInputError
from edge_agent.speakers.encoder import EncoderConfig, SpeakerEncoder
from edge_agent.speakers.enrol import Voiceprint, enrol
from edge_agent.speakers.frontend import SAMPLE_RATE


def _read_16k_mono(path: Path) -> np.ndarray:
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise AudioInputError(f"cannot read audio file {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    # a copy either way: the decoded block is zeroed right after
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0].copy()
    audio.fill(0.0)
    if rate != SAMPLE_RATE:
        out = soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
        mono.fill(0.0)
        return out
    return np.ascontiguousarray(mono, dtype=np.float32)


def enroll_command(path: Path | None = None, audio: np.ndarray | None = None, threads: int = 1) -> Voiceprint:
    """Voiceprint from a file (``path``) or from 16 kHz float32 ``audio`` (e.g. recorded from the mic).

    The caller prints ``voiceprint.to_list()`` (JSON) or sends ``to_bytes()``;
    the audio buffers are zeroed before returning.
    """
    if (path is None) == (audio is None):
        raise AudioInputError("give either an audio file or recorded audio to enrol")
    samples = _read_16k_mono(path) if path is not None else audio
    assert samples is not None
    try:
        return enrol(samples, SpeakerEncoder(EncoderConfig(threads=threads)))
    finally:
        if path is not None:
            samples.fill(0.0)


def bench_speakers(
    n_conversations: int = 10, seconds: float = 180.0, threads: int = 1, pipeline_conversations: int = 0, paced_seconds: float = 0.0
) -> dict[str, object]:
    """Attribution accuracy with/without enrolment on PriMock57 espeak conversations, plus cost.

    Uses the consultations held out from the role classifier's training, one
    espeak voice pair per conversation; the clinician enrols on doctor lines
    from later in the same consultation (not part of the scored audio).
    """
    from edge_agent.speakers.role import RoleClassifier, held_out
    from tools.bench.speakers_eval import EvalConversation, RefTurn, evaluate
    from tools.corpus import speaker_synth as synth
    from tools.corpus.primock import consultation_ids, load_consultation

    encoder = SpeakerEncoder(EncoderConfig(threads=threads))
    convs = []
    for k, cid in enumerate(held_out(consultation_ids())[:n_conversations]):
        cons = load_consultation(cid)
        voices = synth.VOICE_PAIRS[k % len(synth.VOICE_PAIRS)]
        conv = synth.synthesise(cons, voices, max_seconds=seconds)
        later = [t.text for t in cons.turns if t.role == "doctor" and t.start > seconds + 20][:10]
        vp = enrol(synth.speak_lines(later, voices[0]), encoder)
        convs.append(EvalConversation(cid, conv.audio, [RefTurn(t.role, t.t0, t.t1, t.text) for t in conv.turns], vp))
    result = evaluate(convs, encoder, RoleClassifier())
    result["audio_per_conversation_s"] = seconds
    if pipeline_conversations > 0:
        # the live figure: the same conversations through VAD + Whisper + attribution, scored by word time
        from tools.bench.speakers_eval import pipeline_accuracy

        live = pipeline_accuracy(convs[:pipeline_conversations])
        result["pipeline_with_enrolment"] = live.pop("with_enrolment")
        result["pipeline_without_enrolment"] = live.pop("without_enrolment")
        result["pipeline"] = live
    if paced_seconds > 0 and convs:
        # the cost figure: the first conversation through the pipeline paced like a microphone
        from tools.bench.speakers_eval import first_seconds, pipeline_accuracy

        paced = pipeline_accuracy([first_seconds(convs[0], paced_seconds)], modes=(True,), realtime=True)
        result["paced"] = {
            "audio_s": paced_seconds,
            "with_enrolment": paced["with_enrolment"],
            "pipeline_cpu_s_per_audio_s": paced["pipeline_cpu_s_per_audio_s"],
            "speaker_share_of_pipeline_cpu": paced["speaker_share_of_pipeline_cpu"],
        }
    return result
