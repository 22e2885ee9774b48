// The dataset: drop or pick files, upload each straight to storage with its own progress,
// then show what the probe found, a meter of usable minutes, and delete. Full songs ("full
// mix") are separated: the song's row shows the separation's progress, its vocal follows it
// as a file of its own, and both can be played.

import { Live } from "./live.js";
import { Recorder } from "./recorder.js";
import { contentTypeOf, putFile } from "./upload.js";
import { $, announce, el, formatBytes, formatDuration, guarded, plural } from "./ui.js";

const PARALLEL_UPLOADS = 3;
// How often one file's upload ticket is asked for again after a 429 (each after its Retry-After).
const UPLOAD_TICKET_RETRIES = 20;
const STATUS_TEXT = { pending: "Checking…", ready: "Ready", rejected: "Rejected", uploading: "Uploading", refused: "Not uploaded" };
// A full song's separation, by its job's phase (schemas.jobs.Phase).
const PHASES = {
  queued: "Waiting for a GPU to separate the vocal…", download: "Fetching the song…",
  separate: "Separating the vocal", upload: "Saving the vocal…", succeeded: "Vocal separated",
  failed: "Separation failed", canceled: "Separation canceled",
};
const ACTIVE_SEPARATION = new Set(["queued", "running"]);
const MIX_NOTE = "Full song: its vocal is separated and trains; the song itself never does.";

export class DatasetPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.files = [];
    this.separations = new Map(); // mix file id -> its separation job
    this.players = new Map(); // file id -> its <audio>, kept across renders so it plays on
    this.local = new Map(); // uploads this page started: key -> {name, size, progress, error, fileId}
    this.live = new Live(ctx, "dataset_files", () => this.refresh());
    // a take is one dataset file: held to the per-file length the probe allows
    this.recorder = new Recorder($("dataset-recorder"), {
      minSeconds: ctx.limits.min_dataset_file_seconds, maxSeconds: ctx.limits.max_dataset_file_seconds,
      useLabel: "Upload this take", name: "take", onTake: (file) => this.add([file], { fullMix: false }),
    });
    const input = $("dataset-input");
    input.addEventListener("change", guarded(() => {
      this.add([...input.files]);
      input.value = "";
    }));
    const drop = $("drop");
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      this.add([...event.dataTransfer.files]);
    });
  }

  show() {
    this.local.clear();
    this.players.clear();
    this.files = [];
    this.live.start();
  }

  stop() { this.live.stop(); }

  /** Returns true while anything is still uploading or being checked. */
  async refresh() {
    const profile = this.ctx.profile;
    if (!profile) return false;
    const [files, separations] = await Promise.all([
      this.ctx.api.get(`/profiles/${profile.id}/dataset/files`),
      this.ctx.api.get(`/profiles/${profile.id}/separations`),
    ]);
    this.separations = new Map(separations.map((job) => [job.source_file_id, job]));
    this.files = inFamilies(files.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.filename.localeCompare(b.filename)));
    await this.ctx.profiles.refreshPicked();
    this.render();
    this.ctx.training.renderButton();
    const uploading = [...this.local.values()].some((u) => !u.error && !u.done);
    const separating = [...this.separations.values()].some((job) => ACTIVE_SEPARATION.has(job.status)
      && this.files.some((f) => f.id === job.source_file_id));
    return uploading || separating || this.files.some((f) => f.status === "pending");
  }

  /** A recorded take is never a full song, whatever the box says (`fullMix: false`). */
  add(files, { fullMix = $("full-mix").checked } = {}) {
    if (!files.length) return;
    announce(`Uploading ${plural(files.length, "file")}.`);
    const queue = files.map((file) => {
      const key = crypto.randomUUID();
      this.local.set(key, { name: file.name, size: file.size, progress: 0, fullMix });
      return [key, file];
    });
    this.render();
    const workers = Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, async () => {
      while (queue.length) await this.upload(...queue.shift());
    });
    Promise.all(workers).then(() => this.live.kick());
  }

  async upload(key, file) {
    const entry = this.local.get(key);
    const profile = this.ctx.profile;
    try {
      // a big drop outruns the upload rate limit: each ticket waits its Retry-After and asks
      // again rather than marking the rest "Not uploaded"
      const ticket = await this.ctx.api.post(`/profiles/${profile.id}/dataset/uploads`, {
        filename: file.name, content_type: contentTypeOf(file), size_bytes: file.size, full_mix: entry.fullMix,
      }, { retries: UPLOAD_TICKET_RETRIES });
      entry.fileId = ticket.file_id;
      await putFile(ticket.upload_url, ticket.headers, file, (fraction) => {
        entry.progress = fraction;
        this.renderProgress(key, entry);
      });
      entry.done = true;
      announce(`${file.name} uploaded; checking it now.`);
    } catch (error) {
      entry.error = error.message;
      announce(`${file.name} was not uploaded: ${error.message}`);
    }
    this.live.kick();
    this.render();
  }

  async remove(file) {
    await this.ctx.api.delete(`/profiles/${file.profile_id}/dataset/files/${file.id}`);
    announce(file.full_mix ? `Deleted ${file.filename} and its separated vocal.` : `Deleted ${file.filename}.`);
    for (const [key, entry] of this.local) if (entry.fileId === file.id) this.local.delete(key);
    await this.refresh();
  }

  /** One row per file: this page's upload while it is in flight or failed, else the
   * server's row with the probe result. */
  render() {
    const known = new Set(this.files.map((f) => f.id));
    const uploads = new Map();
    const rows = [];
    for (const [key, entry] of this.local) {
      if (entry.fileId && known.has(entry.fileId)) uploads.set(entry.fileId, [key, entry]);
      else if (!entry.done) rows.push(this.localRow(key, entry));
    }
    for (const file of this.files) {
      const upload = uploads.get(file.id);
      const inFlight = upload && (!upload[1].done || upload[1].error);
      rows.push(inFlight ? this.localRow(...upload) : this.fileRow(file));
    }
    $("file-rows").replaceChildren(...rows);
    this.renderMeter();
  }

  localRow(key, entry) {
    const status = entry.error ? "refused" : "uploading";
    const progress = el("progress", { max: "1", value: String(entry.progress), id: `up-${key}`,
      "aria-label": `Upload of ${entry.name}` });
    return el("tr", { dataset: { filename: entry.name, status } },
      el("td", {}, entry.name, el("div", { class: "note" }, formatBytes(entry.size))),
      el("td", { class: `status-${status}` }, STATUS_TEXT[status],
        entry.error ? el("div", { class: "note reason" }, entry.error) : progress),
      ...Array.from({ length: 6 }, () => el("td", {}, "–")),
      el("td", {}, entry.error ? el("button", { type: "button", class: "secondary", "aria-label": `Dismiss ${entry.name}`,
        onclick: () => { this.local.delete(key); this.render(); } }, "Dismiss") : null));
  }

  renderProgress(key, entry) {
    const bar = document.getElementById(`up-${key}`);
    if (bar) bar.value = entry.progress;
  }

  fileRow(file) {
    const details = [file.format?.toUpperCase(), file.sample_rate && `${file.sample_rate / 1000} kHz`,
      file.channels && (file.channels === 1 ? "mono" : `${file.channels} ch`)].filter(Boolean).join(" · ");
    const reason = file.status === "rejected" ? el("div", { class: "note reason" }, file.reject_message || "This file cannot be used.") : null;
    const kind = file.full_mix ? "full-mix" : file.derived_from ? "separated" : "upload";
    const origin = file.derived_from ? el("div", { class: "note" }, `Vocal separated from ${this.filenameOf(file.derived_from)}`) : null;
    const tag = file.full_mix ? el("span", { class: "tag" }, "Full song") : null;
    // A song is graded as a song would be (music underneath is expected), so its row says
    // what happens to it instead; its vocal's row carries the grades that matter.
    const measures = file.full_mix && file.status === "ready"
      ? [el("td", { colspan: "5", class: "note mix-note" }, MIX_NOTE)]
      : [el("td", {}, file.loudness_lufs !== null && file.loudness_lufs !== undefined ? `${file.loudness_lufs.toFixed(1)} LUFS` : "–"),
        el("td", { class: "voice" }, percent(file.voice_ratio)),
        el("td", { class: "noise" }, noiseText(file.snr_db, file.noise_level)),
        el("td", { class: "singer" }, singerText(file)),
        el("td", {}, file.quality_grade ? el("span", {}, gradeText(file.quality_grade),
          file.quality_notes ? el("div", { class: "note" }, file.quality_notes) : null) : "–")];
    return el("tr", { dataset: { filename: file.filename, status: file.status, kind } },
      el("td", {}, tag, file.filename, origin, el("div", { class: "note" }, details || formatBytes(file.size_bytes)),
        file.status === "ready" ? this.player(file) : null),
      el("td", { class: `status-${file.status}` }, STATUS_TEXT[file.status] || file.status, reason,
        file.full_mix ? this.separationCell(file) : null),
      el("td", {}, file.duration_sec ? formatDuration(file.duration_sec) : "–"),
      ...measures,
      el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": `Delete ${file.filename}`,
        onclick: guarded(() => this.remove(file)) }, "Delete")));
  }

  filenameOf(id) {
    return this.files.find((f) => f.id === id)?.filename || "a deleted song";
  }

  /** Listen to a ready file: the short-lived link is asked for on the press. */
  player(file) {
    const open = this.players.get(file.id);
    if (open) return el("div", { class: "player" }, open);
    const button = el("button", { type: "button", class: "secondary listen", "aria-label": `Listen to ${file.filename}` }, "Listen");
    button.addEventListener("click", guarded(async () => {
      const link = await this.ctx.api.get(`/profiles/${file.profile_id}/dataset/files/${file.id}/download`);
      const audio = el("audio", { controls: "", src: link.url, "aria-label": file.filename });
      this.players.set(file.id, audio);
      button.replaceWith(audio);
      audio.play().catch(() => {});
    }));
    return el("div", { class: "player" }, button);
  }

  /** Where a full song's separation is: progress while it runs, why it stopped. */
  separationCell(file) {
    const job = this.separations.get(file.id);
    if (!job) return file.status === "ready" ? el("div", { class: "note separation" }, PHASES.queued) : null;
    const phase = job.status === "running" ? job.progress?.phase : job.status;
    const words = PHASES[phase] || PHASES.queued;
    const percentDone = job.progress?.percent;
    const parts = [el("span", {}, phase === "separate" && percentDone !== null && percentDone !== undefined
      ? `${words}… ${Math.round(percentDone)} %` : words)];
    if (phase === "separate") parts.push(el("progress", { max: "100", value: String(percentDone || 0), "aria-label": `Separation of ${file.filename}` }));
    if (job.status === "failed" && job.error_message) parts.push(el("div", { class: "reason" }, job.error_message));
    if (ACTIVE_SEPARATION.has(job.status)) {
      parts.push(el("button", { type: "button", class: "secondary", "aria-label": `Stop separating ${file.filename}`,
        onclick: guarded(() => this.cancelSeparation(job, file)) }, "Stop"));
    } else if (job.status === "failed" || job.status === "canceled" || this.vocalRejected(job)) {
      parts.push(el("button", { type: "button", class: "secondary", "aria-label": `Separate ${file.filename} again`,
        onclick: guarded(() => this.retrySeparation(job, file)) }, "Try again"));
    }
    return el("div", { class: "note separation", dataset: { separation: job.status } }, ...parts);
  }

  /** A separation that succeeded but whose vocal the probe rejected may be run again. */
  vocalRejected(job) {
    if (job.status !== "succeeded") return false;
    return this.files.find((f) => f.id === job.derived_file_id)?.status === "rejected";
  }

  async cancelSeparation(job, file) {
    await this.ctx.api.post(`/separations/${job.id}/cancel`);
    announce(`Stopped separating ${file.filename}.`);
    await this.refresh();
  }

  async retrySeparation(job, file) {
    await this.ctx.api.post(`/separations/${job.id}/retry`);
    announce(`Separating ${file.filename} again.`);
    this.live.kick();
    await this.refresh();
  }

  renderMeter() {
    const { min_dataset_seconds: min, max_dataset_seconds: max } = this.ctx.limits;
    const seconds = this.ctx.profile?.dataset?.ready_seconds || 0;
    const meter = $("minutes-meter");
    Object.assign(meter, { max, low: min, high: max * 0.999, optimum: (min + max) / 2, value: Math.min(seconds, max) });
    let verdict;
    if (seconds < min) verdict = `add ${formatDuration(min - seconds)} more to train`;
    else if (seconds > max) verdict = `more than training takes; delete ${formatDuration(seconds - max)}`;
    else verdict = "enough to train";
    $("minutes-text").textContent = `${formatDuration(seconds)} usable (${formatDuration(min)}–${formatDuration(max)}): ${verdict}`;
    this.renderAnalysis();
  }

  /** The dataset as a whole: voice activity, noise and the one-singer check. */
  renderAnalysis() {
    const dataset = this.ctx.profile?.dataset;
    const parts = [];
    if (dataset?.voice_ratio !== null && dataset?.voice_ratio !== undefined) parts.push(`Voice activity: ${percent(dataset.voice_ratio)}`);
    if (dataset?.snr_db !== null && dataset?.snr_db !== undefined) parts.push(`Noise: ${noiseText(dataset.snr_db, noiseLevel(dataset.snr_db))}`);
    if (dataset?.singer_consistency !== null && dataset?.singer_consistency !== undefined) {
      const others = dataset.other_singer_files || 0;
      parts.push(`One singer: ${Math.round(dataset.singer_consistency * 100)} % consistent` +
        (others ? ` (${plural(others, "file")} probably someone else)` : ""));
    }
    $("dataset-analysis").textContent = parts.join(" · ");
  }
}

/** Each separated vocal right after its song. */
function inFamilies(files) {
  const children = new Map();
  for (const file of files) {
    if (file.derived_from) children.set(file.derived_from, [...(children.get(file.derived_from) || []), file]);
  }
  const ids = new Set(files.map((f) => f.id));
  const ordered = [];
  for (const file of files) {
    if (file.derived_from && ids.has(file.derived_from)) continue;
    ordered.push(file, ...(children.get(file.id) || []));
  }
  return ordered;
}

function percent(ratio) {
  return ratio === null || ratio === undefined ? "–" : `${Math.round(ratio * 100)} %`;
}

// The probe's words for the voice over the steady noise under it (pipeline/grading.py).
function noiseLevel(snr) {
  return snr >= 25 ? "clean" : snr >= 15 ? "some" : "noisy";
}

function noiseText(snr, level) {
  if (snr === null || snr === undefined) return "–";
  return `${Math.round(snr)} dB (${level || noiseLevel(snr)})`;
}

function singerText(file) {
  if (file.singer_similarity === null || file.singer_similarity === undefined) return "–"; // needs two ready files
  const similarity = `${Math.round(file.singer_similarity * 100)} % alike`;
  if (file.other_singer) return el("span", { class: "other-singer" }, "Another singer?", el("div", { class: "note" }, similarity));
  return el("span", {}, "Same voice", el("div", { class: "note" }, similarity));
}

function gradeText(grade) {
  return { good: "Good", fair: "Fair", poor: "Poor" }[grade] || grade;
}
