"""`edge-agent bench asr`: the streaming pipeline against offline faster-whisper.

Measured in one run, each pass in its own process:
  * streaming, paced in real time: CPU, final and first-partial latency,
    peak RSS, raw-audio residency, WER of finals;
  * offline ``WhisperModel.transcribe(vad_filter=True)`` (library defaults) on
    the same audio and model: CPU, peak RSS, WER;
  * the ratio streaming CPU / offline CPU, and WER on jfk.flac.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.errors import EdgeAgentError
from tools.bench.common import REPO, CpuClock, peak_rss_mb, percentile, run_child
from tools.bench.wer import wer

DEFAULT_AUDIO = REPO / "tools" / "bench" / "data" / "bench_conversation.flac"
JFK_TEXT = "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country."


def reference_text(audio: Path) -> str:
    """Reference transcript: the JSON beside the audio (list of turns or strings)."""
    ref = audio.with_suffix(".json")
    if not ref.is_file():
        raise EdgeAgentError(f"reference transcript {ref} not found: bench asr scores words against it; put the "
                             f"recording's words beside it as {ref.name} (a JSON list of turns), or leave --audio out")
    try:
        data = json.loads(ref.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeAgentError(f"reference transcript {ref} is not JSON ({exc}); write it as a JSON list of turns") from None
    if isinstance(data, dict):
        turns = next((data[key] for key in ("utterances", "turns") if key in data), None)
        if turns is None:
            raise EdgeAgentError(f"{ref} has neither 'utterances' nor 'turns'")
    else:
        turns = data
    return " ".join(t if isinstance(t, str) else t["text"] for t in turns)


def streaming_pass(audio: Path, realtime: bool, threads: int, vad: str | None = None) -> dict[str, Any]:
    from dataclasses import replace

    from edge_agent.asr.backend import AsrConfig
    from edge_agent.asr.events import FinalTranscript
    from edge_agent.audio.file_source import FileSource
    from edge_agent.device.pipeline import PipelineConfig
    from edge_agent.device.session import TranscriptionSession

    config = replace(PipelineConfig(), asr=AsrConfig(cpu_threads=threads))
    if vad is not None:
        config = replace(config, vad=replace(config.vad, engine=vad))
    session = TranscriptionSession.load(config)
    finals: list[str] = []

    def sink(event: object) -> None:
        if isinstance(event, FinalTranscript):
            finals.append(event.utterance.text)

    clock = CpuClock().start()
    stats, clean = session.run(FileSource(audio, realtime=realtime), sink)
    figures = clock.stop()
    return {
        **figures,
        "text": " ".join(finals),
        "audio_s": round(stats.audio_seconds, 2),
        "finals": stats.finals,
        "partial_decodes": stats.partial_decodes,
        "partials_skipped": stats.partials_skipped,
        "partials_over_budget": stats.partials_over_budget,
        "sentences_committed": stats.sentences_committed,
        "candidate_reused": stats.candidate_reused,
        "final_latency_p50_s": percentile(stats.final_latency_s, 50),
        "final_latency_p95_s": percentile(stats.final_latency_s, 95),
        "first_partial_p50_s": percentile(stats.first_partial_latency_s, 50),
        "first_partial_p95_s": percentile(stats.first_partial_latency_s, 95),
        "residency_max_s": round(stats.residency_max(), 4),
        "residency_p95_s": round(stats.residency_p95(), 4),
        "pool_zeroed": clean,
        "dropped_frames": stats.dropped_frames,
        "dropped_segments": stats.dropped_segments,
        "failed_segments": stats.discarded_by_reason.get("decode_failed", 0),
        "failed_open_decodes": stats.failed_open_decodes,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def offline_pass(audio: Path, threads: int) -> dict[str, Any]:
    import soundfile as sf
    import soxr
    from faster_whisper import WhisperModel

    from edge_agent.asr.whisper_ct2 import resolve_model_path

    model = WhisperModel(resolve_model_path("tiny.en"), device="cpu", compute_type="int8", cpu_threads=threads)
    samples, rate = sf.read(str(audio), dtype="float32", always_2d=True)
    mono = soxr.resample(samples.mean(axis=1), rate, 16000) if rate != 16000 else samples.mean(axis=1)
    clock = CpuClock().start()
    segments, _ = model.transcribe(mono, vad_filter=True)
    text = " ".join(s.text.strip() for s in segments)
    return {**clock.stop(), "text": text, "peak_rss_mb": round(peak_rss_mb(), 1)}


def run_asr_bench(audio: Path | None, realtime: bool = True, threads: int = 1, jfk: Path | None = None,
                  vad: str | None = None) -> dict[str, Any]:
    from rich.console import Console

    audio = audio or DEFAULT_AUDIO
    if not audio.is_file():
        if audio == DEFAULT_AUDIO:
            raise EdgeAgentError(f"benchmark audio {audio} not found; run: python -m tools.corpus.make_bench_recording")
        state = "is a directory" if audio.is_dir() else "not found"
        raise EdgeAgentError(f"benchmark audio {audio} {state}; give --audio a recording file, or leave it out")
    reference = reference_text(audio)
    console = Console(stderr=True)
    module = "tools.bench.asr"
    vad_args = ("--vad", vad) if vad else ()  # streaming passes only; absent: the pipeline's default engine
    with console.status("offline faster-whisper pass…"):
        offline = run_child(module, "--pass", "offline", "--audio", str(audio), "--threads", str(threads))
    with console.status("streaming pass (as fast as possible)…"):
        fast = run_child(module, "--pass", "streaming", "--audio", str(audio), "--threads", str(threads), *vad_args)
    paced = None
    if realtime:
        with console.status("streaming pass paced in real time…"):
            paced = run_child(module, "--pass", "streaming", "--realtime", "--audio", str(audio), "--threads", str(threads), *vad_args)
    main = paced or fast
    result: dict[str, Any] = {
        "audio": audio.name,
        "vad": vad or "default",
        "audio_s": main["audio_s"],
        "threads": threads,
        "streaming_cpu_s": main["cpu_s"],
        "offline_cpu_s": offline["cpu_s"],
        "cpu_ratio_streaming_over_offline": round(main["cpu_s"] / max(1e-6, offline["cpu_s"]), 3),
        "streaming_fast_cpu_s": fast["cpu_s"],
        "cpu_ratio_unpaced_over_offline": round(fast["cpu_s"] / max(1e-6, offline["cpu_s"]), 3),
        "streaming_fast_wall_s": fast["wall_s"],
        "final_latency_p50_s": main["final_latency_p50_s"],
        "final_latency_p95_s": main["final_latency_p95_s"],
        "first_partial_p50_s": main["first_partial_p50_s"],
        "first_partial_p95_s": main["first_partial_p95_s"],
        "peak_rss_mb_streaming": main["peak_rss_mb"],
        "peak_rss_mb_offline": offline["peak_rss_mb"],
        "residency_max_s": main["residency_max_s"],
        "residency_p95_s": main["residency_p95_s"],
        # as fast as possible a file waits for the ASR instead of dropping speech,
        # so its residency includes queueing: reported, not a real-time figure
        "residency_max_s_unpaced": fast["residency_max_s"],
        "pool_zeroed": fast["pool_zeroed"] and main["pool_zeroed"],
        "wer_streaming": round(wer(reference, main["text"]), 4),
        "wer_offline": round(wer(reference, offline["text"]), 4),
        "dropped_frames": main["dropped_frames"],
        "dropped_segments": main["dropped_segments"],
        "partial_decodes": main["partial_decodes"],
        "partials_over_budget": main["partials_over_budget"],
        "candidate_reused": main["candidate_reused"],
        "realtime_paced": paced is not None,
    }
    result["wer_ratio_streaming_over_offline"] = round(result["wer_streaming"] / max(1e-6, result["wer_offline"]), 3)
    jfk = jfk or _shared_jfk()
    if jfk is not None:
        jfk_run = run_child(module, "--pass", "streaming", "--audio", str(jfk), "--threads", str(threads), *vad_args)
        result["wer_jfk"] = round(wer(JFK_TEXT, jfk_run["text"]), 4)
    print(json.dumps(result))
    return result


def _shared_jfk() -> Path | None:
    from tools.corpus.primock import shared_dir

    path = shared_dir() / "audio" / "jfk.flac"
    return path if path.is_file() else None


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pass", dest="which", choices=("streaming", "offline", "all"), default="all")
    parser.add_argument("--audio", type=Path, default=None)
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vad", choices=("webrtc", "silero", "hybrid"), default=None)
    args = parser.parse_args()
    try:
        if args.which == "streaming":
            print(json.dumps(streaming_pass(args.audio, args.realtime, args.threads, args.vad)))
        elif args.which == "offline":
            print(json.dumps(offline_pass(args.audio, args.threads)))
        else:
            run_asr_bench(args.audio, realtime=True, threads=args.threads, vad=args.vad)
    except EdgeAgentError as exc:
        print(f"edge-agent bench: {exc.message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _main()
