"""Helpers for the phone web app tests: a site PKI, a room device with its browser endpoint,
the site service, and headless Chromium trusting the site CA through a real NSS database;
WebKitGTK (Safari's engine) through WebKitWebDriver under Xvfb (WebKitBrowser).

No browser is downloaded: Debian's chromium + chromium-driver, webkit2gtk-driver + xvfb
(tools/apt-packages.txt).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from edge_agent.cli.demo_phone import nss_home
from edge_agent.crypto import ca
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.web.endpoint import DeviceWithWeb, WebEndpointConfig
from edge_agent.device.web.sessions import SessionPolicy
from edge_agent.phone.web.site import SiteServer
from edge_agent.proto.edge_agent.v1 import feedback_pb2
from tests.delivery_fixtures import Pki, RecordingRunner, server_config
from tests.doubles.scripted_runner import SpectralVoiceEnroller
from tests.paths import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = REPO_ROOT


def browser_available() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} missing (apt-get install chromium chromium-driver)"
    if shutil.which("certutil") is None:
        return "certutil missing (apt-get install libnss3-tools)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium missing (pip install -e '.[dev]')"
    return None


class TimelineRunner(RecordingRunner):
    """The scripted runner whose report also carries the turn timeline and a mark (fast tests)."""

    def stop(self, quotes: bool = False) -> feedback_pb2.Feedback:
        lines = list(self._script_source)
        fb = super().stop(quotes)
        speakers = {"clinician": feedback_pb2.SPEAKER_CLINICIAN, "patient": feedback_pb2.SPEAKER_PATIENT}
        for ln in lines:
            fb.timeline.add(speaker=speakers.get(ln.speaker, feedback_pb2.SPEAKER_OTHER), start_s=ln.t0, end_s=ln.t1)
        # marks the real device sends (edge_agent/feedback/proto.py: interruption marks are withheld)
        fb.marks.add(kind="opening_redirected", at_s=9.0)
        fb.marks.add(kind="longest_wait", at_s=21.0)
        return fb


@dataclass
class Site:
    """The site service (the one origin of the phone web app) on a thread of its own."""

    server: SiteServer
    thread: threading.Thread | None = None

    @classmethod
    def start(cls, bundle: Path, crl: Path, device_origins: tuple[str, ...] = ()) -> Site:
        return cls.bind(bundle, crl, device_origins).run()

    @classmethod
    def bind(cls, bundle: Path, crl: Path, device_origins: tuple[str, ...] = ()) -> Site:
        """Listening (the origin is known) but not serving yet: devices can be told the origin first."""
        return cls(SiteServer(bundle, crl, "127.0.0.1", 0, device_origins))

    def run(self) -> Site:
        server, site = self.server, self
        site.thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True, name="site")
        site.thread.start()
        time.sleep(0.2)
        return site

    @property
    def origin(self) -> str:
        return self.server.origin

    def stop(self) -> None:
        self.server.stop()
        if self.thread is not None:
            self.thread.join(10)


@dataclass
class Device:
    """A room device on loopback: mutual-TLS gRPC plus the browser endpoint, real TLS on both."""

    both: DeviceWithWeb
    background: BackgroundServer
    room: str

    @classmethod
    def start(cls, pki: Pki, data_dir: Path, allowed_origin: str, runner: Any = None, enroller: Any = None,
              bundle: Path | None = None, room: str = "Room 4", quotes: bool = False,
              session: SessionPolicy | None = None, metrics: Any = None, web_port: int = 0) -> Device:
        """``web_port``: the browser endpoint's port (0: any free one); a restarted device takes its old one again."""
        cfg = replace(server_config(pki, data_dir), room=room, bundle=bundle or pki.device, quotes=quotes)
        server = EdgeAgentServer(cfg, runner if runner is not None else TimelineRunner(),
                                 enroller if enroller is not None else SpectralVoiceEnroller(), metrics=metrics)
        both = DeviceWithWeb(server, WebEndpointConfig((allowed_origin,), host="127.0.0.1", port=web_port, session=session or SessionPolicy()))
        bg = BackgroundServer(both)
        bg.start()
        return cls(both, bg, room)

    @property
    def server(self) -> EdgeAgentServer:
        return self.both.server

    @property
    def web_url(self) -> str:
        return f"https://127.0.0.1:{self.both.web.port}"

    @property
    def grpc_port(self) -> int:
        return self.background.port

    def join_link(self, site: str, fingerprint: str | None = None, room: str | None = None, url: str | None = None) -> str:
        return (f"{site}/#join?d={quote(url or self.web_url, safe='')}&fp={fingerprint or self.server.fingerprint}"
                f"&room={quote(room or self.room, safe='')}")

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return self.background.call(coro, timeout)

    @contextlib.contextmanager
    def raw_web_tls(self, ca_pem: bytes) -> Iterator[ssl.SSLSocket]:
        """A bare TLS connection to the browser endpoint, for bytes no browser would send."""
        ctx = ssl.create_default_context(cadata=ca_pem.decode())
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", self.both.web.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="edge-agent") as tls:
            yield tls

    def stop(self) -> None:
        self.background.stop()


@dataclass
class Browser:
    driver: Any
    profile: Path
    home: Path
    shots: list[Path] = field(default_factory=list)

    @classmethod
    def launch(cls, root: Path, ca_pem: Path, fake_audio: Path | None = None, profile_mb: int | None = None) -> Browser:
        """``profile_mb``: the browser profile on a disk of that size of its own (a tmpfs in a private mount
        namespace around chromedriver), so the app meets a phone whose storage is full."""
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        home = nss_home(root / "home", ca_pem)
        profile = root / "chromium-profile"
        driver_path = CHROMEDRIVER
        if profile_mb is not None:
            profile.mkdir(parents=True, exist_ok=True)
            driver_path = str(root / "chromedriver-small-disk")
            Path(driver_path).write_text(
                "#!/bin/sh\n"
                f"exec unshare -rm sh -c 'mount -t tmpfs -o size={profile_mb}m tmpfs \"$0\" && exec {CHROMEDRIVER} \"$@\"' "
                f"'{profile}' \"$@\"\n")
            Path(driver_path).chmod(0o755)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={profile}", "--hide-scrollbars",
                     "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     "--autoplay-policy=no-user-gesture-required", "--lang=en-GB"):
            opts.add_argument(flag)
        # a phone-sized viewport (headless windows cannot be narrower than 500 px, emulation can)
        opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 360, "height": 740, "pixelRatio": 1.5}})
        if fake_audio is not None:
            opts.add_argument(f"--use-file-for-fake-audio-capture={fake_audio}")
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "en_GB.UTF-8"}
        service = Service(driver_path, env=env, log_output=str(root / "chromedriver.log"))
        driver = webdriver.Chrome(service=service, options=opts)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(60)
        return cls(driver, profile, home)

    def quit(self) -> None:
        try:
            self.driver.quit()
        except Exception:  # noqa: BLE001 - a crashed browser is already gone
            pass

    # ---- small waits on what the clinician sees -------------------------------------

    def wait(self, predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except Exception as exc:  # noqa: BLE001 - element not there yet
                last = exc
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; status line: {self.status()!r}; last: {last!r}")

    def lines(self) -> list[str]:
        """The status lines shown: the top one (highest rank), then the one beneath it, if any."""
        try:
            return [t for t in self.driver.execute_script(
                "return ['status', 'notice'].map((id) => document.getElementById(id)?.textContent || '')") if t]
        except Exception:  # noqa: BLE001
            return []

    def status(self) -> str:
        return " | ".join(self.lines())

    def wait_status(self, text: str, timeout: float = 20) -> str:
        """The status line that contains ``text``, once one does."""
        return self.wait(lambda: next((ln for ln in self.lines() if text in ln), None), timeout, f"status containing {text!r}")

    def click(self, css: str) -> None:
        from selenium.webdriver.common.by import By

        el = self.wait(lambda: self.driver.find_element(By.CSS_SELECTOR, css), what=css)
        self.wait(lambda: el.is_enabled(), what=f"{css} enabled")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        el.click()

    def text(self, css: str = "main") -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def fill(self, css: str, value: str) -> None:
        from selenium.webdriver.common.by import By

        el = self.wait(lambda: self.driver.find_element(By.CSS_SELECTOR, css), what=css)
        # set the value directly: send_keys types a 1 kB PEM a key at a time
        self.driver.execute_script("arguments[0].value = arguments[1]", el, value)

    def go(self, url: str) -> None:
        self.driver.get(url)
        self.wait(lambda: self.driver.execute_script("return document.body && document.body.dataset.ready === '1'"),
                  what="app ready")

    def screenshot(self, path: Path) -> None:
        """The whole page at phone width (not just the first screenful)."""
        import base64

        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.execute_script("window.scrollTo(0, 0)")  # a click may have scrolled the page: shoot from the top
        time.sleep(0.1)
        height = int(self.driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)"))
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": 360, "height": max(740, height), "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        self.shots.append(path)


# ---- WebKit (Safari's engine): Debian's WebKitGTK driving its MiniBrowser under Xvfb -----------

WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
XVFB = "/usr/bin/Xvfb"
WEBKIT_INSTALL = "apt-get install -y webkit2gtk-driver xvfb"


def webkit_available() -> str | None:
    for path in (WEBKIT_DRIVER, MINIBROWSER, XVFB):
        if not Path(path).exists():
            return f"{path} missing ({WEBKIT_INSTALL})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium missing (pip install -e '.[dev]')"
    return None


def leaf_certificate(bundle: Path, out: Path) -> Path:
    """The first certificate of a PEM bundle (the server's own), alone in a file."""
    text = bundle.read_text()
    start = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    out.write_text(text[start:end] + "\n")
    return out


class _Xvfb:
    """A private X display (GTK's MiniBrowser has no headless mode)."""

    def __init__(self, log: Path) -> None:
        import subprocess

        read, write = os.pipe()
        self.proc = subprocess.Popen([XVFB, "-displayfd", str(write), "-screen", "0", "1024x900x24", "-nolisten", "tcp"],
                                     pass_fds=(write,), stdout=log.open("wb"), stderr=subprocess.STDOUT)
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        if not number:
            self.proc.kill()
            raise RuntimeError(f"Xvfb did not start; see {log}")
        self.display = f":{number}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except Exception:  # noqa: BLE001
            self.proc.kill()


@dataclass
class WebKitBrowser(Browser):
    """WebKitGTK (the engine of Safari) through WebKitWebDriver, in a 360 px wide window.

    TLS: WebKitGTK has no per-profile CA store (it uses the system's GnuTLS trust) and
    WebKitWebDriver cannot add a trust anchor, so the test pins the exact server
    certificates it serves (capability ``webkitgtk:browserOptions.certificates`` =
    ``webkit_web_context_allow_tls_certificate_for_host``): those two certificates on
    127.0.0.1 are accepted, any other certificate is still refused (no ignoreTLSErrors).
    """

    xvfb: Any = None

    @classmethod
    def launch_webkit(cls, root: Path, certificates: list[Path]) -> WebKitBrowser:
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service

        class _Options(Options):
            def to_capabilities(self) -> dict:  # type: ignore[type-arg]
                caps = super().to_capabilities()
                caps[Options.KEY]["certificates"] = [{"host": "127.0.0.1", "certificateFile": str(c)} for c in certificates]
                return caps

        root.mkdir(parents=True, exist_ok=True)
        xvfb = _Xvfb(root / "xvfb.log")
        opts = _Options()
        opts.binary_location = MINIBROWSER
        for flag in ("--automation", "--enable-media-stream=true", "--enable-mock-capture-devices=true",
                     "--media-playback-requires-user-gesture=false"):
            opts.add_argument(flag)
        env = {**os.environ, "DISPLAY": xvfb.display, "LANG": "C.UTF-8", "GDK_BACKEND": "x11"}
        env.pop("WAYLAND_DISPLAY", None)
        try:
            service = Service(WEBKIT_DRIVER, env=env, log_output=str(root / "webkitwebdriver.log"))
            driver = webdriver.WebKitGTK(service=service, options=opts)
        except Exception:
            xvfb.stop()
            raise
        driver.set_window_rect(width=360, height=740)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(60)
        return cls(driver, root, root, xvfb=xvfb)

    def quit(self) -> None:
        super().quit()
        if self.xvfb is not None:
            self.xvfb.stop()

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.1)
        path.write_bytes(self.driver.get_screenshot_as_png())
        self.shots.append(path)


def enrol_phone(browser: Browser, site: str, authority: ca.CertificateAuthority, work: Path, **sign_kw: Any) -> str:
    """Keys made in the browser, the request signed by the project's CA code, the answer installed. Returns the pseudonym."""
    browser.go(site + "/#/setup")
    browser.click("#make-keys")
    request = browser.wait(lambda: browser.driver.execute_script("return document.getElementById('request')?.value"),
                           what="certificate request")
    req_path = work / "browser.req"
    req_path.write_text(request)
    issued = ca.sign_clinician_request(authority, req_path, work / "browser.cert", **sign_kw)
    browser.fill("#cert-text", (work / "browser.cert").read_text())
    browser.click("#install")
    browser.wait_status("Certificate installed")
    return issued.subject_id


def make_tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="edge-agent-pwa-"))


skip_without_browser = pytest.mark.skipif(browser_available() is not None, reason=str(browser_available()))
skip_without_webkit = pytest.mark.skipif(webkit_available() is not None, reason=str(webkit_available()))
