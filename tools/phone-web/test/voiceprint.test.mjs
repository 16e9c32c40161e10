// One voiceprint per speaker model: kept with its model, the device's sent, the others kept, a room without one said
// before the start, the single voiceprint of an app from before migrated; a device's "not used: re-enrol" shown.
// tests/unit/phone/test_phone_web_device.py runs this with `node --test`; tests/unit/phone/test_voiceprints_per_model.py
// also sets EDGE_AGENT_VOICEPRINT_CASES to cases whose answers come from the Python phone (edge_agent/phone/keys.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  MAX_VOICEPRINTS, OTHER_MODEL_NOTICE, STALE_FALLBACK, chooseVoiceprint, enrolled, preStartNotice, readVoiceprints, startNotice,
  voiceprintFields, voiceprintRecord,
} from "../src/voiceprint.js";

const OLD = "speaker_ge2e.onnx@0123456789abcdef";
const NEW = "speaker_ge2e.onnx@fedcba9876543210";
const enrol = (entries, model, values) => enrolled(entries, { voiceprint_values: values, audio_s: 12, voiceprint_model: model });

test("enrolling in a room of another model adds it; each device gets its own model's voiceprint", () => {
  let entries = enrol([], OLD, [0.5, 0.25]);
  entries = enrol(entries, NEW, [0.1, 0.2]);
  assert.deepEqual(entries, [{ model: OLD, values: [0.5, 0.25] }, { model: NEW, values: [0.1, 0.2] }]);
  assert.deepEqual(voiceprintFields(chooseVoiceprint(entries, OLD)), { voiceprint_values: [0.5, 0.25], voiceprint_model: OLD });
  assert.deepEqual(voiceprintFields(chooseVoiceprint(entries, NEW)), { voiceprint_values: [0.1, 0.2], voiceprint_model: NEW });
  assert.equal(preStartNotice(entries, OLD), "");
  assert.equal(preStartNotice(entries, NEW), "");
  // enrolling again replaces only that model's, and makes it the most recent
  entries = enrol(entries, OLD, [0.7]);
  assert.deepEqual(entries.map((e) => e.model), [NEW, OLD]);
  assert.deepEqual(chooseVoiceprint(entries, NEW).values, [0.1, 0.2]);
});

test("a room of a model the phone has none for: said before the start, nothing sent", () => {
  const entries = enrol([], OLD, [0.5]);
  assert.equal(chooseVoiceprint(entries, NEW), null);
  assert.equal(preStartNotice(entries, NEW), OTHER_MODEL_NOTICE);
  assert.match(OTHER_MODEL_NOTICE, /enrol here/);
  assert.match(OTHER_MODEL_NOTICE, /can start without it/);
  assert.deepEqual(voiceprintFields(null), { voiceprint_values: [] });
  assert.equal(preStartNotice([], NEW), ""); // never enrolled: nothing to say about models
});

test("a device that does not state its model gets the most recent voiceprint", () => {
  const entries = enrol(enrol([], OLD, [0.5]), NEW, [0.1]);
  assert.deepEqual(chooseVoiceprint(entries, ""), { model: NEW, values: [0.1] });
  assert.equal(preStartNotice(entries, ""), "");
});

test("at most MAX_VOICEPRINTS models, the oldest dropped", () => {
  let entries = [];
  for (let i = 0; i <= MAX_VOICEPRINTS; i++) entries = enrol(entries, `m-${i}`, [i]);
  assert.deepEqual(entries.map((e) => e.model), Array.from({ length: MAX_VOICEPRINTS }, (_, i) => `m-${i + 1}`));
});

test("an app from before: its one voiceprint is migrated into the map", () => {
  // {values, model, stale}: one voiceprint with its model
  let r = readVoiceprints({ values: [0.5, 0.25], model: OLD, stale: true });
  assert.deepEqual(r, { entries: [{ model: OLD, values: [0.5, 0.25] }], migrated: true });
  // a bare array: model not known, sent without one (used unchecked, as before) unless this room's model has one
  r = readVoiceprints([0.5, 0.25]);
  assert.deepEqual(r, { entries: [{ model: "", values: [0.5, 0.25] }], migrated: true });
  assert.deepEqual(voiceprintFields(chooseVoiceprint(r.entries, NEW)), { voiceprint_values: [0.5, 0.25] });
  assert.deepEqual(chooseVoiceprint(enrol(r.entries, NEW, [0.1]), NEW).values, [0.1]);
  // the new form reads back as it was written, and is not migrated again; an app rolled back reads the most recent
  const rec = voiceprintRecord(enrol(enrol([], OLD, [0.5]), NEW, [0.1]));
  assert.deepEqual(rec.values, [0.1]);
  assert.equal(rec.model, NEW);
  assert.deepEqual(readVoiceprints(JSON.parse(JSON.stringify(rec))), { entries: rec.entries, migrated: false });
  // nothing stored, or junk: no voiceprint (and no model sent alone)
  for (const junk of [null, undefined, {}, { entries: [{ model: OLD }] }, { values: "x" }]) {
    assert.deepEqual(readVoiceprints(junk).entries, [], JSON.stringify(junk));
  }
  // an id no device would take back (spaces, too long) is not kept: the start must not be refused for it
  assert.equal(enrol([], "a b", [1])[0].model, "");
  assert.equal(enrol([], "x".repeat(129), [1])[0].model, "");
});

test("a stale voiceprint: the device's one line is shown; otherwise nothing", () => {
  const notice = "your voice profile was made by an older speaker model: re-enrol on the phone";
  assert.equal(startNotice({ voiceprint_use: 4, notice }), "Your voice profile was made by an older speaker model: re-enrol on the phone.");
  assert.equal(startNotice({ voiceprint_use: 4, notice: "" }), STALE_FALLBACK);
  assert.equal(startNotice({ voiceprint_use: 4, notice: "line one\nline two" }), "Line one.");
  for (const use of [0, 1, 2, 3]) assert.equal(startNotice({ voiceprint_use: use, notice: "" }), "");
});

const file = process.env.EDGE_AGENT_VOICEPRINT_CASES;
const fixtures = file ? JSON.parse(readFileSync(file, "utf8")) : null;

test("the same choices as the Python phone on every case", { skip: !fixtures && "no EDGE_AGENT_VOICEPRINT_CASES" }, () => {
  assert.equal(MAX_VOICEPRINTS, fixtures.max);
  assert.equal(OTHER_MODEL_NOTICE, fixtures.notice);
  assert.ok(fixtures.cases.length >= 10);
  for (const c of fixtures.cases) {
    let entries = [];
    for (const [model, values] of c.enrolments) entries = enrol(entries, model, values);
    assert.deepEqual(entries.map((e) => [e.model, e.values]), c.kept, JSON.stringify(c));
    const got = chooseVoiceprint(entries, c.device);
    assert.deepEqual(got ? [got.model, got.values] : null, c.chosen, JSON.stringify(c));
    assert.equal(preStartNotice(entries, c.device) !== "", c.said, JSON.stringify(c));
  }
});
