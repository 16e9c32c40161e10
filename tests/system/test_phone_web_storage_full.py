"""The phone web app when its storage is full or cleared, in headless Chromium against a real room device on loopback
with real TLS. The browser profile lives on a small disk of its own (a tmpfs in a private mount namespace around
chromedriver), filled by another database of the same origin until IndexedDB refuses with QuotaExceededError, as it
does on a full phone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.phone_web_fixtures import Browser, Device, skip_without_browser
from tests.system.test_phone_web_browser import _enrol_and_join, _press_start, browser, env  # noqa: F401 - fixtures
from tests.system.test_phone_web_visit_ends import _room_screen

pytestmark = skip_without_browser

# random (incompressible) chunks into a database of its own until the disk refuses, smaller and smaller
FILL = """
const done = arguments[arguments.length - 1];
const q = indexedDB.open('filler', 1);
q.onupgradeneeded = () => q.result.createObjectStore('s');
q.onsuccess = async () => {
  const db = q.result;
  const put = (n, size) => new Promise((ok) => {
    const a = new Uint8Array(size);
    for (let o = 0; o < size; o += 65536) crypto.getRandomValues(a.subarray(o, Math.min(size, o + 65536)));
    const t = db.transaction('s', 'readwrite');
    t.objectStore('s').put(a, 'k' + n);
    t.oncomplete = () => ok(true);
    t.onabort = () => ok(false);
  });
  let n = 0;
  for (const size of [4 << 20, 256 << 10, 16 << 10, 1 << 10]) while (await put(n++, size)) { /* fill */ }
  db.close();
  done(n);
};
"""
FREE = """
const done = arguments[arguments.length - 1];
const q = indexedDB.deleteDatabase('filler');
q.onsuccess = q.onerror = q.onblocked = () => done('freed');
"""


def _no_private_mounts() -> str | None:
    import subprocess

    try:
        ok = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return None if ok else "unshare -rm (user + mount namespaces) is not allowed here: no small disk for the profile"


@pytest.fixture
def small_disk_browser(env, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    if (why := _no_private_mounts()) is not None:
        pytest.skip(why)
    _root, pki, _site, wav = env
    b = Browser.launch(tmp_path, pki.root / "ca" / "ca.cert.pem", fake_audio=wav, profile_mb=48)
    yield b
    b.quit()


def test_a_full_phone_says_so_and_the_report_comes_once_there_is_room(env, small_disk_browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    """The phone's storage fills up during a visit. When the report arrives it cannot be stored: one line says the
    phone is full and what to do (not a silent hang on "Preparing your report…"), the report is not acknowledged (it
    stays on the device), and once space is freed it arrives and opens without the clinician doing anything else."""
    _root, pki, site, _wav = env
    browser = small_disk_browser
    device = Device.start(pki, tmp_path / "data", site.origin)
    outbox = device.server.outbox
    assert outbox is not None
    visits = device.server.visits
    assert visits is not None
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        assert browser.driver.execute_async_script(FILL) > 1  # the phone is full now
        _press_start(browser, pki.room_code())
        line = browser.wait(lambda: "full" in browser.status() and browser.status(), 30, "the start on a full phone")
        assert "free some space" in line and "\n" not in line, line
        # capture never stays on behind a phone that shows no Stop: the visit whose record could not be written is
        # stopped at once (its report then waits on the device like any other)
        browser.wait(lambda: visits.last_stop is not None and not visits.active, 10, "the visit stopped at once")
        # the report follower then meets the full phone too (that visit's report cannot be stored) and says so: its
        # line goes beneath the one saying capture is off, never over it
        follower = browser.wait(lambda: [ln for ln in browser.lines() if "reports wait" in ln and "capture" not in ln], 30,
                                "the report follower's line")
        assert follower[0].startswith("This phone's storage is full"), follower
        top = browser.lines()[0]
        assert "free some space" in top and top.endswith("The visit was stopped at once: capture is off."), browser.lines()
        assert not browser.driver.execute_script("return !!document.getElementById('stop')")
        assert outbox.stats()[0] == 1
        assert browser.driver.execute_async_script(FREE) == "freed"
        browser.wait(lambda: outbox.stats()[0] == 0, 30, "that report fetched once there is room")

        _room_screen(browser)
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        assert browser.driver.execute_async_script(FILL) > 1  # the phone fills up during the visit
        browser.click("#stop")
        line = browser.wait(lambda: "full" in browser.status() and browser.status(), 30, "the phone says it is full")
        assert "\n" not in line and "free some space" in line, line
        assert outbox.stats()[0] == 1  # not acknowledged: the report waits on the device
        assert browser.driver.execute_async_script(FREE) == "freed"  # the clinician frees space
        browser.wait(lambda: "/report/" in browser.driver.current_url and "What to try" in browser.text(), 30, "the report")
        browser.wait(lambda: outbox.stats()[0] == 0, 10, "acknowledged once stored")
    finally:
        device.stop()


def test_site_data_cleared_while_the_app_is_open_is_said_in_one_line(env, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    """The browser's data for the app is cleared while a visit runs (the clinician in the browser's settings, or the
    browser evicting it). When the report arrives the app says the keys are gone and what to do, in one line, not a
    script error ("Cannot read properties of null"); the report is not acknowledged (the device keeps it until it
    expires; no other key can open it)."""
    _root, pki, site, _wav = env
    device = Device.start(pki, tmp_path / "data", site.origin)
    visits, outbox = device.server.visits, device.server.outbox
    assert visits is not None and outbox is not None
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started")
        browser.driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": site.origin, "storageTypes": "all"})
        device.call(visits.stop(None, None, "max duration"))
        line = browser.wait(lambda: "keys are gone" in browser.status() and browser.status(), 20, "the line")
        assert "\n" not in line and "Cannot read" not in line and "set this phone up" in line, line
        assert outbox.stats()[0] == 1
        browser.driver.refresh()  # reopened: set-up, as the line says
        browser.wait(lambda: "Make my keys" in browser.text(), 20, "the set-up screen")
    finally:
        device.stop()
