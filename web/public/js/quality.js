// A model version's quality report (`metrics.quality`) in words: the one place the words'
// thresholds live. The numbers come from the training worker, measured on recordings of the
// dataset the model never trained on (gpu/evaluate.py); tiny test models score low.

// Speaker similarity (Resemblyzer cosine): the same singer usually scores above 0.75, another
// person below 0.6.
export const SIMILARITY_WORDS = [[0.85, "very strong"], [0.75, "strong"], [0.65, "fair"], [-Infinity, "weak"]];
// Melody kept (F0 correlation, transpose 0 and +3).
export const MELODY_WORDS = [[0.95, "kept"], [0.85, "mostly kept"], [-Infinity, "wanders"]];
// Mel-cepstral distortion, dB: lower is closer to the original recording.
export const MCD_WORDS = [[6, "close"], [8, "moderate"], [Infinity, "far"]];
// "Clearly worse" than the active version: this much lower similarity or melody correlation.
export const CLEARLY_WORSE = { similarity: 0.05, melody: 0.05 };

function wordAbove(value, table) {
  return table.find(([floor]) => value >= floor)[1];
}

function wordBelow(value, table) {
  return table.find(([ceiling]) => value <= ceiling)[1];
}

const fixed = (value, digits = 2) => Number(value).toFixed(digits);

function melodyAt(quality, transpose) {
  return (quality.melody || []).find((m) => m.transpose === transpose && m.f0_corr !== null && m.f0_corr !== undefined);
}

/** Lines of words and numbers for a report; a single line saying why when there is none. */
export function describeQuality(metrics) {
  const quality = metrics?.quality;
  if (!quality) {
    return [metrics && "quality_error" in metrics
      ? "No quality report: it could not be measured for this model."
      : "No quality report (trained before reports existed)."];
  }
  const lines = [];
  if (quality.speaker_similarity !== null && quality.speaker_similarity !== undefined) {
    const ceiling = quality.speaker_similarity_original;
    lines.push(`Sounds like the dataset: ${fixed(quality.speaker_similarity)} — ${wordAbove(quality.speaker_similarity, SIMILARITY_WORDS)}`
      + (ceiling !== null && ceiling !== undefined ? ` (the singer's own held-out recordings: ${fixed(ceiling)})` : ""));
  }
  const retrieval = describeRetrieval(quality);
  if (retrieval) lines.push(retrieval);
  const plain = melodyAt(quality, 0);
  const moved = (quality.melody || []).find((m) => m.transpose !== 0 && m.f0_corr !== null && m.f0_corr !== undefined);
  if (plain) {
    let line = `Melody kept: F0 correlation ${fixed(plain.f0_corr)} — ${wordAbove(plain.f0_corr, MELODY_WORDS)}`;
    if (plain.f0_rmse_cents !== null && plain.f0_rmse_cents !== undefined) line += `, off by ${Math.round(plain.f0_rmse_cents)} cents on average`;
    if (moved) line += `; transposed +${moved.transpose}: ${fixed(moved.f0_corr)}`;
    lines.push(line);
  }
  if (quality.mcd_db !== null && quality.mcd_db !== undefined) {
    lines.push(`Distance from the original (MCD): ${fixed(quality.mcd_db, 1)} dB — ${wordBelow(quality.mcd_db, MCD_WORDS)}`);
  }
  lines.push(`Measured on ${fixed(quality.held_out_seconds, 0)} s of your recordings the model never trained on.`);
  return lines;
}

/** Timbre retrieval's effect on similarity (ratio 0 against the other ratio measured) and
 * the ratio conversions use by default; null when only ratio 0 was measured (no cluster model). */
export function describeRetrieval(quality) {
  const scores = quality?.similarity_by_ratio || [];
  const off = scores.find((s) => s.cluster_ratio === 0);
  const on = scores.find((s) => s.cluster_ratio !== 0);
  if (!off || !on) return null;
  const change = on.speaker_similarity - off.speaker_similarity;
  const signed = `${change >= 0 ? "+" : "−"}${fixed(Math.abs(change))}`;
  const chosen = quality.cluster_ratio ?? 0;
  return `Timbre retrieval: ${fixed(off.speaker_similarity)} without, ${fixed(on.speaker_similarity)} at ratio ${on.cluster_ratio} (${signed});`
    + ` conversions use ratio ${chosen} unless you choose another.`;
}

/** Why `metrics` scores clearly worse than the active version's, or null. */
export function clearlyWorse(metrics, activeMetrics) {
  const mine = metrics?.quality;
  const theirs = activeMetrics?.quality;
  if (!mine || !theirs) return null;
  const reasons = [];
  const gap = (a, b) => (a === null || a === undefined || b === null || b === undefined ? 0 : b - a);
  const similarity = gap(mine.speaker_similarity, theirs.speaker_similarity);
  if (similarity >= CLEARLY_WORSE.similarity) reasons.push(`sounds less like the dataset (${fixed(mine.speaker_similarity)} vs ${fixed(theirs.speaker_similarity)})`);
  const melody = gap(melodyAt(mine, 0)?.f0_corr, melodyAt(theirs, 0)?.f0_corr);
  if (melody >= CLEARLY_WORSE.melody) reasons.push(`keeps the melody less well (${fixed(melodyAt(mine, 0).f0_corr)} vs ${fixed(melodyAt(theirs, 0).f0_corr)})`);
  if (!reasons.length) return null;
  return `Clearly worse than the active model: it ${reasons.join(" and ")}.`;
}
