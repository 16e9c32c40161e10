"""`edge-agent behaviours classify` and `edge-agent analyze`: the commands and their bodies."""


from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer

from edge_agent.errors import EdgeAgentError

app = typer.Typer(help="Communication-behaviour detection.", no_args_is_help=True)


@app.command("classify")
def classify(batch_size: Annotated[int, typer.Option(help="utterances per ONNX batch")] = 256) -> None:
    """Read JSON lines {"text": ...} on stdin; write {"text","labels","scores"} per line, in order.

    Optional per line: "previous_patient" (the patient turn before the sentence; null: no patient turn yet, the
    opening of a visit) and "turn_start" (true when the sentence opens the clinician's reply to it); models that read
    dialogue context use them. A line with neither field has an unknown context."""
    # bytes that are not UTF-8 must not end the stream (a UnicodeDecodeError under a UTF-8 locale): decoded with
    # surrogateescape, the line is refused by _parse_item and the rest goes on
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape") if hasattr(sys.stdin, "buffer") else sys.stdin
    raise typer.Exit(classify_stream(stdin, sys.stdout, sys.stderr, batch_size=batch_size))


def analyze(
    file: Annotated[Optional[Path], typer.Argument(help="audio file of a visit")] = None,
    textgrid: Annotated[Optional[list[Path]], typer.Option("--textgrid", help="DOCTOR.TextGrid PATIENT.TextGrid (PriMock57)")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="metrics and labelled utterances as JSON lines")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="the coaching report as one JSON object")] = False,
    voiceprint: Annotated[Optional[Path], typer.Option("--voiceprint", help="clinician voiceprint JSON or enrolment audio")] = None,
) -> None:
    """Coaching report for a visit: from audio (full pipeline) or from PriMock57 TextGrids."""
    if textgrid and len(textgrid) == 1 and file is not None and file.suffix.lower() == ".textgrid":
        # `--textgrid DOCTOR.TextGrid PATIENT.TextGrid`, as issue 5 writes it: the option takes one value, so the
        # patient's file arrives as FILE; it is the pair's second half, not an audio recording
        textgrid, file = [textgrid[0], file], None
    if textgrid:
        if len(textgrid) != 2 or file is not None:
            raise EdgeAgentError("give --textgrid twice: the doctor's TextGrid, then the patient's")
        if voiceprint is not None:
            raise EdgeAgentError("--voiceprint applies to an audio FILE; TextGrids already say who spoke")
        raise typer.Exit(analyze_textgrid(textgrid[0], textgrid[1], jsonl, sys.stdout, as_json=json_out))
    if file is None:
        raise EdgeAgentError("give an audio FILE, or --textgrid DOCTOR.TextGrid --textgrid PATIENT.TextGrid")
    from edge_agent.cli.analyze import analyze_audio

    analyze_audio(file, voiceprint, as_json=json_out, jsonl=jsonl)


DEFAULT_BATCH = 256
MAX_TEXT_CHARS = 10_000  # one utterance; longer input is almost certainly not a sentence


def _check_unicode(field: str, value: str) -> None:
    """Bytes that were not UTF-8 (decoded as surrogates) or a JSON lone surrogate ("\\ud800"): the tokenizer refuses
    them, and one such line used to end the whole stream."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f'"{field}" is not valid UTF-8 text (save the input as UTF-8)') from None


def _parse_item(line: str) -> tuple[str, Any]:
    """(text, dialogue context or None) of one JSON line, or ValueError with a reason a person can act on."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError('expected a JSON object like {"text": "..."}')
    if "text" not in obj:
        raise ValueError('missing "text" field')
    text = obj["text"]
    if not isinstance(text, str):
        raise ValueError(f'"text" must be a string, got {type(text).__name__}')
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f'"text" is longer than {MAX_TEXT_CHARS} characters')
    _check_unicode("text", text)
    prev = obj.get("previous_patient")
    if prev is not None and not isinstance(prev, str):
        raise ValueError(f'"previous_patient" must be a string or null, got {type(prev).__name__}')
    if prev is not None:
        _check_unicode("previous_patient", prev)
    start = obj.get("turn_start", False)
    if not isinstance(start, bool):
        raise ValueError(f'"turn_start" must be true or false, got {type(start).__name__}')
    if "previous_patient" not in obj and "turn_start" not in obj:  # context unknown (not "no patient turn yet")
        return text, None
    from edge_agent.behaviours.features import Context

    return text, Context(prev[:MAX_TEXT_CHARS] if prev else None, start)


def classify_stream(stdin: IO[str], stdout: IO[str], stderr: IO[str], batch_size: int = DEFAULT_BATCH, classifier: Any = None) -> int:
    """JSON lines in -> one JSON line per valid input line, in order.

    A malformed line gets one error line on stderr (line number and reason) and
    no output line; the rest of the stream is still processed. Returns 0 when
    every line was classified, 1 when some were rejected.
    """
    if batch_size < 1:
        raise EdgeAgentError("--batch-size must be at least 1")
    if classifier is None:
        from edge_agent.behaviours.classifier import BehaviourClassifier

        classifier = BehaviourClassifier(threads=2)
    pending: list[str] = []
    contexts: list[Any] = []
    bad = 0

    def flush() -> None:
        if any(c is not None for c in contexts) and getattr(classifier, "uses_context", False):
            results = classifier.classify(pending, list(contexts))
        else:
            results = classifier.classify(pending)
        for res in results:
            stdout.write(json.dumps(res.to_dict(), ensure_ascii=False) + "\n")
        pending.clear()
        contexts.clear()

    for n, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            text, ctx = _parse_item(line)
            pending.append(text)
            contexts.append(ctx)
        except ValueError as exc:
            # Keep order: everything before the bad line is written first.
            flush()
            bad += 1
            stderr.write(f"line {n}: {exc}; skipped\n")
            stderr.flush()
            continue
        if len(pending) >= batch_size:
            flush()
    flush()
    stdout.flush()
    return 1 if bad else 0


def analyze_textgrid(doctor_path: Path, patient_path: Path, jsonl: bool, out: IO[str], classifier: Any = None,
                     as_json: bool = False) -> int:
    """Metrics and labelled clinician sentences of a PriMock57-style pair of TextGrids: readable, as JSON lines
    (``jsonl``) or as the coaching report in one JSON object (``as_json``, as ``analyze FILE --json``)."""
    from edge_agent.behaviours.sources import utterances_from_textgrids
    from edge_agent.feedback.report import build_feedback

    for p in (doctor_path, patient_path):
        if Path(p).is_dir():
            raise EdgeAgentError(f"{p} is a directory; give the doctor's and the patient's TextGrid file of one consultation")
        if not Path(p).is_file():
            raise EdgeAgentError(f"TextGrid {p} not found; give the doctor and the patient TextGrid of one consultation")
    utts = utterances_from_textgrids(Path(doctor_path), Path(patient_path))
    if not utts:
        raise EdgeAgentError(f"no utterances in {doctor_path} or {patient_path}")
    if classifier is None:
        from edge_agent.behaviours.classifier import BehaviourClassifier

        classifier = BehaviourClassifier(threads=2)
    fb = build_feedback(utts, classifier)
    if as_json and not jsonl:
        out.write(json.dumps(fb.to_dict(), ensure_ascii=False) + "\n")
        return 0
    if not jsonl:
        out.write(fb.render())
        return 0
    write_report_lines(fb, utts, classifier, out)
    return 0


def write_report_lines(fb: Any, utts: list[Any], classifier: Any, out: IO[str]) -> None:
    """`analyze --jsonl`, from TextGrids or from the live pipeline alike: metrics, labelled clinician sentences, feedback."""
    from edge_agent.behaviours.reliability import SHOWN
    from edge_agent.feedback.report import label_clinician_sentences

    d = fb.to_dict()
    out.write(json.dumps({"type": "metrics", "visit_duration_s": d["visit_duration_s"], **d["timing"]}) + "\n")
    for s in label_clinician_sentences(utts, classifier):
        out.write(json.dumps({"type": "utterance", "speaker": "clinician", "t0": round(s.at_s, 2), "text": s.text,
                              # only labels coders agree on (docs/labelling.md §8), as in the counts and on the phone
                              "labels": [lab for lab in s.labels if lab in SHOWN]}, ensure_ascii=False) + "\n")
    # from audio, what the capture lost (the report rests on partial audio when it did)
    extra = {"quality": d["quality"]} if "quality" in d else {}
    out.write(json.dumps({"type": "feedback", "label_counts": d["label_counts"], "observations": d["observations"], **extra},
                         ensure_ascii=False) + "\n")
