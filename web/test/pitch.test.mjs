import assert from "node:assert/strict";
import { test } from "node:test";

import { pitchAdvice } from "../public/js/pitch.js";

const range = (median) => ({ median_hz: median, p5_hz: median / 1.5, p95_hz: median * 1.5, voiced_seconds: 60, method: "fcpe" });

test("an input an octave below the voice: +12, said in words", () => {
  const advice = pitchAdvice({ input: range(110), voice: range(220), interval_semitones: 12, suggested_transpose: 12, keeps_key: true });
  assert.equal(advice.shift, 12);
  assert.equal(advice.text, "This voice sings about an octave higher than this input: +12 suggested.");
});

test("an input above the voice, two octaves and a semitone shift", () => {
  assert.equal(pitchAdvice({ input: range(440), voice: range(220), interval_semitones: -12, suggested_transpose: -12, keeps_key: true }).text,
    "This voice sings about an octave lower than this input: -12 suggested.");
  assert.match(pitchAdvice({ input: range(55), voice: range(220), interval_semitones: 24, suggested_transpose: 24, keeps_key: true }).text,
    /about 2 octaves higher than this input: \+24 suggested/);
  const fifth = pitchAdvice({ input: range(147), voice: range(220), interval_semitones: 6.98, suggested_transpose: 7, keeps_key: false });
  assert.match(fifth.text, /about 7 semitones higher than this input: \+7 suggested\. That is not a whole octave/);
});

test("same range, unknown voice range, nothing measured", () => {
  assert.equal(pitchAdvice({ input: range(220), voice: range(225), interval_semitones: 0.4, suggested_transpose: 0, keeps_key: true }).shift, 0);
  assert.equal(pitchAdvice({ input: range(220), voice: null, suggested_transpose: null }).shift, null);
  assert.deepEqual(pitchAdvice(null), { text: "", shift: null });
});
