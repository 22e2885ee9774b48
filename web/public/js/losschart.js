// The training loss curves, from the history the worker keeps on the job row (uPlot): the
// training losses at each report and the held-out (validation) loss at each validation
// (every VC_VALIDATE_EVERY_STEPS steps and at the end).

const SERIES = [
  { label: "generator", stroke: "#3246c8" },
  { label: "discriminator", stroke: "#b3261e" },
  { label: "mel", stroke: "#1d7a3a" },
  { label: "held-out mel", stroke: "#8a5a00", dash: [6, 4] },
];

/** One x axis for both curves: each step once, a missing value null (uPlot spans the gap). */
export function mergeCurves(history, validation) {
  const rows = new Map();
  for (const [step, g, d, mel] of history) rows.set(step, [step, g, d, mel, null]);
  for (const [step, loss] of validation) {
    const row = rows.get(step) || [step, null, null, null, null];
    row[4] = loss;
    rows.set(step, row);
  }
  const sorted = [...rows.values()].sort((a, b) => a[0] - b[0]);
  return [0, 1, 2, 3, 4].map((i) => sorted.map((row) => row[i]));
}

export class LossChart {
  constructor(holder) {
    this.holder = holder;
    this.plot = null;
    this.points = 0;
  }

  clear() {
    this.plot?.destroy();
    this.plot = null;
    this.points = 0;
    this.holder.replaceChildren();
  }

  /** history: [[step, loss_g, loss_d, mel_loss], ...]; validation: [[step, val_loss], ...] */
  draw(history, validation = []) {
    const points = history.length + validation.length;
    if (!window.uPlot || history.length < 2 || points === this.points && this.plot) return;
    const data = mergeCurves(history, validation);
    this.points = points;
    this.holder.dataset.points = String(history.length);
    this.holder.dataset.validationPoints = String(validation.length);
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const width = Math.max(280, Math.min(640, this.holder.clientWidth || 640));
    this.plot = new window.uPlot({
      width, height: 180,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: "loss" }],
      series: [{ label: "step" }, ...SERIES.map((s) => ({ ...s, width: 1.5, spanGaps: true }))],
    }, data, this.holder);
  }
}

/** Why a training ended, in words, from a model version's metrics or a job's progress. */
export function stopSentence(info) {
  const best = info?.best_step ? ` The best model on the held-out audio, at step ${info.best_step}, is the one kept.` : "";
  if (info?.stop_reason === "plateau") return `Stopped early: the held-out audio stopped improving.${best}`;
  if (info?.stop_reason === "step_limit") return `Trained to the step limit.${best}`;
  if (info?.stop_reason === "budget") return "Stopped: this month's GPU time ran out; the checkpoints are kept.";
  return "";
}
