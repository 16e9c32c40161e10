"""Where the patient's words land in "clinician" utterances, and what the quote gate sees there.

docs/privacy.md §4b: a report may quote the clinician's own words (``feedback.quotes``), never the
patient's. This streams real-voice visits through the real pipeline (unpaced), applies the final
labels and confidences, and writes one row per final word: its final label, its utterance's final
confidence and cosine to the voiceprint, its distance to the utterance's edges and whether a
speaker change lies there, and who really spoke at its midpoint (the reference intervals). The
quote gate's rule (``edge_agent/feedback/quote_gate.py``) was chosen from these rows:

    python -m tools.realvoice.quotes run --out DIR [--data DIR] [--only NAME]   # stream, write DIR/words.jsonl
    python -m tools.realvoice.quotes score --out DIR                           # the gate's figures on the rows

A word counts as the patient's when the patient is active at its midpoint (overlaps and the
patient's back-channels included) or, in a gap, is the nearest speaker within 0.3 s: the
conservative reading (a clinician word timed late into the patient's turn counts as a leak).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tools.realvoice import metrics as M

REPO = Path(__file__).resolve().parents[2]
TEST_SET = REPO / "tests" / "data" / "realvoice"


def stream_utterances(session: Any, audio: Path, voiceprint: Any) -> list[Any]:
    """The run's finals with their final labels and confidences (relabels applied), in time order."""
    from edge_agent.asr.events import FinalTranscript, SpeakerRelabel, apply_relabels
    from edge_agent.audio.file_source import FileSource

    finals: list[Any] = []
    relabels: list[SpeakerRelabel] = []

    def sink(event: object) -> None:
        if isinstance(event, FinalTranscript):
            finals.append(event.utterance)
        elif isinstance(event, SpeakerRelabel):
            relabels.append(event)

    session.run(FileSource(audio), sink, voiceprint)
    return sorted(apply_relabels(finals, relabels), key=lambda u: (u.t0, u.t1))


def patient_at(t: float, intervals: Sequence[M.Interval], tolerance_s: float = 0.3) -> bool:
    """The patient speaks at ``t`` (alone or in an overlap), or is the nearest speaker of a gap within the tolerance."""
    active = M.active_speakers(t, intervals)
    if active:
        return "patient" in active
    return M.nearest_speaker(t, intervals, tolerance_s) == "patient"


def word_rows(utts: Sequence[Any], intervals: Sequence[M.Interval]) -> list[dict[str, Any]]:
    """One row per final word (see the module docstring)."""
    rows = []
    for i, u in enumerate(utts):
        prev = utts[i - 1] if i > 0 else None
        nxt = utts[i + 1] if i + 1 < len(utts) else None
        for k, w in enumerate(u.words):
            mid = (w.t0 + w.t1) / 2
            rows.append({
                "utt": i, "word": k, "n_words": len(u.words), "text": w.text, "t0": round(w.t0, 3), "t1": round(w.t1, 3),
                "label": u.speaker, "confidence": round(u.speaker_confidence, 4),
                "vp": u.voiceprint_similarity, "u_t0": round(u.t0, 3), "u_t1": round(u.t1, 3),
                "prev_label": prev.speaker if prev else None, "prev_gap": round(u.t0 - prev.t1, 3) if prev else None,
                "next_label": nxt.speaker if nxt else None, "next_gap": round(nxt.t0 - u.t1, 3) if nxt else None,
                "patient": patient_at(mid, intervals), "ref": M.active_speakers(mid, intervals),
            })
    return rows


def run(out: Path, data: Path, only: str | None) -> None:
    from edge_agent.device.pipeline import PipelineConfig
    from edge_agent.device.session import TranscriptionSession
    from edge_agent.speakers.enrol import voiceprint_from

    session = TranscriptionSession.load(PipelineConfig(), speakers=True)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "words.jsonl").open("a") as f:
        for ref_path in sorted(data.glob("visit*_*.json")):
            if only and only not in ref_path.stem:
                continue
            ref = json.loads(ref_path.read_text())
            intervals = [M.Interval(x["speaker"], x["start_s"], x["stop_s"], x["kind"]) for x in ref["intervals"]]
            for enrolled in (True, False):
                vp = voiceprint_from(data / ref["enrolment"]["file"]) if enrolled else None
                utts = stream_utterances(session, data / ref["audio"], vp)
                for row in word_rows(utts, intervals):
                    f.write(json.dumps({"visit": ref_path.stem, "enrolled": enrolled, **row}) + "\n")
                f.flush()
                print(f"{ref_path.stem} enrolled={enrolled}: {len(utts)} utterances", file=sys.stderr)


def load_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "words.jsonl").read_text().splitlines() if line.strip()]


def edge_distances(row: dict[str, Any], change_only: bool) -> tuple[float, float]:
    """Seconds from the word to its utterance's start and end edges; inf for an edge that is not a speaker
    change when ``change_only`` (the neighbouring utterance has the same label, or there is none)."""
    to_start, to_end = row["t0"] - row["u_t0"], row["u_t1"] - row["t1"]
    if change_only:
        if row["prev_label"] in (None, row["label"]):
            to_start = math.inf
        if row["next_label"] in (None, row["label"]):
            to_end = math.inf
    return to_start, to_end


def gate_passes(row: dict[str, Any], min_vp: float | None, min_conf: float, margin_s: float, change_only: bool) -> bool:
    if row["label"] != "clinician" or row["confidence"] < min_conf:
        return False
    if min_vp is not None and (row["vp"] is None or row["vp"] < min_vp):
        return False
    a, b = edge_distances(row, change_only)
    return a >= margin_s and b >= margin_s


def score(rows: Iterable[dict[str, Any]], min_vp: float | None, min_conf: float, margin_s: float, change_only: bool
          ) -> dict[str, Any]:
    rows = list(rows)
    clin_true = [r for r in rows if r["label"] == "clinician" and not r["patient"]]
    leaks = [r for r in rows if r["label"] == "clinician" and r["patient"]]
    passed_leaks = [r for r in leaks if gate_passes(r, min_vp, min_conf, margin_s, change_only)]
    kept = [r for r in clin_true if gate_passes(r, min_vp, min_conf, margin_s, change_only)]
    return {"clinician_words": len(clin_true), "patient_words_labelled_clinician": len(leaks),
            "patient_words_passing": len(passed_leaks), "clinician_words_passing": len(kept),
            "kept_share": round(len(kept) / len(clin_true), 3) if clin_true else None,
            "passing_leaks": [(r["visit"], r["text"], r["t0"], r["vp"], r["confidence"]) for r in passed_leaks][:10]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "score"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=TEST_SET)
    parser.add_argument("--only", default=None)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out, args.data, args.only)
        return 0
    rows = load_rows(args.out)
    for enrolled in (True, False):
        for cond in ("close", "far"):
            sub = [r for r in rows if r["enrolled"] == enrolled and r["visit"].endswith(cond)]
            if not sub:
                continue
            for min_vp, conf, margin, change_only in ((None, 0.0, 0.0, True), (0.75, 0.0, 0.0, True), (0.75, 0.0, 2.3, True),
                                                     (0.75, 0.0, 2.3, False)):
                res = score(sub, min_vp if enrolled else None, conf, margin, change_only)
                print(json.dumps({"enrolled": enrolled, "mic": cond, "min_vp": min_vp, "min_conf": conf, "margin_s": margin,
                                  "change_only": change_only, **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
