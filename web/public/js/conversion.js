// Conversion: upload a stem or a whole song with its settings, follow the job, then compare
// before/after and download (a song: the cover, its converted vocal and its instrumental).

import { ABPlayer } from "./abplayer.js";
import { JobPanel, quotaSpent } from "./jobpanel.js";
import { pitchAdvice } from "./pitch.js";
import { contentTypeOf, putFile } from "./upload.js";
import { $, announce, el, formatDate, formatDuration, guarded } from "./ui.js";

const ACTIVE = new Set(["awaiting_upload", "queued", "running"]);
const PHASES = {
  awaiting_upload: "Uploading your file…", queued: "Waiting for a GPU…", download: "Fetching your file…",
  separate: "Separating the voice from the music", load_model: "Loading the voice model…",
  pitch: "Measuring the voice's pitch…", convert: "Converting", mix: "Mixing the cover over the instrumental",
  upload: "Saving the result…",
};
// Phases whose progress has a percentage worth showing.
const MEASURED = new Set(["separate", "convert", "mix"]);

export class ConversionPanel extends JobPanel {
  constructor(ctx) {
    super(ctx, { path: "conversions", table: "conversion_jobs", activeStatuses: ACTIVE, noun: "Conversion" });
    this.models = [];
    this.uploading = null; // {progress} while this page PUTs the stem
    this.player = new ABPlayer($("ab-player"));
    $("convert-form").addEventListener("submit", guarded((event) => this.submit(event)));
    $("convert-cancel").addEventListener("click", guarded(() => this.cancel()));
    const transpose = $("transpose");
    transpose.addEventListener("input", () => { $("transpose-out").value = transpose.value; this.renderSong(); });
    $("pitch-apply").addEventListener("click", () => this.applyShift());
    for (const radio of document.querySelectorAll('input[name="input-kind"]')) {
      radio.addEventListener("change", () => this.renderSong());
    }
    // Until the person ticks or unticks it, the instrumental follows the key (the server's
    // default): shifted with the vocal unless the transpose is a whole number of octaves.
    $("shift-instrumental").addEventListener("change", () => { this.shiftTouched = true; this.renderSong(); });
    $("mix-loudness").addEventListener("change", () => this.renderSong());
    this.shiftTouched = false;
    this.renderSong();
  }

  inputKind() {
    return document.querySelector('input[name="input-kind"]:checked')?.value || "vocal";
  }

  renderSong() {
    const song = this.inputKind() === "song";
    const transpose = Number($("transpose").value);
    $("convert-file-label").textContent = song ? "Song (WAV, FLAC or MP3)" : "Vocal stem (WAV, FLAC or MP3)";
    $("shift-instrumental-row").hidden = !song || transpose === 0;
    $("loudness-row").hidden = !song;
    $("mix-loudness-hint").textContent = $("mix-loudness").value === "streaming"
      ? "The whole cover is turned up or down to −14 LUFS, the level streaming services play at, by one gain (no compression); a song whose peaks would pass −1 dBTP stops there, a little quieter."
      : "The new voice sits at the original singer's loudness; the cover is only turned down if its peaks would pass −1 dBTP.";
    const box = $("shift-instrumental");
    if (!this.shiftTouched) box.checked = transpose % 12 !== 0;
    $("shift-instrumental-hint").textContent = box.checked
      ? "(keeps the song in key; the backing is pitch-shifted too)"
      : transpose % 12 === 0
        ? "(an octave keeps the key: the backing stays as it was)"
        : "(the backing stays as it was: the voice will sing in another key than the music)";
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
    this.ctx.speech?.renderReason(); // text is spoken with these models too
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
    const song = this.inputKind() === "song";
    const transpose = Number($("transpose").value);
    return {
      input_kind: song ? "song" : "vocal",
      ...(song && transpose !== 0 && this.shiftTouched ? { shift_instrumental: $("shift-instrumental").checked } : {}),
      ...(song ? { loudness: $("mix-loudness").value } : {}),
      transpose,
      f0_method: $("f0-method").value,
      auto_predict_f0: $("auto-f0").checked,
      noise_scale: Number($("noise-scale").value),
      // empty: the version's default ratio, the one its quality report chose
      ...($("cluster-ratio").value !== "" ? { cluster_ratio: Number($("cluster-ratio").value) } : {}),
      db_thresh: Number($("db-thresh").value),
      pad_seconds: Number($("pad-seconds").value),
    };
  }

  async submit(event) {
    event.preventDefault();
    const file = $("convert-file").files[0];
    if (!file) throw new Error(this.inputKind() === "song" ? "Choose a song to convert." : "Choose a vocal stem to convert.");
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
      announce("Uploaded; converting.");
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
      text = `Uploading your file: ${Math.round(percent)}%`;
    } else if (job.status === "failed") text = `Conversion failed: ${job.error_message || job.error_code}`;
    else if (job.status === "canceled") text = "Conversion canceled; it was not counted.";
    else if (job.status === "succeeded") text = `Converted. ${keptText(job, this.ctx.limits)}`;
    else if (MEASURED.has(p.phase)) {
      text = `${PHASES[p.phase]}: ${Math.round(percent)}%` + (p.eta_s ? `, about ${formatDuration(p.eta_s)} left` : "");
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

  // A song: the original song against the cover, and links to the mix, the converted vocal
  // and the instrumental. A stem: the stem against its conversion.
  async compare(job) {
    const song = job.params?.input_kind === "song";
    const parts = song ? ["mix", "vocal", "instrumental"] : [null];
    const [input, output, ...more] = await Promise.all([
      this.ctx.api.get(`/conversions/${job.id}/input`),
      ...parts.map((part) => this.ctx.api.get(`/conversions/${job.id}/download${part ? `?part=${part}` : ""}`)),
    ]);
    $("compare").hidden = false;
    setLink($("convert-download"), output);
    $("convert-parts").hidden = !song;
    if (song) {
      setLink($("convert-download-vocal"), more[0]);
      setLink($("convert-download-instrumental"), more[1]);
    }
    const labels = song ? ["Before (the original song)", "After (the cover)"] : undefined;
    await this.player.load(input.url, output.url, labels);
  }
}

function setLink(link, download) {
  link.href = download.url;
  link.setAttribute("download", download.filename);
  link.textContent = `Download ${download.filename}`;
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
