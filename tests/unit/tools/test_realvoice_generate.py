"""The real-voice visit generator: deterministic, and its references describe its audio."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT
from tools.realvoice import generate as G

DATA = REPO_ROOT / "tests" / "data" / "realvoice"

needs_voices = pytest.mark.skipif(not (G.voices_dir() / "SPEAKERS.TXT").is_file(), reason="shared LibriSpeech voices not found")


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@needs_voices
def test_same_seed_same_bytes(tmp_path):
    pytest.importorskip("pyroomacoustics")
    args = ["--visits", "1", "--first", "1", "--duration", "40", "--opening", "30", "31", "--enrol", "10", "12"]
    G.main(["--out", str(tmp_path / "a"), *args])
    G.main(["--out", str(tmp_path / "b"), *args])
    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b and len(a) == 5  # close, far, enrolment FLAC + two JSON references
    G.main(["--out", str(tmp_path / "c"), "--seed", "13", "--conditions", "close", *args])
    close = next(n for n in a if "close" in n and n.endswith(".flac"))
    assert digest(tmp_path / "c")[close] != a[close]


@needs_voices
def test_plan_respects_the_recipe():
    plan = G.plan_visit(12, 0, G.PlanSettings(duration_s=120))
    used = {p.source for p in plan.placements}
    assert not used & set(plan.enrolment), "enrolment utterances must not appear in the visit"
    assert 15 <= sum(p.seconds for s in plan.enrolment for p in G.pieces_of(s)) <= 45
    opening = plan.turns[1]
    assert opening.kind == "opening_statement" and opening.speaker == "patient"
    assert (opening.stop - opening.start) / G.SR >= 30
    assert {r.sex for r in plan.readers.values()} == {"F", "M"}  # visit 0: cross-sex
    same = G.plan_visit(12, 1, G.PlanSettings(duration_s=60))
    assert len({r.sex for r in same.readers.values()}) == 1
    for bc in (p for p in plan.placements if p.kind == "backchannel"):
        assert 0.2 <= (bc.stop - bc.start) / G.SR <= 0.8
        assert plan.readers[bc.speaker].rid == bc.source.split("-")[0]  # the listener's own voice


@pytest.mark.parametrize("ref_path", sorted(DATA.glob("visit*.json")), ids=lambda p: p.stem)
def test_committed_references_are_consistent(ref_path):
    import soundfile as sf

    ref = json.loads(ref_path.read_text())
    info = sf.info(str(DATA / ref["audio"]))
    assert info.samplerate == 16000 and info.channels == 1
    assert abs(info.frames / 16000 - ref["duration_s"]) < 0.01
    assert (DATA / ref["enrolment"]["file"]).is_file()
    turns = ref["turns"]
    assert all(a["start_s"] < a["stop_s"] for a in turns)
    assert len(ref["turn_changes"]) == sum(1 for a, b in itertools.pairwise(turns) if a["speaker"] != b["speaker"])
    for o in ref["overlaps"]:
        assert o["start_s"] < o["stop_s"] and len(set(o["speakers"])) == 2
    if ref["condition"] == "far":
        room = ref["room"]
        assert 1.0 <= min(room["distances_m"].values()) and max(room["distances_m"].values()) <= 2.0
        assert 10.0 <= room["snr_db"] <= 20.0
        assert all(0.25 <= v <= 0.7 for v in room["rt60_measured_s"].values())
