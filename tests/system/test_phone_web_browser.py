"""The phone web app in a real browser (headless Debian Chromium, 360x740) against real room
devices on loopback with real TLS; the site CA is trusted through an NSS database in the
test's HOME, as a managed phone trusts its site CA.

Fast paths use the scripted runner; one flow runs the real pipeline on the bundled visit.
Screenshots of each screen go to a temp dir, or to docs/phone/ with EDGE_AGENT_SCREENSHOTS=docs (to refresh docs/phone.md).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import soundfile as sf

from edge_agent.crypto import ca, seal
from edge_agent.phone import client as cli_phone
from edge_agent.proto.edge_agent.v1 import feedback_pb2
from tests.delivery_fixtures import Pki
from tests.phone_web_fixtures import ROOT, Browser, Device, Site, enrol_phone, skip_without_browser

pytestmark = skip_without_browser
SHOTS = ROOT / "docs" / "phone"


def _shot(browser: Browser, name: str) -> None:
    where = SHOTS if os.environ.get("EDGE_AGENT_SCREENSHOTS") == "docs" else browser.profile.parent / "screenshots"
    browser.screenshot(where / f"{name}.png")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("pwa")
    pki = Pki.make(root / "pki")
    ca.issue_web(pki.authority, root / "site.pem", ips=("127.0.0.1",))
    site = Site.start(root / "site.pem", pki.crl)
    wav = root / "voice.wav"
    audio, rate = sf.read(str(ROOT / "edge_agent" / "data" / "demo_enrol.flac"), dtype="int16", always_2d=True)
    sf.write(str(wav), audio[:, 0], rate, subtype="PCM_16")
    yield root, pki, site, wav
    site.stop()


@pytest.fixture
def browser(env, tmp_path: Path):  # type: ignore[no-untyped-def]
    _root, pki, _site, wav = env
    b = Browser.launch(tmp_path, pki.root / "ca" / "ca.cert.pem", fake_audio=wav)
    yield b
    b.quit()


EXPORT_ALL_KEYS = """
const done = arguments[arguments.length - 1];
const req = indexedDB.open('edge-agent-keys');
req.onsuccess = async () => {
  const db = req.result;
  const get = (id) => new Promise((r) => { db.transaction('keys').objectStore('keys').get(id).onsuccess = (e) => r(e.target.result.key); });
  const out = {};
  const keys = { sign: (await get('sign')).privateKey, seal: (await get('seal')).privateKey, storage: await get('storage') };
  for (const [name, key] of Object.entries(keys)) {
    out[name] = { extractable: key.extractable, errors: [] };
    for (const fmt of ['pkcs8', 'jwk', 'raw']) {
      try { await crypto.subtle.exportKey(fmt, key); out[name].errors.push('EXPORTED ' + fmt); }
      catch (e) { out[name].errors.push(e.name); }
    }
  }
  done(out);
};
"""

CONTRAST = """
function rgb(s) { const m = s.match(/[\\d.]+/g).map(Number); return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 }; }
function lum(c) { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); }
function bg(el) { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.a > 0.5) return c; }
  return { r: 255, g: 255, b: 255, a: 1 }; }
let worst = { ratio: 99, text: '' };
for (const el of document.querySelectorAll('body *')) {
  if (!el.offsetParent && el.tagName !== 'BODY') continue;
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || el.closest('svg')) continue;
  const st = getComputedStyle(el);
  if (st.visibility === 'hidden' || st.display === 'none') continue;
  const a = lum(rgb(st.color)), b = lum(bg(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < worst.ratio) worst = { ratio, text: el.textContent.trim().slice(0, 40), tag: el.tagName };
}
return worst;
"""


def _join(browser: Browser, link: str) -> None:
    browser.go(link)


def _enrol_and_join(browser: Browser, env, tmp_path: Path, device: Device) -> None:
    """The phone gets its certificate, joins ``device`` by its QR link and signs in (the device verified)."""
    _root, pki, site, _wav = env
    enrol_phone(browser, site.origin, pki.authority, tmp_path)
    browser.go(device.join_link(site.origin))
    browser.wait_status("the device is verified")


def _press_start(browser: Browser, room_code: str) -> None:
    browser.click("#consent")
    browser.fill("#room-code", room_code)  # read off the device in the room (issue 16: presence before capture)
    browser.click("#start")


def _start_stop(browser: Browser, room_code: str) -> float:
    browser.go(browser.driver.current_url.split("#")[0] + "#/room")
    _press_start(browser, room_code)
    browser.wait_status("Visit started")
    t0 = time.monotonic()
    browser.click("#stop")
    browser.wait(lambda: "/report/" in browser.driver.current_url and "What to try" in browser.text(), 30, "the report on screen")
    return time.monotonic() - t0


def test_clinician_flow_screens_installable_offline(env, browser: Browser, tmp_path: Path) -> None:
    """Keys in the browser, request signed by the project's CA, QR join, enrol, two visits, every screen."""
    _root, pki, site, _wav = env
    device = Device.start(pki, tmp_path / "data", site.origin, quotes=True)  # this site allows quotes (feedback.quotes)
    try:
        browser.go(site.origin + "/#/setup")
        browser.click("#make-keys")
        browser.wait(lambda: browser.driver.execute_script("return document.getElementById('request')?.value"), what="request")
        _shot(browser, "1-setup")
        request = browser.driver.execute_script("return document.getElementById('request').value")
        assert request.startswith("-----BEGIN CERTIFICATE REQUEST-----")
        (tmp_path / "r.req").write_text(request)
        issued = ca.sign_clinician_request(pki.authority, tmp_path / "r.req", tmp_path / "r.cert")
        pseudonym = issued.subject_id
        browser.fill("#cert-text", (tmp_path / "r.cert").read_text())
        browser.click("#install")
        browser.wait_status("Certificate installed")

        # no private key can leave the browser: WebCrypto refuses to export any of them
        keys = browser.driver.execute_async_script(EXPORT_ALL_KEYS)
        for name, info in keys.items():
            assert info["extractable"] is False, name
            assert not any(e.startswith("EXPORTED") for e in info["errors"]), (name, info)

        _join(browser, device.join_link(site.origin))
        browser.wait_status("the device is verified")
        _shot(browser, "2-room")

        browser.click("#enrol")
        time.sleep(3.5)
        browser.click("#enrol-stop")
        enrolled = browser.wait_status("Voice enrolled", 30)
        # captured by the AudioWorklet (no ScriptProcessorNode): ~3.5 s of the fake microphone's file
        assert 2 <= int(enrolled.split("from ")[1].split(" s")[0]) <= 6, enrolled
        assert "createScriptProcessor" not in (ROOT / "edge_agent" / "phone" / "web" / "static" / "app.js").read_text()

        # Trusted Types: no HTML string reaches a sink, even from script running in the page
        tt = browser.driver.execute_script("try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>'); return 'inserted'; } "
                                           "catch (e) { return e.name; }")
        assert tt == "TypeError", tt

        stop_to_screen = _start_stop(browser, pki.room_code())
        latency_ms = int(browser.driver.execute_script("return document.body.dataset.reportLatencyMs"))
        # the 3 s target is a measured figure (docs/phone.md), not a timed assertion: here it must be recorded
        assert latency_ms >= 0 and stop_to_screen > 0
        print(f"\nscripted runner: sealed -> on screen {latency_ms} ms; stop -> on screen {stop_to_screen:.2f} s")
        report = browser.text()
        assert "At 0:09" in report and "Try:" in report and "You said" in report
        turns = browser.driver.execute_script("return document.querySelectorAll('svg.timeline rect.turn').length")
        assert turns >= 6
        # every timing mark the device sent is drawn and said in words (the phone has no hover for an SVG title);
        # the device withholds interruption marks, so the picture must not offer a key for them
        label = browser.driver.execute_script("return document.querySelector('svg.timeline').getAttribute('aria-label')")
        assert "opening statement redirected at 0:09" in label and "longest wait for an answer at 0:21" in label, label
        assert browser.driver.execute_script("return document.querySelectorAll('svg.timeline .mark').length") == 2
        legend = browser.text("figure.timeline-fig")
        assert "0:09 opening statement redirected" in legend and "0:21 longest wait for an answer" in legend, legend
        assert "interruption" not in legend, legend
        _shot(browser, "4-report")

        _start_stop(browser, pki.room_code())
        browser.go(site.origin + "/#/visits")  # a hash change: the list renders from IndexedDB a moment later
        browser.wait(lambda: browser.text().count("suggestion") >= 2, what="both visits listed")
        assert browser.text().count("suggestion") == 2
        _shot(browser, "3-visits")
        browser.go(site.origin + "/#/trends")
        browser.wait(lambda: browser.driver.execute_script("return document.querySelectorAll('svg.spark').length") >= 2,
                     what="trend sparklines")
        assert "Never compared with colleagues" in browser.text()
        _shot(browser, "5-trends")
        browser.go(site.origin + "/#/settings")
        assert pseudonym in browser.text()
        _shot(browser, "6-settings")
        # export my data: a JSON file with the decrypted reports, made on the phone
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        browser.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        browser.click("#export")
        exported = browser.wait(lambda: list(downloads.glob("edge-agent-my-data.json")), 10, "export file")[0]
        import json

        data = json.loads(exported.read_text())
        assert data["pseudonym"] == pseudonym and len(data["reports"]) == 2 and data["voiceprints"]
        assert all(r["timeline"] for r in data["reports"])

        # installable: Chromium's own installability check, manifest, service worker in control
        browser.go(site.origin + "/#/visits")
        browser.wait(lambda: browser.driver.execute_script("return !!navigator.serviceWorker.controller")
                     or browser.driver.refresh() or False, 20, "service worker control")
        errors = browser.driver.execute_cdp_cmd("Page.getInstallabilityErrors", {})
        assert errors.get("installabilityErrors") == [], errors
        manifest = browser.driver.execute_script("return fetch('manifest.webmanifest').then(r => r.json())")
        assert manifest["display"] == "standalone" and {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
        viewport = browser.driver.execute_script("return document.querySelector('meta[name=viewport]')?.content")
        assert "width=device-width" in viewport
        assert browser.driver.execute_script("return window.innerWidth") == 360

        # body text contrast >= 4.5:1 on every screen, from computed styles
        for screen in ("#/visits", "#/room", "#/trends", "#/settings"):
            browser.go(site.origin + "/" + screen)
            worst = browser.driver.execute_script(CONTRAST)
            assert worst["ratio"] >= 4.5, (screen, worst)

        # offline: the shell comes from the service worker, the reports from the encrypted store
        browser.go(site.origin + "/#/visits")
        # a hash change keeps the page (and its ready flag): the list renders from IndexedDB a moment later
        browser.wait(lambda: browser.driver.execute_script("return !!document.querySelector('.visits a')"), what="visit list")
        link = browser.driver.execute_script("return document.querySelector('.visits a').getAttribute('href')")
        browser.driver.execute_cdp_cmd("Network.enable", {})
        browser.driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                                       {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        try:
            browser.go(site.origin + "/" + link)
            browser.wait(lambda: "What to try" in browser.text(), 10, "report offline")
        finally:
            browser.driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                                           {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

        # at rest: the profile on disk holds no report text (IndexedDB records are AES-GCM ciphertext)
        browser.go(site.origin + "/#/settings")
        time.sleep(0.5)
        needle = b"let the patient finish"
        hits = [p for p in browser.profile.rglob("*") if p.is_file() and needle in p.read_bytes()]
        assert not hits, hits

        # delete one visit, then everything
        browser.go(site.origin + "/" + link)
        browser.click("button.danger")
        browser.driver.switch_to.alert.accept()
        browser.wait(lambda: browser.text().count("suggestion") == 1, 10, "one visit left")
        browser.go(site.origin + "/#/settings")
        browser.click("#delete-all")
        browser.driver.switch_to.alert.accept()
        browser.wait(lambda: "Make my keys" in browser.text(), 10, "back to setup")
    finally:
        device.stop()



def _to_room(browser: Browser) -> None:
    """The Room screen drawn afresh (it asks the device which speaker model it runs)."""
    base = browser.driver.current_url.split("#")[0]
    browser.go(base + "#/visits")
    browser.wait(lambda: "Your visits" in browser.text(), 10, "the visits screen")
    browser.go(base + "#/room")
    browser.wait(lambda: browser.driver.execute_script("return !!document.getElementById('start')"), 20, "the room screen")


def _enrol_voice(browser: Browser) -> None:
    browser.click("#enrol")
    time.sleep(3.5)
    browser.click("#enrol-stop")
    browser.wait_status("Voice enrolled", 30)


def _stop_for_report(browser: Browser) -> None:
    browser.click("#stop")
    browser.wait(lambda: "/report/" in browser.driver.current_url and "What to try" in browser.text(), 30, "the report")


def test_a_voiceprint_per_speaker_model_works_across_rooms_of_two_releases(env, browser: Browser, tmp_path: Path) -> None:
    """Enrol in a room whose device runs speaker model A; the device then runs model B (a room already updated to a
    release with another model). Before the start the phone says this room needs its own enrolment and the visit can
    start without it (it does, without a voiceprint); enrol there; back on model A the first voiceprint is used
    without enrolling again: nobody is told to re-enrol."""
    from edge_agent.device.ops.metrics import Registry
    from edge_agent.phone.client import OTHER_MODEL_NOTICE

    _root, pki, site, _wav = env
    metrics = Registry()
    device = Device.start(pki, tmp_path / "data", site.origin, metrics=metrics)
    service = device.server.agent_service
    assert service is not None
    model_a, model_b = service.speaker_model, "spectral-bands-32@new-release"

    def counts() -> dict[str, float]:
        return {c: metrics.get("edge_agent_start_voiceprints_total", check=c) for c in ("matched", "stale", "unstated")}

    def said_before() -> str:
        return str(browser.driver.execute_script(
            "const e = document.getElementById('other-model'); return e && !e.hidden ? e.textContent : ''"))

    def status_class() -> str:
        return str(browser.driver.execute_script("return document.getElementById('status').className"))

    try:
        _enrol_and_join(browser, env, tmp_path, device)
        _enrol_voice(browser)  # made by model A
        service.speaker_model = model_b  # the room's device now runs the new release's speaker model

        _to_room(browser)
        notice = said_before()  # on the screen before anything is pressed
        assert OTHER_MODEL_NOTICE[1:] in notice and "\n" not in notice, notice
        _press_start(browser, pki.room_code())
        status = browser.wait_status("Visit started")  # it still starts
        assert "not used in this room until you enrol here" in status and status_class() == "status warn", status
        assert device.server.runner.contexts[-1].voiceprint is None  # none sent: model A's would mislead model B
        assert counts() == {"matched": 0, "stale": 0, "unstated": 0}
        _stop_for_report(browser)

        _to_room(browser)
        assert said_before()
        _enrol_voice(browser)  # made by model B, kept beside model A's
        assert said_before() == ""
        _press_start(browser, pki.room_code())
        status = browser.wait_status("Visit started")
        assert status_class() == "status ok" and "enrol" not in status, status
        assert device.server.runner.contexts[-1].voiceprint is not None and counts()["matched"] == 1
        _stop_for_report(browser)

        service.speaker_model = model_a  # a room of the release not updated yet (or this one rolled back)
        _to_room(browser)
        assert said_before() == ""
        _press_start(browser, pki.room_code())
        status = browser.wait_status("Visit started")
        assert status_class() == "status ok" and "enrol" not in status, status
        assert device.server.runner.contexts[-1].voiceprint is not None  # model A's, without enrolling again
        assert counts() == {"matched": 2, "stale": 0, "unstated": 0}
        _stop_for_report(browser)

        # the device changes model while the room screen is open: the press says it first and starts nothing;
        # a second press starts without a voiceprint
        _to_room(browser)
        assert said_before() == ""
        service.speaker_model = "spectral-bands-32@third"
        started = len(device.server.runner.contexts)
        _press_start(browser, pki.room_code())
        status = browser.wait_status("Press Start visit again")
        assert OTHER_MODEL_NOTICE[1:] in status and status_class() == "status warn", status
        assert len(device.server.runner.contexts) == started and said_before()
        browser.click("#start")
        browser.wait_status("Visit started")
        assert len(device.server.runner.contexts) == started + 1 and device.server.runner.contexts[-1].voiceprint is None
    finally:
        device.stop()


VAULT_RECORD = """
const [id, value] = [arguments[0], arguments[1]];
const done = arguments[arguments.length - 1];
const open = (name) => new Promise((ok, no) => { const q = indexedDB.open(name, 1); q.onsuccess = () => ok(q.result); q.onerror = () => no(q.error); });
const aad = { additionalData: new TextEncoder().encode(id) };
(async () => {
  const keys = await open('edge-agent-keys');
  const key = await new Promise((ok) => { keys.transaction('keys').objectStore('keys').get('storage').onsuccess = (e) => ok(e.target.result.key); });
  const data = await open('edge-agent-data');
  if (value !== null) {  // written as the app writes a record: AES-GCM under the storage key, the id as associated data
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, ...aad }, key, new TextEncoder().encode(JSON.stringify(value))));
    const t = data.transaction('records', 'readwrite');
    t.objectStore('records').put({ id, iv, ct });
    t.oncomplete = () => done('written');
    return;
  }
  const rec = await new Promise((ok) => { data.transaction('records').objectStore('records').get(id).onsuccess = (e) => ok(e.target.result); });
  const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: rec.iv, ...aad }, key, rec.ct);
  done(JSON.parse(new TextDecoder().decode(pt)));
})().catch((e) => done('error: ' + e));
"""


def test_an_older_apps_single_voiceprint_is_migrated_and_used_in_its_models_rooms(env, browser: Browser, tmp_path: Path) -> None:
    """A phone whose app kept one voiceprint (the record {values, model, stale}) is updated: the record is rewritten as
    one voiceprint per model when the app opens, still encrypted; a room of that model uses it, and enrolling in a
    room of another model keeps it."""
    from edge_agent.device.ops.metrics import Registry

    _root, pki, site, _wav = env
    metrics = Registry()
    device = Device.start(pki, tmp_path / "data", site.origin, metrics=metrics)
    service = device.server.agent_service
    assert service is not None
    model_a = service.speaker_model
    try:
        enrol_phone(browser, site.origin, pki.authority, tmp_path)
        old = {"values": [0.25] * 32, "model": model_a, "stale": True}  # as the app before this one stored it
        assert browser.driver.execute_async_script(VAULT_RECORD, "voiceprint", old) == "written"
        browser.driver.refresh()  # the app opens again (updated)
        browser.wait(lambda: browser.driver.execute_script("return document.body.dataset.ready === '1'"), 20, "app ready")
        stored = browser.driver.execute_async_script(VAULT_RECORD, "voiceprint", None)
        assert stored == {"entries": [{"model": model_a, "values": [0.25] * 32}], "values": [0.25] * 32, "model": model_a}, stored

        browser.go(device.join_link(site.origin))
        browser.wait_status("the device is verified")
        _to_room(browser)
        assert browser.driver.execute_script("return document.getElementById('other-model').hidden")
        _press_start(browser, pki.room_code())
        assert "enrol" not in browser.wait_status("Visit started")
        vp = device.server.runner.contexts[-1].voiceprint
        assert vp is not None and abs(float(vp[0]) - 0.25) < 1e-6  # the migrated voiceprint, checked and used
        assert metrics.get("edge_agent_start_voiceprints_total", check="matched") == 1
        _stop_for_report(browser)

        service.speaker_model = "spectral-bands-32@new-release"
        _to_room(browser)
        _enrol_voice(browser)
        stored = browser.driver.execute_async_script(VAULT_RECORD, "voiceprint", None)
        assert [e["model"] for e in stored["entries"]] == [model_a, "spectral-bands-32@new-release"], stored
        assert stored["entries"][0]["values"] == [0.25] * 32
    finally:
        device.stop()


def test_bad_input_is_refused_with_one_clear_line(env, browser: Browser, tmp_path: Path) -> None:
    _root, pki, site, _wav = env
    device = Device.start(pki, tmp_path / "a", site.origin)
    ca.issue_device(pki.authority, "Room 4", tmp_path / "other.pem", ips=("127.0.0.1",))
    other = Device.start(pki, tmp_path / "b", site.origin, bundle=tmp_path / "other.pem")
    try:
        pseudonym = enrol_phone(browser, site.origin, pki.authority, tmp_path)

        # a device whose certificate does not match the QR code's fingerprint
        browser.go(device.join_link(site.origin, url=other.web_url))
        assert browser.wait_status("Wrong device").startswith("Wrong device: its certificate")
        _shot(browser, "7-wrong-device")
        # the right device, but the QR code names another room
        browser.go(device.join_link(site.origin, room="Room 5"))
        assert browser.wait_status('but the QR code says "Room 5"').startswith('Wrong device: it is certified for "Room 4"')
        # nothing listening
        browser.go(device.join_link(site.origin, url="https://127.0.0.1:9"))
        assert browser.wait_status("Device unreachable").startswith("Device unreachable:")

        browser.go(device.join_link(site.origin))
        browser.wait_status("the device is verified")

        # room busy: another clinician's visit, started over mutual-TLS gRPC by the reference client
        cli_phone.start(pki.keys_b, cli_phone.Target("127.0.0.1", device.grpc_port, device.server.fingerprint), room_code=pki.room_code())
        _press_start(browser, pki.room_code())
        assert browser.wait_status("Room busy").startswith("Room busy: a visit is already running")
        cli_phone.stop(pki.keys_b, cli_phone.Target("127.0.0.1", device.grpc_port, device.server.fingerprint))

        # a tampered envelope and one sealed to another clinician's key, both queued to this phone
        public = bytes(browser.driver.execute_async_script("""
            const done = arguments[0];
            indexedDB.open('edge-agent-keys').onsuccess = (e) => e.target.result.transaction('keys').objectStore('keys')
              .get('seal').onsuccess = async (r) => done([...new Uint8Array(await crypto.subtle.exportKey('raw', r.target.result.key.publicKey))]);
        """))
        fb = feedback_pb2.Feedback(visit_id="v-tampered", duration_s=60)
        env_t = seal.seal(fb.SerializeToString(), public, "v-tampered", 1)
        sealed = bytearray(env_t.sealed)
        sealed[40] ^= 0x01
        bad = seal.Envelope(env_t.suite, env_t.visit_id, env_t.seq, env_t.recipient_key_id, bytes(sealed), env_t.created_unix_s)
        _, other_pub = seal.generate_keypair()
        fb2 = feedback_pb2.Feedback(visit_id="v-not-mine", duration_s=60)
        not_mine = seal.seal(fb2.SerializeToString(), other_pub, "v-not-mine", 1)

        async def queue(envelope: seal.Envelope) -> None:
            visits = device.server.visits
            device.server.outbox.put(pseudonym, envelope)
            async with visits.queued:
                visits.queued.notify_all()

        device.call(queue(bad))
        assert "does not open: tampered with" in browser.wait_status("could not be opened")
        _shot(browser, "8-tampered")
        device.call(queue(not_mine))
        assert "sealed to another clinician's key, not yours" in browser.wait_status("sealed to another", 15)
        browser.go(site.origin + "/#/visits")
        assert "No reports yet" in browser.text()

        # an expired certificate: a new request, signed to expire seconds after it is installed
        browser.go(site.origin + "/#/settings")
        browser.click("#renew")
        browser.driver.switch_to.alert.accept()
        browser.wait(lambda: browser.driver.execute_script("return document.getElementById('request')?.value"), what="new request")
        (tmp_path / "short.req").write_text(browser.driver.execute_script("return document.getElementById('request').value"))
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1) + dt.timedelta(seconds=4)
        ca.sign_clinician_request(pki.authority, tmp_path / "short.req", tmp_path / "short.cert", days=1, valid_from=start)
        browser.fill("#cert-text", (tmp_path / "short.cert").read_text())
        browser.click("#install")
        browser.wait_status("Certificate installed")
        time.sleep(max(0.0, (start + dt.timedelta(days=1) - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.5)
        browser.go(device.join_link(site.origin))
        assert browser.wait_status("Certificate expired").startswith("Certificate expired: make a new request")
        _shot(browser, "9-expired")
    finally:
        other.stop()
        device.stop()


def test_real_pipeline_report_on_the_phone(env, browser: Browser, tmp_path: Path) -> None:
    """The bundled 61 s visit through the real pipeline; the report is decrypted and shown in the browser."""
    from edge_agent.data import bundled as demo_audio_path
    from edge_agent.device.main import load_device as build_device
    from edge_agent.device.visit import file_factory

    _root, pki, site, _wav = env
    parts = build_device(file_factory(demo_audio_path(), realtime=False))
    device = Device.start(pki, tmp_path / "data", site.origin, runner=parts.runner, enroller=parts.enroller)
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        browser.click("#enrol")
        time.sleep(12)
        browser.click("#enrol-stop")
        browser.wait_status("Voice enrolled", 60)
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started", 30)
        parts.runner.wait_capture_end()
        t0 = time.monotonic()
        browser.click("#stop")
        browser.wait(lambda: "/report/" in browser.driver.current_url and "What to try" in browser.text(), 120, "report")
        click_to_screen = time.monotonic() - t0
        latency_ms = int(browser.driver.execute_script("return document.body.dataset.reportLatencyMs"))
        print(f"\nreal pipeline: stop click -> report on screen {click_to_screen:.2f} s; sealed -> on screen {latency_ms} ms")
        assert latency_ms >= 0  # measured figure, printed (docs/phone.md); the screen itself is asserted below
        text = browser.text()
        assert "At " in text and "Try:" in text
        lanes = browser.driver.execute_script(
            "return [...new Set([...document.querySelectorAll('svg.timeline rect.turn')].map(r => r.getAttribute('class')))]")
        assert {"turn you", "turn patient"} <= set(lanes), lanes
        _shot(browser, "4-report-real")
    finally:
        device.stop()


@contextmanager
def _visit_of_file(env, browser: Browser, tmp_path: Path, audio: Path) -> Iterator[None]:
    """A real device fed ``audio`` (real pipeline), a phone enrolled without a voiceprint, one visit started and
    stopped from the web app; yields with the report on screen."""
    from edge_agent.device.main import load_device as build_device
    from edge_agent.device.visit import file_factory

    _root, pki, site, _wav = env
    parts = build_device(file_factory(audio, realtime=False))
    device = Device.start(pki, tmp_path / "data", site.origin, runner=parts.runner, enroller=parts.enroller)
    try:
        _enrol_and_join(browser, env, tmp_path, device)
        _press_start(browser, pki.room_code())
        browser.wait_status("Visit started", 30)
        parts.runner.wait_capture_end()
        browser.click("#stop")
        browser.wait(lambda: "/report/" in browser.driver.current_url and "Visit of" in browser.text(), 120, "report")
        yield
    finally:
        device.stop()


def test_a_visit_with_no_speech_says_so_on_the_phone(env, browser: Browser, tmp_path: Path) -> None:
    """A muted or dead room microphone: the real pipeline hears nothing, and the phone's report used to be
    its title, "No specific suggestions" and an empty timeline; it now says no speech was heard and what to check."""
    import numpy as np

    silence = tmp_path / "muted-room.wav"
    sf.write(str(silence), np.zeros(16000 * 4, np.int16), 16000, subtype="PCM_16")
    with _visit_of_file(env, browser, tmp_path, silence):
        text = browser.text()
        assert "No speech was heard in this visit" in text and "microphone" in text and "tell IT" in text, text
        assert "No specific suggestions" not in text, text
        _shot(browser, "4-report-no-speech")
        browser.go(env[2].origin + "/#/visits")
        browser.wait(lambda: "no speech heard" in browser.text(), 10, "the visit listed as no speech heard")


def test_one_voice_without_enrolment_is_flagged_on_the_phone(env, browser: Browser, tmp_path: Path) -> None:
    """One real person talking, no voiceprint: the device cannot know who is the patient, and the phone's report
    says so (and how to fix it) instead of presenting a made-up patient as fact."""
    from tests.one_voice import one_reader_wav

    with _visit_of_file(env, browser, tmp_path, one_reader_wav(tmp_path / "one-reader.wav")):
        note = browser.driver.find_element("id", "speakers-note").text
        assert "could not reliably tell your voice from the patient's" in note and "Enrol your voice" in note, note
        _shot(browser, "4-report-one-voice")


def test_a_device_revoked_after_sign_in_is_refused_before_capture(env, browser: Browser, tmp_path: Path) -> None:
    """Issue 16: the web app read the site CRL only at sign-in, so for the rest of its session (10 minutes) it
    would start capture on, or send the clinician's voice to, a room device IT had just revoked."""
    _root, pki, site, _wav = env
    ca.issue_device(pki.authority, "Room 4", tmp_path / "soon-revoked.pem", ips=("127.0.0.1",))
    device = Device.start(pki, tmp_path / "d", site.origin, bundle=tmp_path / "soon-revoked.pem")
    try:
        _enrol_and_join(browser, env, tmp_path, device)  # signed in: a session token is held
        ca.revoke(pki.authority, str(ca.load_bundle(tmp_path / "soon-revoked.pem").cert.serial_number))
        time.sleep(1.3)  # the site re-reads crl.pem within a second
        _press_start(browser, pki.room_code())
        assert browser.wait_status("Device revoked").startswith("Device revoked: the site has revoked this room device's certificate")
        visits = device.server.visits
        assert visits is not None and not visits.active, "capture started on a device revoked after sign-in"
    finally:
        device.stop()


def test_a_device_of_a_newer_protocol_is_refused_with_update_the_app(env, browser: Browser, tmp_path: Path) -> None:
    """A room device updated past the app (DeviceInfo.protocol_version above what compat.js understands): joining
    it is refused with one line saying to update the app (the room is not joined, nothing can start on it); back in
    range, the same room joins."""
    from edge_agent.protocol import PROTOCOL_VERSION

    _root, pki, site, _wav = env
    device = Device.start(pki, tmp_path / "d", site.origin)
    service = device.server.agent_service
    assert service is not None
    service.protocol_version = PROTOCOL_VERSION + 1
    try:
        enrol_phone(browser, site.origin, pki.authority, tmp_path)
        browser.go(device.join_link(site.origin))
        status = browser.wait_status("update the app")
        assert f"protocol {PROTOCOL_VERSION + 1}" in status and "\n" not in status, status
        assert browser.driver.execute_script("return document.getElementById('status').className") == "status error"
        assert browser.driver.execute_script("return !document.getElementById('start')")  # not joined: no start button
        visits = device.server.visits
        assert visits is not None and not visits.active and device.server.runner.contexts == []
        service.protocol_version = PROTOCOL_VERSION
        browser.go(device.join_link(site.origin))
        browser.wait_status("the device is verified")
    finally:
        device.stop()


def test_trust_pinned_site_ca_crl_and_device_certificate(env, browser: Browser, tmp_path: Path) -> None:
    """Parity with the Python phone: the site CA pinned at enrolment, the site CRL (verified in the browser with
    WebCrypto) refusing a revoked device, the room and role read from the device certificate; sign-ins rate-limited."""
    from cryptography.hazmat.primitives import serialization

    from edge_agent.device.web.sessions import SessionPolicy

    _root, pki, site, _wav = env
    # the site CA is pinned when the keys are made; an answer from another CA is refused
    browser.go(site.origin + "/#/setup")
    browser.click("#make-keys")
    browser.wait(lambda: browser.driver.execute_script("return document.getElementById('request')?.value"), what="request")
    fp = ca.fingerprint(pki.authority.cert)
    assert " ".join(fp[i:i + 4] for i in range(0, 16, 4)) in browser.text("#site-ca")
    (tmp_path / "r.req").write_text(browser.driver.execute_script("return document.getElementById('request').value"))
    other = ca.init_ca(tmp_path / "other-ca", site="Elsewhere")
    ca.sign_clinician_request(other, tmp_path / "r.req", tmp_path / "foreign.cert")
    browser.fill("#cert-text", (tmp_path / "foreign.cert").read_text())
    browser.click("#install")
    assert browser.wait_status("Wrong CA").startswith(f"Wrong CA: this certificate comes from another CA ({ca.fingerprint(other.cert)[:16]}")
    _shot(browser, "11-wrong-ca")
    ca.sign_clinician_request(pki.authority, tmp_path / "r.req", tmp_path / "r.cert")
    browser.fill("#cert-text", (tmp_path / "r.cert").read_text())
    browser.click("#install")
    browser.wait_status("Certificate installed")

    device = Device.start(pki, tmp_path / "a", site.origin)
    ca.issue_device(pki.authority, "Room 4", tmp_path / "revoked.pem", ips=("127.0.0.1",))
    gone = Device.start(pki, tmp_path / "r", site.origin, bundle=tmp_path / "revoked.pem")
    busy = Device.start(pki, tmp_path / "b", site.origin, session=SessionPolicy(challenges_per_address=2, challenge_refill_s=60.0))
    try:
        browser.go(device.join_link(site.origin))
        browser.wait_status("the device is verified")
        in_force = ca.read_crl(pki.crl, pki.authority.cert).number
        assert browser.driver.execute_script("return document.body.dataset.crlNumber") == str(in_force)

        # a revoked device: the site's new CRL reaches the phone, which refuses before signing in
        serial = ca.load_bundle(tmp_path / "revoked.pem").cert.serial_number
        ca.revoke(pki.authority, str(serial))
        time.sleep(1.3)  # the site re-reads crl.pem within a second
        browser.go(gone.join_link(site.origin))
        assert browser.wait_status("Device revoked").startswith("Device revoked: the site has revoked this room device's certificate")
        _shot(browser, "10-revoked")
        assert gone.both.web.sessions is not None and not gone.both.web.sessions._sessions  # no login reached it
        browser.go(device.join_link(site.origin))
        browser.wait_status("the device is verified")
        assert browser.driver.execute_script("return document.body.dataset.crlNumber") == str(in_force + 1)

        # a device presenting the site web server's certificate (its fingerprint in the QR code) is not a room device
        ca.issue_web(pki.authority, tmp_path / "web.pem", ips=("127.0.0.1",))
        web = ca.load_bundle(tmp_path / "web.pem")
        sessions = device.both.web.sessions
        assert sessions is not None
        saved = (sessions._key, sessions._cert_der, sessions._fp)
        sessions._key = serialization.load_pem_private_key(web.key_pem, None)  # type: ignore[assignment]
        sessions._cert_der = web.cert.public_bytes(serialization.Encoding.DER)
        sessions._fp = bytes.fromhex(ca.fingerprint(web.cert))
        browser.go(device.join_link(site.origin, fingerprint=ca.fingerprint(web.cert)))
        assert browser.wait_status("not a room device's").startswith("Wrong device: its certificate is a web certificate")
        sessions._key, sessions._cert_der, sessions._fp = saved

        # a device that says another room than the one its certificate names
        sessions._room = "Room 9"
        browser.go(device.join_link(site.origin))
        assert browser.wait_status("but its certificate says").startswith('Wrong device: it says it is "Room 9" but its certificate says "Room 4"')
        sessions._room = "Room 4"

        # sign-in challenges are rate-limited per address: the third sign-in within the burst gets one line
        for _ in range(2):
            browser.go(busy.join_link(site.origin) + "&n=" + str(time.monotonic()))
            browser.wait_status("the device is verified")
        browser.go(busy.join_link(site.origin) + "&n=x")
        assert browser.wait_status("Too many").startswith("Too many sign-in attempts from this network: try again in ")
    finally:
        busy.stop()
        gone.stop()
        device.stop()


def test_site_lists_its_room_devices_and_devices_carry_newer_crls(env, browser: Browser, tmp_path: Path) -> None:
    """With --device-origin the site's CSP lets the app reach only those devices; another is named, not 'unreachable'.
    A site serving an older (still current) CRL: the phone takes the newer one a device carries (DeviceInfo.crl),
    as the Python phone does, and refuses a device it revokes before signing in."""
    import shutil

    root, pki, _site, _wav = env
    site_crl = tmp_path / "site-crl.pem"
    shutil.copy(pki.crl, site_crl)
    site = Site.bind(root / "site.pem", site_crl)
    listed = Device.start(pki, tmp_path / "l", site.origin)
    unlisted = Device.start(pki, tmp_path / "u", site.origin)
    ca.issue_device(pki.authority, "Room 4", tmp_path / "gone.pem", ips=("127.0.0.1",))
    gone = Device.start(pki, tmp_path / "g", site.origin, bundle=tmp_path / "gone.pem")
    try:
        site.server.set_device_origins((listed.web_url, gone.web_url))
        site.run()
        served = ca.read_crl(site_crl, pki.authority.cert).number
        ca.revoke(pki.authority, str(ca.load_bundle(tmp_path / "gone.pem").cert.serial_number))  # the devices' CRL, not the site's copy
        time.sleep(1.3)
        enrol_phone(browser, site.origin, pki.authority, tmp_path)
        browser.go(listed.join_link(site.origin))
        browser.wait_status("the device is verified")
        assert browser.driver.execute_script("return document.body.dataset.crlNumber") == str(served + 1)  # learned from the device
        browser.go(gone.join_link(site.origin))
        assert browser.wait_status("Device revoked").startswith("Device revoked:")
        assert gone.both.web.sessions is not None and not gone.both.web.sessions._sessions
        browser.go(unlisted.join_link(site.origin))
        assert browser.wait_status("Device not listed").startswith(f"Device not listed: this site does not let the app reach {unlisted.web_url};")
        _shot(browser, "12-not-listed")
    finally:
        gone.stop()
        unlisted.stop()
        listed.stop()
        site.stop()
