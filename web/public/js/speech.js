// Text to speak: pick the voice (the trained model or a ready instant voice), type a line,
// follow the job, then hear it and download it. The report says how much the result sounds
// like the voice (an instant voice: its sample) and like the text-to-speech voice it was made
// from, and which of the engine's voices that was.

import { JobPanel, quotaSpent } from "./jobpanel.js";
import { reportText } from "./speechreport.js";
import { NO_VOICE, voiceChoices } from "./speechvoice.js";
import { $, announce, el, guarded } from "./ui.js";

const ACTIVE = new Set(["queued", "running"]);
const PHASES = {
  queued: "Waiting for a GPU…", load_model: "Loading the voice model…", prepare: "Speaking the text…",
  pitch: "Matching the voice's pitch…", convert: "Turning it into this voice…",
  evaluate: "Checking it sounds like the voice…", upload: "Saving the result…",
};

export class SpeechPanel extends JobPanel {
  constructor(ctx) {
    super(ctx, { path: "speech", table: "text_jobs", activeStatuses: ACTIVE, noun: "Speaking" });
    const max = ctx.limits.text_max_chars || 500;
    $("speech-max").textContent = String(max);
    const text = $("speech-text");
    text.maxLength = max;
    text.addEventListener("input", () => { $("speech-count").value = String(text.value.length); });
    $("speech-form").addEventListener("submit", guarded((event) => this.submit(event)));
    $("speech-cancel").addEventListener("click", guarded(() => this.cancel()));
  }

  show() {
    $("speech-result").hidden = true;
    $("speech-audio").removeAttribute("src");
    super.show();
  }

  async refresh() {
    const profile = this.ctx.profile;
    if (!profile) return false;
    this.jobs = await this.ctx.api.get(`/profiles/${profile.id}/speech?limit=10`);
    const ended = this.takeEnded();
    this.renderRun();
    this.renderReason();
    if (ended) await this.finished(ended);
    return Boolean(this.active);
  }

  blocker() {
    const quota = this.ctx.quota?.quotas?.text;
    if (!this.choices?.length) return NO_VOICE;
    if (this.active) return "A line is being spoken.";
    if (quota && quota.remaining <= 0) return quotaSpent(quota, "lines", "today");
    return null;
  }

  /** Called again when the models (conversion.js) or the instant voices (instant.js) change:
   * the voice list follows them, and with no voice at all the form gives way to what to do. */
  renderReason() {
    this.renderVoices();
    $("speech-form").hidden = this.choices.length === 0;
    const reason = this.blocker();
    $("speech-start").disabled = Boolean(reason);
    $("speech-reason").textContent = reason || "";
  }

  /** The voice list from the models and the instant panel's voices, rebuilt only when it
   * changes (this runs on every job update; a rebuilt list would close an open one). */
  renderVoices() {
    const profile = this.ctx.profile;
    this.choices = voiceChoices(this.ctx.conversion?.models, this.ctx.instant?.voices, profile?.id);
    const select = $("speech-voice");
    const same = select.options.length === this.choices.length
      && this.choices.every((choice, i) => select.options[i].value === choice.value && select.options[i].text === choice.label);
    if (same) return;
    const picked = select.value;
    select.replaceChildren(...this.choices.map((choice) => el("option", { value: choice.value }, choice.label)));
    if (this.choices.some((choice) => choice.value === picked)) select.value = picked;
  }

  async submit(event) {
    event.preventDefault();
    const text = $("speech-text").value;
    if (!text.trim()) throw new Error("Type something for the voice to say.");
    const choice = this.choices.find((c) => c.value === $("speech-voice").value);
    if (!choice) throw new Error("Pick the voice to speak in.");
    const job = await this.ctx.api.post(`/profiles/${this.ctx.profile.id}/speech`,
      { text, voice: choice.voice, language: $("speech-language").value });
    this.watching = job.id;
    this.jobs.unshift(job);
    $("speech-result").hidden = true;
    this.renderRun();
    this.renderReason();
    announce("Speaking your line.");
    await this.ctx.profiles.refreshQuota().catch(() => null);
    this.live.start();
  }

  renderRun() {
    const job = this.shown;
    $("speech-run").hidden = !job;
    if (!job) return;
    const p = job.progress || {};
    let text;
    if (job.status === "failed") text = `Speaking failed: ${job.error_message || job.error_code}`;
    else if (job.status === "canceled") text = "Canceled; it was not counted.";
    else if (job.status === "succeeded") text = "Done. Listen below.";
    else text = PHASES[p.phase] || PHASES[job.status] || "Working…";
    if ($("speech-status").textContent !== text) $("speech-status").textContent = text;
    $("speech-progress").value = job.status === "succeeded" ? 100 : (p.percent || 0);
    $("speech-cancel").hidden = !ACTIVE.has(job.status);
  }

  async finished(job) {
    if (job.status === "succeeded") {
      announce("Your line is ready: it plays below.");
      await this.play(job);
    } else {
      announce(job.status === "failed" ? `Speaking failed: ${job.error_message}` : "Speaking canceled.");
    }
    await this.ctx.profiles.refreshQuota().catch(() => null);
    this.renderReason();
  }

  async play(job) {
    const [mp3, wav] = await Promise.all([
      this.ctx.api.get(`/speech/${job.id}/download?format=mp3`),
      this.ctx.api.get(`/speech/${job.id}/download?format=wav`),
    ]);
    setLink($("speech-mp3"), mp3);
    setLink($("speech-wav"), wav);
    $("speech-report").textContent = reportText(job.report, job.voice_kind);
    $("speech-result").hidden = false;
    const audio = $("speech-audio");
    audio.src = mp3.url;
    await audio.play().catch(() => null); // a browser may refuse to play without a click
  }
}

function setLink(link, download) {
  link.href = download.url;
  link.setAttribute("download", download.filename);
}
