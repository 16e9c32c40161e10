// gRPC-Web client (application/grpc-web+proto) over fetch: frames are a flag byte
// and a 4-byte big-endian length; the last frame (flag 0x80) carries the trailers.
// The session token travels in a header, never in the URL.
import { decode, encode } from "./pb.js";

export const SESSION_HEADER = "x-edge-agent-session";
export const Status = { OK: 0, CANCELLED: 1, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13,
  UNAVAILABLE: 14, UNAUTHENTICATED: 16 };

export class RpcError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

// The site's CSP lists the room devices the app may reach (docs/phone.md "CSP"): a device it does not list is
// blocked by the browser before any byte is sent. The browser reports that as a policy violation event.
export class PolicyBlocked extends Error {
  constructor(origin) { super(`${origin} is not allowed by this site's policy`); this.origin = origin; }
}
const blocked = new Set();
if (typeof document !== "undefined") {
  document.addEventListener("securitypolicyviolation", (e) => {
    if (e.effectiveDirective !== "connect-src") return;
    try { blocked.add(new URL(e.blockedURI).origin); } catch { /* not a URL */ }
  });
}

function framed(messages) {
  const total = messages.reduce((a, m) => a + 5 + m.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const m of messages) { view.setUint8(o, 0); view.setUint32(o + 1, m.length); out.set(m, o + 5); o += 5 + m.length; }
  return out;
}

function parseTrailers(bytes) {
  const text = new TextDecoder().decode(bytes);
  const t = {};
  for (const line of text.split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0) t[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let message = t["grpc-message"] || "";
  try { message = decodeURIComponent(message); } catch { /* keep as sent */ }
  return { code: Number(t["grpc-status"] ?? Status.INTERNAL), message };
}

async function post(base, path, body, token, signal) {
  const headers = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
  if (token) headers[SESSION_HEADER] = token;
  let res;
  try {
    res = await fetch(base + path, { method: "POST", body, headers, signal, mode: "cors", credentials: "omit",
      cache: "no-store", referrerPolicy: "no-referrer" });
  } catch (e) {
    if (e.name === "AbortError") throw new RpcError(Status.DEADLINE_EXCEEDED, "the room device took too long to answer");
    await new Promise((r) => setTimeout(r, 50)); // the violation event, if any, is dispatched as a task of its own
    if (blocked.has(base)) throw new PolicyBlocked(base);
    throw new RpcError(Status.UNAVAILABLE, "device unreachable");
  }
  if (res.status === 403) throw new RpcError(Status.PERMISSION_DENIED, "this room device does not accept this web app's address; ask IT to set web.allowed_origin");
  if (res.status !== 200) throw new RpcError(Status.UNAVAILABLE, `device answered HTTP ${res.status}`);
  return res;
}

// Yields {message} for each data frame and finally {trailers}.
async function* frames(res) {
  const reader = res.body.getReader();
  let buf = new Uint8Array(0);
  for (;;) {
    while (buf.length >= 5) {
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      const flags = view.getUint8(0), n = view.getUint32(1);
      if (buf.length < 5 + n) break;
      const payload = buf.slice(5, 5 + n);
      buf = buf.slice(5 + n);
      if (flags & 0x80) { yield { trailers: parseTrailers(payload) }; return; }
      yield { message: payload };
    }
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      // the device went away mid-answer (restart, Wi-Fi lost): the browser says only "network error"
      if (e.name === "AbortError") throw e;
      throw new RpcError(Status.UNAVAILABLE, "the connection to the room device was lost");
    }
    const { value, done } = chunk;
    if (done) break;
    const joined = new Uint8Array(buf.length + value.length);
    joined.set(buf); joined.set(value, buf.length);
    buf = joined;
  }
  yield { trailers: { code: Status.UNAVAILABLE, message: "the connection to the room device ended early" } };
}

// One request (or several frames of a client stream sent as one body) -> one response message.
export async function unary(base, service, method, req, { token, timeoutMs = 30000, stream = null } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const reqType = METHODS[`${service}/${method}`][0], resType = METHODS[`${service}/${method}`][1];
    const body = framed(stream ? stream.map((m) => encode(reqType, m)) : [encode(reqType, req)]);
    const res = await post(base, `/edge_agent.v1.${service}/${method}`, body, token, ctl.signal);
    let reply = null;
    for await (const f of frames(res)) {
      if (f.message) reply = decode(resType, f.message);
      else if (f.trailers.code !== Status.OK) throw new RpcError(f.trailers.code, f.trailers.message);
    }
    if (!reply) throw new RpcError(Status.INTERNAL, "empty answer from the room device");
    return reply;
  } catch (e) {
    if (e.name === "AbortError") throw new RpcError(Status.DEADLINE_EXCEEDED, "the room device took too long to answer");
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

// A server stream: calls onMessage for each message; resolves on clean end, rejects with RpcError.
export async function serverStream(base, service, method, req, onMessage, { token, signal } = {}) {
  const [reqType, resType] = METHODS[`${service}/${method}`];
  const res = await post(base, `/edge_agent.v1.${service}/${method}`, framed([encode(reqType, req)]), token, signal);
  try {
    for await (const f of frames(res)) {
      if (f.message) await onMessage(decode(resType, f.message));
      else if (f.trailers.code !== Status.OK) throw new RpcError(f.trailers.code, f.trailers.message);
    }
  } catch (e) {
    if (e.name === "AbortError") throw new RpcError(Status.CANCELLED, "stopped");
    throw e;
  }
}

const METHODS = {
  "EdgeAgentWebAuth/Challenge": ["WebChallengeRequest", "WebChallengeResponse"],
  "EdgeAgentWebAuth/Login": ["WebLoginRequest", "WebLoginResponse"],
  "EdgeAgent/GetDeviceInfo": ["GetDeviceInfoRequest", "DeviceInfo"],
  "EdgeAgent/StartVisit": ["StartVisitRequest", "StartVisitResponse"],
  "EdgeAgent/StopVisit": ["StopVisitRequest", "StopVisitResponse"],
  "EdgeAgent/EnrollVoice": ["EnrollVoiceChunk", "EnrollVoiceResponse"],
  "EdgeAgent/StreamFeedback": ["StreamFeedbackRequest", "FeedbackItem"],
  "EdgeAgent/Ack": ["AckRequest", "AckResponse"],
  "EdgeAgent/ClaimRoom": ["ClaimRoomRequest", "ClaimRoomResponse"],
  "EdgeAgent/GetClaim": ["GetClaimRequest", "ClaimStatus"],
};
