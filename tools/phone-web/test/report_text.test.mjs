// The report screen's plain-text rules, in Node: the same words as the Python client's render_report
// (edge_agent/feedback/quality.py). tests/unit/phone/test_phone_web_device.py runs this with `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { NO_SPEECH, SPEAKERS_UNCERTAIN, VOICEPRINT_UNHEARD, audioGap, emptyReportText, speakersNote } from "../src/report.js";

test("a visit with no speech at all: the microphone may be muted", () => {
  assert.equal(emptyReportText({ speech_lost_s: 0, dropped_segments: 0, failed_segments: 0 }), NO_SPEECH);
  assert.equal(emptyReportText(null), NO_SPEECH);
});

test("a visit whose speech was heard but lost is not reported as silence", () => {
  const q = { audio_s: 11, speech_lost_s: 10.4, dropped_segments: 0, failed_segments: 3 };
  const text = emptyReportText(q);
  assert.notEqual(text, NO_SPEECH);
  assert.match(text, /none of it could be transcribed/);
  assert.doesNotMatch(text, /muted/);
  assert.match(audioGap(q), /could not be transcribed/);
});

test("a voiceprint never heard in the visit says so, before the un-enrolled note", () => {
  assert.equal(speakersNote({ voiceprint_unheard: true, speakers_uncertain: true }), VOICEPRINT_UNHEARD);
  assert.match(speakersNote({ voiceprint_unheard: true }), /enrolled voice was not heard/);
  assert.equal(speakersNote({ speakers_uncertain: true }), SPEAKERS_UNCERTAIN);
  assert.equal(speakersNote({}), "");
});
