// The training loss curve, from the history the worker keeps on the job row (uPlot).

const SERIES = [
  { label: "generator", stroke: "#3246c8" },
  { label: "discriminator", stroke: "#b3261e" },
  { label: "mel", stroke: "#1d7a3a" },
];

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

  /** history: [[step, loss_g, loss_d, mel_loss], ...] */
  draw(history) {
    if (!window.uPlot || history.length < 2 || history.length === this.points && this.plot) return;
    const data = [0, 1, 2, 3].map((i) => history.map((point) => point[i]));
    this.points = history.length;
    this.holder.dataset.points = String(history.length);
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
