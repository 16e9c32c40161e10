// Just enough DER to read X.509 certificates and CRLs (fields, to-be-signed bytes,
// signature) and to write a PKCS#10 request. Signatures are made and checked by
// WebCrypto; nothing here is cryptography.
//
// Written here rather than taken from npm (asn1js/pkijs): the app reads three fixed
// structures, and a strict reader of ~200 lines is smaller to audit than a general
// ASN.1 library and its dependencies (docs/phone.md). Strict means: every length is
// checked against the element that encloses it (never only against the buffer),
// lengths are minimal DER, one-byte tags only, no indefinite lengths, expected tags
// are checked at every step, and anything else throws DerError.

export class DerError extends Error {}

function fail(what) { throw new DerError(what); }

export const TAG = { BOOLEAN: 0x01, INTEGER: 0x02, BIT_STRING: 0x03, OCTET_STRING: 0x04, OID: 0x06, UTF8: 0x0c,
  PRINTABLE: 0x13, IA5: 0x16, UTC_TIME: 0x17, GENERALIZED_TIME: 0x18, SEQUENCE: 0x30, SET: 0x31 };
const STRING_TAGS = new Set([TAG.UTF8, TAG.PRINTABLE, TAG.IA5, 0x14, 0x1e]);

// One element at `pos`, which must end at or before `limit` (the end of its parent).
export function readTlv(buf, pos = 0, limit = buf.length) {
  if (!(buf instanceof Uint8Array)) fail("not bytes");
  if (!(Number.isInteger(pos) && Number.isInteger(limit) && 0 <= pos && limit <= buf.length)) fail("bad DER bounds");
  if (pos + 2 > limit) fail("truncated DER");
  const tag = buf[pos];
  if ((tag & 0x1f) === 0x1f) fail("multi-byte DER tags are not expected here");
  let len = buf[pos + 1], hdr = 2;
  if (len === 0x80) fail("indefinite length is not DER");
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n > 3) fail("DER length too large"); // < 16 MiB; what the app reads is a few kB
    if (pos + 2 + n > limit) fail("truncated DER");
    if (buf[pos + 2] === 0) fail("non-minimal DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i];
    if (len < 0x80) fail("non-minimal DER length");
    hdr += n;
  }
  const start = pos + hdr, end = start + len;
  if (end > limit) fail("truncated DER");
  return { tag, start, end, hdrStart: pos, content: buf.subarray(start, end), raw: buf.subarray(pos, end) };
}

// The whole buffer is exactly one element with this tag.
export function readOne(buf, tag) {
  const t = readTlv(buf, 0, buf.length);
  if (t.end !== buf.length) fail("bytes after the DER element");
  return expect(t, tag, "top level");
}

export function children(buf, tlv) {
  if (!(tlv.tag & 0x20)) fail("a primitive DER element has no children");
  const out = [];
  let p = tlv.start;
  while (p < tlv.end) {
    const c = readTlv(buf, p, tlv.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

export function expect(t, tag, what) {
  if (!t || t.tag !== tag) fail(`${what}: unexpected DER element`);
  return t;
}

export function oid(t) {
  expect(t, TAG.OID, "OID");
  const b = t.content;
  if (!b.length || b[b.length - 1] & 0x80) fail("bad OID");
  const ids = [];
  let v = 0, first = true;
  for (let i = 0; i < b.length; i++) {
    if (first && b[i] === 0x80) fail("bad OID"); // non-minimal subidentifier
    v = v * 128 + (b[i] & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER) fail("OID arc too large");
    first = false;
    if (!(b[i] & 0x80)) { ids.push(v); v = 0; first = true; }
  }
  const a = ids[0] < 40 ? 0 : ids[0] < 80 ? 1 : 2;
  return [a, ids[0] - 40 * a, ...ids.slice(1)].join(".");
}

// A non-negative, minimally encoded INTEGER's magnitude (without the 0x00 sign byte), at most `max` bytes.
export function uintBytes(t, max) {
  expect(t, TAG.INTEGER, "INTEGER");
  const b = t.content;
  if (!b.length) fail("empty INTEGER");
  if (b[0] & 0x80) fail("negative INTEGER");
  if (b.length > 1 && b[0] === 0 && !(b[1] & 0x80)) fail("non-minimal INTEGER");
  const v = b.length > 1 && b[0] === 0 ? b.subarray(1) : b;
  if (v.length > max) fail("INTEGER too large");
  return v;
}

// ... as lowercase hex without leading zeros ("0" for zero): serials and CRL numbers (at most 20 octets).
export function uintHex(t) {
  const h = Array.from(uintBytes(t, 20), (x) => x.toString(16).padStart(2, "0")).join("").replace(/^0+/, "");
  return h || "0";
}

export function time(t) {
  const s = new TextDecoder().decode(t.content);
  let full;
  if (t.tag === TAG.UTC_TIME && /^\d{12}Z$/.test(s)) full = (Number(s.slice(0, 2)) >= 50 ? "19" : "20") + s;
  else if (t.tag === TAG.GENERALIZED_TIME && /^\d{14}Z$/.test(s)) full = s;
  else fail("bad DER time");
  const [y, mo, d, h, mi, se] = [0, 4, 6, 8, 10, 12].map((i, k) => Number(full.slice(i, k ? i + 2 : 4)));
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) fail("bad DER time");
  return Date.UTC(y, mo - 1, d, h, mi, se);
}

export function isTime(t) { return t && (t.tag === TAG.UTC_TIME || t.tag === TAG.GENERALIZED_TIME); }

export function bitString(t) {
  expect(t, TAG.BIT_STRING, "BIT STRING");
  if (!t.content.length || t.content[0] !== 0) fail("bad BIT STRING");
  return t.content.subarray(1);
}

// Subject attributes by OID; one that appears more than once is ambiguous and reads as "" (as the device's identity_of).
function nameAttrs(buf, nameTlv) {
  const seen = {};
  for (const rdn of children(buf, expect(nameTlv, TAG.SEQUENCE, "Name"))) {
    for (const atv of children(buf, expect(rdn, TAG.SET, "RDN"))) {
      const parts = children(buf, expect(atv, TAG.SEQUENCE, "attribute"));
      if (parts.length !== 2 || !STRING_TAGS.has(parts[1].tag)) fail("bad name attribute");
      const key = oid(parts[0]);
      let value;
      try { value = new TextDecoder("utf-8", { fatal: true }).decode(parts[1].content); } catch { fail("bad name attribute"); }
      seen[key] = key in seen ? null : value;
    }
  }
  const out = {};
  for (const [k, v] of Object.entries(seen)) out[k] = v ?? "";
  return out;
}

export const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";

// AlgorithmIdentifier: only ecdsa-with-SHA256 (the site CA signs nothing else).
export function sigAlgorithm(buf, t) {
  const parts = children(buf, expect(t, TAG.SEQUENCE, "signatureAlgorithm"));
  if (parts.length !== 1 || oid(parts[0]) !== ECDSA_WITH_SHA256) fail("not an ECDSA P-256/SHA-256 signature");
  return ECDSA_WITH_SHA256;
}

// Extensions ::= SEQUENCE OF Extension {extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING}
export function extensions(buf, seq) {
  const out = [];
  for (const e of children(buf, expect(seq, TAG.SEQUENCE, "extensions"))) {
    const parts = children(buf, expect(e, TAG.SEQUENCE, "extension"));
    let i = 1, critical = false;
    if (parts[i] && parts[i].tag === TAG.BOOLEAN) {
      if (parts[i].content.length !== 1 || parts[i].content[0] !== 0xff) fail("bad extension flag"); // DER: only TRUE is encoded
      critical = true;
      i++;
    }
    const value = expect(parts[i], TAG.OCTET_STRING, "extension value");
    if (i + 1 !== parts.length) fail("bad extension");
    out.push({ id: oid(parts[0]), critical, value: value.content });
  }
  return out;
}

const OU = "2.5.4.11", CN = "2.5.4.3", L = "2.5.4.7", BASIC_CONSTRAINTS = "2.5.29.19";

export function parseCertificate(der) {
  const top = readOne(der, TAG.SEQUENCE);
  const [tbs, alg, sig, ...more] = children(der, top);
  if (more.length) fail("bad certificate");
  expect(tbs, TAG.SEQUENCE, "TBSCertificate");
  sigAlgorithm(der, alg);
  const f = children(der, tbs);
  let i = f[0] && f[0].tag === 0xa0 ? 1 : 0; // explicit version
  const serial = uintHex(f[i++]);
  const innerAlg = expect(f[i++], TAG.SEQUENCE, "signature");
  if (!sameBytes(innerAlg.raw, alg.raw)) fail("the certificate names two signature algorithms");
  const issuer = expect(f[i++], TAG.SEQUENCE, "issuer");
  const validity = children(der, expect(f[i++], TAG.SEQUENCE, "validity"));
  const subject = expect(f[i++], TAG.SEQUENCE, "subject");
  const spki = expect(f[i++], TAG.SEQUENCE, "subjectPublicKeyInfo");
  if (validity.length !== 2 || !isTime(validity[0]) || !isTime(validity[1])) fail("bad validity");
  let isCa = false;
  for (; i < f.length; i++) {
    if (f[i].tag === 0x81 || f[i].tag === 0x82) continue; // issuer/subject unique ids: not used by the site CA
    if (f[i].tag !== 0xa3 || i !== f.length - 1) fail("bad certificate fields");
    const [exts, ...rest] = children(der, f[i]);
    if (rest.length) fail("bad extensions");
    for (const e of extensions(der, exts)) {
      if (e.id !== BASIC_CONSTRAINTS) continue;
      const bc = readOne(e.value, TAG.SEQUENCE);
      const parts = children(e.value, bc);
      isCa = Boolean(parts[0] && parts[0].tag === TAG.BOOLEAN && parts[0].content[0] === 0xff);
    }
  }
  const subj = nameAttrs(der, subject);
  return {
    der, tbs: tbs.raw, signature: bitString(sig),
    issuerRaw: issuer.raw, subjectRaw: subject.raw, spki: spki.raw, serial, isCa,
    notBefore: time(validity[0]), notAfter: time(validity[1]), ou: subj[OU] || "", cn: subj[CN] || "", room: subj[L] || "",
  };
}

export function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ECDSA signatures: DER SEQUENCE{r, s} <-> IEEE P1363 r||s (what WebCrypto uses).
export function derSigToRaw(sig) {
  const top = readOne(sig, TAG.SEQUENCE);
  const parts = children(sig, top);
  if (parts.length !== 2) fail("bad ECDSA signature");
  const out = new Uint8Array(64);
  parts.forEach((part, k) => {
    const v = uintBytes(part, 32); // r and s: positive, minimal, below the P-256 order's 32 bytes
    out.set(v, k * 32 + 32 - v.length);
  });
  return out;
}

function len(n) {
  if (n < 0x80) return [n];
  if (n < 0x100) return [0x81, n];
  if (n < 0x10000) return [0x82, n >> 8, n & 0xff];
  return [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
}

export function tlv(tag, ...parts) {
  const body = concat(...parts);
  return concat(Uint8Array.from([tag, ...len(body.length)]), body);
}

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function uint(bytes) {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return tlv(0x02, v[0] & 0x80 ? concat(Uint8Array.of(0), v) : v);
}

export function rawSigToDer(raw) {
  return tlv(0x30, uint(raw.subarray(0, 32)), uint(raw.subarray(32)));
}

// PKCS#10: empty subject (the CA assigns the pseudonym), the phone's P-256 key, no attributes.
const ECDSA_SHA256 = Uint8Array.from([0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
export async function certificationRequest(spki, sign) {
  const info = tlv(0x30, Uint8Array.of(0x02, 0x01, 0x00), Uint8Array.of(0x30, 0x00), spki, Uint8Array.of(0xa0, 0x00));
  const raw = new Uint8Array(await sign(info));
  return tlv(0x30, info, ECDSA_SHA256, tlv(0x03, Uint8Array.of(0), rawSigToDer(raw)));
}

export function pem(label, der) {
  const b64 = btoa(String.fromCharCode(...der)).replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64.trim()}\n-----END ${label}-----\n`;
}

export function pemBlocks(text, label) {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`, "g");
  const out = [];
  for (const m of text.matchAll(re)) {
    let bin;
    try { bin = atob(m[1].replace(/\s+/g, "")); } catch { throw new DerError(`damaged ${label.toLowerCase()} (not base64)`); }
    out.push(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  }
  return out;
}
