"""`edge-agent demo --phone` end to end: the demo process plays IT (signs the browser's request
pasted on its stdin), and the browser runs the same flow as a clinician's phone (slow: loads the
real models and replays the bundled visit)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli_runner import ctrl_c_reachable
from tests.phone_web_fixtures import ROOT, Browser, skip_without_browser

pytestmark = [skip_without_browser, pytest.mark.slow]


def test_demo_phone_flow(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "demo", "--phone", "--fast"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "DISPLAY": ""}, preexec_fn=ctrl_c_reachable)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]

    def wait_for(pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, "".join(lines))
            if m:
                return m
            time.sleep(0.2)
        raise AssertionError(f"demo did not print {pattern!r}: {''.join(lines)[-2000:]}")

    browser = None
    try:
        site = wait_for(r"The phone web app: (https://127\.0\.0\.1:\d+)/").group(1)
        link = wait_for(r"(https://127\.0\.0\.1:\d+/#join\?\S+)").group(1)
        room_code = wait_for(r"type the room code (\d{4} \d{4})").group(1)
        ca_cert = Path(wait_for(r"after trusting the demo CA (\S+) ").group(1))
        browser = Browser.launch(tmp_path, ca_cert)
        browser.go(site + "/#/setup")
        browser.click("#make-keys")
        request = browser.wait(lambda: browser.driver.execute_script("return document.getElementById('request')?.value"), what="request")
        proc.stdin.write(request)  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        answer = wait_for(r"(-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\s+-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----)").group(1)
        browser.fill("#cert-text", answer)
        browser.click("#install")
        browser.wait_status("Certificate installed")
        browser.go(link)
        browser.wait_status("the device is verified", 30)
        browser.click("#consent")
        browser.fill("#room-code", room_code)
        browser.click("#start")
        browser.wait_status("Visit started", 30)
        time.sleep(45)  # the bundled visit replays through the real pipeline (--fast)
        browser.click("#stop")
        browser.wait(lambda: "What to try" in browser.text(), 120, "report")
    finally:
        if browser is not None:
            browser.quit()
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the demo stops and deletes what it made
        proc.wait(30)
