"""Enrolment and attribution on real audio with the real models (no mocks)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_agent.errors import EdgeAgentError
from edge_agent.speakers.attribution import AttributionConfig, SpeakerAttributor
from edge_agent.speakers.encoder import SpeakerEncoder
from edge_agent.speakers.enrol import EnrolmentError, Voiceprint, enrol, speech_mask
from edge_agent.speakers.role import RoleClassifier, held_out
from tests.paths import REPO_ROOT
from tools.bench.speakers_eval import EvalConversation, RefTurn, evaluate
from tools.corpus import synth
from tools.corpus.primock import consultation_ids, load_consultation


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@pytest.fixture(scope="module")
def roles() -> RoleClassifier:
    return RoleClassifier()


@pytest.fixture(scope="module")
def stereo(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """The two real speakers of stereo_diarization.wav, each trimmed to its speech."""
    audio, rate = sf.read(str(shared / "audio" / "stereo_diarization.wav"), dtype="float32", always_2d=True)
    assert rate == 16000
    out = []
    for ch in (0, 1):
        x = np.ascontiguousarray(audio[:, ch])
        idx = np.flatnonzero(speech_mask(x))
        out.append(np.ascontiguousarray(x[idx[0] * 480 : (idx[-1] + 1) * 480]))
    return out[0], out[1]


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg
    return msg


# -- enrolment ----------------------------------------------------------------------------------------
def test_enrol_too_short_and_silent_are_clear_errors(encoder: SpeakerEncoder, stereo: tuple[np.ndarray, np.ndarray]) -> None:
    left, _ = stereo
    with pytest.raises(EnrolmentError) as err:
        enrol(left, encoder)  # ~4.6 s of speech < 8 s
    assert "only 4." in _one_line(err.value) and "need at least 8 s" in str(err.value)
    with pytest.raises(EnrolmentError) as err:
        enrol(np.zeros(16000 * 20, np.float32), encoder)
    assert "silent" in _one_line(err.value)
    noise = (np.random.default_rng(1).standard_normal(16000 * 12) * 0.002).astype(np.float32)
    with pytest.raises(EnrolmentError) as err:
        enrol(noise, encoder)
    assert "speech" in _one_line(err.value)
    assert isinstance(err.value, EdgeAgentError)


def test_voiceprint_transport_roundtrip(encoder: SpeakerEncoder, stereo: tuple[np.ndarray, np.ndarray]) -> None:
    vp = enrol(stereo[0], encoder, min_speech_s=3.0)
    assert 4.0 < vp.speech_seconds < 5.5 and 0.8 < vp.consistency <= 1.0 and vp.n_segments >= 2
    back = Voiceprint.from_bytes(vp.to_bytes())
    assert np.allclose(back.embedding, vp.embedding) and back.n_segments == vp.n_segments
    again = Voiceprint.from_list(vp.to_list())
    assert float(again.embedding @ vp.embedding) > 0.99999
    with pytest.raises(EdgeAgentError) as err:
        Voiceprint.from_bytes(vp.to_bytes()[:-4])
    assert "enrol again" in _one_line(err.value)
    with pytest.raises(EdgeAgentError):
        Voiceprint.from_list({"embedding": [0.0] * 256, "speech_seconds": 1, "consistency": 1, "n_segments": 1})


def test_enrolment_writes_no_file(tmp_path: Path) -> None:
    """Run a real enrolment under strace: no file is opened for writing."""
    script = tmp_path / "enrol_run.py"
    script.write_text(
        "import numpy as np\n"
        "from edge_agent.speakers.encoder import SpeakerEncoder\n"
        "from edge_agent.speakers.enrol import enrol\n"
        "from tools.corpus.synth import speak_lines\n"
        "enc = SpeakerEncoder()\n"
        "audio = speak_lines(['Good morning, I am the doctor today.', 'Tell me what brings you in.',"
        " 'How long has the pain been there?', 'Does anything make it better or worse?'], 'en-us+m3')\n"
        "import sys; sys.stdout.write('MARK\\n'); sys.stdout.flush()\n"
        "vp = enrol(audio, enc, min_speech_s=4)\n"
        "print(len(vp.to_bytes()))\n"
    )
    trace = tmp_path / "trace.txt"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=openat,write", "-o", str(trace), sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip("ptrace not permitted here")
    assert proc.returncode == 0, proc.stderr[-500:]
    lines = trace.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if "MARK" in ln)
    after = lines[start + 1 :]
    writes = [ln for ln in after if "openat(" in ln and ("O_WRONLY" in ln or "O_RDWR" in ln or "O_CREAT" in ln)]
    assert writes == [], writes[:3]
    # the only writes after the mark go to stdout (the voiceprint's size)
    assert all(ln.split("write(", 1)[1].startswith("1,") for ln in after if "write(" in ln)


# -- attribution on the real two-speaker recording -----------------------------------------------------
def test_enrol_on_one_real_speaker_attribute_the_other(encoder: SpeakerEncoder, stereo: tuple[np.ndarray, np.ndarray]) -> None:
    left, right = stereo
    vp = enrol(left, encoder, min_speech_s=3.0)  # the recording holds only ~4.6 s of this speaker
    att = SpeakerAttributor(encoder, None, vp)
    half = len(left) // 2
    # interleave the two channels as a conversation: L, R, L
    results = [att(left[:half], ""), att(right, ""), att(left[half:], "")]
    assert [r[0] for r in results] == ["clinician", "patient", "clinician"]
    assert all(0.0 <= r[1] <= 1.0 for r in results)
    att.forget()

    # enrolled on the other speaker, the roles swap
    vp_r = enrol(right, encoder, min_speech_s=2.0)
    att = SpeakerAttributor(encoder, None, vp_r)
    assert att(left, "")[0] == "patient"
    assert att(right, "")[0] == "clinician"
    att.forget()


def test_change_point_in_a_two_speaker_segment(encoder: SpeakerEncoder, stereo: tuple[np.ndarray, np.ndarray]) -> None:
    left, right = stereo
    mixed = np.concatenate([left, right])
    att = SpeakerAttributor(encoder)
    points = att.split_points(mixed)
    assert len(points) == 1 and abs(points[0] - len(left)) < 0.8 * 16000
    # one voice repeated: no split (known limitation: on this speaker's single 4.6 s line the
    # fallback rule, used before the visit has two voices, does split once; see docs/speakers.md)
    assert att.split_points(np.tile(left, 2)) == []


def test_enrolled_change_point_and_no_false_split(encoder: SpeakerEncoder, stereo: tuple[np.ndarray, np.ndarray]) -> None:
    """With a voiceprint the windows are scored against it from the first segment on (no second voice needed)."""
    left, right = stereo
    vp = enrol(left, encoder, min_speech_s=3.0)
    att = SpeakerAttributor(encoder, None, vp)
    assert att.split_points(left) == []  # the real single speaker's 4.6 s line is not cut
    parts = att.attribute_segment(np.concatenate([left, right]), "", None)
    assert [p.speaker for p in parts] == ["clinician", "patient"]
    assert abs(parts[1].start - len(left)) < 0.8 * 16000
    att.forget()
    assert att._centroids is None and not att._history.embeds


def test_refined_windows_skip_one_voice_stretches_and_keep_every_window_near_a_change(
    encoder: SpeakerEncoder, stereo: tuple[np.ndarray, np.ndarray]
) -> None:
    left, right = stereo
    one_voice = np.tile(left, 3)  # ~14 s of one real speaker
    full = encoder.window_embeddings(one_voice, step_s=0.8)
    same = encoder.refined_window_embeddings(one_voice, 0.8, lambda c: np.ones(len(c) - 1, bool))
    assert np.array_equal(same.starts, full.starts) and np.allclose(same.embeds, full.embeds, atol=1e-5)
    vp = enrol(np.tile(left, 2), encoder, min_speech_s=3.0)
    att = SpeakerAttributor(encoder, None, vp)
    refined = encoder.refined_window_embeddings(one_voice, 0.8, att._fine_gaps)
    assert len(refined) <= (len(full) + 2) // 2  # the clear single-voice stretch kept only its coarse windows
    assert set(refined.starts) <= set(full.starts)
    # across a change the gap around it is filled in: the same split as with every window
    mixed = np.concatenate([one_voice, right])
    parts = att.attribute_segment(mixed, "", None)
    every = SpeakerAttributor(encoder, None, vp, AttributionConfig(coarse_every=1)).attribute_segment(mixed, "", None)
    assert [p.speaker for p in parts] == ["clinician", "patient"]
    assert [(p.start, p.speaker) for p in parts] == [(p.start, p.speaker) for p in every]
    assert abs(parts[1].start - len(one_voice)) < 1.0 * 16000
    att.forget()


# -- espeak conversation from PriMock57 ----------------------------------------------------------------
@pytest.fixture(scope="module")
def conversation(encoder: SpeakerEncoder) -> EvalConversation:
    cid = held_out(consultation_ids())[3]  # never seen by the role classifier
    cons = load_consultation(cid)
    voices = synth.VOICE_PAIRS[0]
    conv = synth.opening(cons, 60, voices)
    later = [t.text for t in cons.turns if t.role == "doctor" and t.start > 90][:8]
    vp = enrol(synth.speak_lines(later, voices[0]), encoder)
    return EvalConversation(cid, conv.audio, [RefTurn(t.role, t.t0, t.t1, t.text) for t in conv.turns], vp)


def test_espeak_conversation_with_and_without_enrolment(conversation: EvalConversation, encoder: SpeakerEncoder, roles: RoleClassifier) -> None:
    res = evaluate([conversation], encoder, roles)
    # one short (60 s) visit: the first turns are decided before the visit has two voices, so
    # these floors sit below the 10-conversation benchmark (95 / 91 %, docs/speakers.md)
    # measured 94.9 / 91.8 (was 73.4 / 73.4 before window scoring against the voiceprint)
    assert res["with_enrolment"] >= 90.0, res  # final labels, what the report is built on (measured 95.7 / 95.7)
    assert res["without_enrolment"] >= 85.0, res
    assert res["with_enrolment_live"] >= 80.0 and res["without_enrolment_live"] >= 80.0, res  # provisional (85.4 / 85.4)
    assert res["embed_cpu_share_1core"] < 0.05


def test_enrolled_voice_is_attributed_per_turn(conversation: EvalConversation, encoder: SpeakerEncoder) -> None:
    att = SpeakerAttributor(encoder, None, conversation.voiceprint)
    right = total = 0
    for turn in conversation.turns:
        if turn.t1 - turn.t0 < 1.0:
            continue
        seg = conversation.audio[int(turn.t0 * 16000) : int(turn.t1 * 16000)]
        speaker, _ = att(seg, "")
        right += speaker == ("clinician" if turn.role == "doctor" else "patient")
        total += 1
    att.forget()
    assert total >= 8 and right / total >= 0.75, (right, total)  # measured 10/13


# -- forgetting ---------------------------------------------------------------------------------------
def test_nothing_references_the_voiceprint_after_forget(conversation: EvalConversation, encoder: SpeakerEncoder, roles: RoleClassifier) -> None:
    assert conversation.voiceprint is not None
    phone_vp = Voiceprint.from_bytes(conversation.voiceprint.to_bytes())  # what the phone sends at start
    att = SpeakerAttributor(encoder, roles, phone_vp)
    inner = att._voiceprint
    assert inner is not None and inner is not phone_vp.embedding
    inner_ref = weakref.ref(inner)
    phone_ref = weakref.ref(phone_vp)
    seg = conversation.audio[: 16000 * 5]
    att(seg, "hello, what brings you in today?")
    history = att._history
    assert history.embeds
    kept = list(history.embeds)

    att.forget()
    assert att._voiceprint is None and not att.has_voiceprint
    assert not inner.any(), "the device's copy of the voiceprint must be zeroed"
    assert not history.embeds and att._centroids is None
    assert all(not e.any() for e in kept), "per-visit embeddings are zeroed too"
    del inner, kept
    gc.collect()
    assert inner_ref() is None, "something still holds the voiceprint copy"
    # the phone's own object: only this test refers to it, nothing in the attributor
    assert not [r for r in gc.get_referrers(phone_vp) if r is not sys._getframe().f_locals and isinstance(r, (dict, list)) and r is not locals()]
    del phone_vp
    gc.collect()
    assert phone_ref() is None


def test_attributor_rejects_non_float32_audio(encoder: SpeakerEncoder) -> None:
    att = SpeakerAttributor(encoder)
    with pytest.raises(ValueError):
        att(np.zeros(16000, np.int16), "")


def test_relative_step_splits_a_step_but_not_one_readers_onset(encoder: SpeakerEncoder) -> None:
    """The relative change test on window cosines measured on the bundled demo and on a real reader."""
    vp = Voiceprint(np.eye(256, dtype=np.float32)[0], 20.0, 0.9, 20)
    att = SpeakerAttributor(encoder, None, vp)
    grid = np.arange(9) * int(0.8 * 16000)
    # the demo's first segment: the espeak clinician (0.87-0.94), then the espeak patient (0.75-0.78)
    tau = att._relative_step(np.array([0.90, 0.87, 0.93, 0.94, 0.82, 0.78, 0.78, 0.75]), grid[:8])
    assert tau is not None and 0.8 < tau < 0.87
    # a LibriSpeech reader alone: the first two windows (a sentence onset) 0.10 below the rest, too short a side
    onset = np.array([0.73, 0.80, 0.86, 0.85, 0.86, 0.87, 0.87, 0.88, 0.88])
    assert att._relative_step(onset, grid) is None
    assert SpeakerAttributor(encoder, None, vp, AttributionConfig(relative_side_s=0.0))._relative_step(onset, grid) is not None


def test_close_pair_watcher_score_gated_and_centred(encoder: SpeakerEncoder) -> None:
    """The open segment's close-pair score: only with the voiceprint heard and a pair closer than
    separation_ref; closed segments (window centres given) keep the plain two-centroid score."""
    eye = np.eye(256, dtype=np.float32)
    vp = Voiceprint(eye[0], 20.0, 0.9, 20)
    att = SpeakerAttributor(encoder, None, vp)

    def unit(*xs: float) -> np.ndarray:
        v = np.zeros(256, np.float32)
        v[: len(xs)] = xs
        return v / np.linalg.norm(v)

    clin, pat = unit(1.0, 0.3), unit(1.0, 0.8)  # 1 - cos = 0.073: a close pair
    gain = 0.25 / (1.0 - float(clin @ pat))
    att._centroids = np.stack([clin, pat])
    wins = np.stack([unit(1.0, 0.35), unit(1.0, 0.75)])
    plain = (wins @ clin - wins @ pat) * 20.0
    att._vp_heard = False
    assert att._separation_gain(clin, pat) == 1.0
    np.testing.assert_allclose(att._window_llr(wins), plain, rtol=1e-5)
    att._vp_heard = True
    assert att._separation_gain(clin, pat) == pytest.approx(gain)
    assert att._separation_gain(clin, unit(1.0, 0.4)) == pytest.approx(4.0)  # 1 - cos = 0.006: capped at 4
    np.testing.assert_allclose(att._window_llr(wins, np.array([12800, 25600])), plain, rtol=1e-5)
    live = att._window_llr(wins)  # the watcher: voiceprint side, scaled (no history yet: midpoint 0)
    np.testing.assert_allclose(live, (wins @ eye[0] - wins @ pat) * 20.0 * gain, rtol=1e-5)
    assert live[0] > 0 > live[1]
    far = unit(0.0, 1.0)
    assert att._separation_gain(clin, far) == 1.0
    # the midpoint: each entry against its own voice's centroid without itself
    for e, sec in ((unit(1.0, 0.3), 4.0), (unit(1.0, 0.32), 3.0), (unit(1.0, 0.8), 4.0), (unit(1.0, 0.78), 3.0)):
        att._history.embeds.append(e)
        att._history.seconds.append(sec)
        att._history.role_logit.append(0.0)
        att._history.window_norm.append(0.9)
    mid = att._window_midpoint(eye[0], pat)
    assert -0.2 < mid < 0.2 and mid != 0.0
    att.forget()
    assert not att._history.window_norm


def test_relative_step_does_not_split_single_real_readers(encoder: SpeakerEncoder, shared: Path) -> None:
    """Five LibriSpeech readers, each enrolled on three of their utterances: their other utterances
    (alone and two by two) are never cut where every window reads as the clinician."""
    root = shared / "data" / "librispeech-voices" / "test-other"
    cut = []
    for reader in sorted(root.iterdir()):
        audio = [sf.read(str(f), dtype="float32")[0] for f in sorted(reader.glob("*.flac"))]
        vp = enrol(np.concatenate(audio[:3]), encoder)
        pause = np.zeros(4800, np.float32)
        segments = audio[3:] + [np.concatenate([a, pause, b]) for a, b in zip(audio[3:], audio[4:])]
        for seg in segments:
            if len(seg) < 3.2 * 16000:
                continue
            cos = encoder.window_embeddings(seg, step_s=0.8).embeds @ vp.embedding
            if cos.min() <= AttributionConfig().window_threshold:
                continue  # the absolute scale decides there, not the relative test
            points = SpeakerAttributor(encoder, None, vp).split_points(seg)
            if points:
                cut.append((reader.name, len(seg) / 16000, points))
    assert not cut
