// Opening a sealed report: HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256) /
// HKDF-SHA256 / ChaCha20-Poly1305 — the device's suite (edge_agent/crypto/seal.py).
// The X25519 step runs in WebCrypto with the non-extractable private key; the
// AEAD is @hpke/chacha20poly1305 (ChaCha20-Poly1305 is not in WebCrypto).
import { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
import { concat } from "./der.js";
import { equal, sha256 } from "./keys.js";
import { decode } from "./pb.js";

export const SUITE_NAME = "hpke-base-x25519-sha256-chacha20poly1305";
const LABEL = new TextEncoder().encode("edge-agent/v1 feedback");
const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() });

function u16(n) { return Uint8Array.of(n >> 8, n & 0xff); }
function u64(n) { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n)); return b; }
function lp(bytes) { return concat(u16(bytes.length), bytes); }

// Same bytes as seal._info: every field length-prefixed, all bound into the key schedule.
function info(visitId, seq, keyId) {
  const enc = new TextEncoder();
  return concat(lp(LABEL), lp(enc.encode(SUITE_NAME)), lp(enc.encode(visitId)), u64(seq), lp(keyId));
}

export async function keyId(publicRaw) { return (await sha256(publicRaw)).subarray(0, 16); }

export class SealError extends Error {}

// Returns the decoded Feedback of an envelope sealed to this phone's key.
export async function openReport(env, pair, publicRaw) {
  if (env.suite !== SUITE_NAME) throw new SealError(`unsupported sealing suite ${env.suite}; update the app`);
  const kid = await keyId(publicRaw);
  if (!equal(env.recipient_key_id, kid)) throw new SealError("it is sealed to another clinician's key, not yours");
  if (env.sealed.length < 32 + 16) throw new SealError("it is truncated");
  let plain;
  try {
    plain = await suite.open({ recipientKey: pair, enc: env.sealed.slice(0, 32), info: info(env.visit_id, env.seq, kid) },
      env.sealed.slice(32));
  } catch {
    throw new SealError("it does not open: tampered with, or replayed under another visit");
  }
  const fb = decode("Feedback", new Uint8Array(plain));
  if (fb.visit_id !== env.visit_id) throw new SealError("it names another visit than its envelope");
  return fb;
}
