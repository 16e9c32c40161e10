// A room device, joined from its QR code, and the signed-in session to it.
import ANSWERS from "./answers.js";
import { deviceCompatibility } from "./compat.js";
import { concat, parseCertificate } from "./der.js";
import { PolicyBlocked, RpcError, serverStream, Status, unary } from "./grpcweb.js";
import { hex, sha256, sign, verifySignedBy } from "./keys.js";
import { TrustError } from "./trust.js";

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

export const ALREADY_ENDED = ANSWERS.alreadyEnded;

// How the device's answers are worded: the Python phone's table (edge_agent/phone/answers.py, via gen_schema.py).
// Only the statuses by which the device says no (a rule, a check, a state) read "refused".
const REFUSALS = new Set(ANSWERS.refusalCodes.map((name) => Status[name]));

// A visit of this phone's that the device says ended with no report (DeviceInfo.ended_without_report): its line.
export function noReportLine(reason) {
  return ANSWERS.noReport + (ANSWERS.noReportReasons[String(reason || 0)] || ANSWERS.noReportReasons["0"]) + ".";
}

// The device's "capture could not start: <why>": what happened, and what to do (the microphone, or IT).
function captureLine(m) {
  const why = m.slice(ANSWERS.capturePrefix.length).replace(/\.+$/, "");
  return `${ANSWERS.capture}${why}${/\bIT\b/.test(why) ? "" : ANSWERS.captureAdvice}.`;
}

// A press of the room button for this phone's claim could not start the visit (ClaimStatus.failure; the claim holds).
export function buttonLine(failure) {
  return failure.startsWith(ANSWERS.capturePrefix) ? captureLine(failure) : `${ANSWERS.button}${failure.replace(/\.+$/, "")}.`;
}

// The visits the device says ended with no report (only a device with the "no-report" capability says it).
export function endedWithoutReport(info) {
  return info && (info.capabilities || []).includes(ANSWERS.noReportCapability) ? info.ended_without_report || [] : [];
}

// One line a clinician can act on.
export function friendly(e, room) {
  if (e instanceof UserError || e instanceof TrustError) return e.message;
  if (e instanceof PolicyBlocked) {
    return `Device not listed: this site does not let the app reach ${e.origin}; ask IT to add the room device (phone-web serve --device-origin).`;
  }
  if (e instanceof RpcError) {
    const m = e.message || "";
    if (e.code === Status.RESOURCE_EXHAUSTED && /sign-in attempts/.test(m)) {
      const wait = /try again in \d+ s/.exec(m);
      return `Too many sign-in attempts from this network: ${wait ? wait[0] : "wait a minute and try again"}.`;
    }
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
    // nothing records: what happened and what to do (the microphone, or IT), not "refused"
    if (e.code === Status.FAILED_PRECONDITION && m.startsWith(ANSWERS.capturePrefix)) return captureLine(m);
    if (REFUSALS.has(e.code)) return ANSWERS.refused + m;
    if (e.code === Status.RESOURCE_EXHAUSTED) return ANSWERS.atLimit + m;
    return ANSWERS.fault + m; // INTERNAL and the like: it broke, it did not say no
  }
  return e && e.message ? e.message : String(e);
}

const REVOKED = "Device revoked: the site has revoked this room device's certificate; do not use it and tell IT.";

// Calls after which something cannot be taken back (capture on, the clinician's voice sent, a room claimed):
// the trust decided at sign-in is checked again first, so a device revoked since then is refused at once
// rather than for the rest of its session (issue 16: every trust decision holds after the handshake).
const RECHECKED = new Set(["StartVisit", "EnrollVoice", "ClaimRoom"]);

export class DeviceSession {
  // `revocations`: the site CRL this phone holds (trust.js), checked before sign-in and after GetDeviceInfo.
  constructor(room, profile, revocations) {
    this.room = room;
    this.profile = profile;
    this.revocations = revocations;
    this.token = null;
    this.deviceInfo = null;
    this.certificate = null;
  }

  async signIn() {
    if (Date.now() > this.profile.notAfter) {
      throw new UserError("Certificate expired: make a new request in Settings and ask IT to sign it.");
    }
    await this.revocations.refreshFromSite(); // best effort: offline, the list held stays
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const ch = await unary(this.room.url, "EdgeAgentWebAuth", "Challenge", { phone_nonce: nonce });
    const cert = await this._verifyDevice(ch, nonce);
    // the phone's certificate and signature go only to a device not revoked by the list held
    if (await this.revocations.isRevoked(cert.serial)) throw new UserError(REVOKED);
    const fp = await sha256(ch.device_certificate);
    const signature = await sign(concat(PHONE_LOGIN, ch.challenge, fp));
    const login = await unary(this.room.url, "EdgeAgentWebAuth", "Login", {
      challenge: ch.challenge, certificate: this.profile.cert, signature,
    });
    const info = await unary(this.room.url, "EdgeAgent", "GetDeviceInfo", {}, { token: login.token });
    // as the Python phone: the room the device reports is its certificate's, and its CRL may be newer than ours
    if (info.room !== cert.room) {
      throw new UserError(`Wrong device: it says it is "${info.room}" but its certificate says "${cert.room}"; do not use it and tell IT.`);
    }
    await this.revocations.offerPem(info.crl);
    await this.revocations.requireCurrent();
    if (await this.revocations.isRevoked(cert.serial)) throw new UserError(REVOKED);
    // a device this app would misunderstand is refused before any other call: which side to update (compat.js)
    const compat = deviceCompatibility(info.protocol_version);
    if (!compat.usable) throw Object.assign(new UserError(compat.message), { action: compat.action });
    this.certificate = cert;
    this.deviceInfo = info;
    this.token = login.token;
    return info;
  }

  // The device proves it holds the key of the certificate the QR code names, issued by our site CA for this room.
  async _verifyDevice(ch, nonce) {
    const fp = hex(await sha256(ch.device_certificate));
    if (fp !== this.room.fp) {
      throw new UserError(`Wrong device: its certificate (${fp.slice(0, 12)}…) does not match the room's QR code (${this.room.fp.slice(0, 12)}…); do not use it and tell IT.`);
    }
    let cert;
    try { cert = parseCertificate(ch.device_certificate); } catch { throw new UserError("Wrong device: it sent an unreadable certificate; tell IT."); }
    const siteCa = parseCertificate(this.profile.ca);
    if (!(await verifySignedBy(cert, siteCa))) {
      throw new UserError("Wrong device: it is not certified by your site's CA; do not use it and tell IT.");
    }
    if (cert.ou !== "device") {
      throw new UserError(`Wrong device: its certificate is a ${cert.ou || "role-less"} certificate, not a room device's; do not use it and tell IT.`);
    }
    if (Date.now() > cert.notAfter || Date.now() < cert.notBefore) {
      throw new UserError("The room device's certificate is out of date; tell IT.");
    }
    if (!cert.room) throw new UserError("The room device's certificate names no room (issued before rooms were attested); IT must re-issue it.");
    if (cert.room !== this.room.room) {
      throw new UserError(`Wrong device: it is certified for "${cert.room}" but the QR code says "${this.room.room}"; check the room and tell IT.`);
    }
    if (ch.room !== cert.room) {
      throw new UserError(`Wrong device: it says it is "${ch.room}" but its certificate says "${cert.room}"; do not use it and tell IT.`);
    }
    const key = await crypto.subtle.importKey("spki", cert.spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    const proof = concat(DEVICE_PROOF, nonce, ch.challenge, new TextEncoder().encode(ch.room));
    if (!(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, ch.device_signature, proof))) {
      throw new UserError("Wrong device: it could not prove it holds its certificate's key; do not use it and tell IT.");
    }
    return cert;
  }

  // The site's current CRL (best effort: offline, the list held stays) against the device signed in to.
  async recheck() {
    await this.revocations.refreshFromSite();
    if (this.certificate && (await this.revocations.isRevoked(this.certificate.serial))) {
      this.token = null;
      throw new UserError(REVOKED);
    }
  }

  async call(method, req, opts = {}) {
    if (!this.token) await this.signIn();
    else if (RECHECKED.has(method)) await this.recheck();
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
