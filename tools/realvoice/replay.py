"""Attribution variants replayed on the pipeline's own segments, and voiceprints of people not in the room.

    python -m tools.realvoice.replay singles --out DIR                  # one-reader recordings (false changes)
    python -m tools.realvoice.replay run --data DIR [--set edge_max_s=0,...] [--strangers SINGLES_DIR]

``run`` streams each rendering once through the real pipeline (unpaced, stock
attributor, its own voiceprint) and keeps, in memory only, what the pipeline handed
the speaker stage for each final: the speaker features, text and word times. Each
variant then re-attributes exactly those inputs: with and without the visit's
voiceprint, with ``--set`` overriding ``AttributionConfig`` fields, and with
``--strangers`` once per voiceprint of a reader not in the rendering (the
``*_enrol.flac`` files ``singles`` writes). It prints one JSON line per run: word
attribution (labelled enrolled, best mapping not), swaps, speaker changes
farther than 1 s from any reference change, and the run's flags. Numbers in
docs/speakers.md "Edges" and "A voiceprint never heard" come from here and from
``edge-agent bench realvoice --fast``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

import edge_agent  # noqa: F401  (first: pins BLAS to one thread before numpy loads, as the CLI does)
from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.speaker_frontend import SpeakerFeatures
from tools.realvoice import metrics as M

READERS = ("1998", "3331", "1688", "2033", "2609")
Capture = tuple[int, SpeakerFeatures, str, list[Any]]  # segment offset (samples), features, text, words


def write_singles(out: Path) -> None:
    """Each test-other reader alone: utterances 0-6 levelled to -26 dBFS, 0.25 s apart; enrolment from 7-9."""
    import soundfile as sf

    from tools.realvoice.generate import SR, load_utterance, reader_utterances

    out.mkdir(parents=True, exist_ok=True)
    for rid in READERS:
        utts = reader_utterances(rid)
        parts = []
        for stem in utts[:7]:
            a = load_utterance(stem)
            parts += [(a / (np.sqrt(np.mean(a**2)) + 1e-9) * 10 ** (-26 / 20)).astype(np.float32), np.zeros(SR // 4, np.float32)]
        audio = np.concatenate(parts)
        name = f"single_{rid}"
        sf.write(str(out / f"{name}_close.flac"), audio, SR, subtype="PCM_16")
        sf.write(str(out / f"{name}_enrol.flac"), np.concatenate([load_utterance(s) for s in utts[7:10]]), SR, subtype="PCM_16")
        ref = {"audio": f"{name}_close.flac", "visit": name, "enrolment": {"file": f"{name}_enrol.flac"},
               "intervals": [{"speaker": "clinician", "start_s": 0.0, "stop_s": len(audio) / SR, "kind": "turn"}]}
        (out / f"{name}_close.json").write_text(json.dumps(ref))


def capture(audio: Path, voiceprint: Any, encoder: Any, roles: Any, engine: Any) -> list[Capture]:
    from edge_agent.audio.file_source import FileSource
    from edge_agent.device.pipeline import PipelineConfig, StreamingPipeline
    from edge_agent.speakers.attribution import SpeakerAttributor

    caps: list[Capture] = []
    offset = [0]

    class Recording(SpeakerAttributor):
        def attribute_segment(self, source: Any, text: str = "", words: Any = None) -> Any:
            caps.append((offset[0], SpeakerFeatures(source.mel.copy(), source.energy.copy(), source.n_samples), text, list(words or [])))
            return super().attribute_segment(source, text, words)

    class Pipeline(StreamingPipeline):
        def _emit(self, seg_id: int, start_sample: int, *args: Any, **kwargs: Any) -> None:
            offset[0] = start_sample
            super()._emit(seg_id, start_sample, *args, **kwargs)

    attributor = Recording(encoder, roles, voiceprint)
    Pipeline(PipelineConfig(), engine, lambda event: None, attributor).run(FileSource(audio))
    attributor.forget()
    return caps


def replay(caps: list[Capture], attributor: Any) -> tuple[list[M.HypWord], dict[str, bool]]:
    """Words with their report labels, as the pipeline assigns them (a word to the span holding its middle)."""
    words: list[tuple[M.HypWord, int]] = []
    for k, (offset, f, text, ws) in enumerate(caps):
        spans = attributor.attribute_segment(SpeakerFeatures(f.mel.copy(), f.energy.copy(), f.n_samples), text, ws)
        off = offset / SAMPLE_RATE
        for i, sp in enumerate(spans):
            a, b, last = sp.start / SAMPLE_RATE, sp.stop / SAMPLE_RATE, i == len(spans) - 1
            for w in ws:
                mid = (w[1] + w[2]) / 2
                if len(spans) == 1 or a <= mid < b or (last and mid >= b) or (i == 0 and mid < a):
                    words.append((M.HypWord(w[0], off + w[1], off + w[2], sp.speaker, k), sp.entry))
    final, uncertain = attributor.final_decision()
    flags = {"speakers_uncertain": uncertain, "voiceprint_unheard": attributor.voiceprint_unheard}
    attributor.forget()
    out = [M.HypWord(w.text, w.t0, w.t1, final[e][0] if 0 <= e < len(final) else w.speaker, w.segment) for w, e in words]
    return out, flags


def score(ref: dict[str, Any], words: list[M.HypWord], enrolled: bool) -> dict[str, Any]:
    intervals = [M.Interval(i["speaker"], i["start_s"], i["stop_s"], i["kind"]) for i in ref["intervals"]]
    scored = M.score_words(words, intervals)
    attr = M.attribution(scored)
    bounds = M.turn_boundaries(M.reference_changes(intervals), M.hypothesis_changes(words))
    return {"attribution": attr.labelled if enrolled else attr.mapped, "swaps": M.identity_swaps(scored).swaps,
            "boundary_p90_s": bounds.p90, "spurious_changes": bounds.spurious,
            "labels": {k: sum(w.speaker == k for w in words) for k in sorted({w.speaker for w in words})}}


def cmd_run(args: argparse.Namespace) -> None:
    from edge_agent.asr.whisper_ct2 import WhisperCT2
    from edge_agent.device.pipeline import PipelineConfig
    from edge_agent.speakers.attribution import AttributionConfig, SpeakerAttributor
    from edge_agent.speakers.encoder import EncoderConfig, SpeakerEncoder
    from edge_agent.speakers.enrol import voiceprint_from
    from edge_agent.speakers.role import RoleClassifier

    known = {f.name: f.type for f in fields(AttributionConfig)}
    over: dict[str, Any] = {}
    for kv in filter(None, args.set.split(",")):
        key, value = kv.split("=", 1)
        if key not in known:
            raise SystemExit(f"--set: unknown AttributionConfig field {key!r}")
        over[key] = type(getattr(AttributionConfig(), key))(value)
    cfg = replace(AttributionConfig(), **over)
    pcfg = PipelineConfig()
    engine = WhisperCT2(pcfg.asr, int(pcfg.vad.max_segment_s * SAMPLE_RATE) + 480)
    encoder, roles = SpeakerEncoder(EncoderConfig(threads=1)), RoleClassifier(threads=1)
    strangers = {p.stem.split("_")[1]: voiceprint_from(p) for p in sorted(args.strangers.glob("single_*_enrol.flac"))} if args.strangers else {}
    for path in sorted(args.data.glob("*.json")):
        ref = json.loads(path.read_text())
        if "intervals" not in ref or (args.only and args.only not in path.stem):
            continue
        own = voiceprint_from(path.parent / ref["enrolment"]["file"])
        caps = capture(path.parent / ref["audio"], own, encoder, roles, engine)
        runs: list[tuple[str, Any]] = [("none", None), ("own", own)]
        runs += [(f"other {rid}", vp) for rid, vp in strangers.items() if rid not in path.stem]
        for name, vp in runs:
            words, flags = replay(caps, SpeakerAttributor(encoder, roles, vp, cfg))
            print(json.dumps({"rendering": path.stem, "voiceprint": name, **score(ref, words, name == "own"), **flags}), flush=True)
        for _, f, _, _ in caps:
            f.wipe()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("singles", "run"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--only", default=None)
    parser.add_argument("--set", default="", help="AttributionConfig overrides, e.g. edge_max_s=0,room_floor=0.5")
    parser.add_argument("--strangers", type=Path, default=None, help="a `singles` folder: also replay with its readers' voiceprints")
    args = parser.parse_args(argv)
    if args.what == "singles":
        if args.out is None:
            raise SystemExit("singles needs --out DIR")
        write_singles(args.out)
    else:
        if args.data is None:
            raise SystemExit("run needs --data DIR (a folder of visits from tools.realvoice.generate, or from `singles`)")
        cmd_run(args)


if __name__ == "__main__":
    main()
