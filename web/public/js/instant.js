// Instant voice: add a 10–30 s sample, picked or recorded (with the consent the API stores),
// and more clips of the same voice, then convert a stem or a song with it at once; follow the
// job by polling, play the result against its input (A/B), show its quality report honestly
// and point to a trained voice when the likeness is loose.

import { ABPlayer } from "./abplayer.js";
import { Recorder, pickFile } from "./recorder.js";
import { contentTypeOf, putFile } from "./upload.js";
import { $, announce, el, formatDuration, guarded } from "./ui.js";

// What the instant model hears of a voice's clips joined (schemas/instant.py, REFERENCE_USED_SECONDS).
const USED_SECONDS = 25;
const ACTIVE = new Set(["awaiting_upload", "queued", "running"]);
const PHASES = {
  awaiting_upload: "Uploading…", queued: "Waiting for a GPU…", download: "Fetching your files…",
  separate: "Separating the voice from the music", load_model: "Loading the instant model…",
  pitch: "Measuring the pitch…", convert: "Converting", mix: "Mixing the cover",
  evaluate: "Measuring the likeness…", upload: "Saving the result…",
};

export class InstantPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.timers = {}; // one per thing watched: a sample being checked, a job running
    this.job = null;
    $("instant-voice-form").addEventListener("submit", guarded((event) => this.addVoice(event)));
    $("instant-form").addEventListener("submit", guarded((event) => this.convert(event)));
    $("instant-cancel").addEventListener("click", guarded(() => this.cancel()));
    // a recorded sample lands in the file input, so it is added (with the consent) like a picked one
    this.recorder = new Recorder($("instant-recorder"), {
      minSeconds: ctx.limits.min_reference_seconds ?? 10, maxSeconds: ctx.limits.max_reference_seconds ?? 30,
      useLabel: "Use this recording", name: "my-voice", onTake: (file) => this.useRecording(file),
    });
    this.player = new ABPlayer($("instant-ab"));
    $("instant-add-to").addEventListener("change", () => this.renderAddTo());
    $("instant-reference").addEventListener("change", () => { $("instant-reference-picked").textContent = ""; });
    const transpose = $("instant-transpose");
    transpose.addEventListener("input", () => { $("instant-transpose-out").value = transpose.value; });
  }

  stop(what) {
    for (const name of what ? [what] : Object.keys(this.timers)) {
      clearTimeout(this.timers[name]);
      delete this.timers[name];
    }
  }

  async show() {
    const voices = await this.ctx.api.get(`/profiles/${this.ctx.profile.id}/instant/voices`);
    this.voices = voices;
    this.ctx.speech?.renderReason(); // a ready voice can speak text too (speech.js)
    $("instant-voices").replaceChildren(...voices.map((voice) => this.voiceItem(voice)));
    const ready = voices.filter((voice) => voice.status === "ready");
    $("instant-voice").replaceChildren(...ready.map((voice) => el("option", { value: voice.id }, voice.name)));
    $("instant-form").hidden = ready.length === 0;
    // more clips of the same voice go through the same form (and recorder) as a first sample
    const addTo = $("instant-add-to");
    const picked = addTo.value;
    addTo.replaceChildren(el("option", { value: "" }, "A new voice"),
      ...voices.filter((voice) => voice.status !== "rejected").map((voice) => el("option", { value: voice.id }, `${voice.name} (another clip)`)));
    addTo.value = [...addTo.options].some((option) => option.value === picked) ? picked : "";
    this.renderAddTo();
    const checking = (item) => item.status === "awaiting_upload";
    if (voices.some((voice) => checking(voice) || voice.clips.some(checking))) this.later("voices", () => this.show());
  }

  renderAddTo() {
    const clip = Boolean($("instant-add-to").value);
    $("instant-name-row").hidden = clip;
    $("instant-voice-name").required = !clip;
    const limits = this.ctx.limits;
    this.recorder.setMinimum(clip ? limits.min_clip_seconds ?? 3 : limits.min_reference_seconds ?? 10);
  }

  voiceItem(voice) {
    const ready = [voice, ...voice.clips].filter((clip) => clip.status === "ready");
    const total = ready.reduce((sum, clip) => sum + (clip.reference_seconds || 0), 0);
    const extra = voice.clips.length;
    const state = voice.status === "ready"
      ? `${formatDuration(voice.reference_seconds)} sample` + (extra ? ` + ${extra} clip${extra === 1 ? "" : "s"}, ${formatDuration(total)} in all${total > USED_SECONDS ? ` (the first ${USED_SECONDS} s are used)` : ""}` : "")
      : voice.status === "rejected" ? `refused: ${voice.error_message}` : "being checked…";
    const clips = voice.clips.map((clip) => el("li", { dataset: { clip: clip.id, status: clip.status } },
      `${clip.reference_filename || "clip"}: ${clipState(clip)} `,
      el("button", { type: "button", class: "secondary", "aria-label": `Delete the clip ${clip.reference_filename || ""}`,
        onclick: guarded(() => this.deleteClip(voice, clip)) }, "Delete clip")));
    return el("li", { dataset: { voice: voice.id } }, `${voice.name} (${state}) `,
      el("button", { type: "button", class: "danger", onclick: guarded(() => this.deleteVoice(voice)) }, "Delete"),
      clips.length ? el("ul", { class: "clips" }, ...clips) : null);
  }

  async addVoice(event) {
    event.preventDefault();
    const file = $("instant-reference").files[0];
    const voiceId = $("instant-add-to").value;
    const about = { filename: file.name, content_type: contentTypeOf(file), size_bytes: file.size, consent: $("instant-consent").checked };
    const ticket = voiceId
      ? await this.ctx.api.post(`/instant/voices/${voiceId}/clips`, about)
      : await this.ctx.api.post(`/profiles/${this.ctx.profile.id}/instant/voices`, { name: $("instant-voice-name").value, ...about });
    await putFile(ticket.upload.upload_url, ticket.upload.headers, file);
    announce(voiceId ? "Clip uploaded: it is being checked." : "Sample uploaded: it is being checked.");
    await this.show();
  }

  async deleteClip(voice, clip) {
    if (!window.confirm(`Delete the clip "${clip.reference_filename}" from "${voice.name}"?`)) return;
    await this.ctx.api.delete(`/instant/voices/${voice.id}/clips/${clip.id}`);
    await this.show();
  }

  useRecording(file) {
    pickFile($("instant-reference"), file);
    $("instant-reference-picked").textContent = `Recorded sample attached: ${file.name}.`;
    announce("Recording attached. Confirm the box below, then add the sample.");
    $("instant-consent").focus();
  }

  async deleteVoice(voice) {
    if (!window.confirm(`Delete "${voice.name}", its sample and every conversion made with it?`)) return;
    await this.ctx.api.delete(`/instant/voices/${voice.id}`);
    await this.show();
  }

  async convert(event) {
    event.preventDefault();
    const file = $("instant-file").files[0];
    const kind = document.querySelector('input[name="instant-kind"]:checked')?.value || "vocal";
    const ticket = await this.ctx.api.post("/instant/jobs", {
      voice_id: $("instant-voice").value, filename: file.name, content_type: contentTypeOf(file),
      size_bytes: file.size, params: { input_kind: kind, transpose: Number($("instant-transpose").value) },
    });
    this.job = ticket.job;
    $("instant-result").hidden = true;
    this.render();
    await putFile(ticket.upload.upload_url, ticket.upload.headers, file,
      (done) => { $("instant-progress").value = Math.round(100 * done); });
    await this.poll();
  }

  async poll() {
    this.job = await this.ctx.api.get(`/instant/jobs/${this.job.id}`);
    this.render();
    if (ACTIVE.has(this.job.status)) this.later("job", () => this.poll());
    else if (this.job.status === "succeeded") await this.showResult();
  }

  async cancel() {
    if (!this.job) return;
    this.job = await this.ctx.api.post(`/instant/jobs/${this.job.id}/cancel`);
    this.stop("job");
    this.render();
  }

  render() {
    const job = this.job;
    $("instant-run").hidden = !job || !ACTIVE.has(job.status);
    if (!job) return;
    const p = job.progress || {};
    const percent = p.percent ?? 0;
    $("instant-progress").value = percent;
    $("instant-status").textContent = job.status === "failed" ? job.error_message
      : (PHASES[p.phase] || PHASES[job.status] || "Working…") + (p.eta_s ? `, about ${formatDuration(p.eta_s)} left` : "");
  }

  async showResult() {
    const [link, input] = await Promise.all([
      this.ctx.api.get(`/instant/jobs/${this.job.id}/download`),
      this.ctx.api.get(`/instant/jobs/${this.job.id}/input`),
    ]);
    $("instant-download").href = link.url;
    $("instant-download").setAttribute("download", link.filename);
    const q = this.job.quality || {};
    $("instant-quality").textContent = q.similarity == null ? "Done."
      : `Likeness to your sample: ${Math.round(100 * q.similarity)}% (your sample against itself: ${Math.round(100 * q.ceiling)}%).`;
    $("instant-train").hidden = !q.suggest_training;
    $("instant-result").hidden = false;
    announce("Your instant conversion is ready.");
    // a song's result is its cover (the mix): the song against it, else the stem against its conversion
    const song = this.job.params?.input_kind === "song";
    await this.player.load(input.url, link.url, song ? ["Before (the original song)", "After (the instant cover)"]
      : ["Before (your upload)", "After (instant conversion)"]);
  }

  /** Runs `action` in 1.5 s, replacing the pending one of its kind only (a clip being checked
   * must not stop a running job's polling). */
  later(what, action) {
    this.stop(what);
    this.timers[what] = setTimeout(guarded(action), 1500);
  }
}

function clipState(clip) {
  if (clip.status === "ready") return formatDuration(clip.reference_seconds);
  return clip.status === "rejected" ? `refused: ${clip.error_message}` : "being checked…";
}
