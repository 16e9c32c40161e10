// Just enough DER to read X.509 certificates (fields, to-be-signed bytes, signature)
// and to write a PKCS#10 request. Signatures are made and checked by WebCrypto;
// nothing here is cryptography.

export function readTlv(buf, pos = 0) {
  if (pos + 2 > buf.length) throw new Error("truncated DER");
  const tag = buf[pos];
  let len = buf[pos + 1], hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3 || pos + 2 + n > buf.length) throw new Error("bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i];
    hdr += n;
  }
  const start = pos + hdr, end = start + len;
  if (end > buf.length) throw new Error("truncated DER");
  return { tag, start, end, hdrStart: pos, content: buf.subarray(start, end), raw: buf.subarray(pos, end) };
}

export function children(buf, tlv) {
  const out = [];
  let p = tlv.start;
  while (p < tlv.end) { const c = readTlv(buf, p); out.push(c); p = c.end; }
  return out;
}

function oid(bytes) {
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let v = 0;
  for (let i = 1; i < bytes.length; i++) { v = v * 128 + (bytes[i] & 0x7f); if (!(bytes[i] & 0x80)) { parts.push(v); v = 0; } }
  return parts.join(".");
}

function time(t) {
  const s = new TextDecoder().decode(t.content);
  const full = t.tag === 0x17 ? (Number(s.slice(0, 2)) >= 50 ? "19" : "20") + s : s; // UTCTime has 2-digit years
  return Date.UTC(+full.slice(0, 4), +full.slice(4, 6) - 1, +full.slice(6, 8), +full.slice(8, 10), +full.slice(10, 12), +full.slice(12, 14));
}

function nameAttrs(buf, nameTlv) {
  const attrs = {};
  for (const rdn of children(buf, nameTlv)) {
    for (const atv of children(buf, rdn)) {
      const [o, v] = children(buf, atv);
      attrs[oid(o.content)] = new TextDecoder().decode(v.content);
    }
  }
  return attrs;
}

const OU = "2.5.4.11", CN = "2.5.4.3";

export function parseCertificate(der) {
  const top = readTlv(der);
  const [tbs, , sig] = children(der, top);
  const f = children(der, tbs);
  const i = f[0].tag === 0xa0 ? 1 : 0; // explicit version
  const issuer = f[i + 2], validity = f[i + 3], subject = f[i + 4], spki = f[i + 5];
  const [nb, na] = children(der, validity);
  const subj = nameAttrs(der, subject);
  return {
    der, tbs: tbs.raw, signature: sig.content.subarray(1), // BIT STRING: skip the unused-bits byte
    issuerRaw: issuer.raw, subjectRaw: subject.raw, spki: spki.raw,
    notBefore: time(nb), notAfter: time(na), ou: subj[OU] || "", cn: subj[CN] || "",
  };
}

// ECDSA signatures: DER SEQUENCE{r, s} <-> IEEE P1363 r||s (what WebCrypto uses).
export function derSigToRaw(sig) {
  const top = readTlv(sig);
  const [r, s] = children(sig, top);
  const out = new Uint8Array(64);
  for (const [k, part] of [[0, r.content], [32, s.content]]) {
    const v = part.subarray(Math.max(0, part.length - 32));
    out.set(v, k + 32 - v.length);
  }
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
  for (const m of text.matchAll(re)) out.push(Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0)));
  return out;
}
