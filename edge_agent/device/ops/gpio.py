"""Room button and LEDs (gpiozero).

* A press toggles a visit through :class:`VisitControl` (the daemon implements
  it over its visit manager). A button can only *start* a visit for a clinician
  whose phone claimed the room within ``claim_window_s`` (:class:`RoomClaims`):
  the report must have a recipient, so without a claim the press is refused
  with a red blink and nothing is captured. A claim is used up by the visit it
  starts, so a later press cannot send the next patient's visit to a clinician
  who has left. The press is the presence proof (someone in the room); the claim
  names whose visit it is. If two clinicians claimed within the window, a press
  cannot know whose visit it is: it is refused with a distinct fast red blink,
  and both phones learn it (``GetClaim`` answers CONTESTED) until the claims
  expire; the claimer whose visit did start reads STARTED and its visit id.
* :class:`CaptureIndicator` drives the capture LED from the pipeline's hooks:
  lit exactly while frames are read, blinking while the report is finishing,
  off otherwise; the red LED blinks while the microphone is lost.

Pins come from ``[gpio]``; ``backend`` picks the gpiozero pin factory:
``mock`` (tests), ``rpi`` (gpiozero's default, lgpio), ``jetson`` (gpiozero's
RPi.GPIO factory on top of Jetson.GPIO, which provides the ``RPi.GPIO`` API),
``none`` (no GPIO on this box: nothing is opened).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_agent.device.config import GpioSettings
from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)

REFUSE_BLINKS = 3
REFUSE_BLINK_S = 0.15
CONTESTED_BLINKS = 8  # two clinicians claimed: eight fast blinks, unlike the three of "no claim"
CONTESTED_BLINK_S = 0.06
FINISH_BLINK_S = 0.4
MIC_LOST_BLINK_S = 1.0


PENDING, STARTED, CONTESTED, EXPIRED = "pending", "started", "contested", "expired"
MAX_CLAIMS = 64  # claims remembered (bounded memory; the oldest are forgotten)


@dataclass
class Claim:
    """A phone said "I am in this room". Held in memory only."""

    # identifiers stay out of repr(): a claim that reaches a log line or a traceback names nobody
    clinician_id: str = field(repr=False)
    public_key: Any = field(repr=False)  # the sealing key VisitManager.start expects (edge_agent.crypto.seal.X25519PublicKey)
    at: float  # monotonic seconds
    claim_id: str = field(default_factory=lambda: "k-" + secrets.token_urlsafe(12), repr=False)
    state: str = PENDING
    visit_id: str = field(default="", repr=False)
    failure: str = ""  # the last press could not start the visit: its line for the clinician (names nobody)
    person: str = field(default="", repr=False)  # stable subject id of the clinician (population unit)
    # Raises if the claimer may no longer start a visit here (certificate revoked or expired, taken off the
    # room's allow-list): the press rechecks it, since a claim lives for minutes after the call that made it.
    recheck: Callable[[], None] | None = field(default=None, repr=False, compare=False)


class RoomClaims:
    """Recent claims of the room, each valid for ``window_s``.

    One pending claim from one clinician: a press starts that clinician's visit.
    Claims from two or more clinicians inside the window: contested; a press is
    refused and every one of those claims reads CONTESTED until it expires.
    """

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._claims: OrderedDict[str, Claim] = OrderedDict()
        self._lock = threading.Lock()

    def _live(self, c: Claim, now: float) -> bool:
        return 0 <= now - c.at <= self.window_s

    def _expire(self, now: float) -> None:
        for c in self._claims.values():
            if c.state in (PENDING, CONTESTED) and not self._live(c, now):
                c.state = EXPIRED
        while len(self._claims) > MAX_CLAIMS:
            self._claims.popitem(last=False)

    def claim(self, clinician_id: str, public_key: Any, now: float | None = None, person: str = "",
              recheck: Callable[[], None] | None = None) -> Claim:
        """Record a claim; it (and any other clinician's live claim) is CONTESTED if another clinician claimed too."""
        now = self._clock() if now is None else now
        with self._lock:
            self._expire(now)
            for c in self._claims.values():
                if c.clinician_id == clinician_id and c.state == PENDING:
                    c.state = EXPIRED  # replaced by this newer claim of the same clinician
            mine = Claim(clinician_id, public_key, now, person=person, recheck=recheck)
            rivals = [c for c in self._claims.values() if c.state in (PENDING, CONTESTED) and c.clinician_id != clinician_id]
            if rivals:
                mine.state = CONTESTED
                for c in rivals:
                    c.state = CONTESTED
            elif any(c.state == CONTESTED and c.clinician_id == clinician_id for c in self._claims.values()):
                mine.state = CONTESTED  # re-claiming does not end a contest; it ends when the claims expire
            self._claims[mine.claim_id] = mine
            return mine

    def status(self, claim_id: str, clinician_id: str, now: float | None = None) -> Claim | None:
        """The caller's own claim (None for an unknown id or another clinician's)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._expire(now)
            c = self._claims.get(claim_id)
            return c if c is not None and c.clinician_id == clinician_id else None

    def contested(self, now: float | None = None) -> bool:
        now = self._clock() if now is None else now
        with self._lock:
            self._expire(now)
            return any(c.state == CONTESTED for c in self._claims.values())

    def current(self, now: float | None = None) -> Claim | None:
        """The one pending claim a press would start, else None (none, or contested)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._expire(now)
            if any(c.state == CONTESTED for c in self._claims.values()):
                return None
            pending = [c for c in self._claims.values() if c.state == PENDING]
            return pending[-1] if len(pending) == 1 else None

    def void(self, claim: Claim) -> None:
        """The claimer is no longer trusted (revoked, expired, off the allow-list): the claim is dead (EXPIRED)."""
        with self._lock:
            if claim.state in (PENDING, CONTESTED):
                claim.state = EXPIRED

    def take(self, claim: Claim, visit_id: str) -> None:
        """The claim started visit ``visit_id`` (used up; its phone reads STARTED and the id)."""
        with self._lock:
            claim.state = STARTED
            claim.visit_id = visit_id

    def failed(self, claim: Claim, failure: str) -> None:
        """A press for this claim could not start the visit: the claim stays (a press once fixed starts), and its
        phone reads why at once (it read nothing, then "expired" once the window had passed)."""
        with self._lock:
            claim.failure = failure

    def clear(self) -> None:
        with self._lock:
            self._claims.clear()


class VisitControl(Protocol):
    """What the button needs from the daemon's visit lifecycle (called from gpiozero's thread)."""

    def start_from_button(self, claim: Claim) -> str:
        """Start a visit delivering to ``claim``; returns its visit id ("" or an EdgeAgentError refuses it)."""

    def stop_from_button(self) -> None: ...

    def is_active(self) -> bool: ...


class _Output(Protocol):
    """The parts of gpiozero's LED we use (an LED, or a null output on boxes without one)."""

    @property
    def is_lit(self) -> bool: ...

    def on(self) -> None: ...

    def off(self) -> None: ...

    def blink(self, on_time: float = ..., off_time: float = ..., n: int | None = ..., background: bool = ...) -> None: ...

    def close(self) -> None: ...


class NullOutput:
    """Stands in for an LED that is not fitted (``red_led_pin`` empty)."""

    is_lit = False

    def on(self) -> None:
        pass

    def off(self) -> None:
        pass

    def blink(self, on_time: float = 1, off_time: float = 1, n: int | None = None, background: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


class CaptureIndicator:
    """LED hooks for the pipeline and the visit lifecycle.

    ``on_capture_started``: first frame read (or capture resumed after the
    microphone came back). ``on_capture_stopped``: the source is closed.
    ``on_capture_finishing``: capture is off, the report is being built.
    ``on_mic_lost``: the source failed mid-visit (capture LED off: no frames).
    """

    def __init__(self, led: _Output, red: _Output | None = None) -> None:
        self.led = led
        self.red = red or NullOutput()
        self.state = "idle"
        self._lock = threading.Lock()

    def on_capture_started(self) -> None:
        with self._lock:
            self.state = "capturing"
            self.red.off()
            self.led.on()

    def on_capture_stopped(self) -> None:
        with self._lock:
            self.state = "idle"
            self.led.off()
            self.red.off()

    def on_capture_finishing(self) -> None:
        with self._lock:
            self.state = "finishing"
            self.led.blink(on_time=FINISH_BLINK_S, off_time=FINISH_BLINK_S, background=True)

    def on_mic_lost(self) -> None:
        with self._lock:
            self.state = "mic_lost"
            self.led.off()
            self.red.blink(on_time=MIC_LOST_BLINK_S, off_time=MIC_LOST_BLINK_S, background=True)

    def refuse(self, contested: bool = False) -> None:
        """A press that cannot start a visit: a short red blink (fast and long if contested), capture LED untouched."""
        target = self.red if not isinstance(self.red, NullOutput) else None
        if target is None:
            # no red LED fitted: blink the capture LED quickly, but only if it is not showing capture
            if self.state != "idle":
                return
            target = self.led
        if contested:
            target.blink(on_time=CONTESTED_BLINK_S, off_time=CONTESTED_BLINK_S, n=CONTESTED_BLINKS, background=True)
        else:
            target.blink(on_time=REFUSE_BLINK_S, off_time=REFUSE_BLINK_S, n=REFUSE_BLINKS, background=True)

    def close(self) -> None:
        self.led.close()
        self.red.close()


class RoomButton:
    """Toggle a visit on each press; refuse a start without a recent claim."""

    def __init__(
        self,
        control: VisitControl,
        claims: RoomClaims,
        indicator: CaptureIndicator,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self.control = control
        self.claims = claims
        self.indicator = indicator
        self.on_outcome = on_outcome  # e.g. metrics: "started" | "stopped" | "refused" | "contested"
        self._lock = threading.Lock()  # presses are handled one at a time

    def press(self) -> str:
        with self._lock:
            outcome = self._press()
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def _press(self) -> str:
        from edge_agent.errors import EdgeAgentError

        if self.control.is_active():
            try:
                self.control.stop_from_button()
            except EdgeAgentError as exc:
                log.warning("button stop failed: %s", exc)
                self.indicator.refuse()
                return "refused"
            return "stopped"
        if self.claims.contested():
            log.debug("button press refused: two clinicians claimed this room")
            self.indicator.refuse(contested=True)
            return "contested"
        claim = self.claims.current()
        if claim is None:
            log.debug("button press refused: no phone claimed this room recently")
            self.indicator.refuse()
            return "refused"
        if claim.recheck is not None:
            try:
                claim.recheck()  # the claim was trusted minutes ago; capture starts only if it still is
            except Exception as exc:  # noqa: BLE001 - AuthError, PresenceError: any doubt refuses the press
                log.warning("button press refused: the clinician who claimed the room is no longer allowed to start (%s)",
                            type(exc))
                self.claims.void(claim)
                self.indicator.refuse()
                return "refused"
        try:
            visit_id = self.control.start_from_button(claim)
        except EdgeAgentError as exc:
            log.warning("button start refused: %s", exc)
            self.claims.failed(claim, exc.for_clinician)  # the phone following its claim is told why
            visit_id = ""
        if not visit_id:
            self.indicator.refuse()
            return "refused"
        self.claims.take(claim, visit_id)  # used up: the next visit needs a fresh claim
        return "started"


def pin_factory(backend: str) -> Any:
    """The gpiozero pin factory for ``gpio.backend`` (None = no GPIO)."""
    if backend == "none":
        return None
    if backend == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if backend == "rpi":
        try:
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        except Exception as exc:  # noqa: BLE001 - report any driver failure as one line
            raise ConfigError(f"gpio.backend 'rpi' unavailable ({type(exc).__name__}); install python3-lgpio or set gpio.backend = \"none\"") from None
    if backend == "jetson":
        try:
            from gpiozero.pins.rpigpio import RPiGPIOFactory  # Jetson.GPIO installs the RPi.GPIO API

            return RPiGPIOFactory()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"gpio.backend 'jetson' unavailable ({type(exc).__name__}); pip install Jetson.GPIO or set gpio.backend = \"none\"") from None
    raise ConfigError(f"gpio.backend is {backend!r}; allowed values: none, mock, rpi, jetson")


@dataclass
class RoomPanel:
    """The opened button and LEDs; ``close()`` releases the pins."""

    button: Any  # gpiozero.Button
    indicator: CaptureIndicator
    room_button: RoomButton

    def close(self) -> None:
        self.button.close()
        self.indicator.close()


def open_panel(
    settings: GpioSettings,
    control: VisitControl,
    claims: RoomClaims,
    factory: Any = None,
    bounce_s: float | None = 0.05,
    on_outcome: Callable[[str], None] | None = None,
) -> RoomPanel | None:
    """Open the pins of ``[gpio]`` (None when ``backend = "none"``). ``factory`` overrides the backend (tests)."""
    factory = factory if factory is not None else pin_factory(settings.backend)
    if factory is None:
        return None
    from gpiozero import LED, Button

    led = LED(settings.led_pin, pin_factory=factory)
    red = LED(settings.red_led_pin, pin_factory=factory) if settings.red_led_pin is not None else None
    indicator = CaptureIndicator(led, red)
    room_button = RoomButton(control, claims, indicator, on_outcome)
    button = Button(settings.button_pin, pull_up=True, bounce_time=bounce_s, pin_factory=factory)
    button.when_pressed = lambda: room_button.press()
    return RoomPanel(button, indicator, room_button)
