"""The clinician flow of the phone web app in WebKit, Safari's engine (issue 15: "works in
Safari for iOS"). Safari itself cannot run here; Debian's WebKitGTK can: WebKitWebDriver
drives its MiniBrowser under a private Xvfb display, in a 360 px wide window, against a
real room device and the site service on loopback with real TLS (the two server
certificates pinned, see WebKitBrowser). Skipped without the packages:
`apt-get install -y webkit2gtk-driver xvfb`. What it covers and what it cannot is in
docs/phone.md, "WebKit (Safari's engine)".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge_agent.crypto import ca
from tests.delivery_fixtures import Pki
from tests.phone_web_fixtures import Device, Site, WebKitBrowser, leaf_certificate, skip_without_webkit

pytestmark = skip_without_webkit

ENGINE = """
const done = arguments[arguments.length - 1];
(async () => {
  const out = { secure: isSecureContext, ua: navigator.userAgent };
  for (const [name, alg, uses] of [["X25519", { name: "X25519" }, ["deriveBits"]],
                                   ["ECDSA-P256", { name: "ECDSA", namedCurve: "P-256" }, ["sign", "verify"]]]) {
    try { const k = await crypto.subtle.generateKey(alg, false, uses); out[name] = "ok, extractable=" + k.privateKey.extractable; }
    catch (e) { out[name] = e.name; }
  }
  done(out);
})();
"""

# Every key the app stored, and what WebCrypto says when asked to export it. Where WebKit
# cannot store the X25519 key, the app keeps it wrapped ('seal-wrapped'): then the wrapping
# key and the key the app unwraps for use (as keys.js does) are the ones checked.
EXPORT_ALL_KEYS = """
const done = arguments[arguments.length - 1];
const WRAP_AD = new TextEncoder().encode('edge-agent/v1 seal key');
const req = indexedDB.open('edge-agent-keys');
req.onsuccess = async () => {
  const db = req.result;
  const get = (id) => new Promise((r) => { db.transaction('keys').objectStore('keys').get(id).onsuccess = (e) => r(e.target.result?.key); });
  const out = { form: {} };
  const keys = { sign: (await get('sign')).privateKey, storage: await get('storage') };
  const seal = await get('seal'), wrapped = await get('seal-wrapped');
  out.form.seal = seal ? 'CryptoKey' : wrapped ? 'wrapped' : 'none';
  if (seal) keys.seal = seal.privateKey;
  if (wrapped) {
    keys.wrapping = wrapped.wrapping;
    keys.seal = await crypto.subtle.unwrapKey('pkcs8', wrapped.wrapped, wrapped.wrapping, { name: 'AES-GCM', iv: wrapped.iv, additionalData: WRAP_AD },
      { name: 'X25519' }, false, ['deriveBits']);
  }
  for (const [name, key] of Object.entries(keys)) {
    out[name] = { extractable: key.extractable, algorithm: key.algorithm.name, errors: [] };
    for (const fmt of ['pkcs8', 'jwk', 'raw']) {
      try { await crypto.subtle.exportKey(fmt, key); out[name].errors.push('EXPORTED ' + fmt); }
      catch (e) { out[name].errors.push(e.name); }
    }
  }
  done(out);
};
"""

# The stored records as IndexedDB holds them: ids and the bytes of each ciphertext.
RECORDS = """
const done = arguments[arguments.length - 1];
indexedDB.open('edge-agent-data').onsuccess = (e) => e.target.result.transaction('records').objectStore('records')
  .getAll().onsuccess = (r) => done(r.target.result.map((x) => ({ id: x.id, iv: x.iv.length,
      ct: x.ct instanceof Uint8Array ? Array.from(x.ct) : Array.from(new Uint8Array(x.ct)) })));
"""


def _visit(browser: WebKitBrowser, origin: str, room_code: str) -> None:
    browser.go(origin + "/#/room")
    browser.click("#consent")
    browser.fill("#room-code", room_code)
    browser.click("#start")
    browser.wait_status("Visit started")
    browser.click("#stop")
    browser.wait(lambda: "/report/" in browser.driver.current_url and "What to try" in browser.text(), 30, "the report on screen")


@pytest.fixture
def webkit(tmp_path: Path):  # type: ignore[no-untyped-def]
    pki = Pki.make(tmp_path / "pki")
    ca.issue_web(pki.authority, tmp_path / "site.pem", ips=("127.0.0.1",))
    site = Site.start(tmp_path / "site.pem", pki.crl)
    device = Device.start(pki, tmp_path / "data", site.origin, quotes=True)
    certs = [leaf_certificate(tmp_path / "site.pem", tmp_path / "site.crt"), leaf_certificate(pki.device, tmp_path / "device.crt")]
    browser = WebKitBrowser.launch_webkit(tmp_path / "webkit", certs)
    try:
        yield pki, site, device, browser
    finally:
        browser.quit()
        device.stop()
        site.stop()


def test_clinician_flow_in_webkit(webkit, tmp_path: Path) -> None:
    """Keys in WebCrypto, request signed by the project's CA, install, QR join, start/stop, report on screen, stored encrypted."""
    pki, site, device, browser = webkit
    browser.go(site.origin + "/#/setup")
    engine = browser.driver.execute_async_script(ENGINE)
    print(f"\nWebKit: {engine}")
    assert engine["X25519"] == engine["ECDSA-P256"] == "ok, extractable=false", engine
    assert engine["secure"] is True  # the pinned certificate makes the origin a secure context (WebCrypto, SW)
    # phone-ish: MiniBrowser's toolbar keeps its window from getting narrower than ~450 CSS px
    # (the 360 px layout is checked by the Chromium test's device emulation)
    width = browser.driver.execute_script("return window.innerWidth")
    print(f"WebKit viewport width: {width} px")
    assert width < 500

    browser.click("#make-keys")
    request = browser.wait(lambda: browser.driver.execute_script("return document.getElementById('request')?.value"), what="request")
    assert request.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    (tmp_path / "r.req").write_text(request)
    issued = ca.sign_clinician_request(pki.authority, tmp_path / "r.req", tmp_path / "r.cert")
    browser.fill("#cert-text", (tmp_path / "r.cert").read_text())
    browser.click("#install")
    browser.wait_status("Certificate installed")

    keys = browser.driver.execute_async_script(EXPORT_ALL_KEYS)
    form = keys.pop("form")
    print(f"WebKit: sealing key stored as {form['seal']}")
    assert keys["seal"]["algorithm"] == "X25519" and keys["sign"]["algorithm"] == "ECDSA", keys
    # WebKitGTK 2.50: IndexedDB refuses X25519 CryptoKeys (DataError), so the app's fallback is in use
    assert form["seal"] == "wrapped", form
    for name, info in keys.items():
        assert info["extractable"] is False, (name, info)
        assert not any(e.startswith("EXPORTED") for e in info["errors"]), (name, info)

    browser.go(device.join_link(site.origin))
    browser.wait_status("the device is verified")

    # Trusted Types: no HTML string reaches a sink (WebKit enforces the page's CSP require-trusted-types-for)
    tt = browser.driver.execute_script("try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>'); return 'inserted'; } "
                                       "catch (e) { return e.name; }")
    assert tt == "TypeError", tt

    # voice enrolment through the AudioWorklet, from WebKit's mock microphone (a tone, not a voice)
    browser.click("#enrol")
    time.sleep(3.5)
    browser.click("#enrol-stop")
    enrolled = browser.wait_status("Voice enrolled", 20)
    assert 2 <= int(enrolled.split("from ")[1].split(" s")[0]) <= 6, enrolled

    _visit(browser, site.origin, pki.room_code())
    report = browser.text()
    assert "At 0:09" in report and "Try:" in report and "You said" in report
    assert browser.driver.execute_script("return document.querySelectorAll('svg.timeline rect.turn').length") >= 6

    # stored on the phone, AES-GCM ciphertext in IndexedDB: no report text in any record
    records = browser.driver.execute_async_script(RECORDS)
    assert any(r["id"].startswith("report") or "report" in r["id"] for r in records), [r["id"] for r in records]
    for r in records:
        assert r["iv"] == 12
        assert b"let the patient finish" not in bytes(r["ct"]) and b"What to try" not in bytes(r["ct"])
    # and read back from the encrypted store: the visit list after a reload
    browser.go(site.origin + "/#/visits")
    assert browser.text().count("suggestion") == 1
    assert issued.subject_id

    # the service worker on an https origin served with a private-CA certificate
    sw = browser.driver.execute_async_script("""
        const done = arguments[0];
        navigator.serviceWorker.getRegistration().then((r) => done({ registered: !!r, active: !!(r && r.active),
          controller: !!navigator.serviceWorker.controller }), (e) => done({ error: e.name + ': ' + e.message }));""")
    if not sw.get("controller"):
        browser.driver.refresh()
        time.sleep(1)
        sw = browser.driver.execute_async_script("""
            const done = arguments[0];
            navigator.serviceWorker.getRegistration().then((r) => done({ registered: !!r, active: !!(r && r.active),
              controller: !!navigator.serviceWorker.controller }), (e) => done({ error: e.name + ': ' + e.message }));""")
    assert sw == {"registered": True, "active": True, "controller": True}, sw

    # a second visit after the reloads: the sealing key is unwrapped again from IndexedDB
    _visit(browser, site.origin, pki.room_code())
    browser.go(site.origin + "/#/visits")
    assert browser.text().count("suggestion") == 2
