// The clinician's phone app: screens, and the flow between keys, room and reports.
import { UPDATE_APP } from "./compat.js";
import { ALREADY_ENDED, buttonLine, DeviceSession, endedWithoutReport, friendly, noReportLine, parseJoin, UserError } from "./device.js";
import { RpcError, Status } from "./grpcweb.js";
import { certificateRequestPem, checkCertificateAnswer, haveKeys, hex, KeysGone, makeKeys, sealingKeys, sealingPublic, renewSigningKey, sha256 } from "./keys.js";
import { hasField } from "./pb.js";
import { STALE_FALLBACK, chooseVoiceprint, enrolled, preStartNotice, readVoiceprints, startNotice, voiceprintFields, voiceprintRecord } from "./voiceprint.js";
import { noSpeech, reportView, speechLost, trendsView } from "./report.js";
import { openReport } from "./seal.js";
import { b64, Vault, wipeAll } from "./store.js";
import { pinSiteCa, Revocations, shortFp } from "./trust.js";
import { scriptUrl } from "./tt.js";
import { clock, h, when } from "./ui.js";
import { sendVoice } from "./voice.js";

const main = document.getElementById("main");
const status = document.getElementById("status");
const notice = document.getElementById("notice");
const app = { vault: null, profile: null, room: null, session: null, follow: null, awaitingVisit: null, stoppedAt: 0, staleIn: null,
  stopping: null };

// What a line is about, by rank: whether capture is on or off and what went wrong with the visit (VISIT) outrank
// replies to the clinician's other actions (ACT), which outrank background notices (NOTE). The top line is replaced
// only by a line of equal or higher rank; a lower one goes on the line beneath it (until the top line is replaced),
// so "The visit was stopped at once: capture is off" is not lost to the report follower's next notice.
const NOTE = 0, ACT = 1, VISIT = 2;
let topRank = NOTE;
function say(text, kind = "info", rank = ACT) {
  const top = rank >= topRank;
  if (top) { topRank = rank; notice.textContent = ""; }
  const el = top ? status : notice;
  el.textContent = text;
  el.className = `status ${kind}`;
}

function screen(title, ...kids) {
  main.replaceChildren(h("h2", { class: "screen-title", tabindex: "-1" }, title), ...kids);
  for (const a of document.querySelectorAll("nav a")) a.toggleAttribute("aria-current", location.hash.startsWith(a.getAttribute("href")));
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- setup: keys, request, certificate --------------------------------------------

async function setupScreen() {
  if (!(await haveKeys())) {
    screen("Set up this phone",
      h("p", {}, "Your keys are made here and never leave this phone. IT signs a request that holds only the public half."),
      h("button", { type: "button", id: "make-keys", onclick: async () => {
        try {
          say("Making keys…");
          await pinSiteCa(app.vault); // this site's CA, pinned now: IT's answer must come from it
          await makeKeys();
          say("Keys made on this phone.", "ok");
          route();
        } catch (e) { say(friendly(e), "error"); }
      } }, "Make my keys"));
    return;
  }
  const pin = (await app.vault.get("site-ca")) || (await pinSiteCa(app.vault));
  const req = await certificateRequestPem();
  const paste = h("textarea", { id: "cert-text", rows: "4", "aria-label": "Signed certificate (paste)", placeholder: "-----BEGIN CERTIFICATE-----" });
  const file = h("input", { type: "file", id: "cert-file", accept: ".pem,.crt,.cert,text/plain", "aria-label": "Signed certificate file" });
  screen("Set up this phone",
    h("ol", { class: "steps" },
      h("li", {}, h("p", {}, "Send this certificate request to IT (they run ", h("code", {}, "edge-agent ca sign-clinician"), ")."),
        h("textarea", { id: "request", rows: "5", readonly: true, "aria-label": "Certificate request" }, req),
        h("button", { type: "button", onclick: () => download("clinician-request.pem", req, "application/x-pem-file") }, "Download request")),
      h("li", {}, h("p", {}, "Install the certificate IT sends back."), file, paste,
        h("p", { class: "muted", id: "site-ca" }, `Site CA ${shortFp(pin.fp)}… (pinned on this phone; IT can confirm it)`),
        h("button", { type: "button", id: "install", onclick: async () => {
          try {
            const text = file.files[0] ? await file.files[0].text() : paste.value;
            const profile = await checkCertificateAnswer(text, pin);
            await app.vault.put("profile", profile);
            app.profile = profile;
            say("Certificate installed. Next: join a room with its QR code.", "ok");
            location.hash = "#/room";
          } catch (e) { say(friendly(e), "error"); }
        } }, "Install certificate"))));
}

// ---- room: join, sign in, start/stop, enrol --------------------------------------

// The clinician's voiceprints, one per speaker model (voiceprint.js); a record from before (one voiceprint) is
// written back in the new form the first time it is read.
async function voiceprints() {
  const { entries, migrated } = readVoiceprints(await app.vault.get("voiceprint"));
  if (migrated) await app.vault.put("voiceprint", voiceprintRecord(entries));
  return entries;
}

// The joined room's device as it is now: its speaker model (a device updated since sign-in may run another; "" for
// a device from before DeviceInfo.speaker_model) and the visit of this phone's that runs there, if any.
async function deviceNow(s, timeoutMs = 30000) {
  const info = await s.call("GetDeviceInfo", {}, { timeoutMs });
  s.deviceInfo = { ...s.deviceInfo, speaker_model: info.speaker_model || "", own_visit_id: info.own_visit_id || "",
    own_visit_started_unix_s: info.own_visit_started_unix_s || 0 };
  await noReportsNoticed(s.room, info);
  return info;
}

// The device says `visitId` (this phone's) ended with no report: it is not waited for any more, its Stop goes, and
// the line says why. Returns that line, or "" when the device does not say so.
async function noReportFor(room, info, visitId) {
  const ended = endedWithoutReport(info).find((e) => e.visit_id === visitId);
  if (!ended) return "";
  await reportHere(visitId);
  if (app.awaitingVisit === visitId) app.awaitingVisit = null;
  await visitEnded(room, visitId);
  return noReportLine(ended.reason);
}

// Every visit of this phone's in `room` that the device says ended with no report (a fault, capture failed before
// any speech, nowhere to keep it, a start undone): said once, and no longer awaited. A visit whose Stop is under way
// is left to that Stop, which says the device's answer with it (the follower would otherwise say it twice).
async function noReportsNoticed(room, info) {
  const ended = endedWithoutReport(info);
  if (!room || !ended.length) return;
  const awaiting = (await app.vault.get("awaiting")) || {};
  const running = await app.vault.get(`visit:${room.fp}`);
  for (const e of ended) {
    if (app.stopping === e.visit_id || (!(e.visit_id in awaiting) && running?.visit_id !== e.visit_id)) continue;
    const line = await noReportFor(room, info, e.visit_id);
    say(room.fp === app.room?.fp ? line : line.replace("this visit", `your visit in ${room.room}`), "warn", VISIT);
  }
}

async function deviceModel(s, timeoutMs = 30000) {
  return (await deviceNow(s, timeoutMs)).speaker_model || "";
}

// The device names the visit running in `room` that this phone's certificate started (never another clinician's):
// one whose StartVisit answer was lost (Wi-Fi drop, timeout), or one the room button started for a claim the phone
// stopped watching. It becomes this phone's running visit, so the Room screen shows it with a Stop button and its
// report is awaited. Returns the record, or null when the device names none.
async function adoptOwnVisit(room, info) {
  const id = info && info.own_visit_id;
  if (!id) return null;
  const key = `visit:${room.fp}`;
  const held = await app.vault.get(key);
  if (held && held.visit_id === id) return held;
  const rec = { visit_id: id, started: Number(info.own_visit_started_unix_s) || Math.floor(Date.now() / 1000) };
  await app.vault.put(key, rec);
  await awaitReport(room, id);
  return rec;
}

// Start answers that may have been lost on the way back: the device may have started the visit all the same.
const ANSWER_LOST = [Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.CANCELLED, Status.INTERNAL];
// (a browser may resend a start whose connection dropped: the device then answers "already running", for this visit)
const RUNNING = "your visit IS running in this room: capture is on. Stop it here when the visit ends.";

// After a start with no answer (or refused as busy): is a visit of this phone's running there? If so it is adopted
// and the Room screen shows it with Stop; if not, the clinician is told whether capture is off.
async function afterLostStart(s, room, e) {
  const lost = e instanceof RpcError && ANSWER_LOST.includes(e.code);
  const busy = e instanceof RpcError && e.code === Status.FAILED_PRECONDITION && /already running/.test(e.message);
  if (!lost && !busy) throw e;
  let info;
  try {
    info = await deviceNow(s);
  } catch {
    if (!lost) throw e;
    throw new UserError("No answer from the room device to the start, and it cannot be reached to check: your visit MAY be running. " +
      "Open this Room screen again when back on the clinic Wi-Fi to stop it, or press the room button.");
  }
  const rec = await adoptOwnVisit(room, info);
  if (rec) {
    say(lost ? `The room device's answer to the start was lost, but ${RUNNING}` : `Room not free: ${RUNNING}`, "warn", VISIT);
    await roomScreen();
    return;
  }
  if (!lost) throw e;
  if ((info.capabilities || []).includes("own-visit") || !info.visit_active) {
    throw new UserError("No answer from the room device to the start; it says no visit of yours is running: " +
      (info.visit_active ? "another clinician's visit runs there, yours did not start." : "capture is off. Start again."));
  }
  // a device from before "own-visit" cannot say whose the running visit is
  throw new UserError("No answer from the room device to the start; a visit is running there and this device cannot say whose: if it is yours, press the room button to stop it.");
}

// A room is joined only once its device passed every check and signed this phone in: a device that fails
// (wrong, revoked, unreachable, …) leaves the room joined before, if any, in place.
async function joinRoom(room) {
  const before = { room: app.room, session: app.session };
  stopFollowing();
  app.room = room;
  app.session = null;
  try {
    await ensureSession();
  } catch (e) {
    stopFollowing();
    app.room = before.room;
    app.session = before.session;
    if (app.session && app.session.token) startFollowing();
    throw e;
  }
  await app.vault.put("room", room);
  collectElsewhere().catch(() => {}); // the room left may still hold a report of this phone's (asked again at the next join)
  return room;
}

// `rank`: of the "Checking the device" line (NOTE when the report follower signs in again in the background)
async function ensureSession(rank = ACT) {
  if (!app.room) throw new UserError("Join a room first: scan the QR code the room device shows.");
  if (!app.session) app.session = new DeviceSession(app.room, app.profile, new Revocations(app.vault, app.profile.ca));
  if (!app.session.token) {
    say(`Checking the device of ${app.room.room}…`, "info", rank);
    await app.session.signIn();
    await noReportsNoticed(app.room, app.session.deviceInfo); // a visit of this phone's that ended there with no report
    // a visit of this phone's already running there (its start answer lost, or started by the button) gets its Stop
    if ((await adoptOwnVisit(app.room, app.session.deviceInfo)) && location.hash === "#/room") roomScreen().catch(() => {});
    document.body.dataset.crlNumber = (await app.session.revocations.number()) ?? ""; // which site CRL is in force (not secret)
    startFollowing();
  }
  return app.session;
}

async function roomScreen() {
  const code = h("textarea", { id: "join-text", rows: "2", "aria-label": "Room link", placeholder: "https://…#join?d=…" });
  const join = h("form", { class: "card", onsubmit: async (ev) => {
    ev.preventDefault();
    let room = null;
    try { room = parseJoin(code.value); await joinRoom(room); say(`Joined ${room.room}; the device is verified.`, "ok"); roomScreen(); } catch (e) { say(friendly(e, room), "error"); }
  } }, h("label", { for: "join-text" }, "Room link: scan the QR code on the room device with the camera, or paste its link"), code,
  h("button", { type: "submit", id: "join" }, "Join room"));
  if (!app.room) { screen("Room", join); return; }
  let visit = await app.vault.get(`visit:${app.room.fp}`);
  // before any start: does this phone hold a voiceprint this room's device uses? (asked again at the press)
  let model = app.session?.deviceInfo?.speaker_model || "";
  if (app.session?.token && !visit) {
    const info = await deviceNow(app.session, 5000).catch(() => null);
    if (info) {
      model = info.speaker_model || "";
      visit = await adoptOwnVisit(app.room, info); // a visit of mine runs there: shown with its Stop button
    }
  }
  const otherModel = h("p", { id: "other-model", class: "warn", hidden: true }, "");
  const showOtherModel = (notice, m) => {
    otherModel.textContent = notice;
    otherModel.hidden = !notice;
    otherModel.dataset.model = m;
  };
  showOtherModel(preStartNotice(await voiceprints(), model), model);
  const consent = h("input", { type: "checkbox", id: "consent" });
  const roomCode = h("input", { type: "text", id: "room-code", inputmode: "numeric", autocomplete: "off", maxlength: "12" });
  const progress = h("div", { id: "progress", class: "progress", hidden: true }, h("progress", {}), h("p", {}, "Visit stopped. Preparing your report…"));
  const start = h("button", { type: "button", id: "start", onclick: () => act(async () => {
    if (!consent.checked) throw new UserError("Confirm that the patient knows capture is on, then start.");
    const s = await ensureSession();
    const m = await deviceModel(s);
    const entries = await voiceprints();
    // none of this room's speaker model: said before the start; a second press starts without one
    const before = preStartNotice(entries, m);
    if (before && (otherModel.hidden || otherModel.dataset.model !== m)) {
      showOtherModel(before, m);
      say(`${before} Press Start visit again to start without it.`, "warn", VISIT);
      return;
    }
    const vp = chooseVoiceprint(entries, m);
    const req = { consent: true, sealing_public_key: await sealingPublic(), ...voiceprintFields(vp) };
    if (roomCode.value.trim() && hasField("StartVisitRequest", "room_code")) req.room_code = roomCode.value.trim();
    let r;
    try {
      r = await s.call("StartVisit", req);
    } catch (e) {
      await afterLostStart(s, app.room, e);
      return;
    }
    try {
      await app.vault.put(`visit:${app.room.fp}`, { visit_id: r.visit_id, started: r.started_unix_s });
      await awaitReport(app.room, r.visit_id);
    } catch (e) {
      // capture is on but this phone could not note the visit (storage full): with no Stop on screen the room would
      // record until its time limit, so it is stopped at once
      const stopped = await s.call("StopVisit", { visit_id: r.visit_id }).then(() => true, () => false);
      throw new Error(`${e.message} ${stopped ? "The visit was stopped at once: capture is off." : "Capture is still on: stop it with the room button."}`);
    }
    // a device that does not state its model was sent the most recent voiceprint and did not use it (another speaker
    // model): the visit runs without it and the device says to re-enrol. Every voiceprint is kept: other rooms' devices
    // may run the model that made it; enrolling here adds this device's model.
    const notice = startNotice(r);
    app.staleIn = notice ? app.room.fp : app.staleIn === app.room.fp ? null : app.staleIn;
    const without = !notice && before ? " Your voice profile is not used in this room until you enrol here." : "";
    say(`Visit started at ${new Date(r.started_unix_s * 1000).toLocaleTimeString()}; capture is on.${notice ? " " + notice : without}`,
      notice || without ? "warn" : "ok", VISIT);
    roomScreen();
  }, null, VISIT) }, "Start visit");
  const room = app.room;
  const stop = h("button", { type: "button", id: "stop", onclick: () => act(async () => {
    const s = await ensureSession();
    progress.hidden = false;
    say("Stopping the visit…", "info", VISIT);
    let r;
    app.stopping = visit.visit_id;
    try {
      r = await s.call("StopVisit", { visit_id: visit.visit_id }, { timeoutMs: 120000 });
    } catch (e) {
      if (!(e instanceof RpcError)) throw e;
      const answered = ![Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.UNAUTHENTICATED].includes(e.code);
      const info = answered ? await s.call("GetDeviceInfo", {}).catch(() => null) : null;
      // the device says this visit ended with no report (before this Stop, or at it): said, and not waited for
      const none = info ? await noReportFor(room, info, visit.visit_id) : "";
      if (e.code === Status.NOT_FOUND) {
        // the device ended it already (its time limit, long silence, the room button, a restart): a report made
        // then comes by the feedback stream; the Stop button must not stay on screen for ever
        await visitEnded(room, visit.visit_id);
        if (none) throw new UserError(none);
        say(ALREADY_ENDED, "ok", VISIT);
        return;
      }
      // the device answered but did not stop it (e.g. the report could not be built): if no visit runs there any
      // more, this one is over; the device's own line says what happened
      if (info && !info.visit_active) await visitEnded(room, visit.visit_id);
      if (none) throw new UserError(`${friendly(e, room)} ${none}`);
      throw e;
    } finally {
      app.stopping = null;
    }
    app.stoppedAt = performance.now();
    app.awaitingVisit = r.visit_id;
    await app.vault.delete(`visit:${app.room.fp}`);
    say(`Visit stopped after ${clock(r.duration_s)}; capture is off. Preparing your report…`, "info", VISIT);
    if (await app.vault.get(`report:${r.visit_id}`)) showArrived(r.visit_id);
  }, () => { progress.hidden = true; }, VISIT) }, "Stop visit");
  const claim = h("button", { type: "button", id: "claim", class: "secondary", onclick: () => act(async () => {
    const s = await ensureSession();
    const r = await s.call("ClaimRoom", { sealing_public_key: await sealingPublic() });
    if (r.contested) throw new UserError("Another clinician claimed this room too: the button will refuse. Start with the room code instead.");
    say(`Room claimed: press the room button within ${r.valid_for_s} s to start.`, "ok", VISIT);
    if (r.claim_id) watchClaim(r.claim_id, r.valid_for_s);
  }, null, VISIT) }, "Claim room (button start)");
  screen(`Room: ${app.room.room}`,
    h("p", { class: "muted", id: "device-line" }, app.session?.token ? `Verified device ${app.room.fp.slice(0, 12)}…` : "Not signed in yet"),
    visit
      ? h("div", { class: "card" }, h("p", {}, `Visit running since ${new Date(visit.started * 1000).toLocaleTimeString()}.`), stop, progress)
      : h("div", { class: "card" },
        h("p", { class: "check" }, consent, h("label", { for: "consent" }, " The patient knows capture is on")),
        h("label", { for: "room-code" }, "Room code shown on the device (to start from the phone)"), roomCode, otherModel, start, claim),
    enrolCard(app.staleIn === app.room.fp, () => showOtherModel("", model)),
    h("details", {}, h("summary", {}, "Join another room"), join));
}

// Issue 16: follow the claim until a press starts the visit (the phone confirms it), or it is contested or expires.
const CLAIM_STARTED = 2, CLAIM_CONTESTED = 3, CLAIM_EXPIRED = 4;
async function watchClaim(claimId, seconds) {
  const room = app.room;
  const until = Date.now() + (seconds + 2) * 1000;
  let failure = "";
  while (Date.now() < until && app.room === room) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    let st;
    try { st = await (await ensureSession()).call("GetClaim", { claim_id: claimId }); } catch (e) { say(friendly(e, room), "error", VISIT); return; }
    if (st.state === CLAIM_STARTED) {
      await app.vault.put(`visit:${room.fp}`, { visit_id: st.visit_id, started: Math.floor(Date.now() / 1000) });
      await awaitReport(room, st.visit_id);
      say("The room button started your visit; capture is on.", "ok", VISIT);
      roomScreen();
      return;
    }
    if (st.state === CLAIM_CONTESTED) { say("Another clinician claimed this room too: the button refused. Start with the room code instead.", "error", VISIT); return; }
    // a press that could not start the visit (capture, storage): said at once; the claim holds for another press
    if (st.failure && st.failure !== failure) { failure = st.failure; say(buttonLine(failure), "error", VISIT); }
    if (st.state === CLAIM_EXPIRED) { if (!failure) say("The claim expired before the button was pressed.", "error", VISIT); return; }
  }
}

async function act(fn, onError, rank = ACT) {
  try { await fn(); } catch (e) { if (onError) onError(); say(friendly(e, app.room), "error", rank); }
}

function enrolCard(stale, onEnrolled) {
  const secs = h("output", { id: "rec-secs" }, "");
  const reenrol = h("p", { id: "reenrol", class: "warn", hidden: !stale }, STALE_FALLBACK);
  let stopRec = null;
  const stopBtn = h("button", { type: "button", id: "enrol-stop", class: "secondary", hidden: true, onclick: () => stopRec && stopRec() }, "Stop and enrol");
  const rec = h("button", { type: "button", id: "enrol", class: "secondary", onclick: () => act(async () => {
    const s = await ensureSession();
    rec.disabled = true; stopBtn.hidden = false;
    const { pcm, rate } = await recordVoice(20, (t) => { secs.textContent = `${t} s`; }, (fn) => { stopRec = fn; });
    stopBtn.hidden = true;
    say("Computing your voiceprint on the room device…");
    const r = await sendVoice((...a) => s.call(...a), pcm, rate);
    // with the speaker model that made it, beside the voiceprints of other models (other rooms keep theirs)
    await app.vault.put("voiceprint", voiceprintRecord(enrolled(await voiceprints(), r)));
    if (app.staleIn === app.room?.fp) app.staleIn = null;
    reenrol.hidden = true;
    onEnrolled();
    say(`Voice enrolled from ${r.audio_s.toFixed(0)} s of speech; the voiceprint stays on this phone.`, "ok");
    rec.disabled = false;
  }, () => { rec.disabled = false; stopBtn.hidden = true; }) }, "Enrol my voice");
  return h("div", { class: "card" }, h("p", {}, "Your voiceprint helps the device tell you from the patient. Speak alone for 10–20 s."),
    reenrol, rec, stopBtn, secs);
}

async function recordVoice(maxSeconds, onTick, setStopper) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  } catch {
    throw new UserError("No microphone: allow microphone access for this app and try again.");
  }
  const ctx = new AudioContext();
  const chunks = [];
  let node, src, ended;
  try {
    await ctx.resume();
    await ctx.audioWorklet.addModule(scriptUrl("./capture-worklet.js"));
    src = ctx.createMediaStreamSource(stream);
    // mono (the microphone's channels mixed down), 16-bit PCM at the context's rate, at most 30 s
    node = new AudioWorkletNode(ctx, "edge-agent-capture", { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      channelCount: 1, channelCountMode: "explicit", channelInterpretation: "speakers",
      processorOptions: { maxSamples: Math.round(ctx.sampleRate * 30) } });
    ended = new Promise((resolve) => {
      node.port.onmessage = (e) => { if (e.data instanceof Int16Array) chunks.push(e.data); else if (e.data && e.data.end) resolve(); };
    });
    src.connect(node); node.connect(ctx.destination); // the worklet outputs silence; the destination keeps it running
  } catch {
    for (const t of stream.getTracks()) t.stop();
    await ctx.close();
    throw new UserError("This browser cannot record here (no AudioWorklet); update it and try again.");
  }
  const t0 = performance.now();
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const t = Math.floor((performance.now() - t0) / 1000);
      onTick(t);
      if (t >= maxSeconds) { clearInterval(tick); resolve(); }
    }, 250);
    setStopper(() => { clearInterval(tick); resolve(); });
  });
  node.port.postMessage("stop");
  await Promise.race([ended, new Promise((r) => setTimeout(r, 1000))]); // the last partial block
  node.disconnect(); src.disconnect();
  for (const t of stream.getTracks()) t.stop();
  const rate = ctx.sampleRate;
  await ctx.close();
  const n = chunks.reduce((a, c) => a + c.length, 0);
  if (n < rate) throw new UserError("Recording too short: speak for at least a few seconds.");
  const pcm = new Int16Array(Math.min(n, rate * 30));
  let o = 0;
  for (const c of chunks) { pcm.set(c.subarray(0, pcm.length - o), o); o += Math.min(c.length, pcm.length - o); c.fill(0); }
  return { pcm, rate };
}

// ---- feedback: follow the device, open, store encrypted, ack -----------------------

function stopFollowing() {
  if (app.follow) app.follow.abort();
  app.follow = null;
}

function startFollowing() {
  if (app.follow) return;
  const ctl = new AbortController();
  app.follow = ctl;
  (async () => {
    while (!ctl.signal.aborted) {
      try {
        const s = await ensureSession(NOTE);
        await fetchReports(s, app.room, true, ctl.signal);
        // the device ends a followed stream when a visit of this phone's ended with no report: ask why
        if (!ctl.signal.aborted) await deviceNow(s, 10000).catch(() => null);
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e instanceof RpcError && e.code === Status.UNAUTHENTICATED && /session|signed in/.test(e.message)) {
          app.session.token = null;
          continue;
        }
        say(friendly(e, app.room), "error", NOTE);
        if (e instanceof UserError || e instanceof KeysGone || (e instanceof RpcError && e.code !== Status.UNAVAILABLE)) { app.follow = null; return; }
      }
      await new Promise((r) => setTimeout(r, 3000));
    }
  })();
}

// The reports queued for this phone in `room` from the cursor held (with `follow`, also those still to come).
async function fetchReports(session, room, follow, signal) {
  if (!session.token) await session.signIn();
  const where = `cursor:${room.fp}/${session.deviceInfo.outbox_id}`;
  let cursor = (await app.vault.get(where)) || 0;
  await session.stream("StreamFeedback", { cursor, follow }, async (item) => {
    await receive(session, room, item);
    cursor = Math.max(cursor, item.id);
    await app.vault.put(where, cursor);
  }, signal);
}

// A visit this phone started is awaited until its report is here. A clinician who leaves a room whose visit is then
// stopped there (the room button, the time limit, the phone asleep in a pocket) and joins the next room would
// otherwise never fetch that report: it waits in the first room's outbox, sealed to this phone, until it expires.
// Such rooms are asked in the background, with every check a join makes (device proof, CRL, protocol).
const AWAIT_MS = 15 * 86400 * 1000; // the device keeps a report 14 days (outbox retention): after that none can come
const AWAIT_RETRY_MS = 60000; // a sign-in per room and minute: well inside the device's per-address limit

async function awaitReport(room, visitId) {
  const w = (await app.vault.get("awaiting")) || {};
  w[visitId] = { room, since: Date.now() };
  await app.vault.put("awaiting", w);
}

async function reportHere(visitId) {
  const w = (await app.vault.get("awaiting")) || {};
  if (!(visitId in w)) return;
  delete w[visitId];
  await app.vault.put("awaiting", w);
}

let collecting = false;
async function collectElsewhere() {
  if (collecting || !app.profile) return;
  collecting = true;
  try {
    while (app.profile) { // a new certificate request or "delete everything" ends it
      const w = (await app.vault.get("awaiting")) || {};
      const rooms = new Map();
      for (const [id, a] of Object.entries(w)) {
        if (Date.now() - a.since > AWAIT_MS) { await reportHere(id); continue; }
        if (a.room.fp !== app.room?.fp) rooms.set(a.room.fp, a.room); // the joined room is followed already
      }
      if (!rooms.size) return;
      for (const room of rooms.values()) {
        if (!app.profile) return;
        // unreachable or refused now (out of Wi-Fi range, revoked): asked again later; the report waits on the device
        const s = new DeviceSession(room, app.profile, new Revocations(app.vault, app.profile.ca));
        await fetchReports(s, room, false).catch(() => {});
        if (s.deviceInfo) await noReportsNoticed(room, s.deviceInfo).catch(() => {}); // none will come: not asked again
      }
      await new Promise((r) => setTimeout(r, AWAIT_RETRY_MS));
    }
  } finally {
    collecting = false;
  }
}

async function receive(session, room, item) {
  const keys = await sealingKeys(); // gone (site data cleared): said as such, the report left on the device
  let fb;
  try {
    fb = await openReport(item.envelope, keys, await sealingPublic());
  } catch (e) {
    // not ours or tampered: shown, never stored, not acknowledged (the device keeps its copy until it expires)
    say(`A report from ${room.room} could not be opened: ${e.message}.`, "error", NOTE);
    return;
  }
  await app.vault.put(`report:${fb.visit_id}`, { visit_id: fb.visit_id, room: room.room, received: Date.now(), feedback: fb });
  await reportHere(fb.visit_id);
  // its report is here: however it was stopped, that visit is over (a line that said capture is on is replaced)
  if (await visitEnded(room, fb.visit_id)) say(`Your visit in ${room.room} has ended: capture is off.`, "ok", VISIT);
  if (app.awaitingVisit === fb.visit_id) showArrived(fb.visit_id);
  else if (!location.hash.endsWith(fb.visit_id)) {
    say(`New report from ${room.room}.`, "ok", NOTE);
    // the list or the trends on screen gain it at once (they said "No reports yet" beside "New report")
    if (["", "#/visits"].includes(location.hash)) await visitsScreen();
    else if (location.hash === "#/trends") await trendsScreen();
  }
  // stored (encrypted) before the ack: a report is never lost between the device and this phone
  await session.call("Ack", { ids: [item.id] });
}

// The phone's record of the visit running in `room` is dropped if it is `visitId`; an open Room screen is redrawn.
async function visitEnded(room, visitId) {
  const key = `visit:${room.fp}`;
  const running = await app.vault.get(key);
  if (!running || running.visit_id !== visitId) return false;
  await app.vault.delete(key);
  if (location.hash === "#/room" && app.room?.fp === room.fp) await roomScreen();
  return true;
}

function showArrived(visitId) {
  app.awaitingVisit = null;
  const ms = Math.round(performance.now() - app.stoppedAt);
  document.body.dataset.reportLatencyMs = String(ms);
  say("Your report is ready.", "ok", VISIT);
  location.hash = `#/report/${visitId}`;
}

// ---- visits, report, trends, settings ---------------------------------------------

async function reports() { return app.vault.list("report:"); }

async function visitsScreen() {
  const rows = (await reports()).sort((a, b) => b.feedback.started_unix_s - a.feedback.started_unix_s);
  screen("Your visits",
    rows.length ? h("ul", { class: "visits" }, rows.map((r) => h("li", {}, h("a", { href: `#/report/${r.visit_id}` },
      h("strong", {}, when(r.feedback.started_unix_s)),
      h("span", { class: "muted" }, ` · ${clock(r.feedback.duration_s)} · ${noSpeech(r.feedback) ? (speechLost(r.feedback.quality) ? "nothing transcribed" : "no speech heard")
        : `${r.feedback.observations.length} suggestion${r.feedback.observations.length === 1 ? "" : "s"}`}`)))))
      : h("p", {}, "No reports yet. Start a visit from the Room screen; the report appears here when you stop it."));
}

async function reportScreen(id) {
  const rec = await app.vault.get(`report:${id}`);
  if (!rec) { screen("Report", h("p", {}, "This report is not on this phone.")); return; }
  screen("Report", reportView(rec, { onDelete: async () => {
    if (!confirm("Delete this visit's report from this phone?")) return;
    await app.vault.delete(`report:${id}`);
    say("Visit deleted.", "ok");
    location.hash = "#/visits";
  } }));
}

async function trendsScreen() {
  screen("Your trends", h("p", { class: "muted" }, "Only your own visits, only on this phone. Never compared with colleagues."), trendsView(await reports()));
}

async function settingsScreen() {
  const p = app.profile;
  screen("Settings",
    h("dl", { class: "kv" }, h("dt", {}, "Your pseudonym"), h("dd", {}, p.pseudonym), h("dt", {}, "Certificate valid until"),
      h("dd", { id: "cert-until" }, new Date(p.notAfter).toLocaleDateString()), h("dt", {}, "Room"), h("dd", {}, app.room ? app.room.room : "none")),
    h("button", { type: "button", id: "export", class: "secondary", onclick: async () => {
      const data = { exported_at: new Date().toISOString(), pseudonym: p.pseudonym, voiceprints: await voiceprints(),
        reports: (await reports()).map((r) => r.feedback) };
      download("edge-agent-my-data.json", JSON.stringify(data, (_k, v) => (v instanceof Uint8Array ? b64(v) : v), 1), "application/json");
      say("Your data was exported to a file.", "ok");
    } }, "Export my data"),
    h("button", { type: "button", id: "renew", class: "secondary", onclick: async () => {
      if (!confirm("Make a new certificate request? You will need IT to sign it.")) return;
      await renewSigningKey(); await app.vault.delete("profile"); app.profile = null; app.session = null; stopFollowing();
      location.hash = "#/setup";
    } }, "New certificate request"),
    h("button", { type: "button", id: "delete-visits", class: "danger", onclick: async () => {
      if (!confirm("Delete all visit reports from this phone?")) return;
      for (const r of await reports()) await app.vault.delete(`report:${r.visit_id}`);
      say("All visits deleted.", "ok");
    } }, "Delete all visits"),
    h("button", { type: "button", id: "delete-all", class: "danger", onclick: async () => {
      if (!confirm("Delete everything, including your keys? Reports not yet received can then never be opened.")) return;
      stopFollowing(); await wipeAll(); location.hash = "#/setup"; location.reload();
    } }, "Delete everything"));
}

// ---- routing ---------------------------------------------------------------------

async function route() {
  try {
    const hash = location.hash || "#/visits";
    if (hash.startsWith("#join?")) {
      if (!app.profile) { sessionStorage.setItem("pending-join", hash); location.hash = "#/setup"; return; }
      history.replaceState(null, "", "#/room");
      let room = null;
      try {
        room = parseJoin(hash);
        await joinRoom(room);
      } catch (e) {
        if (e.action === UPDATE_APP && (await takeUpdate(hash))) return;
        await roomScreen();
        say(friendly(e, room), "error");
        return;
      }
      say(`Joined ${room.room}; the device is verified.`, "ok");
      await roomScreen();
      return;
    }
    if (!app.profile && hash !== "#/setup") { location.hash = "#/setup"; return; }
    if (hash === "#/setup") return setupScreen();
    if (hash === "#/room") return roomScreen();
    if (hash.startsWith("#/report/")) return reportScreen(decodeURIComponent(hash.slice(9)));
    if (hash === "#/trends") return trendsScreen();
    if (hash === "#/settings") return settingsScreen();
    return visitsScreen();
  } catch (e) {
    say(friendly(e, app.room), "error");
  }
}

// A device newer than this app: the site may already serve an app that understands it, while this page runs the
// service worker's copy of the old one (closing and opening the app once would not change that). The site's current
// version is asked for now; if there is one it takes over and the page opens again on the same join link.
const UPDATE_WAIT_MS = 15000;
async function takeUpdate(joinHash) {
  const reg = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration().catch(() => null) : null;
  if (!reg) return false;
  try { await reg.update(); } catch { return false; } // offline, or the site unreachable: the line says what to do
  const next = reg.installing || reg.waiting;
  if (!next) return false; // no newer app yet: IT may not have updated the site
  const ready = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), UPDATE_WAIT_MS);
    const check = () => { if (next.state === "activated") { clearTimeout(timer); resolve(true); } else if (next.state === "redundant") { clearTimeout(timer); resolve(false); } };
    next.addEventListener("statechange", check);
    check();
  });
  if (!ready) return false;
  say("Updating the app…");
  sessionStorage.setItem("pending-join", joinHash);
  location.reload();
  return true;
}

async function boot() {
  try {
    app.vault = await Vault.open();
    app.profile = await app.vault.get("profile");
    app.room = await app.vault.get("room");
    await voiceprints().catch(() => {}); // a voiceprint stored by an app from before is migrated now (else at the room)
    // installed before the pin existed: the CA it was installed with is the pin
    if (app.profile && !(await app.vault.get("site-ca"))) await app.vault.put("site-ca", { der: app.profile.ca, fp: hex(await sha256(app.profile.ca)) });
  } catch (e) {
    say(friendly(e), "error");
    return;
  }
  const pending = sessionStorage.getItem("pending-join");
  if (pending && app.profile) { sessionStorage.removeItem("pending-join"); location.hash = pending; }
  window.addEventListener("hashchange", route);
  await route();
  if (app.profile && app.room) ensureSession(NOTE).catch((e) => say(friendly(e, app.room), "error", NOTE));
  collectElsewhere().catch(() => {});
  if ("serviceWorker" in navigator) navigator.serviceWorker.register(scriptUrl("./sw.js")).catch(() => {});
  document.body.dataset.ready = "1";
}

boot();
