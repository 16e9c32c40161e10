// The app's DER reader and CRL checks, in Node (same WebCrypto API as the browser), on real
// certificates and CRLs made by the project's CA code (tests/unit/phone/test_phone_web_device.py writes
// them to $EDGE_AGENT_DER_FIXTURES and runs this file with `node --test`).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { CrlError, parseCrl, verifyCrl } from "../src/crl.js";
import { DerError, derSigToRaw, parseCertificate, pemBlocks, readTlv } from "../src/der.js";

const fx = JSON.parse(readFileSync(process.env.EDGE_AGENT_DER_FIXTURES, "utf8"));
const der = (pem, label = "CERTIFICATE") => pemBlocks(pem, label)[0];
const crlDer = (pem) => der(pem, "X509 CRL");
const caCert = parseCertificate(der(fx.ca));

// a small deterministic PRNG: the same mutations every run
function rng(seed) { let x = seed >>> 0; return () => ((x = (x * 1664525 + 1013904223) >>> 0) / 2 ** 32); }

test("certificates: role, room, serial and CA flag as the CA wrote them", () => {
  assert.equal(caCert.isCa, true);
  const dev = parseCertificate(der(fx.device));
  assert.deepEqual([dev.ou, dev.room, dev.serial, dev.isCa], ["device", "Room 4", fx.device_serial, false]);
  const web = parseCertificate(der(fx.web));
  assert.deepEqual([web.ou, web.room], ["web", ""]);
});

test("a valid CRL verifies and lists its revoked serials", async () => {
  const rec = await verifyCrl(crlDer(fx.crl_revoked), caCert, null);
  assert.equal(rec.number, String(fx.revoked_number));
  assert.ok(rec.revoked.includes(fx.device_serial));
  assert.ok(rec.nextUpdate > Date.now());
});

const refusals = [
  ["crl_foreign", "not from this site's CA"],
  ["crl_stale", "out of date"],
  ["crl_no_number", "no CRL number"],
  ["crl_critical_unknown", "damaged"],
  ["crl_forged", "signature does not verify"],
];
for (const [name, why] of refusals) {
  test(`refused: ${name}`, async () => {
    await assert.rejects(verifyCrl(crlDer(fx[name]), caCert, null), (e) => e instanceof CrlError && e.message.includes(why));
  });
}

test("refused: older than the list held", async () => {
  const held = { number: String(fx.revoked_number) };
  await assert.rejects(verifyCrl(crlDer(fx.crl_older), caCert, held), (e) => e instanceof CrlError && /older than number/.test(e.message));
  assert.ok(await verifyCrl(crlDer(fx.crl_revoked), caCert, held)); // the same number again is not older
});

test("lengths are checked against the enclosing element, not only the buffer", () => {
  // SEQUENCE(len 3){ INTEGER(len 5) ... } followed by more bytes: the child overruns its parent
  const buf = Uint8Array.from([0x30, 0x03, 0x02, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05]);
  assert.throws(() => parseCrl(buf), DerError);
  assert.throws(() => readTlv(buf, 0, 2), DerError);
  assert.throws(() => readTlv(Uint8Array.from([0x30, 0x81, 0x05, 0, 0, 0, 0, 0]), 0), DerError); // non-minimal length
  assert.throws(() => readTlv(Uint8Array.from([0x30, 0x80, 0, 0]), 0), DerError); // indefinite
  assert.throws(() => readTlv(Uint8Array.from([0x30, 0x84, 0, 0, 0, 1, 0]), 0), DerError); // 4-byte length
  assert.throws(() => readTlv(Uint8Array.from([0x1f, 0x01, 0x00]), 0), DerError); // multi-byte tag
  assert.throws(() => derSigToRaw(Uint8Array.from([0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01])), DerError); // negative r
});

function onlyDerErrors(fn, input) {
  try { fn(input); } catch (e) { if (!(e instanceof DerError)) throw new Error(`${e.name}: ${e.message}`); }
}

test("every truncation of a certificate and a CRL is a DerError", () => {
  for (const bytes of [der(fx.device), crlDer(fx.crl_revoked)]) {
    const parse = bytes === der(fx.device) ? parseCertificate : parseCrl;
    for (let n = 0; n < bytes.length; n++) assert.throws(() => parse(bytes.slice(0, n)), DerError, `length ${n}`);
  }
});

test("random byte changes: parsing fails only with DerError, and a changed CRL never verifies", async () => {
  const r = rng(16);
  const cert = der(fx.device), crl = crlDer(fx.crl_revoked);
  for (let k = 0; k < 3000; k++) {
    const c = cert.slice();
    c[Math.floor(r() * c.length)] ^= 1 + Math.floor(r() * 255);
    onlyDerErrors(parseCertificate, c);
  }
  for (let k = 0; k < 600; k++) {
    const c = crl.slice();
    const flips = 1 + Math.floor(r() * 3);
    for (let j = 0; j < flips; j++) c[Math.floor(r() * c.length)] ^= 1 + Math.floor(r() * 255);
    if (c.every((b, i) => b === crl[i])) continue; // two flips of one byte that cancel out
    onlyDerErrors(parseCrl, c);
    await assert.rejects(verifyCrl(c, caCert, null), CrlError, `mutation ${k} was accepted`);
  }
});
