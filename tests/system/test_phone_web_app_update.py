"""'Update the app — close it and open it again': the clinician does exactly that once, and the app that opens is the
one the site serves now, not the service worker's cached copy of the old one. Headless Chromium, the site service
and a real room device on loopback with real TLS; the site's new build is the committed one with its protocol range
moved up (what a release that understands the device's newer protocol ships) and its own service-worker version."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from edge_agent.phone.web.site import load_assets, static_dir
from edge_agent.protocol import PROTOCOL_VERSION
from tests.phone_web_fixtures import Browser, Device, skip_without_browser
from tests.system.test_phone_web_browser import _enrol_and_join, browser, env  # noqa: F401 - fixtures

pytestmark = skip_without_browser


def _newer_build(out: Path) -> Path:
    """The committed app, understanding one protocol more, with a service worker of another version."""
    shutil.copytree(static_dir(), out)
    app = (out / "app.js").read_text()
    app, n = re.subn(r"function (\w+)\(t,e=(\d+),r=" + str(PROTOCOL_VERSION) + r"\)\{let n=",
                     lambda m: f"function {m[1]}(t,e={m[2]},r={PROTOCOL_VERSION + 1}){{let n=", app)
    assert n == 1, "the compatibility rule moved in the bundle: update this test"
    (out / "app.js").write_text(app)
    sw = (out / "sw.js").read_text()
    sw, n = re.subn(r'const VERSION = "([^"]+)"', r'const VERSION = "\1-next"', sw)
    assert n == 1
    (out / "sw.js").write_text(sw)
    return out


def _controlled(browser: Browser) -> bool:
    return bool(browser.driver.execute_script("return !!navigator.serviceWorker.controller"))


def test_closing_and_opening_the_app_once_runs_the_updated_app(env, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    _root, pki, site, _wav = env
    device = Device.start(pki, tmp_path / "data", site.origin)
    service = device.server.agent_service
    assert service is not None
    old_assets = site.server.app._assets
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        browser.wait(lambda: _controlled(browser), 20, "the service worker in control (the app works offline)")
        service.protocol_version = PROTOCOL_VERSION + 1  # the room device is updated past the app
        browser.go(device.join_link(site.origin))
        browser.wait_status("update the app")
        site.server.app._assets = load_assets(_newer_build(tmp_path / "next"), site.server.policy)  # the site's new release

        browser.driver.get("about:blank")  # "close it and open it again", once
        browser.go(device.join_link(site.origin))
        line = browser.wait(lambda: ("verified" in browser.status() or "update the app" in browser.status()) and browser.status(),
                            20, "the join answered")
        assert "the device is verified" in line, line
    finally:
        site.server.app._assets = old_assets
        device.stop()
