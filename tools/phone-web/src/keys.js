// The clinician's keys, made here and never exported: an ECDSA P-256 key that signs
// the certificate request and each sign-in, and an X25519 key that opens reports.
import { certificationRequest, DerError, derSigToRaw, parseCertificate, pem, pemBlocks } from "./der.js";
import { getKey, putKey } from "./store.js";

const ECDSA = { name: "ECDSA", namedCurve: "P-256" };
const SHA256 = { name: "ECDSA", hash: "SHA-256" };

export async function haveKeys() {
  return Boolean(await getKey("sign")) && Boolean((await getKey("seal")) || (await getKey("seal-wrapped")));
}

const X25519 = { name: "X25519" };

export async function makeKeys() {
  const sign = await crypto.subtle.generateKey(ECDSA, false, ["sign", "verify"]);
  let seal;
  try {
    seal = await crypto.subtle.generateKey(X25519, false, ["deriveBits"]);
  } catch {
    throw new Error("this browser has no X25519 in WebCrypto; update it (Chrome 133+, Safari 17+)");
  }
  await putKey("sign", sign);
  try {
    await putKey("seal", seal);
  } catch (e) {
    if (e?.name !== "DataError") throw e;
    await putWrappedSealKey(); // WebKit: IndexedDB cannot hold an X25519 CryptoKey (see below)
  }
}

// WebKit (WebKitGTK 2.50 at least) refuses to store any X25519 CryptoKey in IndexedDB
// (DataError), while it stores ECDSA, ECDH, Ed25519 and AES keys. There, and only there,
// the sealing key is kept wrapped (pkcs8, AES-GCM) under a non-extractable wrapping key,
// wrapped and unwrapped inside WebCrypto: the key bytes never reach JavaScript and the
// unwrapped key in use is non-extractable. Weaker than a stored CryptoKey in one way:
// script running in the page could unwrap it as extractable (docs/phone.md, WebKit).
const WRAP_AD = new TextEncoder().encode("edge-agent/v1 seal key");

async function putWrappedSealKey() {
  const pair = await crypto.subtle.generateKey(X25519, true, ["deriveBits"]);
  const wrapping = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["wrapKey", "unwrapKey"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const wrapped = new Uint8Array(await crypto.subtle.wrapKey("pkcs8", pair.privateKey, wrapping, { name: "AES-GCM", iv, additionalData: WRAP_AD }));
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  await putKey("seal-wrapped", { iv, wrapped, pub, wrapping });
}

async function unwrapSealKey(w) {
  const privateKey = await crypto.subtle.unwrapKey("pkcs8", w.wrapped, w.wrapping, { name: "AES-GCM", iv: w.iv, additionalData: WRAP_AD },
    X25519, false, ["deriveBits"]);
  return { privateKey, publicKey: await crypto.subtle.importKey("raw", w.pub, X25519, true, []) };
}

// The keys were there when the app opened but are gone now: the browser's data for this site was cleared (by the
// clinician, or evicted by the browser) while the app was open. Said in one line, not as a script error.
export class KeysGone extends Error {
  constructor() {
    super("This phone's keys are gone (the browser's data for this app was cleared): reports sealed to them can no longer "
      + "be opened. Close the app and open it again to set this phone up, then ask IT to sign the new request.");
  }
}

export async function signingKeys() {
  const pair = await getKey("sign");
  if (!pair) throw new KeysGone();
  return pair;
}

export async function sealingKeys() {
  const stored = await getKey("seal");
  if (stored) return stored;
  const wrapped = await getKey("seal-wrapped");
  if (!wrapped) throw new KeysGone();
  return unwrapSealKey(wrapped);
}

export async function sealingPublic() {
  return new Uint8Array(await crypto.subtle.exportKey("raw", (await sealingKeys()).publicKey));
}

export async function sign(data) {
  return new Uint8Array(await crypto.subtle.sign(SHA256, (await signingKeys()).privateKey, data));
}

// Same format as `edge-agent phone request`: PEM PKCS#10, empty subject, P-256 key.
export async function certificateRequestPem() {
  const pair = await signingKeys();
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  return pem("CERTIFICATE REQUEST", await certificationRequest(spki, (info) => crypto.subtle.sign(SHA256, pair.privateKey, info)));
}

export async function verifySignedBy(cert, issuer) {
  if (!equal(cert.issuerRaw, issuer.subjectRaw)) return false;
  try {
    const key = await crypto.subtle.importKey("spki", issuer.spki, ECDSA, false, ["verify"]);
    return await crypto.subtle.verify(SHA256, key, derSigToRaw(cert.signature), cert.tbs);
  } catch {
    return false; // a key that is not P-256, or a malformed signature
  }
}

// The answer of `edge-agent ca sign-clinician`: our certificate and the site CA (PEM, no key).
// `pinned` is the site CA this phone pinned at enrolment ({der, fp}): the file's CA must be exactly it.
export async function checkCertificateAnswer(text, pinned) {
  let certs;
  try {
    const ders = pemBlocks(text, "CERTIFICATE");
    if (ders.length !== 2) throw new Error("that is not the file IT signed (want the certificate and the site CA, PEM)");
    certs = ders.map(parseCertificate);
  } catch (e) {
    if (e instanceof DerError) throw new Error("the certificate file is damaged; ask IT for it again");
    throw e;
  }
  const leaf = certs.find((c) => c.ou === "clinician");
  const caCert = certs.find((c) => c !== leaf);
  if (!leaf || !caCert) throw new Error("the file holds no clinician certificate; ask IT to use 'edge-agent ca sign-clinician'");
  if (!equal(caCert.der, pinned.der)) {
    const fp = hex(await sha256(caCert.der));
    throw new Error(`Wrong CA: this certificate comes from another CA (${fp.slice(0, 16)}…) than this site's (${pinned.fp.slice(0, 16)}…); ask IT to sign this phone's request with the site CA.`);
  }
  const ours = new Uint8Array(await crypto.subtle.exportKey("spki", (await signingKeys()).publicKey));
  if (!equal(leaf.spki, ours)) throw new Error("this certificate is for another phone's key; send IT this phone's request");
  if (!(await verifySignedBy(leaf, caCert))) throw new Error("the certificate was not signed by the site CA");
  if (Date.now() > leaf.notAfter) throw new Error("this certificate has already expired; make a new request");
  return { cert: leaf.der, ca: pinned.der, pseudonym: leaf.cn, notAfter: leaf.notAfter };
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function hex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""); }

export async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }

// A new signing key for a new certificate request (the sealing key stays: pending reports still open).
export async function renewSigningKey() {
  await putKey("sign", await crypto.subtle.generateKey(ECDSA, false, ["sign", "verify"]));
}
