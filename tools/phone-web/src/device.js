// A room device, joined from its QR code, and the signed-in session to it.
import { concat, parseCertificate } from "./der.js";
import { RpcError, serverStream, Status, unary } from "./grpcweb.js";
import { hex, sha256, sign, verifySignedBy } from "./keys.js";

const DEVICE_PROOF = new TextEncoder().encode("edge-agent/v1 device-proof\0");
const PHONE_LOGIN = new TextEncoder().encode("edge-agent/v1 phone-login\0");

// The QR code / link: https://SITE/#join?d=https://HOST:PORT&fp=SHA256HEX&room=LABEL
export function parseJoin(text) {
  const t = text.trim();
  const q = t.includes("#join?") ? t.slice(t.indexOf("#join?") + 6) : t.replace(/^\?/, "");
  const p = new URLSearchParams(q);
  const d = p.get("d") || "", fp = (p.get("fp") || "").toLowerCase(), room = p.get("room") || "";
  let url;
  try { url = new URL(d); } catch { throw new Error("that is not a room code; scan or paste the link the room device shows"); }
  if (url.protocol !== "https:" || url.pathname !== "/" || url.search || url.hash) {
    throw new Error("the room code has an invalid device address; ask IT to print it again");
  }
  if (!/^[0-9a-f]{64}$/.test(fp)) throw new Error("the room code has no valid device fingerprint; ask IT to print it again");
  if (!room) throw new Error("the room code names no room; ask IT to print it again");
  return { url: url.origin, fp, room };
}

export class UserError extends Error {}

// One line a clinician can act on.
export function friendly(e, room) {
  if (e instanceof UserError) return e.message;
  if (e instanceof RpcError) {
    const m = e.message || "";
    if (e.code === Status.UNAVAILABLE) {
      return `Device unreachable: cannot reach the room device of ${room ? room.room : "this room"}; check the phone is on the clinic Wi-Fi and in the room.`;
    }
    if (e.code === Status.FAILED_PRECONDITION && /already running/.test(m)) {
      return "Room busy: a visit is already running in this room; stop it from the phone that started it, or wait.";
    }
    if (e.code === Status.UNAUTHENTICATED && /expired/.test(m) && /certificate/.test(m)) {
      return "Certificate expired: make a new request in Settings and ask IT to sign it.";
    }
    if (e.code === Status.UNAUTHENTICATED && /revoked/.test(m)) return "Certificate revoked: ask IT to enrol this phone again.";
    if (e.code === Status.DEADLINE_EXCEEDED) return "The room device took too long to answer; try again.";
    return `The room device refused: ${m}`;
  }
  return e && e.message ? e.message : String(e);
}

export class DeviceSession {
  constructor(room, profile) {
    this.room = room;
    this.profile = profile;
    this.token = null;
    this.deviceInfo = null;
  }

  async signIn() {
    if (Date.now() > this.profile.notAfter) {
      throw new UserError("Certificate expired: make a new request in Settings and ask IT to sign it.");
    }
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const ch = await unary(this.room.url, "EdgeAgentWebAuth", "Challenge", { phone_nonce: nonce });
    await this._verifyDevice(ch, nonce);
    const fp = await sha256(ch.device_certificate);
    const signature = await sign(concat(PHONE_LOGIN, ch.challenge, fp));
    const login = await unary(this.room.url, "EdgeAgentWebAuth", "Login", {
      challenge: ch.challenge, certificate: this.profile.cert, signature,
    });
    this.token = login.token;
    this.deviceInfo = await this.call("GetDeviceInfo", {});
    return this.deviceInfo;
  }

  // The device proves it holds the key of the certificate the QR code names, issued by our site CA.
  async _verifyDevice(ch, nonce) {
    const fp = hex(await sha256(ch.device_certificate));
    if (fp !== this.room.fp) {
      throw new UserError(`Wrong device: its certificate (${fp.slice(0, 12)}…) does not match the room's QR code (${this.room.fp.slice(0, 12)}…); do not use it and tell IT.`);
    }
    let cert;
    try { cert = parseCertificate(ch.device_certificate); } catch { throw new UserError("Wrong device: it sent an unreadable certificate; tell IT."); }
    const siteCa = parseCertificate(this.profile.ca);
    if (cert.ou !== "device" || !(await verifySignedBy(cert, siteCa))) {
      throw new UserError("Wrong device: it is not certified by your site's CA; do not use it and tell IT.");
    }
    if (Date.now() > cert.notAfter || Date.now() < cert.notBefore) {
      throw new UserError("The room device's certificate is out of date; tell IT.");
    }
    if (ch.room !== this.room.room) {
      throw new UserError(`Wrong device: it says it is "${ch.room}" but the QR code says "${this.room.room}"; check the room and tell IT.`);
    }
    const key = await crypto.subtle.importKey("spki", cert.spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    const proof = concat(DEVICE_PROOF, nonce, ch.challenge, new TextEncoder().encode(ch.room));
    if (!(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, ch.device_signature, proof))) {
      throw new UserError("Wrong device: it could not prove it holds its certificate's key; do not use it and tell IT.");
    }
  }

  async call(method, req, opts = {}) {
    if (!this.token) await this.signIn();
    try {
      return await unary(this.room.url, "EdgeAgent", method, req, { ...opts, token: this.token });
    } catch (e) {
      if (e instanceof RpcError && e.code === Status.UNAUTHENTICATED && /session|signed in/.test(e.message)) {
        await this.signIn(); // tokens live minutes; sign in again silently, once
        return unary(this.room.url, "EdgeAgent", method, req, { ...opts, token: this.token });
      }
      throw e;
    }
  }

  async stream(method, req, onMessage, signal) {
    if (!this.token) await this.signIn();
    return serverStream(this.room.url, "EdgeAgent", method, req, onMessage, { token: this.token, signal });
  }
}
