import assert from "node:assert/strict";
import { test } from "node:test";

import { mergeCurves, stopSentence } from "../public/js/losschart.js";

test("the held-out curve shares the step axis with the training losses", () => {
  const data = mergeCurves([[1, 5, 2, 3], [2, 4, 2, 2.5], [4, 3, 2, 2]], [[2, 9], [3, 8]]);
  assert.deepEqual(data[0], [1, 2, 3, 4]);
  assert.deepEqual(data[3], [3, 2.5, null, 2]);
  assert.deepEqual(data[4], [null, 9, 8, null]);
});

test("why a training stopped, in words", () => {
  assert.equal(stopSentence({ stop_reason: "plateau", best_step: 120 }),
    "Stopped early: the held-out audio stopped improving. The best model on the held-out audio, at step 120, is the one kept.");
  assert.match(stopSentence({ stop_reason: "step_limit", best_step: 6 }), /^Trained to the step limit\. .*step 6/);
  assert.match(stopSentence({ stop_reason: "budget" }), /GPU time ran out/);
  assert.equal(stopSentence({}), "");
  assert.equal(stopSentence(null), "");
});
