// The voiceprint's speaker model is kept, sent with it, and a device's "not used: re-enrol" answer is shown.
// tests/unit/phone/test_phone_web_device.py runs this with `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { STALE_FALLBACK, enrolledVoiceprint, readVoiceprint, startNotice, voiceprintFields } from "../src/voiceprint.js";

const MODEL = "speaker_ge2e.onnx@0123456789abcdef";

test("enrolment keeps the model with the values; a start sends both", () => {
  const vp = enrolledVoiceprint({ voiceprint_values: [0.5, 0.25], audio_s: 12, voiceprint_model: MODEL });
  assert.deepEqual(vp, { values: [0.5, 0.25], model: MODEL, stale: false });
  assert.deepEqual(voiceprintFields(readVoiceprint(vp)), { voiceprint_values: [0.5, 0.25], voiceprint_model: MODEL });
});

test("a phone from before (bare array) or a device that did not say sends the values alone", () => {
  assert.deepEqual(voiceprintFields(readVoiceprint([0.5, 0.25])), { voiceprint_values: [0.5, 0.25] });
  const old = enrolledVoiceprint({ voiceprint_values: [0.5], audio_s: 12 }); // an old device: no voiceprint_model
  assert.deepEqual(voiceprintFields(readVoiceprint(old)), { voiceprint_values: [0.5] });
  assert.deepEqual(voiceprintFields(readVoiceprint(undefined)), { voiceprint_values: [] }); // never enrolled: no model alone
  // an id no device would take back (spaces, too long) is not kept: the start must not be refused for it
  assert.equal(enrolledVoiceprint({ voiceprint_values: [1], voiceprint_model: "a b" }).model, "");
  assert.equal(enrolledVoiceprint({ voiceprint_values: [1], voiceprint_model: "x".repeat(129) }).model, "");
});

test("a stale voiceprint: the device's one line is shown; otherwise nothing", () => {
  const notice = "your voice profile was made by an older speaker model: re-enrol on the phone";
  assert.equal(startNotice({ voiceprint_use: 4, notice }), "Your voice profile was made by an older speaker model: re-enrol on the phone.");
  assert.equal(startNotice({ voiceprint_use: 4, notice: "" }), STALE_FALLBACK);
  assert.equal(startNotice({ voiceprint_use: 4, notice: "line one\nline two" }), "Line one.");
  for (const use of [0, 1, 2, 3]) assert.equal(startNotice({ voiceprint_use: use, notice: "" }), "");
});
