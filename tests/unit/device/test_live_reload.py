"""SIGHUP applies every key the config calls ``live`` to the running object that uses it.

Each live key is changed in a real config file, reloaded through the real
ConfigReloader into the device's real LiveTargets, and read back from the
component itself (the segmenter config the next visit gets, the authoriser's
CRL, the outbox's retention, ...). A new live key without a home fails here.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.device.config import EdgeConfig, KeySpec, all_keys, load_config
from edge_agent.device.lifecycle import VisitManager
from edge_agent.device.main import LiveTargets
from edge_agent.device.ops.gpio import RoomClaims
from edge_agent.device.ops.logs import JsonFormatter
from edge_agent.device.ops.signals import ConfigReloader
from edge_agent.device.outbox import DAY_S, Outbox
from edge_agent.device.presence import Presence
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy
from edge_agent.mtls.auth import PeerAuthorizer
from edge_agent.speakers.attribution import AttributionConfig
from tests.delivery_fixtures import Pki

LIVE = [k for k in all_keys() if k.live]


def _other_value(spec: KeySpec, current: Any, spare_crl: Path) -> Any:
    """A valid value for ``spec`` that differs from ``current``."""
    if spec.key == "presence.allowed_clinicians":
        allow = spare_crl.with_name("room.allow")
        allow.write_text("s-aaaaaaaaaaaaaaaa\n")
        return allow
    if spec.choices:
        return next(c for c in spec.choices if c != current)
    base = spec.base_type
    if base is bool:
        return not current
    if base is Path:
        return spare_crl
    lo = spec.min if spec.min is not None else (current - 1 if current is not None else 0)
    hi = spec.max if spec.max is not None else (current + 1 if current is not None else 1)
    candidates = [(lo + hi) / 2, lo, hi, current * 0.9 if current else lo]
    if spec.section == "vad" and spec.name.endswith("_ms") and current:
        candidates.insert(0, current * 0.9)  # tied to each other (tail <= candidate <= hangover): stay near the running value
    for value in candidates:
        value = int(round(value)) if base is int else float(value)
        if value != current and lo <= value <= hi:
            return value
    raise AssertionError(f"no other value for {spec.key}")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return f'"{value}"'
    return repr(value)


def _read_back(targets: LiveTargets) -> dict[str, Callable[[str], Any]]:
    """Where each section's live keys are used, as the component sees them."""
    runner = targets.runner

    def logging_value(name: str) -> Any:
        root = logging.getLogger()
        if name == "level":
            return logging.getLevelName(root.level).lower()
        return isinstance(root.handlers[0].formatter, JsonFormatter)

    def server_value(name: str) -> Any:
        return {
            "crl": targets.auth.crl_path,
            "max_visit_minutes": targets.visits.default_max_duration_s / 60,
            "long_silence_stop_minutes": runner.policy.long_silence_s / 60,
        }[name]

    return {
        "logging": logging_value,
        "vad": lambda name: getattr(runner.session.config.vad, name),
        "speakers": lambda name: getattr(runner.session.speakers.config or AttributionConfig(), name),
        "server": server_value,
        "outbox": lambda name: {"retention_days": targets.outbox.config.retention_s / DAY_S,
                                "shutdown_grace_s": targets.visits.shutdown_grace_s}[name],
        "gpio": lambda name: {"claim_window_s": targets.claims.window_s}[name],
        # the component holds the parsed list; compare with what the file says
        "presence": lambda name: {"allowed_clinicians": spare_allow(targets)}[name],
        "feedback": lambda name: {"quotes": targets.visits.quotes}[name],
    }


def spare_allow(targets: LiveTargets) -> Any:
    assert targets.presence is not None
    return targets.presence.allowed


@pytest.fixture
def device(session_with_speakers, tmp_path: Path):  # type: ignore[no-untyped-def]
    pki = Pki.make(tmp_path / "pki")
    cfg = EdgeConfig()
    from edge_agent.behaviours.classifier import BehaviourClassifier

    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: None, VisitPolicy())  # type: ignore[arg-type,return-value]
    outbox = Outbox(tmp_path / "outbox.db", cfg.outbox.outbox_config())
    auth = PeerAuthorizer(pki.authority.cert, pki.crl)
    targets = LiveTargets(runner, VisitManager(runner, outbox), outbox, auth, RoomClaims(cfg.gpio.claim_window_s), Presence(None))
    saved = session_with_speakers.config, session_with_speakers.speakers.config
    yield targets, pki
    session_with_speakers.config, session_with_speakers.speakers.config = saved  # the session is shared
    outbox.close()
    logging.getLogger().handlers.clear()


def test_every_live_key_reaches_its_component(device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    targets, pki = device
    spare_crl = tmp_path / "crl-copy.pem"
    shutil.copy(pki.crl, spare_crl)
    path = tmp_path / "config.toml"
    path.write_text(f'[server]\ncrl = "{pki.crl}"\n')
    reloader = ConfigReloader(load_config(path, env={}), targets.apply, env={})
    read_back = _read_back(targets)
    assert {k.section for k in LIVE} <= set(read_back), "a live section has no home in LiveTargets"
    checked = []
    for spec in LIVE:
        running = reloader.current
        section = getattr(running.pipeline, spec.section) if spec.section in ("vad", "asr") else getattr(running, spec.section)
        current = getattr(section, spec.name)
        value = _other_value(spec, current, spare_crl)
        tables: dict[str, dict[str, Any]] = {"server": {"crl": pki.crl}}
        tables.setdefault(spec.section, {})[spec.name] = value
        path.write_text("".join(f"[{sec}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items()) for sec, keys in tables.items()))
        try:
            applied, restart = reloader.reload()
        except Exception as exc:  # pragma: no cover - a cross-field rule may refuse a lone change
            pytest.fail(f"{spec.key} = {value!r}: {exc}")
        assert spec.key in applied, f"{spec.key} changed but was not applied ({applied}, restart {restart})"
        got = read_back[spec.section](spec.name)
        expected = value if spec.key != "presence.allowed_clinicians" else frozenset({"s-aaaaaaaaaaaaaaaa"})
        assert got == pytest.approx(expected) if isinstance(expected, float) else got == expected, (
            f"{spec.key}: reloaded {expected!r} but the component uses {got!r}"
        )
        checked.append(spec.key)
    assert len(checked) == len(LIVE) >= 30


def test_restart_only_key_is_never_half_applied(device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """vad.max_segment_s sizes buffers: a reload reports it and the next visit keeps the running value."""
    targets, pki = device
    path = tmp_path / "config.toml"
    path.write_text(f'[server]\ncrl = "{pki.crl}"\n')
    reloader = ConfigReloader(load_config(path, env={}), targets.apply, env={})
    before = targets.runner.session.config.vad.max_segment_s
    path.write_text(f'[server]\ncrl = "{pki.crl}"\n[vad]\nmax_segment_s = 20.0\nhangover_ms = 300\n')
    applied, restart = reloader.reload()
    assert applied == ["vad.hangover_ms"] and restart == ["vad.max_segment_s"]
    assert targets.runner.session.config.vad.hangover_ms == 300
    assert targets.runner.session.config.vad.max_segment_s == before


def test_a_refused_reload_changes_nothing(device, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """A bad allow-list or a CRL the authoriser refuses: no key is applied, and none is logged as applied."""
    targets, pki = device
    path = tmp_path / "config.toml"
    path.write_text(f'[server]\ncrl = "{pki.crl}"\n')
    reloader = ConfigReloader(load_config(path, env={}), targets.apply, env={})
    hangover = targets.runner.session.config.vad.hangover_ms
    bad_allow = tmp_path / "room.allow"
    bad_allow.write_text("Dr Jane Smith\n")  # a name typed by IT
    foreign = Pki.make(tmp_path / "other")  # a CRL signed by another CA
    for tables in (
        f'[server]\ncrl = "{pki.crl}"\n[vad]\nhangover_ms = {hangover + 90}\n[presence]\nallowed_clinicians = "{bad_allow}"\n',
        f'[server]\ncrl = "{foreign.crl}"\nmax_visit_minutes = 33\n[vad]\nhangover_ms = {hangover + 90}\n',
        # a live partial re-decoded every 30 ms frame: refused at reload as at load
        f'[server]\ncrl = "{pki.crl}"\nmax_visit_minutes = 33\n[vad]\nhangover_ms = {hangover + 90}\npartial_interval_ms = 0\n',
        # live partials offered every 4 s: the stated cadence (pipeline.partial_max_gap_s 1.5, restart-only) would be false
        f'[server]\ncrl = "{pki.crl}"\nmax_visit_minutes = 33\n[vad]\nhangover_ms = {hangover + 90}\npartial_interval_ms = 4000\n',
    ):
        path.write_text(tables)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="edge_agent"):
            assert reloader.reload() == ([], [])
        assert targets.runner.session.config.vad.hangover_ms == hangover  # applied before the refusal? no
        assert targets.auth.crl_path == pki.crl and targets.visits.default_max_duration_s != 33 * 60
        messages = [r.getMessage() for r in caplog.records]
        assert not [m for m in messages if "applied" in m], messages
        assert any("config reload refused" in m for m in messages)
        if "partial_interval_ms = 0" in tables:
            assert any("vad.partial_interval_ms is 0; allowed: an integer in 100..10000" in m for m in messages), messages
        assert not [m for m in messages if "Smith" in m], "the file's text reached the log"


def test_reload_to_silero_opens_its_model_or_is_refused(device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """vad.engine = "silero" by SIGHUP: the model is opened before anything changes; a missing file refuses the reload."""
    from edge_agent.audio import silero

    targets, pki = device
    session = targets.runner.session
    saved_model = session.vad_model
    path = tmp_path / "config.toml"
    path.write_text(f'[server]\ncrl = "{pki.crl}"\n')
    reloader = ConfigReloader(load_config(path, env={}), targets.apply, env={})
    try:
        session.vad_model = None
        real = silero.default_model_path
        monkeypatch.setattr(silero, "default_model_path", lambda: tmp_path / "gone" / "silero_vad_v6.onnx")
        path.write_text(f'[server]\ncrl = "{pki.crl}"\n[vad]\nengine = "silero"\nhangover_ms = 300\n')
        assert reloader.reload() == ([], [])  # refused: nothing applied, not even hangover_ms
        assert session.config.vad.engine == "webrtc" and session.config.vad.hangover_ms != 300 and session.vad_model is None
        monkeypatch.setattr(silero, "default_model_path", real)
        applied, _ = reloader.reload()
        assert "vad.engine" in applied and session.config.vad.engine == "silero"
        assert isinstance(session.vad_model, silero.SileroModel)
    finally:
        session.vad_model = saved_model


def test_live_keys_tied_to_each_other_reload_together(device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A valid file that moves tied keys together (tail <= candidate <= hangover) is applied whole: the
    running config took the live keys one at a time, so a valid new hang-over checked against the old
    look-ahead point refused the reload (or raised out of it)."""
    targets, pki = device
    path = tmp_path / "config.toml"
    path.write_text(f'[server]\ncrl = "{pki.crl}"\n')
    reloader = ConfigReloader(load_config(path, env={}), targets.apply, env={})
    vad = targets.runner.session.config.vad
    assert (vad.tail_ms, vad.candidate_ms, vad.hangover_ms) == (150, 300, 450)
    for tail, candidate, hangover in ((150, 200, 250), (100, 450, 700), (150, 300, 450)):
        path.write_text(f'[server]\ncrl = "{pki.crl}"\n[vad]\nhangover_ms = {hangover}\ncandidate_ms = {candidate}\ntail_ms = {tail}\n')
        load_config(path, env={})  # the file itself is valid
        reloader.reload()
        vad = targets.runner.session.config.vad
        assert (vad.tail_ms, vad.candidate_ms, vad.hangover_ms) == (tail, candidate, hangover)


def _room_with_allow_list(targets, pki, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A device whose config names an allow-list file holding one clinician, as serve loaded it at start."""
    allow = tmp_path / "room.allow"
    allow.write_text("s-aaaaaaaaaaaaaaaa\n")
    path = tmp_path / "config.toml"
    path.write_text(f'[server]\ncrl = "{pki.crl}"\n[presence]\nallowed_clinicians = "{allow}"\n')
    reloader = ConfigReloader(load_config(path, env={}), targets.apply, env={})
    targets.presence.allowed = frozenset({"s-aaaaaaaaaaaaaaaa"})
    return allow, path, reloader


def test_an_edited_allow_list_file_is_reread_on_reload(device, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """IT edits room.allow (a new clinician, or one who left) and runs `systemctl reload`: the path in
    config.toml is the same, so the reload logged 'nothing changed' and kept the old list until a restart
    (a removed clinician could still start visits in the room)."""
    targets, pki = device
    allow, path, reloader = _room_with_allow_list(targets, pki, tmp_path)
    assert reloader.reload() == ([], [])  # same file, same content: nothing to do
    allow.write_text("s-bbbbbbbbbbbbbbbb\n")  # A left, B joined
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edge_agent"):
        applied, _ = reloader.reload()
    assert applied == ["presence.allowed_clinicians"] and targets.presence.allowed == frozenset({"s-bbbbbbbbbbbbbbbb"})
    assert any("presence.allowed_clinicians applied" in r.getMessage() for r in caplog.records)
    allow.write_text("Dr Jane Smith\n")  # a broken edit: refused, the list in use stays
    assert reloader.reload() == ([], []) and targets.presence.allowed == frozenset({"s-bbbbbbbbbbbbbbbb"})
    allow.write_text("s-bbbbbbbbbbbbbbbb\n")  # put back as it was applied: nothing changed
    assert reloader.reload() == ([], [])


def test_emptying_the_allow_list_key_opens_the_room_to_every_clinician(device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`allowed_clinicians = ""` (documented: every clinician) was logged as applied, but the old list stayed in
    force until a restart: None meant both 'no list' and 'nothing to apply'."""
    targets, pki = device
    allow, path, reloader = _room_with_allow_list(targets, pki, tmp_path)
    path.write_text(f'[server]\ncrl = "{pki.crl}"\n[presence]\nallowed_clinicians = ""\n')
    applied, _ = reloader.reload()
    assert applied == ["presence.allowed_clinicians"]
    assert targets.presence.allowed is None, "the room still refuses every clinician not on the old list"
