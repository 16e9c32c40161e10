"""Clinician enrolment: a voiceprint from 10–30 s of the clinician's speech.

The voiceprint belongs to the clinician. It is returned to the caller (the
phone keeps it and sends it with each visit start); this module never writes
it anywhere. Audio is only read: speech frames are gathered into a scratch
buffer owned here, embedded, and the buffer is zeroed before returning.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soxr
import webrtcvad

from edge_agent.audio.file_source import open_audio_file
from edge_agent.audio.speaker_frontend import SAMPLE_RATE
from edge_agent.errors import AudioInputError, EdgeAgentError
from edge_agent.speakers.encoder import EMBED_DIM, EncoderConfig, SpeakerEncoder, l2_normalise

MIN_SPEECH_S = 8.0  # below this the mean embedding is not stable enough (consistency drops)
RECOMMENDED_SPEECH_S = (10.0, 30.0)
MAX_SPEECH_S = 60.0  # more adds nothing; cap the work
# A file much longer than an enrolment is a visit or a dictation: refused before it is decoded (it would sit whole in
# memory, and a visit holds the patient's voice too)
MAX_FILE_S = 180.0
_FRAME = 480  # 30 ms at 16 kHz, a webrtcvad frame size
_MAGIC = b"EAVP"
_VERSION = 1
_HEADER = struct.Struct("<4sBffH")  # magic, version, speech_seconds, consistency, n_segments


class EnrolmentError(EdgeAgentError):
    """The enrolment audio cannot give a usable voiceprint."""


@dataclass(frozen=True)
class Voiceprint:
    embedding: np.ndarray  # (256,) float32, L2-normalised
    speech_seconds: float  # speech (VAD) the embedding was computed from
    consistency: float  # mean cosine of the 1.6 s partial embeddings to their mean (1 = uniform)
    n_segments: int  # number of 1.6 s partial windows averaged
    model: str = ""  # the encoder that made it (speaker_model_id()); "" when unknown (gRPC values, older JSON)

    def to_bytes(self) -> bytes:
        """Compact transport form (4 + 1 + 4 + 4 + 2 + 1024 bytes) for gRPC."""
        head = _HEADER.pack(_MAGIC, _VERSION, self.speech_seconds, self.consistency, self.n_segments)
        return head + np.asarray(self.embedding, "<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> Voiceprint:
        """Parse the transport form (a ``bytearray`` the caller zeroes is read in place, never copied whole)."""
        if len(data) != _HEADER.size + 4 * EMBED_DIM:
            raise EdgeAgentError(f"voiceprint has {len(data)} bytes, expected {_HEADER.size + 4 * EMBED_DIM}; enrol again")
        magic, version, secs, cons, n = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise EdgeAgentError("voiceprint format not recognised (wrong magic or version); enrol again")
        emb = np.frombuffer(data, "<f4", count=EMBED_DIM, offset=_HEADER.size).astype(np.float32)
        try:
            return cls._checked(emb, secs, cons, n)
        finally:
            emb.fill(0.0)  # our copy of the phone's values; the Voiceprint holds its own normalised one

    def wipe(self) -> None:
        """Zero the embedding in place (the voiceprint is the clinician's: forgotten at the end of a visit)."""
        self.embedding.fill(0.0)

    def to_list(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "embedding": [float(v) for v in self.embedding],
            "speech_seconds": round(float(self.speech_seconds), 3),
            "consistency": round(float(self.consistency), 4),
            "n_segments": int(self.n_segments),
            **({"model": self.model} if self.model else {}),
        }

    @classmethod
    def from_list(cls, data: dict[str, object]) -> Voiceprint:
        try:
            emb = np.asarray(data["embedding"], np.float32)
            model = data.get("model", "")
            if not isinstance(model, str):
                raise TypeError(f"model must be a string, not {type(model).__name__}")
            vp = cls._checked(emb, float(data["speech_seconds"]), float(data["consistency"]), int(data["n_segments"]))  # type: ignore[arg-type]
            return replace(vp, model=model)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: "n_segments": 1e400
            raise EdgeAgentError(f"voiceprint is malformed ({exc}); enrol again") from None

    @classmethod
    def _checked(cls, emb: np.ndarray, secs: float, cons: float, n: int) -> Voiceprint:
        if emb.shape != (EMBED_DIM,) or not np.all(np.isfinite(emb)) or float(np.linalg.norm(emb)) < 1e-6:
            raise EdgeAgentError(f"voiceprint embedding must be {EMBED_DIM} finite values, not all zero; enrol again")
        return cls(l2_normalise(emb), float(secs), float(cons), int(n))


def check_model(voiceprint: Voiceprint, current: str, where: object) -> Voiceprint:
    """Refuse a voiceprint another speaker encoder made: its cosines to this encoder's embeddings mean nothing.
    A voiceprint that does not say (made before voiceprints named their model, when only this encoder existed) passes."""
    if voiceprint.model and voiceprint.model != current:
        voiceprint.wipe()
        raise EdgeAgentError(
            f"voiceprint {where} was made with another speaker model ({voiceprint.model}; this device has {current}); "
            "enrol again with `edge-agent enroll`"
        )
    return voiceprint


def speech_mask(audio: np.ndarray, aggressiveness: int = 3) -> np.ndarray:
    """Per-30 ms-frame speech flags (webrtcvad, smoothed and dilated as Resemblyzer does)."""
    n = len(audio) // _FRAME
    if n == 0:  # shorter than one frame: no speech (np.convolve refuses an empty array)
        return np.zeros(0, bool)
    flags = np.zeros(n, bool)
    vad = webrtcvad.Vad(aggressiveness)
    clipped = np.zeros(_FRAME, np.float32)
    scratch = np.zeros(_FRAME, np.int16)
    try:
        for i in range(n):
            np.clip(audio[i * _FRAME : (i + 1) * _FRAME], -1.0, 1.0, out=clipped)
            np.multiply(clipped, 32767, out=scratch, casting="unsafe")
            flags[i] = vad.is_speech(scratch.view(np.uint8).data, SAMPLE_RATE)
    finally:
        clipped.fill(0.0)
        scratch.fill(0)
    width = 8  # moving average over 240 ms, then dilate 3 frames each side: keeps word edges, drops pauses
    smooth = np.convolve(flags.astype(np.float32), np.ones(width) / width, mode="same") >= 0.5
    dilated = np.convolve(smooth.astype(np.float32), np.ones(7), mode="same") > 0
    return dilated


def enrol(
    audio: np.ndarray,
    encoder: SpeakerEncoder,
    *,
    min_speech_s: float = MIN_SPEECH_S,
) -> Voiceprint:
    """Voiceprint from 16 kHz mono float32 audio of one speaker.

    Raises :class:`EnrolmentError` (one line) for silent or too-short audio.
    """
    if audio.ndim != 1 or len(audio) == 0:
        raise EnrolmentError("enrolment audio is empty or not mono; record 10–30 s of the clinician speaking")
    if max(float(audio.max()), -float(audio.min())) < 1e-4:  # peak level without an |audio| copy of the voice
        raise EnrolmentError("enrolment audio is silent; check the microphone and record 10–30 s of the clinician speaking")
    mask = speech_mask(audio)
    n_speech = int(mask.sum()) * _FRAME
    speech_s = n_speech / SAMPLE_RATE
    if speech_s < 0.5:
        raise EnrolmentError("no speech found in the enrolment audio; record 10–30 s of the clinician speaking")
    if speech_s < min_speech_s:
        raise EnrolmentError(
            f"enrolment audio has only {speech_s:.1f} s of speech (need at least {min_speech_s:g} s); "
            f"record {RECOMMENDED_SPEECH_S[0]:g}–{RECOMMENDED_SPEECH_S[1]:g} s of the clinician speaking"
        )
    n_speech = min(n_speech, int(MAX_SPEECH_S * SAMPLE_RATE))
    scratch = np.zeros(n_speech, np.float32)
    try:
        pos = 0
        for i in np.flatnonzero(mask):
            if pos >= n_speech:
                break
            chunk = audio[i * _FRAME : (i + 1) * _FRAME]
            take = min(len(chunk), n_speech - pos)
            scratch[pos : pos + take] = chunk[:take]
            pos += take
        partials = encoder.partials(scratch[:pos]).embeds
    finally:
        scratch.fill(0.0)  # the speech-only copy never outlives this call
    mean = l2_normalise(partials.mean(axis=0))
    consistency = float(np.mean(partials @ mean))
    if not math.isfinite(consistency):
        raise EnrolmentError("enrolment audio gave no usable embedding; record 10–30 s of the clinician speaking")
    return Voiceprint(mean, min(speech_s, MAX_SPEECH_S), consistency, len(partials), getattr(encoder, "model_id", ""))


def _read_16k_mono(path: Path) -> np.ndarray:
    handle = open_audio_file(path)  # the same one-line refusals as transcribe (missing, directory, not audio)
    length_s = handle.frames / handle.samplerate
    if length_s > MAX_FILE_S:
        handle.close()
        raise EnrolmentError(
            f"{path} is {length_s:.0f} s long; enrolment needs {RECOMMENDED_SPEECH_S[0]:g}–{RECOMMENDED_SPEECH_S[1]:g} s of "
            f"the clinician speaking alone (at most {MAX_FILE_S:g} s): cut that part out, e.g. `sox IN OUT trim START 30`"
        )
    try:
        audio = handle.read(dtype="float32", always_2d=True)
        rate = handle.samplerate
    except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        reason = str(exc).splitlines()[0].strip() if str(exc) else type(exc).__name__
        raise AudioInputError(f"cannot read audio file {path} ({reason}); it is damaged: export or copy the recording again") from None
    finally:
        handle.close()
    # a copy either way: the decoded block is zeroed right after
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0].copy()
    audio.fill(0.0)
    if rate != SAMPLE_RATE:
        # asarray, not astype: a copy would leave soxr's array (the clinician's voice) unzeroed (the caller zeroes this one)
        out = np.asarray(soxr.resample(mono, rate, SAMPLE_RATE), dtype=np.float32)
        mono.fill(0.0)
        return out
    return np.ascontiguousarray(mono, dtype=np.float32)


def voiceprint_from(path: Path | None = None, audio: np.ndarray | None = None, threads: int = 1) -> Voiceprint:
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
