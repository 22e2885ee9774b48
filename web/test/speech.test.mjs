import assert from "node:assert/strict";
import { test } from "node:test";

import { reportText } from "../public/js/speechreport.js";
import { voiceChoices } from "../public/js/speechvoice.js";

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

test("an instant voice's line is measured against its sample", () => {
  const report = { to_voice: 0.634, to_base: 0.5, base_voice: { voice: "en_US-joe-medium", chosen: "only" } };
  assert.equal(reportText(report, "instant"),
    "Sounds like your sample: 0.63 (like the text-to-speech voice: 0.50). Spoken first by en_US-joe-medium.");
  assert.match(reportText(report, "trained"), /^Sounds like your voice: 0\.63/);
});

test("the voices a line can be spoken in: the trained model and ready instant voices", () => {
  const profile = "p1";
  const voices = [
    { id: "a", profile_id: profile, name: "Mine", status: "ready", clips: [{ id: "c", status: "ready" }] },
    { id: "b", profile_id: profile, name: "Checking", status: "awaiting_upload", clips: [] },
    { id: "r", profile_id: profile, name: "Refused", status: "rejected", clips: [] },
    { id: "o", profile_id: "p0", name: "Other profile's", status: "ready", clips: [] },
  ];
  assert.deepEqual(voiceChoices([{ id: "m" }], voices, profile), [
    { value: "trained", label: "Your trained voice (the active model)", voice: { kind: "trained" } },
    { value: "instant:a", label: "Mine (instant sample)", voice: { kind: "instant", instant_voice_id: "a" } },
  ]);
  assert.deepEqual(voiceChoices([], voices, profile).map((c) => c.value), ["instant:a"]);
  assert.deepEqual(voiceChoices([], voices.slice(1), profile), []);
  assert.deepEqual(voiceChoices(undefined, undefined, profile), []);
});
