// The app's protocol rule (src/compat.js) gives the answers edge_agent/protocol.py gives on the same cases.
// tests/unit/phone/test_protocol_compat.py runs this with `node --test` and EDGE_AGENT_COMPAT_CASES pointing at
// the cases it computed in Python; without them, the built-in cases below still run.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { deviceCompatibility, OLDEST_DEVICE_PROTOCOL, PROTOCOL_VERSION, UPDATE_APP, UPDATE_DEVICE } from "../src/compat.js";

const file = process.env.EDGE_AGENT_COMPAT_CASES;
const fixtures = file ? JSON.parse(readFileSync(file, "utf8")) : null;

test("the same versions as the Python side", { skip: !fixtures && "no EDGE_AGENT_COMPAT_CASES" }, () => {
  assert.equal(PROTOCOL_VERSION, fixtures.protocol_version);
  assert.equal(OLDEST_DEVICE_PROTOCOL, fixtures.oldest);
});

test("the same answers as edge_agent.protocol on every case", { skip: !fixtures && "no EDGE_AGENT_COMPAT_CASES" }, () => {
  assert.ok(fixtures.cases.length > 10);
  for (const c of fixtures.cases) {
    const got = deviceCompatibility(c.version, c.oldest, c.newest);
    assert.deepEqual([got.usable, got.action], [c.usable, c.action], JSON.stringify(c));
  }
});

test("a newer device: one line telling the clinician to update the app", () => {
  const r = deviceCompatibility(PROTOCOL_VERSION + 1);
  assert.equal(r.usable, false);
  assert.equal(r.action, UPDATE_APP);
  assert.match(r.message, /update the app/);
  assert.ok(!r.message.includes("\n"));
});

test("an older or unversioned device: tell IT to update the device", () => {
  for (const v of [0, undefined, null, "", "x", -1, 1.5]) {
    const r = deviceCompatibility(v);
    assert.equal(r.usable, false, String(v));
    assert.equal(r.action, UPDATE_DEVICE, String(v));
    assert.match(r.message, /update the room device/);
  }
  assert.equal(deviceCompatibility(1, 2, 3).action, UPDATE_DEVICE);
});

test("this release's device is usable", () => {
  assert.deepEqual(deviceCompatibility(PROTOCOL_VERSION), { usable: true, action: "", message: "" });
  assert.equal(deviceCompatibility(String(PROTOCOL_VERSION)).usable, true);
});
