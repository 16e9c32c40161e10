// The clinician's voiceprints as this phone keeps them: one per speaker model that made them
// (EnrollVoiceResponse.voiceprint_model). A device uses only a voiceprint of its own model (another model's scores
// would mix up clinician and patient); while IT updates the fleet room by room, rooms of two releases may run two
// models, so the phone keeps one for each (at most MAX_VOICEPRINTS, the oldest dropped) and sends the one of the
// device's model (DeviceInfo.speaker_model). The same rule as edge_agent/phone/keys.py (ClinicianKeys.voiceprint_for).
// tests/unit/phone/test_phone_web_device.py and test_voiceprints_per_model.py run test/voiceprint.test.mjs with `node --test`.

// what a device takes back as StartVisitRequest.voiceprint_model (printable ASCII, no spaces, <= 128)
const MODEL_ID = /^[!-~]{1,128}$/;
export const MAX_VOICEPRINTS = 3;
export const VOICEPRINT_STALE = 4; // VoiceprintUse: made by another speaker model, not used
export const STALE_FALLBACK = "Your voice profile was made by an older speaker model: re-enrol on the phone.";
// said before a start when the phone holds voiceprints but none of this room device's model (as the Python phone says)
export const OTHER_MODEL_NOTICE = "This room uses another voice model: enrol here to use your voice profile in this room too "
  + "(your other rooms keep theirs); the visit can start without it.";

const model = (m) => (typeof m === "string" && MODEL_ID.test(m) ? m : "");
const isValues = (v) => Array.isArray(v) && v.every((x) => typeof x === "number");

// The vault's "voiceprint" record -> {entries: [{model, values}] oldest first, migrated}. Stored now as
// {entries, values, model} (values/model repeat the most recent entry, so an app rolled back to one voiceprint reads
// that one). Records from before are migrated: {values, model[, stale]} (one voiceprint and its model) and a bare
// array (model unknown: sent without one, used unchecked as before) become the one entry; `migrated` says to write
// the record back in the new form.
export function readVoiceprints(stored) {
  if (isValues(stored)) return { entries: stored.length ? [{ model: "", values: stored }] : [], migrated: true };
  if (stored && Array.isArray(stored.entries)) {
    const entries = [];
    for (const e of stored.entries) if (e && isValues(e.values) && e.values.length) keep(entries, { model: model(e.model), values: e.values });
    return { entries, migrated: false };
  }
  if (stored && isValues(stored.values)) {
    return { entries: stored.values.length ? [{ model: model(stored.model), values: stored.values }] : [], migrated: true };
  }
  return { entries: [], migrated: false };
}

// What the vault keeps for these entries.
export function voiceprintRecord(entries) {
  const last = entries[entries.length - 1];
  return { entries, values: last ? last.values : [], model: last ? last.model : "" };
}

// An entry in place: replaces the one of the same model (and makes it the most recent), keeps the others, drops the
// oldest beyond MAX_VOICEPRINTS. Returns the array.
function keep(entries, entry) {
  const i = entries.findIndex((e) => e.model === entry.model);
  if (i >= 0) entries.splice(i, 1);
  entries.push(entry);
  entries.splice(0, Math.max(0, entries.length - MAX_VOICEPRINTS));
  return entries;
}

// The entries after an enrolment (a new array): this device's model added or replaced, the other models kept.
export function enrolled(entries, response) {
  return keep(entries.slice(), { model: model(response.voiceprint_model), values: Array.from(response.voiceprint_values || []) });
}

// The voiceprint to send to a device attributing with `deviceModel` (DeviceInfo.speaker_model), or null (none this
// device would use). The device states its model: that model's, else one of a model not known (from before phones
// kept it: sent without one, used unchecked as it always was), else null. It does not (a release from before the
// field, or no enrolment there): the most recent, as before.
export function chooseVoiceprint(entries, deviceModel) {
  if (!entries.length) return null;
  if (!deviceModel) return entries[entries.length - 1];
  return entries.find((e) => e.model === deviceModel) || entries.find((e) => e.model === "") || null;
}

// The line to show before a start: the phone holds voiceprints, but none this room's device would use.
export function preStartNotice(entries, deviceModel) {
  return entries.length && !chooseVoiceprint(entries, deviceModel) ? OTHER_MODEL_NOTICE : "";
}

// The StartVisitRequest fields that carry it: the model id only with the values it names.
export function voiceprintFields(vp) {
  const out = { voiceprint_values: vp ? vp.values : [] };
  if (vp && vp.values.length && vp.model) out.voiceprint_model = vp.model;
  return out;
}

// One line to show after a start: the device's notice when it did not use the voiceprint (re-enrol), else "".
export function startNotice(response) {
  const line = String(response.notice || "").split(/\r?\n/)[0].replace(/[^\P{C}]/gu, " ").trim().slice(0, 200);
  if (response.voiceprint_use === VOICEPRINT_STALE) return line ? line.charAt(0).toUpperCase() + line.slice(1) + (/[.!]$/.test(line) ? "" : ".") : STALE_FALLBACK;
  return "";
}
