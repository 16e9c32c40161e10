// The report's numbers as the Python phone prints them (format/round: exact ties to even), on cases written by
// Python (tests/unit/phone/test_phone_web_numbers.py passes them in EDGE_AGENT_NUMBER_CASES).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { clock, fixed, percent } from "../src/ui.js";

const cases = JSON.parse(readFileSync(process.env.EDGE_AGENT_NUMBER_CASES, "utf8"));

test("moments, figures and shares read as the Python phone prints them", () => {
  for (const c of cases) {
    assert.equal(clock(c.x), c.clock, `clock(${c.x})`);
    assert.equal(fixed(c.x, 0), c.f0, `fixed(${c.x}, 0)`);
    assert.equal(fixed(c.x, 1), c.f1, `fixed(${c.x}, 1)`);
    assert.equal(`${percent(c.share)}%`, c.pct, `percent(${c.share})`);
  }
});
