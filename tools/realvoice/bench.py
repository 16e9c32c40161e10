"""Real-voice benchmark of the current pipeline, through its public CLI (issue 12).

Per condition (visit pair type x close/far x with/without enrolment) it runs

* ``python -m edge_agent.cli transcribe FILE --jsonl [--voiceprint VP] [--realtime]``
  (the voiceprint from ``python -m edge_agent.cli enroll ENROL.flac``), reading
  each JSON line with the wall time it arrived, and
* offline faster-whisper (``tools/realvoice/offline.py``: tiny.en int8, beam 5,
  ``vad_filter=True``) on the same audio, and once per visit on the clean
  per-turn source audio (pseudo-reference),

each in its own process, CPU from the child's rusage, and scores them with
``tools/realvoice/metrics.py``. One JSON line per condition goes to
``DIR/results.jsonl`` and stdout, then a table.

    python -m tools.realvoice.bench --out DIR              # committed test set, paced (~7 min)
    python -m tools.realvoice.bench --out DIR --full       # 6 visits of 74-119 s (~30 min)
    python -m tools.realvoice.bench --out DIR --fast       # unpaced: no latency figures
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.realvoice import metrics as M

REPO = Path(__file__).resolve().parents[2]
TEST_SET = REPO / "tests" / "data" / "realvoice"
# issue 12's targets: (key in a result, lowest or highest allowed)
TARGETS: dict[str, tuple[str, float]] = {
    "coverage": ("min", 0.98),
    "wer_ratio": ("max", 1.1),
    "swaps": ("max", 0),
    "boundary_p90_s": ("max", 0.3),
    "final_p95_s": ("max", 1.0),
    "onset_p95_s": ("max", 1.2),
    "cpu_ratio": ("max", 1.3),
}


def misses(result: dict[str, Any]) -> list[str]:
    """Names of the targets this condition misses (attribution: 0.97 enrolled, 0.92 not)."""
    out = []
    for key, (kind, bound) in TARGETS.items():
        value = result.get(key)
        if value is not None and (value < bound if kind == "min" else value > bound):
            out.append(key)
    floor = 0.97 if result["enrolled"] else 0.92
    if result.get("attribution") is not None and result["attribution"] < floor:
        out.append("attribution")
    return out


# ------------------------------------------------------------------ child processes


@dataclass
class ChildRun:
    lines: list[tuple[float, str]]  # (wall time read, line)
    stderr: str
    returncode: int
    cpu_s: float  # user + system of the child and its children
    wall_s: float
    maxrss_mb: float
    started: float


def run_child(cmd: list[str]) -> ChildRun:
    """Run a command, timestamp each stdout line as it arrives, return its rusage."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=REPO)
        lines: list[tuple[float, str]] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic(), line))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        err.seek(0)
        stderr = err.read()
    return ChildRun(lines, stderr, proc.returncode, usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024, started)


def last_json(run: ChildRun, what: str) -> dict[str, Any]:
    if run.returncode != 0 or not run.lines:
        tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{what} failed ({run.returncode}): {tail}")
    return json.loads(run.lines[-1][1])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent.cli", *args]


def offline_cmd(*args: str, threads: int = 1) -> list[str]:
    return [sys.executable, "-m", "tools.realvoice.offline", *args, "--threads", str(threads)]


# ------------------------------------------------------------------ conditions


@dataclass(frozen=True)
class Condition:
    ref_path: Path
    enrolled: bool

    @property
    def ref(self) -> dict[str, Any]:
        return json.loads(self.ref_path.read_text())

    @property
    def audio(self) -> Path:
        return self.ref_path.parent / self.ref["audio"]

    @property
    def name(self) -> str:
        return f"{self.ref_path.stem}_{'enrol' if self.enrolled else 'noenrol'}"


def discover(data: Path) -> list[Path]:
    refs = sorted(p for p in data.glob("*.json") if "visit" in p.stem)
    if not refs:
        raise SystemExit(f"no visit references (visit*.json) in {data}; give --data a folder made by "
                         "`python -m tools.realvoice.generate --out DIR`, or leave --data out for the committed set")
    return refs


def intervals_of(ref: dict[str, Any]) -> list[M.Interval]:
    return [M.Interval(i["speaker"], i["start_s"], i["stop_s"], i["kind"]) for i in ref["intervals"]]


def parse_events(run: ChildRun) -> tuple[list[M.Event], dict[str, Any]]:
    events: list[M.Event] = []
    summary: dict[str, Any] = {}
    records = []
    relabel: dict[tuple[int, float], str] = {}
    for wall, line in run.lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind = rec.get("type")
        if kind == "summary":
            summary = rec
        elif kind == "relabel":  # the pipeline's final speaker for an earlier final: what a report uses
            relabel[(rec["segment"], round(rec["t0"], 3))] = rec["speaker"]
        elif kind in ("partial", "final", "discarded"):
            records.append((wall, kind, rec))
    for wall, kind, rec in records:
        speaker = relabel.get((rec["segment"], round(rec["t0"], 3)), rec.get("speaker", "unknown")) if kind == "final" else "unknown"
        words = tuple(M.HypWord(w["w"], w["t0"], w["t1"], speaker, rec["segment"]) for w in rec.get("words", []))
        events.append(M.Event(kind, rec["t0"], rec["t1"], wall, rec.get("text", rec.get("reason", "")), rec["segment"], words))
    return events, summary


# ------------------------------------------------------------------ scoring


def segment_spans(events: list[M.Event]) -> dict[int, tuple[float, float]]:
    spans: dict[int, tuple[float, float]] = {}
    for e in events:
        lo, hi = spans.get(e.segment, (e.t0, e.t1))
        spans[e.segment] = (min(lo, e.t0), max(hi, e.t1))
    return spans


def lost_word_places(offline: dict[str, Any], lost: list[int], events: list[M.Event]) -> dict[str, int]:
    """Where the offline words that streaming lost sit: in no final at all, or inside a final's span."""
    final_spans = [(min(w.t0 for w in e.words), max(w.t1 for w in e.words)) for e in events if e.kind == "final" and e.words]
    discarded = [(e.t0, e.t1) for e in events if e.kind == "discarded"]
    times = [w["t"] for w in offline["words"]]
    norm_index = []  # offline normalised word -> time
    for w in offline["words"]:
        norm_index.extend([w["t"]] * len(M.normalise(w["w"])))
    places = Counter()
    for i in lost:
        t = norm_index[i] if i < len(norm_index) else (times[-1] if times else 0.0)
        if any(a - 0.5 <= t <= b + 0.5 for a, b in final_spans):
            places["inside_a_final"] += 1
        elif any(a <= t <= b for a, b in discarded):
            places["in_a_discarded_segment"] += 1
        else:
            places["no_final_near"] += 1
    return dict(places)


def score(cond: Condition, run: ChildRun, offline: dict[str, Any], offline_cpu: float, pseudo: dict[str, Any],
          startup: dict[str, float], paced: bool) -> dict[str, Any]:
    ref = cond.ref
    intervals = intervals_of(ref)
    turns = [i for i in intervals if i.kind == "turn"]
    events, summary = parse_events(run)
    finals = [e for e in events if e.kind == "final"]
    words = [w for e in finals for w in e.words]
    stream_text = " ".join(e.text for e in finals)
    scored = M.score_words(words, intervals)
    attr = M.attribution(scored)
    swaps = M.identity_swaps(scored)
    bounds = M.turn_boundaries(M.reference_changes(intervals), M.hypothesis_changes(words))
    edges = M.turn_edge_errors(scored, intervals, attr.mapping)
    off_words = M.normalise(offline["text"])
    alignment = M.align(off_words, M.normalise(stream_text))
    clean = M.normalise(pseudo["text"])
    wer_stream = M.align(clean, M.normalise(stream_text)).wer
    wer_offline = M.align(clean, off_words).wer
    spans = segment_spans(events)
    lengths = sorted(b - a for a, b in spans.values())
    discarded = Counter(e.text for e in events if e.kind == "discarded")
    stderr = run.stderr
    result: dict[str, Any] = {
        "condition": cond.name,
        "visit": ref["visit"],
        "pair": ref["pair_type"],
        "mic": ref["condition"],
        "enrolled": cond.enrolled,
        "paced": paced,
        "audio_s": ref["duration_s"],
        "returncode": run.returncode,
        "coverage": alignment.coverage,
        "coverage_bag": M.bag_coverage(off_words, M.normalise(stream_text)),
        "wer_stream_vs_offline": alignment.wer,
        "deletion_rate": alignment.deletion_rate,  # offline words with nothing in their place
        "insertion_rate": round(alignment.insertions / max(1, len(off_words)), 4),
        "offline_words": len(off_words),
        "lost_words": lost_word_places(offline, alignment.lost, events),
        "deleted_words": lost_word_places(offline, alignment.deleted, events),
        "wer_stream_vs_clean": wer_stream,
        "wer_offline_vs_clean": wer_offline,
        "wer_ratio": round(wer_stream / wer_offline, 3) if wer_stream is not None and wer_offline else None,
        "attribution_mapped": attr.mapped,
        "attribution_labelled": attr.labelled,
        "attribution": attr.labelled if cond.enrolled else attr.mapped,
        "attribution_per_speaker": attr.per_speaker_mapped,
        "label_mapping": attr.mapping,
        "scored_words": attr.words,
        "overlap_words": attr.overlap_words,
        "overlap_attribution": attr.overlap_mapped,
        "unmatched_words": attr.unmatched_words,
        "labels": dict(Counter(w.speaker for w in words)),
        "swaps": swaps.swaps,
        "swap_windows": swaps.disagreeing_windows,
        "window_mappings": [",".join(f"{k[0]}>{v[0]}" for k, v in sorted(m.items())) for m in swaps.windows],
        "boundary_p50_s": bounds.p50,
        "boundary_p90_s": bounds.p90,
        "boundary_errors_s": bounds.errors,
        "spurious_changes": bounds.spurious,
        **edges,
        "segments": len(spans),
        "segment_s_max": round(lengths[-1], 2) if lengths else None,
        "segments_over_14s": sum(1 for x in lengths if x >= 14.0),
        "finals": len(finals),
        "discarded": dict(discarded),
        "dropped_segments": summary.get("dropped_segments"),
        "dropped_frames": summary.get("dropped_frames"),
        # no voiceprint and voices too alike to tell apart: what the report's quality section tells the clinician
        "speakers_uncertain": summary.get("speakers_uncertain"),
        "voiceprint_unheard": summary.get("voiceprint_unheard"),
        # partial/commit decodes the decoder absorbed (the final covered the audio): a silent failure otherwise
        "failed_open_decodes": summary.get("failed_open_decodes"),
        # the pipeline logs "speech pipeline worker failed" and stops (PipelineFault); older builds
        # logged "ASR worker error" and went on: count both, or a stopped run shows 0 errors
        "worker_errors": max(summary.get("worker_errors") or 0,
                             stderr.count("ASR worker error") + stderr.count("speech pipeline worker failed")),
        "extractor_errors": stderr.count("exceeds the extractor"),
        "residency_max_s": summary.get("residency_max_s"),
        "stream_cpu_s": round(run.cpu_s, 2),
        "offline_cpu_s": round(offline_cpu, 2),
        "cpu_ratio_raw": round(run.cpu_s / offline_cpu, 3),
        "cpu_ratio": round((run.cpu_s - startup["stream"]) / max(1e-6, offline_cpu - startup["offline"]), 3),
        "stream_maxrss_mb": round(run.maxrss_mb, 1),
    }
    if paced:
        start = M.estimate_stream_start(events)
        if start is not None:
            finals_lat, missing = M.final_latencies(events, turns, start)
            onsets = M.onset_latencies(events, turns, start)
            result.update({
                "final_latencies_s": finals_lat, "onset_latencies_s": onsets,
                "final_p50_s": M.percentile(finals_lat, 50), "final_p95_s": M.percentile(finals_lat, 95),
                "final_max_s": max(finals_lat) if finals_lat else None, "turn_ends_without_final": missing,
                "onset_p50_s": M.percentile(onsets, 50), "onset_p95_s": M.percentile(onsets, 95),
            })
    result["misses"] = misses(result)
    return result


# ------------------------------------------------------------------ driver


def silence_file(out: Path) -> Path:
    import soundfile as sf

    path = out / "silence_1s.flac"
    if not path.exists():
        sf.write(str(path), np.zeros(16000, np.int16), 16000, subtype="PCM_16", format="FLAC")
    return path


def cached_json(path: Path, make: Any) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    data = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return data


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def save_run(path: Path, run: ChildRun) -> None:
    """Raw JSON lines (wall offset, line), stderr and rusage, so results can be re-scored later."""
    path.with_suffix(".jsonl").write_text("".join(f"{wall - run.started:.4f}\t{line}" for wall, line in run.lines))
    path.with_suffix(".stderr").write_text(run.stderr)
    meta = {"returncode": run.returncode, "cpu_s": run.cpu_s, "wall_s": run.wall_s, "maxrss_mb": run.maxrss_mb}
    path.with_suffix(".meta.json").write_text(json.dumps(meta))


def load_run(path: Path) -> ChildRun:
    meta = json.loads(path.with_suffix(".meta.json").read_text())
    lines = []
    for raw in path.with_suffix(".jsonl").read_text().splitlines(keepends=True):
        offset, line = raw.split("\t", 1)
        lines.append((float(offset), line))
    return ChildRun(lines, path.with_suffix(".stderr").read_text(), meta["returncode"], meta["cpu_s"], meta["wall_s"], meta["maxrss_mb"], 0.0)


def run_bench(data: Path, out: Path, paced: bool, jobs: int, threads: int, only: str | None, rescore: bool = False,
              vad: str | None = None) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    vad_args = ["--vad", vad] if vad else []  # absent: the pipeline's default engine (and a checkout without --vad works)
    refs = [r for r in discover(data) if only is None or only in r.stem]
    startup_path = out / "startup.json"
    if rescore:
        startup = json.loads(startup_path.read_text())
    else:
        # startup cost (imports + model loads) of each kind of process, subtracted for the CPU ratio
        silence = silence_file(out)
        startup = {"stream": run_child(cli("transcribe", str(silence), "--jsonl", *vad_args)).cpu_s,
                   "offline": run_child(offline_cmd("--audio", str(silence), threads=threads)).cpu_s}
        startup_path.write_text(json.dumps(startup))
    log(f"startup CPU: streaming {startup['stream']:.2f} s, offline {startup['offline']:.2f} s")
    offline: dict[str, tuple[dict[str, Any], float]] = {}
    pseudo: dict[str, dict[str, Any]] = {}
    voiceprints: dict[str, Path] = {}
    for d in ("offline", "stream", "pseudo", "voiceprints"):
        (out / d).mkdir(exist_ok=True)
    for ref_path in refs:
        ref = json.loads(ref_path.read_text())
        visit = ref["visit"]
        if visit not in pseudo:
            pseudo[visit] = cached_json(out / "pseudo" / f"{visit}.json",
                                        lambda ref_path=ref_path: last_json(run_child(offline_cmd("--turns", str(ref_path), threads=threads)), "pseudo-reference"))
        if visit not in voiceprints:
            vp = out / "voiceprints" / f"{visit}.json"
            if not vp.exists():
                enrol = run_child(cli("enroll", str(ref_path.parent / ref["enrolment"]["file"])))
                vp.write_text(json.dumps(last_json(enrol, "enroll")))
            voiceprints[visit] = vp
        off_path = out / "offline" / f"{ref_path.stem}.json"
        if rescore:
            off = json.loads(off_path.read_text())
            offline[ref_path.stem] = (off, off["child_cpu_s"])
            continue
        log(f"offline pass {ref_path.stem}")
        run = run_child(offline_cmd("--audio", str(ref_path.parent / ref["audio"]), threads=threads))
        off = last_json(run, "offline") | {"child_cpu_s": run.cpu_s}
        offline[ref_path.stem] = (off, run.cpu_s)
        off_path.write_text(json.dumps(off))
    conditions = [Condition(r, e) for r in refs for e in (False, True)]

    def stream(cond: Condition) -> dict[str, Any]:
        ref = cond.ref
        raw = out / "stream" / cond.name
        if rescore:
            run = load_run(raw)
            run_paced = json.loads(raw.with_suffix(".meta.json").read_text()).get("paced", paced)
        else:
            args = ["transcribe", str(cond.audio), "--jsonl", *vad_args]
            if paced:
                args.append("--realtime")
            if cond.enrolled:
                args += ["--voiceprint", str(voiceprints[ref["visit"]])]
            log(f"streaming {cond.name}")
            run = run_child(cli(*args))
            save_run(raw, run)
            meta = json.loads(raw.with_suffix(".meta.json").read_text()) | {"paced": paced}
            raw.with_suffix(".meta.json").write_text(json.dumps(meta))
            run_paced = paced
        off, off_cpu = offline[cond.ref_path.stem]
        return score(cond, run, off, off_cpu, pseudo[ref["visit"]], startup, run_paced)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(stream, conditions))
    with (out / "results.jsonl").open("w") as fh:
        for r in results:
            fh.write(json.dumps(r) + "\n")
            print(json.dumps(r))
    print(table(results))
    print()
    print(grouped_table(results))
    return results


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: list[dict[str, Any]]) -> str:
    head = ("condition", "cov", "werR", "attr", "swaps", "bnd90", "end>next", "fin95", "ons95", "cpuR", "seg>14s", "errs", "drop")
    rows = [head, ("target", ">=0.98", "<=1.1", ">=.97/.92", "0", "<=0.3", "", "<=1.0", "<=1.2", "<=1.3", "", "0", "0")]
    for r in results:
        rows.append((
            r["condition"].replace("visit", "v"), fmt(r["coverage"]), fmt(r["wer_ratio"]), fmt(r["attribution"]),
            fmt(r["swaps"]), fmt(r["boundary_p90_s"]), fmt(r["turn_end_to_next_speaker"]),
            fmt(r.get("final_p95_s")), fmt(r.get("onset_p95_s")), fmt(r["cpu_ratio"]),
            fmt(r["segments_over_14s"]), fmt(r["worker_errors"]), fmt(r["dropped_segments"]),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def _values_of(rs: list[dict[str, Any]]) -> Any:
    return lambda key: [r[key] for r in rs if r.get(key) is not None]


def _pooled_of(rs: list[dict[str, Any]]) -> Any:
    return lambda key: [x for r in rs for x in r.get(key, [])]


def grouped_table(results: list[dict[str, Any]]) -> str:
    """Per condition (pair type x mic x enrolment) over visits: means, worst visit, pooled percentiles."""
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["pair"], r["mic"], r["enrolled"]), []).append(r)
    head = ("pair/mic/enrol", "visits", "cov mean(min)", "del", "werR", "attr mean(min)", "swaps", "bnd p90", "fin p95", "ons p95", "cpuR")
    rows = [head]
    for (pair, mic, enrolled), rs in sorted(groups.items()):
        vals = _values_of(rs)
        pooled = _pooled_of(rs)
        rows.append((
            f"{pair}/{mic}/{'enrol' if enrolled else 'none'}", str(len(rs)),
            f"{np.mean(vals('coverage')):.2f} ({min(vals('coverage')):.2f})",
            f"{np.mean(vals('deletion_rate')):.3f}",
            f"{np.mean(vals('wer_ratio')):.2f}" if vals("wer_ratio") else "-",
            f"{np.mean(vals('attribution')):.2f} ({min(vals('attribution')):.2f})",
            str(sum(vals("swaps"))),
            fmt(M.percentile(pooled("boundary_errors_s"), 90)),
            fmt(M.percentile(pooled("final_latencies_s"), 95)),
            fmt(M.percentile(pooled("onset_latencies_s"), 95)),
            f"{np.mean(vals('cpu_ratio')):.2f}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="results, raw JSON lines, caches")
    parser.add_argument("--data", type=Path, default=None, help=f"folder of visits (default: {TEST_SET.relative_to(REPO)})")
    parser.add_argument("--full", action="store_true", help="generate (once) and run 6 visits of ~150 s into OUT/data")
    parser.add_argument("--fast", action="store_true", help="as fast as possible instead of paced in real time (no latencies)")
    parser.add_argument("--jobs", type=int, default=2, help="streaming runs at once (paced runs mostly wait)")
    parser.add_argument("--threads", type=int, default=1, help="offline CTranslate2 threads (the pipeline uses 1)")
    parser.add_argument("--only", default=None, help="only references whose name contains this")
    parser.add_argument("--vad", default=None, choices=("webrtc", "silero", "hybrid"), help="voice-activity engine of the streaming runs (default: the pipeline's)")
    parser.add_argument("--rescore", action="store_true", help="score the raw outputs already in OUT again (no runs)")
    args = parser.parse_args(argv)
    data = args.data or TEST_SET
    if args.full:
        from tools.realvoice.generate import main as generate

        data = args.out / "data"
        if not any(data.glob("*.json")):
            generate(["--out", str(data), "--visits", "6", "--duration", "150"])
    run_bench(data, args.out, paced=not args.fast, jobs=args.jobs, threads=args.threads, only=args.only, rescore=args.rescore, vad=args.vad)


if __name__ == "__main__":
    main()
