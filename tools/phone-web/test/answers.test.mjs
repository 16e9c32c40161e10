// The app words the device's answers as the Python phone does (edge_agent/phone/answers.py): a refusal, a limit, a
// fault, capture that could not start, a press of the room button that could not start the visit, a visit with no
// report. tests/unit/phone/test_phone_web_device.py runs this with EDGE_AGENT_ANSWER_CASES pointing at the lines the
// Python phone says on the same answers; without them, the built-in cases below still run.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { buttonLine, endedWithoutReport, friendly, noReportLine } from "../src/device.js";
import { RpcError, Status } from "../src/grpcweb.js";

const file = process.env.EDGE_AGENT_ANSWER_CASES;
const fixtures = file ? JSON.parse(readFileSync(file, "utf8")) : null;

test("the Python phone's lines on every case", { skip: !fixtures && "no EDGE_AGENT_ANSWER_CASES" }, () => {
  assert.ok(fixtures.answers.length >= 8 && fixtures.buttons.length >= 2 && fixtures.no_report.length >= 5);
  for (const c of fixtures.answers) assert.equal(friendly(new RpcError(Status[c.code], c.details)), c.line, JSON.stringify(c));
  for (const c of fixtures.buttons) assert.equal(buttonLine(c.failure), c.line, JSON.stringify(c));
  for (const c of fixtures.no_report) assert.equal(noReportLine(c.reason), c.line, JSON.stringify(c));
});

test("a device fault is not a refusal", () => {
  const line = friendly(new RpcError(Status.INTERNAL, "the report could not be built; the visit was ended and wiped"));
  assert.equal(line, "Fault on the room device: the report could not be built; the visit was ended and wiped");
});

test("only a device with the no-report capability is read", () => {
  const ended = [{ visit_id: "v-1", reason: 1 }];
  assert.deepEqual(endedWithoutReport({ capabilities: ["own-visit"], ended_without_report: ended }), []);
  assert.deepEqual(endedWithoutReport({ capabilities: ["no-report"], ended_without_report: ended }), ended);
  assert.equal(noReportLine(99), "No report for this visit: the room device ended it without one.");
});
