"""`edge-agent transcribe` and `edge-agent demo`."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from rich.console import Console

from edge_agent.audio.file_source import FileSource
from edge_agent.audio.frames import AudioSource
from edge_agent.cli.render import JsonLinesSink, LiveTranscriptView
from edge_agent.device.pipeline import PipelineConfig, RunStats
from edge_agent.device.session import CaptureLost, TranscriptionSession
from edge_agent.errors import EdgeAgentError
from edge_agent.hardening import harden_process
from edge_agent.speakers.enrol import Voiceprint


def open_source(file: Path | None, mic: bool, mic_device: str | None, realtime: bool, seconds: float | None = None) -> AudioSource:
    if mic:
        from edge_agent.audio.mic_source import MicSource

        return MicSource(mic_device, duration_s=seconds)
    assert file is not None
    return FileSource(file, realtime=realtime)


def load_voiceprint(path: Path) -> Voiceprint:
    """A voiceprint JSON from `edge-agent enroll`, or enrolment audio to compute one from."""
    if path.suffix.lower() in (".wav", ".flac", ".ogg"):
        from edge_agent.speakers.enrol import voiceprint_from

        return voiceprint_from(path=path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise EdgeAgentError(f"cannot read voiceprint {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EdgeAgentError(f"{path} is not a voiceprint (not JSON); make one with `edge-agent enroll`") from None
    if not isinstance(data, dict):
        raise EdgeAgentError(f"{path} is not a voiceprint; make one with `edge-agent enroll`")
    from edge_agent.speakers.encoder import speaker_model_id
    from edge_agent.speakers.enrol import check_model

    return check_model(Voiceprint.from_list(data), speaker_model_id(), path)


def summary_line(stats: RunStats, clean: bool) -> str:
    line = (
        f"{stats.utterances} utterances from {stats.audio_seconds:.1f} s of audio; "
        f"raw-audio residency max {stats.residency_max():.2f} s; "
        f"audio pool {'zeroed' if clean else 'NOT zeroed'}; dropped frames {stats.dropped_frames}"
    )
    # speech that gave no text for want of a buffer or a decode is never left out of what the person reads
    failed = stats.discarded_by_reason.get("decode_failed", 0)
    if stats.speech_seconds_lost >= 0.05 or stats.dropped_segments or failed:
        parts = [f"{n} segment(s) {what}" for n, what in ((stats.dropped_segments - failed, "dropped (no free buffer)"),
                                                          (failed, "failed to decode")) if n]
        line += f"; speech lost {stats.speech_seconds_lost:.1f} s" + (f" ({', '.join(parts)})" if parts else "")
    if stats.speakers_uncertain:
        line += "; speaker labels uncertain: the voices sound alike and none is enrolled (--voiceprint settles it)"
    if stats.voiceprint_unheard:
        line += "; the voiceprint's voice was never heard: speaker labels decided without it (is it this clinician's?)"
    return line


POOL_NOT_ZEROED_EXIT = 3
SPEECH_LOST_EXIT = 4


def exit_status(stats: RunStats, clean: bool) -> int:
    """0 when every frame was heard and the pool wiped; 3 when the audio pool was not zeroed (a privacy alarm,
    reported first); 4 when speech was lost (dropped frames or segments, failed decodes): the finals are printed, but a
    program reading them must learn they are incomplete without parsing the summary. (A failed decode is counted
    in ``dropped_segments`` like every other loss.)"""
    if not clean:
        return POOL_NOT_ZEROED_EXIT
    if stats.dropped_frames or stats.dropped_segments:
        return SPEECH_LOST_EXIT
    return 0


def summary_record(stats: RunStats, clean: bool) -> dict[str, object]:
    """The JSONL run summary: what the run produced and everything it lost or absorbed."""
    return {"type": "summary", "utterances": stats.utterances, "audio_s": round(stats.audio_seconds, 2),
            "residency_max_s": round(stats.residency_max(), 4), "pool_zeroed": clean,
            "dropped_frames": stats.dropped_frames, "dropped_segments": stats.dropped_segments,
            "discarded": stats.discarded_by_reason, "worker_errors": stats.worker_errors,
            "speech_lost_s": round(stats.speech_seconds_lost, 2), "sentences_committed": stats.sentences_committed,
            "partial_decodes": stats.partial_decodes, "decode_retries": stats.decode_retries,
            "failed_open_decodes": stats.failed_open_decodes,
            "repeats_dropped": stats.repeats_dropped, "repeat_words_dropped": stats.repeat_words_dropped,
            "skips_recovered": stats.skips_recovered, "stretches_filled": stats.stretches_filled,
            "speakers_uncertain": bool(stats.speakers_uncertain), "voiceprint_unheard": bool(stats.voiceprint_unheard)}


def _check_written(sink: JsonLinesSink) -> None:
    """A reader that went away (`| head`) is normal; output that could not be written (a full disk) is an error."""
    if sink.write_error is not None:
        raise output_error(sink.write_error)


def output_error(exc: OSError) -> EdgeAgentError:
    return EdgeAgentError(f"cannot write the output ({exc.strerror or exc}); free space where it goes, or send it elsewhere")


def run_transcribe(
    config: PipelineConfig,
    file: Path | None,
    mic: bool,
    mic_device: str | None,
    realtime: bool,
    jsonl: bool,
    title: str = "transcribe",
    seconds: float | None = None,
    speakers: bool = False,
    voiceprint: Path | None = None,
) -> int:
    # before the first sample (an enrolment recording given as --voiceprint is read here, before the session
    # loads and hardened the process too): a crash must not dump audio
    harden_process()
    print_ = load_voiceprint(voiceprint) if voiceprint is not None else None
    source = open_source(file, mic, mic_device, realtime, seconds)
    err = Console(stderr=True)
    chatty = not jsonl and sys.stderr.isatty()
    if chatty:
        err.print(f"[dim]{title}: loading model…[/dim]")
    session = TranscriptionSession.load(config, speakers=speakers or print_ is not None)
    if jsonl:
        reader_gone = threading.Event()  # `| head`: stop the run instead of failing it
        sink = JsonLinesSink(sys.stdout, on_closed=reader_gone.set)
        try:
            stats, clean = session.run(source, sink, print_, stop=reader_gone)
        except CaptureLost as lost:  # the input ended badly: the reader still learns what the run did, then the error
            if not sink.closed:
                sink.emit(summary_record(lost.stats, lost.pools_clean))
            _check_written(sink)
            raise
        if not sink.closed:
            sink.emit(summary_record(stats, clean))
        _check_written(sink)
    else:
        if print_ is not None and chatty:
            err.print(f"[dim]{title}: clinician voiceprint from {print_.speech_seconds:.0f} s of speech (held for this run only)[/dim]")
        if chatty:
            err.print(f"[dim]{title}: streaming {source.description}{' in real time' if realtime or mic else ''} (Ctrl-C stops)[/dim]")
        with LiveTranscriptView() as view:
            stats, clean = session.run(source, view, print_)
        err.print(f"[dim]{summary_line(stats, clean)}[/dim]")
    return exit_status(stats, clean)
