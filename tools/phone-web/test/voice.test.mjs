// The enrolment recording is zeroed after EnrollVoice, also when the call fails.
// tests/unit/phone/test_phone_web_device.py runs this with `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { sendVoice } from "../src/voice.js";

const voice = () => Int16Array.from({ length: 40000 }, (_, i) => (i % 200) - 100 || 7);

test("a refused enrolment leaves no voice in the page's memory", async () => {
  const pcm = voice();
  let sent = 0;
  const failing = async (method, _req, opts) => { sent = opts.stream.length; assert.equal(method, "EnrollVoice"); throw new Error("refused"); };
  await assert.rejects(sendVoice(failing, pcm, 48000), /refused/);
  assert.equal(sent, 3); // 80,000 bytes in 32 KiB chunks
  assert.ok(pcm.every((v) => v === 0));
});

test("an accepted enrolment also zeroes it, and the first chunk carries the rate", async () => {
  const pcm = voice();
  let first = null;
  const ok = async (_m, _r, opts) => { first = opts.stream[0]; return { audio_s: 2 }; };
  assert.deepEqual(await sendVoice(ok, pcm, 44100), { audio_s: 2 });
  assert.equal(first.sample_rate, 44100);
  assert.ok(pcm.every((v) => v === 0));
});
