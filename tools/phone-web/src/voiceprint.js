// The clinician's voiceprint as this phone keeps it: the values and the speaker model that made them
// (EnrollVoiceResponse.voiceprint_model). A device whose speaker model changed since does not use a voiceprint
// of another model (its scores would mix up clinician and patient): the visit runs without it and the device
// says to re-enrol. tests/unit/phone/test_phone_web_device.py runs test/voiceprint.test.mjs with `node --test`.

// what a device takes back as StartVisitRequest.voiceprint_model (printable ASCII, no spaces, <= 128)
const MODEL_ID = /^[!-~]{1,128}$/;
export const VOICEPRINT_STALE = 4; // VoiceprintUse: made by another speaker model, not used
export const STALE_FALLBACK = "Your voice profile was made by an older speaker model: re-enrol on the phone.";

const model = (m) => (typeof m === "string" && MODEL_ID.test(m) ? m : "");

// The vault's "voiceprint" record: {values, model, stale}. A phone from before kept the bare array (model unknown:
// sent unchecked, as before).
export function readVoiceprint(stored) {
  if (Array.isArray(stored)) return { values: stored, model: "", stale: false };
  if (stored && Array.isArray(stored.values)) return { values: stored.values, model: model(stored.model), stale: stored.stale === true };
  return { values: [], model: "", stale: false };
}

// What to keep from an EnrollVoiceResponse (one record: the values never sit beside another enrolment's model).
export function enrolledVoiceprint(response) {
  return { values: Array.from(response.voiceprint_values || []), model: model(response.voiceprint_model), stale: false };
}

// The StartVisitRequest fields that carry it: the model id only with the values it names.
export function voiceprintFields(vp) {
  const out = { voiceprint_values: vp.values };
  if (vp.values.length && vp.model) out.voiceprint_model = vp.model;
  return out;
}

// One line to show after a start: the device's notice when it did not use the voiceprint (re-enrol), else "".
export function startNotice(response) {
  const line = String(response.notice || "").split(/\r?\n/)[0].replace(/[^\P{C}]/gu, " ").trim().slice(0, 200);
  if (response.voiceprint_use === VOICEPRINT_STALE) return line ? line.charAt(0).toUpperCase() + line.slice(1) + (/[.!]$/.test(line) ? "" : ".") : STALE_FALLBACK;
  return "";
}
