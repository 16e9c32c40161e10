"""The line a report carries when it rests on partial audio (every report path uses this one)."""

from __future__ import annotations

from typing import Protocol

QUALITY_FIELDS = (
    "audio_s", "speech_lost_s", "dropped_segments", "failed_segments", "dropped_frames", "capture_interruptions", "speakers_uncertain",
    "voiceprint_unheard",
)


class AudioQualityLike(Protocol):  # feedback_pb2.AudioQuality
    speech_lost_s: float
    dropped_segments: int
    failed_segments: int
    capture_interruptions: int
    speakers_uncertain: bool
    voiceprint_unheard: bool


def speech_lost(q: AudioQualityLike) -> bool:
    """Whether the visit lost speech it heard (dropped, or failed to decode); the web app's speechLost is the same rule."""
    return bool(q.speech_lost_s >= 0.5 or q.dropped_segments or q.failed_segments)


def audio_gap(q: AudioQualityLike) -> str:
    """One line when the report rests on partial audio (empty when nothing was lost)."""
    parts = []
    if speech_lost(q):
        parts.append(f"about {q.speech_lost_s:.0f} s of speech could not be transcribed")
    if q.capture_interruptions:
        parts.append(f"the microphone dropped out {q.capture_interruptions} time(s)")
    if not parts:
        return ""
    return "Note: " + " and ".join(parts) + "; observations about those moments may be missing."


SPEAKERS_UNCERTAIN = (
    "Note: the device could not reliably tell your voice from the patient's (your voice is not enrolled), "
    "so who said what may be wrong in places. Enrol your voice on the phone to fix this."
)


VOICEPRINT_UNHEARD = (
    "Note: the enrolled voice was not heard in this visit, so who said what was decided without it and may be wrong "
    "in places. If you led this visit, enrol your voice again on the phone; if someone else did, their voice was not enrolled."
)


def speakers_note(q: AudioQualityLike) -> str:
    """One line when the report's speaker labels rest on voices too alike to tell apart, or were decided without the
    enrolled voiceprint because its voice was never heard (empty otherwise)."""
    if q.voiceprint_unheard:
        return VOICEPRINT_UNHEARD
    return SPEAKERS_UNCERTAIN if q.speakers_uncertain else ""


def quality_notes(q: AudioQualityLike) -> list[str]:
    """The lines every rendering of a report puts above its content: partial audio, uncertain speakers."""
    return [note for note in (audio_gap(q), speakers_note(q)) if note]


NO_SPEECH = ("No speech was heard in this visit, so there is nothing to report. If you and the patient spoke, "
             "the room microphone may be muted or faulty: tell IT ('edge-agent doctor' on the device).")
NOTHING_TRANSCRIBED = ("Speech was heard in this visit but none of it could be transcribed, so there is nothing to report: "
                       "tell IT ('edge-agent doctor' on the device).")


def empty_report_text(q: AudioQualityLike) -> str:
    """What a report with no content says: silence, or speech the device heard and lost (not the microphone's fault)."""
    return NOTHING_TRANSCRIBED if speech_lost(q) else NO_SPEECH
