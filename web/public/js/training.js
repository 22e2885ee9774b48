// Training: the start button (with why it is disabled), live progress with a loss chart,
// cancel, a notification when done, and the model versions.

import { JobPanel, quotaSpent } from "./jobpanel.js";
import { ABPlayer } from "./abplayer.js";
import { LossChart, stopSentence } from "./losschart.js";
import { notifyWhenHidden, offerNotifications } from "./notify.js";
import { clearlyWorse, describeQuality } from "./quality.js";
import { $, announce, el, formatDate, formatDuration, formatBytes, guarded, plural } from "./ui.js";

const ACTIVE = new Set(["queued", "running"]);
const PHASES = {
  queued: "Waiting for a GPU…", download: "Fetching your recordings…", prepare: "Slicing and resampling…",
  features: "Extracting pitch and voice features…", train: "Training", upload: "Saving the model…",
  evaluate: "Measuring the new model on recordings it never trained on…",
};

export class TrainingPanel extends JobPanel {
  constructor(ctx) {
    super(ctx, { path: "trainings", table: "training_jobs", activeStatuses: ACTIVE, noun: "Training" });
    this.models = [];
    this.chart = new LossChart($("loss-chart"));
    this.preview = new ABPlayer($("model-ab"));
    this.comparing = []; // ids of the (at most two) versions picked to compare
    $("train-start").addEventListener("click", guarded(() => this.start()));
    $("train-cancel").addEventListener("click", guarded(() => this.cancel()));
    $("train-preset").value = ctx.config.trainingPreset || "standard";
  }

  show() {
    this.models = [];
    this.comparing = [];
    this.preview.stop();
    $("model-preview").hidden = true;
    this.chart.clear();
    super.show();
  }

  async refresh() {
    const profile = this.ctx.profile;
    if (!profile) return false;
    const [jobs, models] = await Promise.all([
      this.ctx.api.get(`/profiles/${profile.id}/trainings?limit=5`),
      this.ctx.api.get(`/profiles/${profile.id}/models`),
    ]);
    this.jobs = jobs;
    const ended = this.takeEnded();
    const modelsChanged = JSON.stringify(models) !== JSON.stringify(this.models);
    this.models = models;
    this.renderRun();
    this.renderButton();
    if (modelsChanged) {
      this.renderModels();
      this.ctx.conversion.renderModels(models);
    }
    if (ended) await this.finished(ended);
    return Boolean(this.active);
  }

  async start() {
    const profile = this.ctx.profile;
    $("train-start").disabled = true;
    try {
      const job = await this.ctx.api.post(`/profiles/${profile.id}/trainings`, { preset: $("train-preset").value });
      this.jobs.unshift(job);
      this.watching = job.id;
      this.chart.clear();
      announce("Training started.");
      offerNotifications($("notify-ask"));
    } finally {
      await this.ctx.profiles.refreshQuota().catch(() => null);
      this.renderButton();
      this.live.start();
    }
  }

  /** Why training cannot start now, or null when it can. */
  blocker() {
    const { profile, quota, limits } = this.ctx;
    if (!profile || !quota) return "Loading…";
    if (this.active) return "A training is running for this voice.";
    const training = quota.training;
    if (training.remaining <= 0) {
      return quotaSpent(training, "trainings", "this month");
    }
    const { ready_seconds: ready, pending_files: pending } = profile.dataset;
    if (pending > 0) return `Wait until ${plural(pending, "file")} ${pending === 1 ? "is" : "are"} checked.`;
    if (ready < limits.min_dataset_seconds) {
      return `Add ${formatDuration(limits.min_dataset_seconds - ready)} more of usable singing (at least ${formatDuration(limits.min_dataset_seconds)}).`;
    }
    if (ready > limits.max_dataset_seconds) {
      return `Training uses at most ${formatDuration(limits.max_dataset_seconds)}; delete some files.`;
    }
    return null;
  }

  renderButton() {
    const reason = this.blocker();
    const button = $("train-start");
    button.disabled = Boolean(reason);
    const quota = this.ctx.quota?.training;
    const left = quota ? ` (${quota.remaining} of ${quota.limit} left this month, resets ${formatDate(quota.resets_at)})` : "";
    const last = this.jobs[0];
    const failed = last?.status === "failed" ? ` The last training failed: ${last.error_message || last.error_code}` : "";
    $("train-reason").textContent = (reason || `Ready to train${left}.`) + failed;
  }

  renderRun() {
    const job = this.shown;
    $("train-run").hidden = !job;
    if (!job) return;
    const p = job.progress || {};
    const running = ACTIVE.has(job.status);
    $("train-cancel").hidden = !running;
    if (!running) $("notify-ask").hidden = true;
    let text;
    if (job.status === "succeeded") text = `Training finished: the new model is active. ${stopSentence(p)}`.trim();
    else if (job.status === "failed") text = `Training failed: ${job.error_message || job.error_code}`;
    else if (job.status === "canceled") text = "Training canceled; it was not counted against your quota.";
    else if (p.phase === "train" && p.total_steps) {
      text = `Training: step ${p.step} of ${p.total_steps}` + (p.eta_s ? `, about ${formatDuration(p.eta_s)} left` : "");
    } else text = PHASES[p.phase] || PHASES.queued;
    if ($("train-status").textContent !== text) $("train-status").textContent = text;
    const bar = $("train-progress");
    bar.value = job.status === "succeeded" ? 100 : p.total_steps ? (100 * (p.step || 0)) / p.total_steps : 0;
    bar.dataset.step = p.step ?? "";
    this.chart.draw(p.history || [], p.val_history || []);
  }

  async finished(job) {
    const words = { succeeded: "Your voice model is ready.", failed: "Training failed.", canceled: "Training canceled." };
    announce(words[job.status] || "Training ended.");
    notifyWhenHidden("svc-pipeline", `${this.ctx.profile.name}: ${words[job.status] || "training ended"}`);
    await this.ctx.profiles.refreshQuota().catch(() => null);
    this.renderButton();
  }

  renderModels() {
    $("models-empty").hidden = this.models.length > 0;
    const active = this.models.find((m) => m.active);
    this.comparing = this.comparing.filter((id) => this.models.some((m) => m.id === id));
    $("model-list").replaceChildren(...this.models.map((model) => {
      const worse = !model.active && active ? clearlyWorse(model.metrics, active.metrics) : null;
      const hasPreview = Boolean(model.metrics?.quality?.preview_seconds);
      return el("li", { dataset: { modelId: model.id } },
        el("span", {}, `Model of ${formatDate(model.created_at)}`),
        el("span", { class: "hint" }, [model.metrics?.steps && `${model.metrics.steps} steps`, formatBytes(model.size_bytes), stopSentence(model.metrics)].filter(Boolean).join(" · ")),
        model.active ? el("span", { class: "badge" }, "Active")
          : el("button", { type: "button", class: "secondary", onclick: guarded(() => this.activate(model)) }, "Use this model"),
        el("span", { class: "links" },
          el("button", { type: "button", class: "secondary", onclick: guarded((e) => this.download(model, e.target.parentNode)) }, "Download")),
        hasPreview && el("button", { type: "button", class: "secondary", onclick: guarded(() => this.listen(model)) }, "Listen to the preview"),
        hasPreview && el("label", {},
          el("input", { type: "checkbox", checked: this.comparing.includes(model.id), onchange: guarded((e) => this.pick(model, e.target.checked)) }),
          " compare"),
        el("div", { class: "quality" }, ...describeQuality(model.metrics).map((line) => el("p", {}, line))),
        worse && el("p", { class: "worse", role: "note" }, worse),
      );
    }));
  }

  label(model) {
    return `model of ${formatDate(model.created_at)}${model.active ? " (active)" : ""}`;
  }

  /** The held-out original against this version's conversion of it, loudness-matched. */
  async listen(model) {
    const links = await this.ctx.api.get(`/models/${model.id}/preview`);
    $("model-preview").hidden = false;
    $("model-preview-title").textContent = `Preview of the ${this.label(model)}: a recording it never trained on, and its conversion.`;
    await this.preview.load(links.original_url, links.converted_url,
      ["Original (held out)", "Converted by this model", "A: original", "B: converted"]);
  }

  /** Two versions picked: their conversions of the held-out audio, side by side. */
  async pick(model, checked) {
    this.comparing = this.comparing.filter((id) => id !== model.id);
    if (checked) this.comparing.push(model.id);
    if (this.comparing.length > 2) this.comparing.shift();
    this.renderModels();
    if (this.comparing.length < 2) return;
    const [first, second] = this.comparing.map((id) => this.models.find((m) => m.id === id))
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
    const [a, b] = await Promise.all([first, second].map((m) => this.ctx.api.get(`/models/${m.id}/preview`)));
    $("model-preview").hidden = false;
    $("model-preview-title").textContent = `Comparing the ${this.label(first)} (A) with the ${this.label(second)} (B): `
      + "each one's conversion of the same held-out recording (if the dataset changed between them, the recordings may differ).";
    await this.preview.load(a.converted_url, b.converted_url,
      [`A: ${this.label(first)}`, `B: ${this.label(second)}`, "A: older", "B: newer"]);
  }

  async activate(model) {
    await this.ctx.api.post(`/profiles/${model.profile_id}/models/${model.id}/activate`);
    announce("Model activated: new conversions use it.");
    this.live.start();
  }

  /** Swaps the button for the short-lived links (a browser blocks several automatic downloads);
   * `cluster.pt` (timbre retrieval, for the fork's `svc infer -k`) when the version has one. */
  async download(model, holder) {
    const links = await this.ctx.api.get(`/models/${model.id}/download`);
    holder.replaceChildren(
      el("a", { class: "button", href: links.model_url, download: "" }, "model.pth"),
      el("a", { class: "button", href: links.config_url, download: "" }, "config.json"),
      ...(links.cluster_url ? [el("a", { class: "button", href: links.cluster_url, download: "" }, "cluster.pt")] : []),
      el("span", { class: "hint" }, `links valid for ${formatDuration(links.expires_in)}`),
    );
    holder.querySelector("a").focus();
  }
}
