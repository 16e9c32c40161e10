"""`edge-agent behaviours classify` and `edge-agent analyze`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_agent.errors import EdgeAgentError

app = typer.Typer(help="Communication-behaviour detection.", no_args_is_help=True)


@app.command("classify")
def classify(batch_size: Annotated[int, typer.Option(help="utterances per ONNX batch")] = 256) -> None:
    """Read JSON lines {"text": ...} on stdin; write {"text","labels","scores"} per line, in order."""
    from edge_agent.cli.behaviours_commands import classify_stream

    raise typer.Exit(classify_stream(sys.stdin, sys.stdout, sys.stderr, batch_size=batch_size))


def analyze(
    file: Annotated[Optional[Path], typer.Argument(help="audio file of a visit")] = None,
    textgrid: Annotated[Optional[list[Path]], typer.Option("--textgrid", help="DOCTOR.TextGrid PATIENT.TextGrid (PriMock57)")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="metrics and labelled utterances as JSON lines")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="the coaching report as one JSON object")] = False,
    voiceprint: Annotated[Optional[Path], typer.Option("--voiceprint", help="clinician voiceprint JSON or enrolment audio")] = None,
) -> None:
    """Coaching report for a visit: from audio (full pipeline) or from PriMock57 TextGrids."""
    if textgrid:
        from edge_agent.cli.behaviours_commands import analyze_textgrid

        if len(textgrid) != 2 or file is not None:
            raise EdgeAgentError("give --textgrid twice: the doctor's TextGrid, then the patient's")
        raise typer.Exit(analyze_textgrid(textgrid[0], textgrid[1], jsonl or json_out, sys.stdout))
    if file is None:
        raise EdgeAgentError("give an audio FILE, or --textgrid DOCTOR.TextGrid --textgrid PATIENT.TextGrid")
    from edge_agent.cli.analyze import analyze_audio

    analyze_audio(file, voiceprint, as_json=json_out or jsonl)
