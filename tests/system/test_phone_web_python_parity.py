"""The web app and the Python reference phone show the same report the same way: the same moments ("At m:ss") and
the same figures, for a report delivered by a real room device over real TLS and opened in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from edge_agent.phone.client import render_report
from edge_agent.proto.edge_agent.v1 import feedback_pb2
from tests.phone_web_fixtures import Browser, Device, TimelineRunner, skip_without_browser
from tests.system.test_phone_web_browser import _enrol_and_join, _start_stop, browser, env  # noqa: F401 - fixtures

pytestmark = skip_without_browser


class _TiesRunner(TimelineRunner):
    """The scripted report with times and figures on exact halves (the device rounds moments to 0.1 s, so one in ten
    lands on .5), kept for the Python phone to render."""

    reports: list[feedback_pb2.Feedback]

    def stop(self, quotes: bool = False) -> feedback_pb2.Feedback:
        fb = super().stop(quotes)
        for ob, at in zip(fb.observations, (14.5, 20.5, 33.5), strict=False):
            ob.at_s = at
        fb.timing["talk_share"] = 0.625
        fb.timing["opening_uninterrupted_s"] = 8.5
        fb.timing["wait_after_question_median_s"] = 1.25
        fb.timing["pause_after_answer_median_s"] = 0.75
        fb.timing["speech_rate_wpm"] = 142.5
        self.reports = [*getattr(self, "reports", []), feedback_pb2.Feedback.FromString(fb.SerializeToString())]
        return fb


def _figures(text: str, labels: list[str]) -> dict[str, str]:
    """The number printed after each label (units and punctuation aside)."""
    out = {}
    for label in labels:
        m = re.search(re.escape(label) + r"[:\s]+([0-9]+(?:\.[0-9]+)?)", text)
        out[label] = m.group(1) if m else ""
    return out


def test_the_web_app_and_the_python_phone_print_the_same_moments_and_figures(env, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    _root, pki, site, _wav = env
    runner = _TiesRunner()
    device = Device.start(pki, tmp_path / "data", site.origin, runner=runner)
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        _start_stop(browser, pki.room_code())
        web = browser.text()
        fb = runner.reports[-1]
        python = render_report(fb)
        assert re.findall(r"At (\d+:\d\d)", web) == re.findall(r"At (\d+:\d\d)", python), (web, python)
        labels = ["Patient's opening statement ran", "Your share of talk", "Patient's pause before answering (median; 0 when you went on)",
                  "Your pause after the patient's answer (median)", "Speech rate"]
        assert _figures(web, labels) == _figures(python, labels), (web, python)
    finally:
        device.stop()
