"""Two clinicians' phones on the same room device, each a headless Chromium of its own with its own keys and
certificate, against a real room device on loopback with real TLS: neither ever sees the other's report, a start
while the other's visit runs says "Room busy", and each gets only their own report."""

from __future__ import annotations

from pathlib import Path

from tests.phone_web_fixtures import Browser, Device, skip_without_browser
from tests.system.test_phone_web_browser import _enrol_and_join, _press_start, browser, env  # noqa: F401 - fixtures
from tests.system.test_phone_web_visit_ends import _reports, _room_screen

pytestmark = skip_without_browser


def _list(b: Browser) -> int:
    b.go(b.driver.current_url.split("#")[0] + "#/visits")
    b.wait(lambda: "Your visits" in b.text(), 10, "the visits screen")
    return _reports(b)


def test_a_second_clinician_on_the_same_device_never_sees_the_firsts_report(env, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    _root, pki, site, _wav = env
    device = Device.start(pki, tmp_path / "data", site.origin)
    second = Browser.launch(tmp_path / "second", pki.root / "ca" / "ca.cert.pem")
    outbox = device.server.outbox
    assert outbox is not None
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        (tmp_path / "second").mkdir(exist_ok=True)
        _enrol_and_join(second, env, tmp_path / "second", device)

        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        assert _room_screen(second) == "start"
        _press_start(second, pki.room_code())
        assert second.wait_status("Room busy").count("\n") == 0
        browser.click("#stop")
        browser.wait(lambda: "/report/" in browser.driver.current_url and "What to try" in browser.text(), 30, "the first's report")
        browser.wait(lambda: outbox.stats()[0] == 0, 10, "acknowledged")
        assert "New report" not in second.status() and _list(second) == 0  # the second phone was following all along

        assert _room_screen(second) == "start"
        _press_start(second, pki.room_code())
        second.wait_status("Visit started")
        second.click("#stop")
        second.wait(lambda: "/report/" in second.driver.current_url and "What to try" in second.text(), 30, "the second's report")
        assert _list(second) == 1 and _list(browser) == 1
        # reopened pages fetch from cursor 0 of their own: still only their own report
        for b in (browser, second):
            b.driver.get("about:blank")
            b.go(site.origin + "/#/room")
            b.wait(lambda b=b: "Room 4" in b.text(), 20, "the room screen")
        assert _list(browser) == 1 and _list(second) == 1
    finally:
        second.quit()
        device.stop()
