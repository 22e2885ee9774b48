import assert from "node:assert/strict";
import { test } from "node:test";

import { clearlyWorse, describeQuality, describeRetrieval } from "../public/js/quality.js";

const report = (similarity, corr, mcd = 6.5) => ({
  quality: {
    speaker_similarity: similarity, speaker_similarity_original: 0.9, mcd_db: mcd, held_out_seconds: 21.4,
    melody: [{ transpose: 0, f0_corr: corr, f0_rmse_cents: 42.4, voiced_seconds: 12 }, { transpose: 3, f0_corr: corr - 0.01, f0_rmse_cents: 50, voiced_seconds: 12 }],
  },
});

test("a report in words and numbers", () => {
  assert.deepEqual(describeQuality(report(0.81, 0.97)), [
    "Sounds like the dataset: 0.81 — strong (the singer's own held-out recordings: 0.90)",
    "Melody kept: F0 correlation 0.97 — kept, off by 42 cents on average; transposed +3: 0.96",
    "Distance from the original (MCD): 6.5 dB — moderate",
    "Measured on 21 s of your recordings the model never trained on.",
  ]);
  assert.match(describeQuality(report(0.5, 0.7, 9))[0], /0\.50 — weak/);
  assert.match(describeQuality(report(0.5, 0.7, 9))[1], /0\.70 — wanders/);
  assert.match(describeQuality(report(0.9, 0.9, 5))[2], /5\.0 dB — close/);
});

test("no report: said why", () => {
  assert.deepEqual(describeQuality({ steps: 10 }), ["No quality report (trained before reports existed)."]);
  assert.deepEqual(describeQuality({ quality: null, quality_error: "ValueError: x" }), ["No quality report: it could not be measured for this model."]);
});

test("clearly worse than the active version only past the threshold", () => {
  assert.equal(clearlyWorse(report(0.78, 0.95), report(0.81, 0.96)), null);
  assert.equal(clearlyWorse(report(0.70, 0.95), report(0.81, 0.96)),
    "Clearly worse than the active model: it sounds less like the dataset (0.70 vs 0.81).");
  assert.match(clearlyWorse(report(0.70, 0.80), report(0.81, 0.96)), /and keeps the melody less well \(0\.80 vs 0\.96\)/);
  assert.equal(clearlyWorse(report(0.5, 0.5), { steps: 3 }), null);
});

test("timbre retrieval: the similarity with and without it, and the ratio conversions use", () => {
  const measured = report(0.74, 0.97);
  measured.quality.cluster_ratio = 0.5;
  measured.quality.similarity_by_ratio = [
    { cluster_ratio: 0, speaker_similarity: 0.71 }, { cluster_ratio: 0.5, speaker_similarity: 0.74 }];
  const line = "Timbre retrieval: 0.71 without, 0.74 at ratio 0.5 (+0.03); conversions use ratio 0.5 unless you choose another.";
  assert.equal(describeQuality(measured)[1], line);
  measured.quality.cluster_ratio = 0;
  measured.quality.similarity_by_ratio[1].speaker_similarity = 0.69;
  assert.match(describeRetrieval(measured.quality), /at ratio 0\.5 \(−0\.02\); conversions use ratio 0 unless/);
  assert.equal(describeRetrieval(report(0.8, 0.9).quality), null, "no cluster model: no line");
});
