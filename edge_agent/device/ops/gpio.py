"""Room button and LEDs (gpiozero).

* A press toggles a visit through :class:`VisitControl` (the daemon implements
  it over its visit manager). A button can only *start* a visit for a clinician
  whose phone claimed the room within ``claim_window_s`` (:class:`RoomClaims`):
  the report must have a recipient, so without a claim the press is refused
  with a red blink and nothing is captured. A claim is used up by the visit it
  starts, so a later press cannot send the next patient's visit to a clinician
  who has left.
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.device.config import GpioSettings
from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)

REFUSE_BLINKS = 3
REFUSE_BLINK_S = 0.15
FINISH_BLINK_S = 0.4
MIC_LOST_BLINK_S = 1.0


@dataclass(frozen=True)
class Claim:
    """A phone said "I am in this room". Held in memory only."""

    clinician_id: str
    public_key: Any  # the sealing key VisitManager.start expects (edge_agent.crypto.seal.X25519PublicKey)
    at: float  # monotonic seconds


class RoomClaims:
    """The latest claim of the room, valid for ``window_s``; older claims are forgotten."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._claim: Claim | None = None
        self._lock = threading.Lock()

    def claim(self, clinician_id: str, public_key: Any, now: float | None = None) -> None:
        with self._lock:
            self._claim = Claim(clinician_id, public_key, self._clock() if now is None else now)

    def current(self, now: float | None = None) -> Claim | None:
        """The claim if it is recent enough, else None (and an expired claim is dropped)."""
        now = self._clock() if now is None else now
        with self._lock:
            c = self._claim
            if c is not None and not (0 <= now - c.at <= self.window_s):
                self._claim = c = None
            return c

    def take(self, now: float | None = None) -> Claim | None:
        """Use the claim up (a button visit was started with it)."""
        now = self._clock() if now is None else now
        with self._lock:
            c = self._claim
            self._claim = None
        if c is not None and 0 <= now - c.at <= self.window_s:
            return c
        return None

    def clear(self) -> None:
        with self._lock:
            self._claim = None


class VisitControl(Protocol):
    """What the button needs from the daemon's visit lifecycle (called from gpiozero's thread)."""

    def start_from_button(self, claim: Claim) -> bool:
        """Start a visit delivering to ``claim``; False (or an EdgeAgentError) refuses it."""

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

    def refuse(self) -> None:
        """A press that cannot start a visit: a short red blink, capture LED untouched."""
        target = self.red if not isinstance(self.red, NullOutput) else None
        if target is None:
            # no red LED fitted: blink the capture LED quickly, but only if it is not showing capture
            if self.state != "idle":
                return
            target = self.led
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
        self.on_outcome = on_outcome  # e.g. metrics: "started" | "stopped" | "refused"
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
        claim = self.claims.current()
        if claim is None:
            log.info("button press refused: no phone claimed this room recently")
            self.indicator.refuse()
            return "refused"
        try:
            started = self.control.start_from_button(claim)
        except EdgeAgentError as exc:
            log.warning("button start refused: %s", exc)
            started = False
        if not started:
            self.indicator.refuse()
            return "refused"
        self.claims.take()  # used up: the next visit needs a fresh claim
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
