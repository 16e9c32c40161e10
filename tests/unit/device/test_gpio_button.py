"""Room button and LEDs on gpiozero's MockFactory: pins are driven, LED pin states are read back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.device.config import GpioSettings
from edge_agent.device.ops.gpio import Claim, RoomClaims, RoomPanel, open_panel, pin_factory
from edge_agent.errors import EdgeAgentError

SETTINGS = GpioSettings(backend="mock", button_pin=17, led_pin=27, red_led_pin=22, claim_window_s=60)


class FakeClock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


class Visits:
    """Stands in for the daemon's visit lifecycle; drives the indicator like the pipeline would."""

    def __init__(self) -> None:
        self.active = False
        self.started_for: list[str] = []
        self.refuse_next = False
        self.panel: RoomPanel | None = None

    def start_from_button(self, claim: Claim) -> str:
        if self.refuse_next:
            raise EdgeAgentError("a visit is already running in this room")
        self.active = True
        self.started_for.append(claim.clinician_id)
        assert self.panel is not None
        self.panel.indicator.on_capture_started()  # first frame read
        return f"v-{len(self.started_for)}"

    def stop_from_button(self) -> None:
        assert self.panel is not None
        self.panel.indicator.on_capture_finishing()
        self.active = False

    def is_active(self) -> bool:
        return self.active


@pytest.fixture
def rig() -> Iterator[tuple[MockFactory, Visits, RoomClaims, FakeClock, RoomPanel]]:
    factory = MockFactory()
    visits = Visits()
    clock = FakeClock()
    claims = RoomClaims(SETTINGS.claim_window_s, clock=clock)
    outcomes: list[str] = []
    panel = open_panel(SETTINGS, visits, claims, factory=factory, bounce_s=None, on_outcome=outcomes.append)
    assert panel is not None
    visits.panel = panel
    yield factory, visits, claims, clock, panel
    panel.close()


def _press(factory: MockFactory) -> None:
    pin = factory.pin(SETTINGS.button_pin)
    pin.drive_low()  # pull-up button: pressed = low
    time.sleep(0.02)
    pin.drive_high()
    time.sleep(0.02)


def _blinked(factory: MockFactory, pin: int, within_s: float = 1.0) -> int:
    """Number of on-transitions the LED pin made."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
    states = factory.pin(pin).states
    return sum(1 for a, b in zip(states, states[1:]) if not a.state and b.state)


def test_press_without_claim_is_refused_with_red_blink_and_no_capture(rig) -> None:  # type: ignore[no-untyped-def]
    factory, visits, _claims, _clock, _panel = rig
    _press(factory)
    assert not visits.active and visits.started_for == []
    assert _blinked(factory, SETTINGS.red_led_pin) == 3  # type: ignore[arg-type]
    assert factory.pin(SETTINGS.led_pin).state is False  # capture LED never lit


def test_press_after_claim_starts_for_that_clinician_and_toggles(rig) -> None:  # type: ignore[no-untyped-def]
    factory, visits, claims, clock, panel = rig
    claims.claim("c-second", b"k1")
    clock.t += 10
    mine = claims.claim("c-second", b"k2")  # the same clinician again: the newer claim replaces the older
    clock.t += 30
    _press(factory)
    assert visits.active and visits.started_for == ["c-second"]
    assert factory.pin(SETTINGS.led_pin).state is True  # lit while frames are read
    assert claims.current() is None  # the claim was used up
    status = claims.status(mine.claim_id, "c-second")
    assert status is not None and status.state == "started" and status.visit_id == "v-1"  # the claimer's phone confirms
    assert status.public_key == b"k2"
    _press(factory)
    assert not visits.active
    assert panel.indicator.state == "finishing"
    assert _blinked(factory, SETTINGS.led_pin, 1.0) >= 2  # blinks while the report is finishing
    panel.indicator.on_capture_stopped()
    assert factory.pin(SETTINGS.led_pin).state is False
    # the next press needs a fresh claim
    _press(factory)
    assert not visits.active and visits.started_for == ["c-second"]


def test_two_claimers_contest_the_press_issue16(rig) -> None:  # type: ignore[no-untyped-def]
    """Issue 16, room-claim hijack: A claims, B claims, A presses -> B used to receive A's visit."""
    factory, visits, claims, clock, panel = rig
    a = claims.claim("c-aaaa", b"ka")
    clock.t += 5
    b = claims.claim("c-bbbb", b"kb")
    assert b.state == "contested"
    clock.t += 5
    assert panel.room_button.press() == "contested"
    assert not visits.active and visits.started_for == []
    assert _blinked(factory, SETTINGS.red_led_pin) == 8  # type: ignore[arg-type]  # not the 3 of "no claim"
    # both phones are told
    assert claims.status(a.claim_id, "c-aaaa").state == "contested"  # type: ignore[union-attr]
    assert claims.status(b.claim_id, "c-bbbb").state == "contested"  # type: ignore[union-attr]
    assert claims.status(a.claim_id, "c-bbbb") is None  # nobody reads another clinician's claim
    # re-claiming does not win the contest; it ends only when the claims expire
    claims.claim("c-aaaa", b"ka2")
    assert panel.room_button.press() == "contested"
    clock.t += SETTINGS.claim_window_s + 1
    assert claims.status(a.claim_id, "c-aaaa").state == "expired"  # type: ignore[union-attr]
    fresh = claims.claim("c-aaaa", b"ka3")
    assert fresh.state == "pending"
    assert panel.room_button.press() == "started" and visits.started_for == ["c-aaaa"]


def test_stale_claim_is_refused(rig) -> None:  # type: ignore[no-untyped-def]
    factory, visits, claims, clock, _panel = rig
    claims.claim("c-x", b"k")
    clock.t += SETTINGS.claim_window_s + 1
    _press(factory)
    assert not visits.active


def test_runner_refusal_blinks_red(rig) -> None:  # type: ignore[no-untyped-def]
    factory, visits, claims, _clock, panel = rig
    claims.claim("c-x", b"k")
    visits.refuse_next = True
    assert panel.room_button.press() == "refused"
    assert claims.current() is not None  # not used up by a refused start
    assert claims.current().failure == "a visit is already running in this room"  # the claimer's phone reads why
    assert _blinked(factory, SETTINGS.red_led_pin) == 3  # type: ignore[arg-type]


def test_led_follows_capture_and_mic_loss(rig) -> None:  # type: ignore[no-untyped-def]
    factory, _visits, _claims, _clock, panel = rig
    led, red = factory.pin(SETTINGS.led_pin), factory.pin(SETTINGS.red_led_pin)  # type: ignore[arg-type]
    ind = panel.indicator
    ind.on_capture_started()
    assert led.state is True and red.state is False
    ind.on_mic_lost()  # no frames are read: capture LED off, red blinks
    assert led.state is False
    assert _blinked(factory, SETTINGS.red_led_pin, 1.2) >= 1  # type: ignore[arg-type]
    ind.on_capture_started()  # microphone is back
    assert led.state is True and red.state is False
    ind.on_capture_stopped()
    assert led.state is False


def test_without_red_led_refusal_blinks_capture_led_only_when_idle() -> None:
    factory = MockFactory()
    visits = Visits()
    settings = GpioSettings(backend="mock", red_led_pin=None)
    panel = open_panel(settings, visits, RoomClaims(60), factory=factory, bounce_s=None)
    assert panel is not None
    visits.panel = panel
    try:
        assert panel.room_button.press() == "refused"
        assert _blinked(factory, settings.led_pin) == 3
    finally:
        panel.close()


def test_backends() -> None:
    assert pin_factory("none") is None
    assert open_panel(GpioSettings(), Visits(), RoomClaims(60)) is None  # backend none: nothing opened
    assert isinstance(pin_factory("mock"), MockFactory)


def test_button_drives_the_real_visit_manager(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """MockFactory button -> ManagerVisitControl -> VisitManager on its event loop -> sealed report in the outbox."""
    import asyncio
    import threading

    from edge_agent.crypto import seal
    from edge_agent.device.lifecycle import VisitManager
    from edge_agent.device.ops.button_control import ManagerVisitControl
    from edge_agent.device.outbox import Outbox
    from tests.doubles.scripted_runner import ScriptedVisitRunner

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        manager = asyncio.run_coroutine_threadsafe(_make_manager(VisitManager, ScriptedVisitRunner(), outbox), loop).result(5)
        control = ManagerVisitControl(manager, loop)
        factory = MockFactory()
        claims = RoomClaims(60)
        panel = open_panel(SETTINGS, control, claims, factory=factory, bounce_s=None)
        assert panel is not None
        try:
            _press(factory)
            assert not control.is_active()  # no claim: refused
            _priv, pub = seal.generate_keypair()
            claims.claim("c-aaaaaaaaaaaaaaaa", seal.load_public_key(pub))
            assert panel.room_button.press() == "started" and control.is_active()
            assert panel.room_button.press() == "stopped" and not control.is_active()
            assert manager.last_stop.reason == "button"
            assert outbox.stats()[0] == 1  # the report went to the claiming clinician
            assert [i.recipient for i in outbox.fetch("c-aaaaaaaaaaaaaaaa")] == ["c-aaaaaaaaaaaaaaaa"]
        finally:
            panel.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        outbox.close()


async def _make_manager(cls, runner, outbox):  # type: ignore[no-untyped-def]
    return cls(runner, outbox)  # built on the loop: it owns asyncio primitives


class _UnpluggedMic:
    """Delivers real frames from a file, then fails the way MicSource does when the device vanishes."""

    live = True
    description = "test mic"
    dropped_frames = 0

    def __init__(self, path, frames_before_loss: int) -> None:  # type: ignore[no-untyped-def]
        from edge_agent.audio.file_source import FileSource

        self._inner = FileSource(path)
        self._n = frames_before_loss

    def frames(self, pool):  # type: ignore[no-untyped-def]
        from edge_agent.errors import AudioInputError

        for i, frame in enumerate(self._inner.frames(pool)):
            if i == self._n:
                frame.release()
                raise AudioInputError("microphone 'test' stopped delivering audio (unplugged?)")
            yield frame

    def close(self) -> None:
        self._inner.close()


def test_led_is_lit_exactly_while_frames_are_read(jfk_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from edge_agent.audio.file_source import FileSource
    from edge_agent.audio.pool import BufferPool
    from edge_agent.device.ops.notify import Heartbeat
    from edge_agent.device.ops.observed_source import ObservedSource
    from edge_agent.errors import AudioInputError

    factory = MockFactory()
    panel = open_panel(SETTINGS, Visits(), RoomClaims(60), factory=factory, bounce_s=None)
    assert panel is not None
    led = factory.pin(SETTINGS.led_pin)
    hb = Heartbeat("capture", max_age_s=5)
    pool = BufferPool("t", 8, 480, np.int16)
    try:
        assert led.state is False
        seen = 0
        for frame in ObservedSource(FileSource(jfk_path), hb, panel.indicator).frames(pool):
            assert led.state is True and hb.age() < 1.0
            seen += 1
            frame.release()
        assert seen > 300 and led.state is False and hb.age() == 0.0  # idle after the source ends

        lost = ObservedSource(_UnpluggedMic(jfk_path, 50), hb, panel.indicator)
        with pytest.raises(AudioInputError):
            for frame in lost.frames(pool):
                frame.release()
        assert led.state is False and panel.indicator.state == "mic_lost"
        assert _blinked(factory, SETTINGS.red_led_pin, 1.2) >= 1  # type: ignore[arg-type]
        # the microphone comes back: capture resumes, LED on again, red off
        for frame in ObservedSource(FileSource(jfk_path), hb, panel.indicator).frames(pool):
            assert led.state is True and factory.pin(SETTINGS.red_led_pin).state is False  # type: ignore[arg-type]
            frame.release()
            break
    finally:
        panel.close()


def test_pins_claimed_before_the_lifecycle_exists_refuse_a_press_until_it_does() -> None:
    """serve claims the pins once, before the models load and before anything is announced (a held pin or a
    missing driver refuses the start first); a press in that window is refused with a red blink, the claim kept."""
    from edge_agent.device.main import _LateControl

    factory = MockFactory()
    claims = RoomClaims(60)
    control = _LateControl()
    panel = open_panel(SETTINGS, control, claims, factory=factory, bounce_s=None)
    assert panel is not None
    try:
        claims.claim("c-x", b"k")
        assert panel.room_button.press() == "refused"  # still loading: no lifecycle to start a visit in
        assert claims.current() is not None
        assert _blinked(factory, SETTINGS.red_led_pin) == 3  # type: ignore[arg-type]
        visits = Visits()
        visits.panel = panel
        control.target = visits  # the server started: the same pins, now live
        assert panel.room_button.press() == "started" and visits.started_for == ["c-x"]
    finally:
        panel.close()
