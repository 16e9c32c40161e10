"""Where the patient's words land in "clinician" utterances, and what the quote gate sees there.

docs/privacy.md §4b: a report may quote the clinician's own words (``feedback.quotes``), never the
patient's. This streams real-voice visits through the real pipeline (unpaced), applies the final
labels and confidences, and writes one row per final word: its final label, its utterance's final
confidence and cosine to the voiceprint, its distance to the utterance's edges and whether a
speaker change lies there, and who really spoke at its midpoint (the reference intervals). The
quote gate's rule (``edge_agent/feedback/quote_gate.py``) was chosen from these rows:

    python -m tools.realvoice.quotes run --out DIR [--data DIR] [--only NAME]   # stream, write DIR/words.jsonl
    python -m tools.realvoice.quotes score --out DIR                           # the gate's figures on the rows
    python -m tools.realvoice.quotes primock --out DIR                         # what the margin costs on PriMock57

A word counts as the patient's when the patient is active at its midpoint (overlaps and the
patient's back-channels included) or, in a gap, is the nearest speaker within 0.3 s: the
conservative reading (a clinician word timed late into the patient's turn counts as a leak).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
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
                "patient_backchannel": any(iv.speaker == "patient" and iv.kind == "backchannel" and iv.start - 0.1 <= mid <= iv.stop + 0.1
                                           for iv in intervals),
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
                for row in word_rows(utts, intervals):  # the set's folder in the name: several sets can share one DIR
                    f.write(json.dumps({"visit": f"{data.name}/{ref_path.stem}", "enrolled": enrolled, **row}) + "\n")
                f.flush()
                print(f"{ref_path.stem} enrolled={enrolled}: {len(utts)} utterances", file=sys.stderr)


def load_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "words.jsonl").read_text().splitlines() if line.strip()]


def _utterances(rows: Sequence[dict[str, Any]]) -> list[Any]:
    """One visit run's utterances rebuilt from its word rows (times, final label and confidence, voiceprint similarity)."""
    from edge_agent.transcript import Utterance, Word

    by: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["utt"], []).append(r)
    out = []
    for i in sorted(by):
        ws = sorted(by[i], key=lambda r: r["word"])
        r0 = ws[0]
        out.append(Utterance(r0["u_t0"], r0["u_t1"], " ".join(w["text"] for w in ws),
                             tuple(Word(w["text"], w["t0"], w["t1"]) for w in ws), r0["label"], r0["confidence"], i,
                             voiceprint_similarity=r0["vp"]))
    return out


def gate_rows(rows: Sequence[dict[str, Any]], gate: Any) -> list[tuple[dict[str, Any], bool]]:
    """Each word with whether ``gate`` would let a sentence holding it be quoted (a sentence passes only if all its words do)."""
    runs: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for r in rows:
        runs.setdefault((r["visit"], r["enrolled"]), []).append(r)
    out = []
    for run_rows in runs.values():
        utts = _utterances(run_rows)
        regions = gate.regions(utts)
        for r in run_rows:
            out.append((r, any(a - 1e-6 <= r["t0"] and r["t1"] <= b + 1e-6 for a, b in regions[r["utt"]])))
    return out


def score(rows: Sequence[dict[str, Any]], gate: Any) -> dict[str, Any]:
    gated = gate_rows(rows, gate)
    clin = [(r, ok) for r, ok in gated if r["label"] == "clinician" and not r["patient"]]
    leaks = [(r, ok) for r, ok in gated if r["label"] == "clinician" and r["patient"]]
    through = [r for r, ok in leaks if ok]
    return {
        "clinician_words": len(clin), "clinician_words_quotable": sum(ok for _, ok in clin),
        "quotable_share": round(sum(ok for _, ok in clin) / len(clin), 3) if clin else None,
        "patient_words_labelled_clinician": len(leaks),
        "patient_words_quotable": len(through),
        "of_which_backchannels": sum(1 for r in through if r.get("patient_backchannel")),
        "examples": [(r["visit"], r["text"], r["t0"]) for r in through][:6],
    }


def sweep(rows: Sequence[dict[str, Any]]) -> None:
    """The gate's figures per condition, at its settings and around them."""
    from edge_agent.feedback.quote_gate import MARGIN_S, MIN_CONFIDENCE, MIN_VOICEPRINT_SIMILARITY, QuoteGate

    for enrolled in (True, False):
        for mic in ("close", "far"):
            sub = [r for r in rows if r["enrolled"] == enrolled and r["visit"].endswith(mic)]
            if not sub:
                continue
            for sim in (None, MIN_VOICEPRINT_SIMILARITY):
                for margin in (0.0, 1.0, 1.5, 2.0, MARGIN_S, 3.0):
                    # sim None: what confidence and margin alone would let through (the similarity not asked for)
                    gate = QuoteGate(-2.0 if sim is None else sim, MIN_CONFIDENCE, margin)
                    if sim is None:
                        sub_ = [dict(r, vp=r["vp"] if r["vp"] is not None else 1.0) for r in sub]
                    else:
                        sub_ = sub
                    print(json.dumps({"enrolled": enrolled, "mic": mic, "min_similarity": sim, "margin_s": margin,
                                      **score(sub_, gate)}))


def primock_cost(margins: Sequence[float] = (0.0, 1.0, 1.5, 2.0, 2.3, 3.0)) -> None:
    """What the margin alone costs on real clinic turn-taking: PriMock57's 57 consultations (human labels and
    times), every clinician utterance taken as verified, quotes counted in the report (observations and the
    strength) without the gate and with it at each margin."""
    from dataclasses import replace

    from edge_agent.behaviours.classifier import BehaviourClassifier
    from edge_agent.feedback.quote_gate import QuoteGate
    from edge_agent.feedback.report import build_feedback
    from tools.corpus.primock import consultation_ids, load_consultation, utterances_from_consultation

    classifier = BehaviourClassifier(threads=1)
    totals = {m: 0 for m in margins}
    base = 0
    for cid in consultation_ids():
        utts = [replace(u, voiceprint_similarity=0.9 if u.speaker == "clinician" else None)
                for u in utterances_from_consultation(load_consultation(cid))]
        for margin in (None, *margins):
            fb = build_feedback(utts, classifier, quotes=True, gate=None if margin is None else QuoteGate(margin_s=margin))
            n = sum(1 for o in fb.observations if o.clinician_quote) + int(bool(fb.strength and fb.strength.clinician_quote))
            if margin is None:
                base += n
            else:
                totals[margin] += n
    print(json.dumps({"consultations": len(consultation_ids()), "quotes_without_gate": base,
                      "quotes_with_gate_by_margin_s": totals}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "score", "primock"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=TEST_SET)
    parser.add_argument("--only", default=None)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out, args.data, args.only)
        return 0
    if args.command == "primock":
        primock_cost()
        return 0
    sweep(load_rows(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
