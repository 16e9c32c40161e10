"""The one console script: ``edge-agent <verb>``."""

from __future__ import annotations

import errno
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_agent.cli.output import drop_output, reader_gone
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


def _check_mic_options(mic: bool, seconds: float | None, mic_device: str | None) -> None:
    """--seconds and --mic-device describe the microphone: refused with a FILE rather than silently ignored."""
    if not mic:
        for flag, value in (("--seconds", seconds), ("--mic-device", mic_device)):
            if value is not None:
                raise EdgeAgentError(f"{flag} applies to --mic only; a FILE is read whole from its own source")
    elif seconds is not None and not seconds > 0:
        raise EdgeAgentError(f"--seconds must be more than 0 (got {seconds:g})")


# the config keys the ASR flags set: a refusal names the flag the user typed, not a key of a file they never wrote
FLAG_OF_KEY = {"asr.model": "--model", "asr.device": "--device", "asr.compute_type": "--compute-type",
               "asr.cpu_threads": "--threads", "vad.engine": "--vad"}


def named_by_flag(exc: EdgeAgentError) -> EdgeAgentError:
    """``exc`` with a leading config key that came from a flag replaced by that flag ("--threads is 0; ...")."""
    for key, flag in FLAG_OF_KEY.items():
        if exc.message.startswith(key + " "):
            return type(exc)(flag + exc.message[len(key):])
    return exc


def _pipeline_config(model: str, device: str, compute_type: str, threads: int, vad_engine: str | None = None):  # type: ignore[no-untyped-def]
    from edge_agent.asr.backend import AsrConfig
    from edge_agent.device.pipeline import PipelineConfig

    try:
        config = replace(PipelineConfig(), asr=AsrConfig(model=model, device=device, compute_type=compute_type, cpu_threads=threads))
        if vad_engine is not None:
            config = replace(config, vad=replace(config.vad, engine=vad_engine))  # VadConfig refuses an unknown engine
    except EdgeAgentError as exc:
        raise named_by_flag(exc) from None
    return config


@app.command()
def transcribe(
    file: Annotated[Optional[str], typer.Argument(help="audio file (wav/flac/ogg, any rate or channels); with --mic: the input device")] = None,
    mic: Annotated[bool, typer.Option("--mic", help="capture from a microphone: `--mic [DEVICE]` (name, part of a name, or index)")] = False,
    mic_device: Annotated[Optional[str], typer.Option("--mic-device", help="input device, same as `--mic DEVICE`")] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", help="stop microphone capture after this many seconds")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="pace a file in real time, as a microphone would")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON lines for programs instead of the live view")] = False,
    speakers: Annotated[bool, typer.Option("--speakers/--no-speakers", help="attribute each utterance to clinician/patient/other")] = True,
    voiceprint: Annotated[Optional[Path], typer.Option("--voiceprint", help="clinician voiceprint JSON from `edge-agent enroll`")] = None,
    model: ModelOpt = "tiny.en",
    device: DeviceOpt = "cpu",
    compute_type: ComputeOpt = "int8",
    threads: ThreadsOpt = 1,
    vad: Annotated[Optional[str], typer.Option("--vad", help="voice-activity engine: webrtc | silero | hybrid (default: vad.engine's default)")] = None,
) -> None:
    """Transcribe a file or a microphone, streaming partials and finals."""
    from edge_agent.cli.transcribe import run_transcribe

    if mic and file is not None:
        if mic_device is not None:
            raise EdgeAgentError("give the microphone once: `--mic DEVICE` or `--mic --mic-device DEVICE`")
        mic_device, file = file, None
    if not mic and file is None:
        raise EdgeAgentError("give an audio FILE to transcribe, or --mic to use a microphone")
    _check_mic_options(mic, seconds, mic_device)
    if not speakers and voiceprint is not None:
        raise EdgeAgentError("--no-speakers and --voiceprint contradict each other: a voiceprint is for attributing speakers")
    config = _pipeline_config(model, device, compute_type, threads, vad)
    code = run_transcribe(
        config,
        file=Path(file) if file else None,
        mic=mic,
        mic_device=mic_device,
        realtime=realtime,
        jsonl=jsonl,
        seconds=seconds,
        speakers=speakers,
        voiceprint=voiceprint,
    )
    raise typer.Exit(code)


@app.command()
def demo(
    fast: Annotated[bool, typer.Option("--fast", help="run as fast as possible instead of in real time")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON lines instead of the live view")] = False,
    phone: Annotated[bool, typer.Option("--phone", help="the clinician's side in the phone web app, in a browser on this machine")] = False,
) -> None:
    """The whole story on one machine: site CA, room device, phone, a visit, the sealed report."""
    if phone:
        from edge_agent.cli.demo_phone import run_demo_phone

        raise typer.Exit(run_demo_phone(fast))
    from edge_agent.cli.demo import run_demo

    raise typer.Exit(run_demo(fast, jsonl))


@app.command()
def enroll(
    file: Annotated[Optional[Path], typer.Argument(help="10-30 s of the clinician speaking alone")] = None,
    mic: Annotated[bool, typer.Option("--mic", help="record from the microphone instead: `--mic [DEVICE]`")] = False,
    mic_device: Annotated[Optional[str], typer.Option("--mic-device", help="input device for --mic, same as `--mic DEVICE`")] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", help="how long to record with --mic [default: 20]")] = None,
) -> None:
    """Compute a clinician voiceprint; prints it as JSON (the device keeps nothing)."""
    from edge_agent.cli.enroll import run_enroll

    if mic and file is not None:  # `--mic DEVICE`, as transcribe takes it
        if mic_device is not None:
            raise EdgeAgentError("give the microphone once: `--mic DEVICE` or `--mic --mic-device DEVICE`")
        mic_device, file = str(file), None
    if mic == (file is not None):
        raise EdgeAgentError("give either an audio FILE or --mic to enrol")
    _check_mic_options(mic, seconds, mic_device)
    run_enroll(file, mic_device if mic else None, 20.0 if seconds is None else seconds)


@app.command()
def serve(
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML config (default /etc/edge-agent/config.toml; EDGE_AGENT_* env overrides)")] = None,
    replay: Annotated[Optional[Path], typer.Option("--replay", help="use a recording as the room microphone (testing)")] = None,
) -> None:
    """Run the room-device daemon (systemd: Type=notify, watchdog, SIGTERM finishes the visit, SIGHUP reloads)."""
    from edge_agent.device.main import serve as run_serve
    from edge_agent.site.doctor import restart_problems

    raise typer.Exit(run_serve(config, replay, restart_problems))  # 74 (EX_IOERR): sealed reports were lost at stop (the journal's LOST line)


@app.command()
def doctor(
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML config to check against")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON for fleet tools")] = False,
    skip: Annotated[Optional[list[str]], typer.Option("--skip", help="check to skip (repeatable), e.g. audio")] = None,
) -> None:
    """Check the device: audio, models, certificates, presence, gpio, population, web, clock, outbox, ports, port, mDNS, CPU. One line each."""
    import os

    from edge_agent.device.config import load_config
    from edge_agent.errors import ConfigError
    from edge_agent.site.doctor import Check, exit_code, render_json, render_text, run_doctor

    try:
        cfg = load_config(config, os.environ)
    except ConfigError as exc:  # a failed check like any other: a fleet's --json file must say the room is not ok
        checks = [Check("config", False, exc.message, "correct the file or the EDGE_AGENT_* variable (keys: docs/config.md)")]
    else:
        checks = run_doctor(cfg, skip=tuple(skip or ()))
    try:
        print(render_json(checks) if json_out else render_text(checks), flush=True)
    except BrokenPipeError:  # `doctor | head -1`: the reader left, but a failed check must still fail the command
        drop_output()
    raise typer.Exit(exit_code(checks))


@app.command()
def provision(
    room: Annotated[str, typer.Option(help="room label set by IT")],
    bundle: Annotated[Optional[Path], typer.Option(help="device bundle from `edge-agent ca issue-device`")] = None,
    ca_bundle: Annotated[Optional[Path], typer.Option("--ca-bundle", help="site CA certificate (with --device-cert/--device-key)")] = None,
    device_cert: Annotated[Optional[Path], typer.Option("--device-cert")] = None,
    device_key: Annotated[Optional[Path], typer.Option("--device-key")] = None,
    crl: Annotated[Optional[Path], typer.Option(help="crl.pem from the site CA")] = None,
    root: Annotated[Path, typer.Option(help="install under this root (images, tests)")] = Path("/"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be done")] = False,
    service_user: Annotated[str, typer.Option(help="owner of the installed secrets")] = "edge-agent",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Install config and certificates (0600) and verify the models; idempotent."""
    import json

    from edge_agent.site.provision import provision as do_provision

    result = do_provision(room, ca_bundle=ca_bundle, device_cert=device_cert, device_key=device_key, bundle=bundle, crl=crl,
                          root=root, dry_run=dry_run, service_user=service_user)
    print(json.dumps(result.to_dict()) if json_out else result.describe())


def _register_subcommands() -> None:
    from edge_agent.cli import aggregator, behaviours, ca, phone

    app.add_typer(aggregator.app, name="aggregator")
    app.add_typer(ca.app, name="ca")
    app.add_typer(phone.app, name="phone")
    app.add_typer(behaviours.app, name="behaviours")
    app.command("analyze")(behaviours.analyze)
    from edge_agent.cli import phone_web

    app.add_typer(phone_web.app, name="phone-web")
    app.add_typer(phone_web.device_app, name="device")


_register_subcommands()

def _positive(value: float) -> float:
    """A length or interval: 0 or less measured nothing and printed null figures (or crashed on an empty median)."""
    if not value > 0:
        raise typer.BadParameter(f"must be more than 0 (got {value:g})")
    return value


bench_app = typer.Typer(help="Benchmarks that print JSON figures (targets in the issues).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.callback()
def _bench_tools() -> None:
    """Benchmarks live in the checkout's tools/ (not installed with the package): make them importable or say so."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tools" / "bench" / "__init__.py").is_file():
        raise EdgeAgentError("edge-agent bench runs from a source checkout (its tools/ folder is not installed); run it in a clone")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


@bench_app.command("asr")
def bench_asr(
    audio: Annotated[Optional[Path], typer.Option("--audio", help="recording (default: tools/bench/data/bench_conversation.flac)")] = None,
    skip_realtime: Annotated[bool, typer.Option("--skip-realtime", help="skip the real-time paced pass")] = False,
    threads: ThreadsOpt = 1,
    vad: Annotated[Optional[str], typer.Option("--vad", help="voice-activity engine of the streaming passes: webrtc | silero | hybrid")] = None,
) -> None:
    """Streaming vs offline CPU, latencies, RSS, residency and WER in one run."""
    _pipeline_config("tiny.en", "cpu", "int8", threads, vad)  # a bad flag is refused here, named as typed
    from tools.bench.asr import run_asr_bench

    run_asr_bench(audio, realtime=not skip_realtime, threads=threads, vad=vad)


@bench_app.command("speakers")
def bench_speakers_cmd(
    conversations: Annotated[int, typer.Option("--conversations", min=1, help="held-out PriMock57 consultations to synthesise")] = 10,
    seconds: Annotated[float, typer.Option("--seconds", callback=_positive, help="audio per conversation")] = 180.0,
    pipeline: Annotated[int, typer.Option("--pipeline", min=0, help="of those, how many also go through VAD + Whisper + attribution")] = 2,
    paced_seconds: Annotated[float, typer.Option("--paced-seconds", min=0.0, help="audio streamed in real time for the cost share (0: skip)")] = 120.0,
) -> None:
    """Attribution accuracy with and without enrolment (segments and live pipeline), embedding cost share, model load."""
    import json

    from tools.bench.speakers import bench_speakers

    print(json.dumps(bench_speakers(conversations, seconds, pipeline_conversations=pipeline, paced_seconds=paced_seconds)))


@bench_app.command("realvoice")
def bench_realvoice_cmd(
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="folder for results.jsonl, raw outputs and caches")],
    data: Annotated[Optional[Path], typer.Option("--data", exists=True, file_okay=False, help="folder of visits (default: the committed tests/data/realvoice)")] = None,
    full: Annotated[bool, typer.Option("--full", help="generate (once) and run 6 visits of ~150 s")] = False,
    fast: Annotated[bool, typer.Option("--fast", help="unpaced: CPU and accuracy only, no latencies")] = False,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="streaming runs at once")] = 2,
    only: Annotated[Optional[str], typer.Option("--only", help="only visits whose name contains this")] = None,
    vad: Annotated[Optional[str], typer.Option("--vad", help="voice-activity engine of the streaming runs: webrtc | silero | hybrid")] = None,
) -> None:
    """Real human voices (LibriSpeech), close-talk and far-field: coverage, attribution, swaps, boundaries, latency, CPU, residency."""
    from tools.realvoice.bench import main as realvoice_main

    argv = ["--out", str(out), "--jobs", str(jobs)]
    argv += ["--data", str(data)] if data else []
    argv += ["--full"] if full else []
    argv += ["--fast"] if fast else []
    argv += ["--only", only] if only else []
    argv += ["--vad", vad] if vad else []
    realvoice_main(argv)


@bench_app.command("behaviours")
def bench_behaviours_cmd() -> None:
    """Label F1 on held-out consultations, model size, latency, throughput, timing agreement."""
    import json

    from tools.bench.behaviours import bench_behaviours

    print(json.dumps(bench_behaviours()))


@bench_app.command("coaching")
def bench_coaching_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="the figures as one JSON object instead of the table")] = False,
) -> None:
    """Events and observations against the adjudicated gold: development vs held-out visits, label F1."""
    import json

    from tools.bench.coaching import bench_coaching

    if json_out:
        print(json.dumps(bench_coaching()))
    else:
        bench_coaching(sys.stdout)


@bench_app.command("soak")
def bench_soak_cmd(
    minutes: Annotated[float, typer.Option("--minutes", callback=_positive, help="length of the visit (paced in real time)")] = 60.0,
    every: Annotated[float, typer.Option("--every", callback=_positive, help="seconds between RSS samples")] = 30.0,
) -> None:
    """One long visit through the real device path: RSS over time, growth, residency p100 (JSON lines)."""
    import json

    from tools.bench.soak import run_soak

    print(json.dumps(run_soak(minutes, every, sys.stdout)))


@bench_app.command("delivery")
def bench_delivery_cmd(
    visits: Annotated[int, typer.Option(min=1, help="visits to run")] = 20,
    pipeline: Annotated[bool, typer.Option("--pipeline", help="real 10-minute visits through the full pipeline (slow)")] = False,
) -> None:
    """Stop -> report on the phone latency, outbox write cost."""
    import json

    from tools.bench.outbox_write import bench_delivery, bench_outbox

    if pipeline:
        from tools.bench.delivery import bench_pipeline_delivery

        print(json.dumps({"delivery": bench_pipeline_delivery(min(visits, 3))}))
        return
    print(json.dumps({"delivery": bench_delivery(visits), "outbox": bench_outbox()}))


def usage_line(exc: Exception) -> str:
    """A click usage error in one line: what is wrong, and the --help of the command it concerns."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    text = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    text = text[:1].lower() + text[1:].rstrip(".")
    ctx = getattr(exc, "ctx", None)  # most usage errors carry the command they concern
    return f"{text} (see {ctx.command_path if ctx is not None else _command_path(sys.argv[1:])} --help)"


def _command_path(args: list[str]) -> str:
    """'edge-agent phone start' from the command line, for errors raised before a command had a context."""
    import typer.main

    command, path = typer.main.get_command(app), ["edge-agent"]
    for arg in args:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        command, path = sub, [*path, arg]
    return " ".join(path)


_OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def main() -> None:
    """The console script. ``| head -1``: a reader that goes away ends any command quietly with 0 (cli/output.py)."""
    try:
        _main()
    except (SystemExit, BrokenPipeError) as exc:  # BrokenPipeError here: stderr too was the closed pipe (2>&1 | head)
        if not reader_gone(exc):
            raise
        drop_output()
        sys.exit(0)


def _main() -> None:
    debug = bool(os.environ.get("EDGE_AGENT_DEBUG"))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from edge_agent.device.ops.logs import ExceptionNames

    for handler in logging.getLogger().handlers:
        handler.addFilter(ExceptionNames())
    try:
        try:
            # not standalone: typer would draw usage errors as a multi-line rich box; they are one line here
            code = app(prog_name="edge-agent", standalone_mode=False)
        except typer.Abort:  # end of input at a prompt
            raise KeyboardInterrupt from None
        except typer.TyperException as exc:  # typer's click errors: usage errors, bad values, unreadable files
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]  # `edge-agent` or a group with no command: its help, as before
            else:
                print(f"edge-agent: {usage_line(exc)}", file=sys.stderr)
            sys.exit(getattr(exc, "exit_code", 2))
        if code == 130:  # typer turns Ctrl-C into a silent exit 130
            raise KeyboardInterrupt
        try:
            sys.stdout.flush()  # a reader gone before the last buffered line shows here, not as a trace at exit
        except BrokenPipeError:
            drop_output()  # the command finished: its own status stands (a reader leaving is not a failure)
        sys.exit(code if isinstance(code, int) else 0)
    except BrokenPipeError:  # stdout's reader went away (`| head -1`): its choice, not an error
        drop_output()
        sys.exit(0)
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        # a bench tool's `raise SystemExit("message")`: Python printed it bare and exited 1 (1 is 'a check failed')
        print(f"edge-agent: {exc.code}", file=sys.stderr)
        sys.exit(2)
    except EdgeAgentError as exc:
        print(f"edge-agent: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("edge-agent: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a traceback is a bug: say so in one line
        if debug:
            raise
        if isinstance(exc, OSError) and not exc.filename and exc.errno in _OUTPUT_ERRNOS:
            # the only unnamed file a command writes is its output (`> result.jsonl` on a full disk)
            drop_output()
            print(f"edge-agent: cannot write the output ({exc.strerror}); free space where it goes, or send it elsewhere",
                  file=sys.stderr)
            sys.exit(2)
        if isinstance(exc, OSError) and exc.filename:
            # a path the user gave (or configured) that cannot be used: a folder in the way, no permission, a full disk
            print(f"edge-agent: cannot use {exc.filename}: {exc.strerror}; check the path, its permissions and free space", file=sys.stderr)
            sys.exit(2)
        print(
            f"edge-agent: internal error ({type(exc).__name__}: {str(exc)[:200]}); rerun with EDGE_AGENT_DEBUG=1 and report it",
            file=sys.stderr,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
