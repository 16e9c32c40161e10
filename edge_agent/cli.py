"""The one console script: ``edge-agent <verb>``."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_agent.errors import EdgeAgentError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="edge-agent: private, on-device communication coaching for clinical exam rooms.",
)

ModelOpt = Annotated[str, typer.Option("--model", help="ASR model: 'tiny.en' (bundled) or a CTranslate2 Whisper folder")]
DeviceOpt = Annotated[str, typer.Option("--device", help="ASR device: cpu | cuda | auto")]
ComputeOpt = Annotated[str, typer.Option("--compute-type", help="CTranslate2 compute type, e.g. int8, float16")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="CPU threads for ASR")]


def _pipeline_config(model: str, device: str, compute_type: str, threads: int):  # type: ignore[no-untyped-def]
    from edge_agent.asr.engine import AsrConfig
    from edge_agent.pipeline import PipelineConfig

    return replace(PipelineConfig(), asr=AsrConfig(model=model, device=device, compute_type=compute_type, cpu_threads=threads))


@app.command()
def transcribe(
    file: Annotated[Optional[Path], typer.Argument(help="audio file (wav/flac/ogg, any rate or channels)")] = None,
    mic: Annotated[bool, typer.Option("--mic", help="capture from a microphone instead of a file")] = False,
    mic_device: Annotated[Optional[str], typer.Option("--mic-device", help="input device name or index (default: system default)")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="pace a file in real time, as a microphone would")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON lines for programs instead of the live view")] = False,
    model: ModelOpt = "tiny.en",
    device: DeviceOpt = "cpu",
    compute_type: ComputeOpt = "int8",
    threads: ThreadsOpt = 1,
) -> None:
    """Transcribe a file or a microphone, streaming partials and finals."""
    from edge_agent.commands.transcribe import run_transcribe

    if mic and file is not None:
        raise EdgeAgentError("give either an audio FILE or --mic, not both")
    if not mic and file is None:
        raise EdgeAgentError("give an audio FILE to transcribe, or --mic to use a microphone")
    config = _pipeline_config(model, device, compute_type, threads)
    code = run_transcribe(config, file=file, mic=mic, mic_device=mic_device, realtime=realtime, jsonl=jsonl)
    raise typer.Exit(code)


@app.command()
def demo(
    fast: Annotated[bool, typer.Option("--fast", help="run as fast as possible instead of in real time")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON lines instead of the live view")] = False,
) -> None:
    """Stream the bundled demo conversation and watch partials turn into finals."""
    from edge_agent.commands.transcribe import demo_audio_path, run_transcribe

    config = _pipeline_config("tiny.en", "cpu", "int8", 1)
    code = run_transcribe(config, file=demo_audio_path(), mic=False, mic_device=None, realtime=not fast, jsonl=jsonl, title="demo")
    raise typer.Exit(code)


bench_app = typer.Typer(help="Benchmarks that print JSON figures (targets in the issues).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("asr")
def bench_asr(
    audio: Annotated[Optional[Path], typer.Option("--audio", help="recording (default: bench/data/bench_conversation.flac)")] = None,
    skip_realtime: Annotated[bool, typer.Option("--skip-realtime", help="skip the real-time paced pass")] = False,
    threads: ThreadsOpt = 1,
) -> None:
    """Streaming vs offline CPU, latencies, RSS, residency and WER in one run."""
    from edge_agent.bench.asr import run_asr_bench

    run_asr_bench(audio, realtime=not skip_realtime, threads=threads)


def main() -> None:
    debug = bool(os.environ.get("EDGE_AGENT_DEBUG"))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        app()
    except EdgeAgentError as exc:
        print(f"edge-agent: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("edge-agent: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a traceback is a bug: say so in one line
        if debug:
            raise
        print(
            f"edge-agent: internal error ({type(exc).__name__}: {str(exc)[:200]}); rerun with EDGE_AGENT_DEBUG=1 and report it",
            file=sys.stderr,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
