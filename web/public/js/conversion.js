// Conversion: upload a stem with its settings, follow the job, then compare before/after
// and download.

import { ABPlayer } from "./abplayer.js";
import { JobPanel, quotaSpent } from "./jobpanel.js";
import { pitchAdvice } from "./pitch.js";
import { contentTypeOf, putFile } from "./upload.js";
import { $, announce, el, formatDate, formatDuration, guarded } from "./ui.js";

const ACTIVE = new Set(["awaiting_upload", "queued", "running"]);
const PHASES = {
  awaiting_upload: "Uploading your stem…", queued: "Waiting for a GPU…", download: "Fetching your stem…",
  load_model: "Loading the voice model…", pitch: "Measuring your stem's pitch…", convert: "Converting",
  upload: "Saving the result…",
};

export class ConversionPanel extends JobPanel {
  constructor(ctx) {
    super(ctx, { path: "conversions", table: "conversion_jobs", activeStatuses: ACTIVE, noun: "Conversion" });
    this.models = [];
    this.uploading = null; // {progress} while this page PUTs the stem
    this.player = new ABPlayer($("ab-player"));
    $("convert-form").addEventListener("submit", guarded((event) => this.submit(event)));
    $("convert-cancel").addEventListener("click", guarded(() => this.cancel()));
    const transpose = $("transpose");
    transpose.addEventListener("input", () => { $("transpose-out").value = transpose.value; });
    $("pitch-apply").addEventListener("click", () => this.applyShift());
  }

  // The suggested shift goes to the slider only when the person asks; converting again is theirs.
  applyShift() {
    const shift = Number($("pitch-apply").dataset.shift);
    $("transpose").value = String(shift);
    $("transpose-out").value = String(shift);
    announce(`Transpose set to ${shift > 0 ? "+" : ""}${shift}. Convert again to hear it.`);
  }

  renderPitch(job) {
    const advice = pitchAdvice(job?.pitch);
    $("pitch-advice").hidden = !advice.text;
    $("pitch-advice-text").textContent = advice.text;
    const used = Number(job?.params?.transpose || 0);
    const apply = $("pitch-apply");
    apply.hidden = advice.shift === null || advice.shift === used;
    apply.dataset.shift = String(advice.shift ?? 0);
    apply.textContent = `Use ${advice.shift > 0 ? "+" : ""}${advice.shift}`;
  }

  show() {
    this.player.stop();
    $("compare").hidden = true;
    super.show();
  }

  stop() {
    super.stop();
    this.player.stop();
  }

  async refresh() {
    const profile = this.ctx.profile;
    if (!profile) return false;
    this.jobs = await this.ctx.api.get(`/profiles/${profile.id}/conversions?limit=10`);
    const ended = this.takeEnded();
    this.renderRun();
    this.renderList();
    this.renderReason();
    if (ended) await this.finished(ended);
    return Boolean(this.active);
  }

  renderModels(models) {
    this.models = models;
    const select = $("model-version");
    select.replaceChildren(el("option", { value: "" }, "The active model"),
      ...models.map((m) => el("option", { value: m.id }, `Model of ${formatDate(m.created_at)}${m.active ? " (active)" : ""}`)));
    this.renderReason();
  }

  blocker() {
    const quota = this.ctx.quota?.conversion;
    if (!this.models.length) return "Train a model first: conversion uses this voice's model.";
    if (this.active || this.uploading) return "A conversion is running.";
    if (quota && quota.remaining <= 0) {
      return quotaSpent(quota, "conversions", "today");
    }
    return null;
  }

  renderReason() {
    const reason = this.blocker();
    const quota = this.ctx.quota?.conversion;
    $("convert-start").disabled = Boolean(reason);
    $("convert-reason").textContent = reason
      || (quota ? `${quota.remaining} of ${quota.limit} conversions left today (resets ${formatDate(quota.resets_at)}).` : "");
  }

  params() {
    return {
      transpose: Number($("transpose").value),
      f0_method: $("f0-method").value,
      auto_predict_f0: $("auto-f0").checked,
      noise_scale: Number($("noise-scale").value),
      db_thresh: Number($("db-thresh").value),
      pad_seconds: Number($("pad-seconds").value),
    };
  }

  async submit(event) {
    event.preventDefault();
    const file = $("convert-file").files[0];
    if (!file) throw new Error("Choose a vocal stem to convert.");
    const body = { filename: file.name, content_type: contentTypeOf(file), size_bytes: file.size, params: this.params() };
    if ($("model-version").value) body.model_version_id = $("model-version").value;
    const ticket = await this.ctx.api.post(`/profiles/${this.ctx.profile.id}/conversions`, body);
    this.watching = ticket.job.id;
    this.jobs.unshift(ticket.job);
    $("compare").hidden = true;
    this.player.stop();
    this.uploading = { progress: 0 };
    this.renderRun();
    this.renderReason();
    try {
      await putFile(ticket.upload.upload_url, ticket.upload.headers, file, (fraction) => {
        this.uploading.progress = fraction;
        this.renderRun();
      });
      announce("Stem uploaded; converting.");
    } catch (error) {
      await this.ctx.api.post(`/conversions/${ticket.job.id}/cancel`).catch(() => null);
      throw error;
    } finally {
      this.uploading = null;
      await this.ctx.profiles.refreshQuota().catch(() => null);
      this.live.start();
    }
  }

  renderRun() {
    const job = this.shown;
    $("convert-run").hidden = !job;
    this.renderPitch(job);
    if (!job) return;
    const p = job.progress || {};
    let text;
    let percent = p.percent || 0;
    if (this.uploading) {
      percent = 100 * this.uploading.progress;
      text = `Uploading your stem: ${Math.round(percent)}%`;
    } else if (job.status === "failed") text = `Conversion failed: ${job.error_message || job.error_code}`;
    else if (job.status === "canceled") text = "Conversion canceled; it was not counted.";
    else if (job.status === "succeeded") text = `Converted. ${keptText(job, this.ctx.limits)}`;
    else if (p.phase === "convert") {
      text = `Converting: ${Math.round(percent)}%` + (p.eta_s ? `, about ${formatDuration(p.eta_s)} left` : "");
    } else text = PHASES[p.phase] || PHASES[job.status] || "Working…";
    if ($("convert-status").textContent !== text) $("convert-status").textContent = text;
    $("convert-progress").value = job.status === "succeeded" ? 100 : percent;
    $("convert-cancel").hidden = !ACTIVE.has(job.status) || Boolean(this.uploading);
  }

  renderList() {
    $("conversion-list").replaceChildren(...this.jobs.map((job) => el("li", { dataset: { jobId: job.id, status: job.status } },
      el("span", {}, job.input_filename || "stem"),
      el("span", { class: `status-${job.status}` }, statusText(job)),
      el("span", { class: "hint" }, formatDate(job.created_at)),
      job.status === "succeeded" ? el("span", { class: "hint kept" }, keptText(job, this.ctx.limits)) : null,
      job.status === "succeeded" && !job.files_removed_at
        ? el("button", { type: "button", class: "secondary", onclick: guarded(() => this.compare(job)) }, "Compare and download")
        : null,
    )));
  }

  async finished(job) {
    if (job.status === "succeeded") {
      announce("Conversion finished. Compare before and after below.");
      await this.compare(job);
    } else {
      announce(job.status === "failed" ? `Conversion failed: ${job.error_message}` : "Conversion canceled.");
    }
    await this.ctx.profiles.refreshQuota().catch(() => null);
    this.renderReason();
  }

  async compare(job) {
    const [input, output] = await Promise.all([
      this.ctx.api.get(`/conversions/${job.id}/input`),
      this.ctx.api.get(`/conversions/${job.id}/download`),
    ]);
    $("compare").hidden = false;
    const link = $("convert-download");
    link.href = output.url;
    link.setAttribute("download", output.filename);
    link.textContent = `Download ${output.filename}`;
    await this.player.load(input.url, output.url);
  }
}

// Results are deleted a fixed number of days after they finish (the server's retention).
function keptText(job, limits) {
  const days = limits.conversion_retention_days;
  if (job.files_removed_at) return `Files deleted: results are kept for ${days} days.`;
  const until = new Date(new Date(job.finished_at || job.created_at).getTime() + days * 86400000);
  return `Kept for ${days} days, until ${formatDate(until.toISOString())}.`;
}

function statusText(job) {
  if (job.status === "failed") return `Failed: ${job.error_message || job.error_code}`;
  return { awaiting_upload: "Uploading", queued: "Queued", running: "Converting", succeeded: "Done", canceled: "Canceled" }[job.status] || job.status;
}
