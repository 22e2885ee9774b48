import assert from "node:assert/strict";
import { test } from "node:test";

import { reportText } from "../public/js/speechreport.js";

test("a text job's report in words", () => {
  const report = {
    to_voice: 0.812, to_base: 0.4249,
    base_voice: { engine: "kokoro", voice: "af_heart", chosen: "similarity" },
  };
  assert.equal(reportText(report),
    "Sounds like your voice: 0.81 (like the text-to-speech voice: 0.42). Spoken first by af_heart, the closest of its voices to yours.");
});

test("a voice without a centroid reports only the base voice", () => {
  const report = { to_voice: null, to_base: 0.9, base_voice: { voice: "en_US-joe-medium", chosen: "only" } };
  assert.equal(reportText(report), "Spoken first by en_US-joe-medium.");
  assert.equal(reportText(null), "");
});
