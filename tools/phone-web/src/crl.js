// The site CRL, checked as the devices and the Python phone check it (edge_agent/crypto/ca.py
// parse_crl, edge_agent/phone/client.py learn_crl): DER parsed strictly (der.js), signed by
// the pinned site CA (ECDSA P-256/SHA-256, verified by WebCrypto), numbered, not past its
// next update, and never older than the list this phone already holds.
import { bitString, children, DerError, derSigToRaw, expect, extensions, isTime, readOne, sameBytes, sigAlgorithm, TAG, time, uintHex } from "./der.js";

const CRL_NUMBER = "2.5.29.20", AUTHORITY_KEY_ID = "2.5.29.35";
const KNOWN = new Set([CRL_NUMBER, AUTHORITY_KEY_ID]);

export class CrlError extends Error {}

// CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
export function parseCrl(der) {
  const top = readOne(der, TAG.SEQUENCE);
  const [tbs, alg, sig, ...more] = children(der, top);
  if (more.length) throw new DerError("bad CRL");
  expect(tbs, TAG.SEQUENCE, "TBSCertList");
  sigAlgorithm(der, alg);
  const signature = bitString(sig);
  const f = children(der, tbs);
  let i = 0;
  // v2 (INTEGER 1): the site's CRLs carry extensions (the CRL number), so a v1 list is not one of them
  if (uintHex(f[i++]) !== "1") throw new DerError("not a version 2 CRL");
  if (!sameBytes(expect(f[i++], TAG.SEQUENCE, "signature").raw, alg.raw)) throw new DerError("the CRL names two signature algorithms");
  const issuer = expect(f[i++], TAG.SEQUENCE, "issuer");
  if (!isTime(f[i])) throw new DerError("bad CRL thisUpdate");
  const thisUpdate = time(f[i++]);
  const nextUpdate = isTime(f[i]) ? time(f[i++]) : null;
  const revoked = [];
  if (f[i] && f[i].tag === TAG.SEQUENCE) {
    for (const entry of children(der, f[i++])) {
      const parts = children(der, expect(entry, TAG.SEQUENCE, "revoked entry"));
      if (parts.length < 2 || parts.length > 3 || !isTime(parts[1])) throw new DerError("bad revoked entry");
      if (parts.length === 3 && extensions(der, parts[2]).some((e) => e.critical)) throw new DerError("a revoked entry has a critical extension");
      revoked.push(uintHex(parts[0]));
    }
  }
  let number = null;
  if (f[i] && f[i].tag === 0xa0) {
    const [exts, ...rest] = children(der, f[i++]);
    if (rest.length) throw new DerError("bad CRL extensions");
    for (const e of extensions(der, exts)) {
      if (e.id === CRL_NUMBER) number = BigInt("0x" + uintHex(readOne(e.value, TAG.INTEGER)));
      else if (e.critical && !KNOWN.has(e.id)) throw new DerError("the CRL has a critical extension this app does not know");
    }
  }
  if (i !== f.length) throw new DerError("bad CRL fields");
  return { der, tbs: tbs.raw, signature, issuerRaw: issuer.raw, thisUpdate, nextUpdate, number, revoked };
}

function day(ms) { return new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC"; }

// Checks a candidate CRL (DER) against the pinned CA (parsed certificate) and the list held (or null).
// Returns the record to keep: {der, number (decimal string), nextUpdate (ms), revoked (hex serials)}.
export async function verifyCrl(der, caCert, held, now = Date.now()) {
  let crl;
  try { crl = parseCrl(der); } catch (e) {
    if (e instanceof DerError) throw new CrlError(`the revocation list is damaged (${e.message})`);
    throw e;
  }
  if (!sameBytes(crl.issuerRaw, caCert.subjectRaw)) throw new CrlError("the revocation list is not from this site's CA");
  const key = await crypto.subtle.importKey("spki", caCert.spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  let ok = false;
  try { ok = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, derSigToRaw(crl.signature), crl.tbs); } catch { ok = false; }
  if (!ok) throw new CrlError("the revocation list's signature does not verify with the site CA");
  if (crl.number === null) throw new CrlError("the revocation list has no CRL number; IT must re-sign it (edge-agent ca crl)");
  if (crl.nextUpdate === null) throw new CrlError("the revocation list has no next-update date; IT must re-sign it (edge-agent ca crl)");
  if (now >= crl.nextUpdate) throw new CrlError(`the revocation list is out of date (next update was ${day(crl.nextUpdate)}); IT must re-sign it (edge-agent ca crl)`);
  if (held && crl.number < BigInt(held.number)) throw new CrlError(`the revocation list is number ${crl.number}, older than number ${held.number} this phone holds`);
  return { der: crl.der, number: crl.number.toString(), nextUpdate: crl.nextUpdate, revoked: crl.revoked };
}
