"""The clinician's phone web app when a visit ends somewhere else than at the phone's Stop button (the room device
restarted, its time limit, the room button), in headless Chromium against a real room device on loopback with
real TLS: the report still arrives, and the phone does not stay stuck on "Visit running" with a Stop button that
can only fail, which would leave the clinician unable to start the next visit from the phone.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from edge_agent.audio.mic_source import MIC_MISSING
from edge_agent.crypto import ca
from edge_agent.device.lifecycle import VisitError
from edge_agent.errors import EdgeAgentError
from tests.phone_web_fixtures import Browser, Device, TimelineRunner, skip_without_browser
from tests.system.test_phone_web_browser import _enrol_and_join, _press_start, browser, env  # noqa: F401 - fixtures

pytestmark = skip_without_browser


def _room_screen(browser: Browser) -> str:
    """The Room screen drawn afresh, as when the clinician opens it: 'start' (a visit can start) or 'stop'."""
    base = browser.driver.current_url.split("#")[0]
    browser.go(base + "#/visits")
    browser.go(base + "#/room")
    return str(browser.wait(lambda: browser.driver.execute_script(
        "return document.getElementById('start') ? 'start' : document.getElementById('stop') ? 'stop' : ''"),
        20, "the room screen"))


def _queued(device: Device) -> int:
    """Reports waiting in the device's outbox (any recipient)."""
    outbox = device.server.outbox
    assert outbox is not None
    return outbox.stats()[0]


def _reports(browser: Browser) -> int:
    return int(browser.driver.execute_script("return document.querySelectorAll('ul.visits li').length"))


def test_a_device_restart_during_a_visit_does_not_leave_the_phone_stuck_on_stop(env, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    """The device restarts while a visit runs (its shutdown stops the visit and seals the report). The phone gets the
    report once the device is back, says one clear line while it is away, and offers Start again, not a Stop that
    the device can only refuse ("no such visit is running")."""
    _root, pki, site, _wav = env
    device = Device.start(pki, tmp_path / "data", site.origin)
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        port = device.both.web.port
        device.stop()  # shutdown: the running visit is stopped and its report sealed into the outbox on disk
        seen: set[str] = set()
        browser.wait(lambda: seen.update(browser.lines()) or "Device unreachable" in browser.status(), 20, "the phone notices")
        device = Device.start(pki, tmp_path / "data", site.origin, web_port=port)  # back, same address
        browser.wait(lambda: seen.update(browser.lines()) or "New report" in browser.status() or "report is ready" in browser.status(),
                     40, "the report sealed at the restart")
        # every line said while the device was away is one a clinician can act on (no bare "network error")
        for line in seen:
            assert line.startswith(("Visit started", "Device unreachable", "New report", "Checking the device", "Your report",
                                    "Your visit in Room 4 has ended: capture is off")), seen
        browser.go(browser.driver.current_url.split("#")[0] + "#/visits")
        assert browser.wait(lambda: _reports(browser) == 1, 10, "the report in the list")

        assert _room_screen(browser) == "start", browser.text()
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
    finally:
        device.stop()


class _FaultAtStop(TimelineRunner):
    """The scripted runner whose pipeline fails when the visit is stopped (the device then ends and wipes the visit
    and has no report to send); ``faults`` counts the stops still to fail. ``start_fault``: the next start's capture
    cannot begin (the device's one-line refusal)."""

    faults = 0
    start_fault: EdgeAgentError | None = None

    def start(self, ctx):  # type: ignore[no-untyped-def]
        if self.start_fault is not None:
            fault, self.start_fault = self.start_fault, None
            raise fault
        super().start(ctx)

    def stop(self, quotes: bool = False):  # type: ignore[no-untyped-def]
        if self.faults:
            self.faults -= 1
            raise RuntimeError("pipeline fault at stop")
        return super().stop(quotes)


def test_a_visit_ended_on_the_device_frees_the_phones_room_screen(env, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    """The device ends the visit itself (its time limit, long silence: the system stop the room button also uses):
    the report arrives and the Room screen offers Start again. When the device ended it without a report (the pipeline
    failed at that stop), the phone says so by itself in one line (why, what to do) and frees the screen: it no longer
    shows "Visit running" with a Stop that can only fail, nor waits for a report that cannot come (until 2026-12-02 it
    did both); when the pipeline fails at the phone's own Stop, the device's fault (not a refusal) and that no report
    comes are said, and the screen is freed too. A start whose capture cannot begin says what to do."""
    _root, pki, site, _wav = env
    runner = _FaultAtStop()
    device = Device.start(pki, tmp_path / "data", site.origin, runner=runner)
    visits = device.server.visits
    assert visits is not None
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        assert _room_screen(browser) == "start"
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        assert browser.wait(lambda: browser.driver.execute_script("return !!document.getElementById('stop')"), 10, "stop offered")
        browser.go(browser.driver.current_url.split("#")[0] + "#/visits")  # the clinician looks at the list meanwhile
        browser.wait(lambda: "No reports yet" in browser.text(), 10, "the empty list")
        device.call(visits.stop(None, None, "max duration"))  # the report is sealed and streamed to the phone
        browser.wait(lambda: "New report" in browser.status(), 30, "the report of the visit the device stopped")
        # the line that said capture is on is replaced by one saying it is off; the notice goes beneath it
        assert browser.lines() == ["Your visit in Room 4 has ended: capture is off.", "New report from Room 4."], browser.lines()
        assert browser.wait(lambda: _reports(browser) == 1, 10, "the list on screen shows it"), browser.text()
        assert _room_screen(browser) == "start"

        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        runner.faults = 1
        with contextlib.suppress(VisitError):
            device.call(visits.stop(None, None, "max duration"))  # ended and wiped, no report
        # told by the device, with no press of Stop (the followed stream ends, the phone reads why)
        line = browser.wait(lambda: "No report" in browser.status() and browser.status(), 20, "the phone told no report comes")
        assert line == "No report for this visit: the room device failed while building it; tell IT.", browser.lines()
        assert browser.wait(lambda: browser.driver.execute_script("return !!document.getElementById('start')"), 10, "start offered")

        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        runner.faults = 1
        browser.click("#stop")  # the pipeline fails at this stop: the device ends and wipes the visit
        line = browser.wait(lambda: "could not be built" in browser.status() and browser.status(), 30, "the device's line")
        # the device failed, it did not say no: not led in as a refusal
        assert line.startswith("Fault on the room device: the report could not be built") and "\n" not in line, line
        assert line.endswith("No report for this visit: the room device failed while building it; tell IT."), line
        assert browser.wait(lambda: browser.driver.execute_script("return !!document.getElementById('start')"), 10, "start offered")
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        browser.click("#stop")
        browser.wait(lambda: "report is ready" in browser.status(), 30, "the report")

        # capture cannot begin (the room microphone unplugged): what happened and what to do, not "refused"
        runner.start_fault = EdgeAgentError("no input device matches audio.device = 'hw:1'", clinician=MIC_MISSING)
        browser.go(browser.driver.current_url.split("#")[0] + "#/room")
        _press_start(browser, pki.room_code())
        line = browser.wait(lambda: "Capture could not start" in browser.status() and browser.status(), 20, "the start answered")
        assert line == f"Capture could not start, so nothing is being recorded: {MIC_MISSING}.", line
        assert browser.driver.execute_script("return !!document.getElementById('start')")
    finally:
        device.stop()


def test_a_report_waiting_in_the_last_room_arrives_after_joining_the_next(env, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    """A clinician starts a visit in Room 4 from the phone, puts the phone away (the app is closed or suspended), the
    visit is stopped in the room (the room button, the time limit), and opens the app again by scanning Room 5's QR
    code for the next patient. The Room 4 report must still reach the phone (it was sealed to this phone's key and
    waits in Room 4's outbox), not sit there until it expires; Room 5's visit works as usual."""
    _root, pki, site, _wav = env
    room4 = Device.start(pki, tmp_path / "data4", site.origin)
    bundle5 = tmp_path / "device5.pem"
    ca.issue_device(pki.authority, "Room 5", bundle5, ips=("127.0.0.1",))
    room5 = Device.start(pki, tmp_path / "data5", site.origin, bundle=bundle5, room="Room 5")
    try:
        _enrol_and_join(browser, env, tmp_path, room4)
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        browser.driver.get("about:blank")  # the app closed (a phone suspends a page in the pocket the same way)
        visits = room4.server.visits
        assert visits is not None
        stopped = room4.call(visits.stop(None, None, "button"))  # stopped in the room, sealed to this phone's key
        browser.go(room5.join_link(site.origin))  # the next room's QR code opens the app
        browser.wait(lambda: "Room: Room 5" in browser.text() and "Verified device" in browser.text(), 20, "Room 5 joined")
        base = browser.driver.current_url.split("#")[0]
        browser.go(base + "#/visits")  # drawn at once, before Room 4 is asked: the list gains the report by itself
        browser.wait(lambda: _reports(browser) == 1, 30, "Room 4's report on the phone")
        browser.go(f"{base}#/report/{stopped.visit_id}")
        browser.wait(lambda: "What to try" in browser.text(), 10, "Room 4's report opens")
        assert browser.wait(lambda: _queued(room4) == 0, 10, "acknowledged: gone from Room 4's outbox")

        assert _room_screen(browser) == "start" and "Room 5" in browser.text()
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        browser.click("#stop")
        browser.wait(lambda: "/report/" in browser.driver.current_url and "What to try" in browser.text(), 30, "Room 5's report")
        browser.go(base + "#/visits")
        assert browser.wait(lambda: _reports(browser) == 2, 10, "both reports")
    finally:
        room5.stop()
        room4.stop()
