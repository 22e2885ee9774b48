// "Or record now: 🎤 Record": the microphone through MediaRecorder, a live level meter (an
// AnalyserNode's peaks) while it records, a replay before anything is sent, and the take handed
// on as a WAV file (wav.js) so it goes through the same upload and probe as a picked file.

import { encodeWav, meterPosition, mixdown, peakOf } from "./wav.js";
import { announce, el, formatDuration, guarded } from "./ui.js";

// The rate a take is written at (decodeAudioData resamples to it): what most microphones
// deliver, above the probe's minimum and Seed-VC's and So-VITS' 44.1 kHz.
const TAKE_RATE = 48000;
// Opus at this rate is close to transparent for one voice; the default (~128 kbit/s) is less so.
const BITS_PER_SECOND = 256000;
const CONTAINERS = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
// Singing is not a phone call: echo cancelling, noise suppression and automatic gain would
// chew sustained notes and pump the level, so they are asked off.
const MICROPHONE = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 } };
const CLIPPING = 0.99;

/** Why the microphone cannot be used, in words a person can act on. */
export function microphoneMessage(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "The microphone was refused. Allow it for this site (the icon beside the address) and press Record again, or choose a file instead.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one and press Record again, or choose a file instead.";
    case "NotReadableError":
    case "AbortError":
      return "The microphone could not start: another app may be using it. Close it and press Record again, or choose a file instead.";
    default:
      return `The microphone could not be used (${error?.message || error}). Choose a file instead.`;
  }
}

export class Recorder {
  /**
   * holder: the element to build in. minSeconds/maxSeconds: the take's allowed length (it stops
   * itself at the maximum and is cut there). useLabel: the button that hands the take on;
   * onTake(file): what happens then. name: the take's file name stem.
   */
  constructor(holder, { minSeconds = 0, maxSeconds, useLabel, onTake, name }) {
    Object.assign(this, { holder, minSeconds, maxSeconds, onTake, name });
    this.take = null;
    this.session = null;
    this.recordButton = el("button", { type: "button", class: "secondary record", onclick: guarded(() => this.start()) }, "🎤 Record");
    this.stopButton = el("button", { type: "button", class: "danger", hidden: true, onclick: guarded(() => this.stop()) }, "■ Stop");
    this.meter = el("meter", { min: "0", max: "1", low: "0.5", high: "0.95", optimum: "0.7", value: "0", "aria-label": "Microphone level", class: "level", hidden: true });
    this.clock = el("span", { class: "hint clock", hidden: true });
    this.status = el("p", { class: "hint", "aria-live": "polite" });
    this.replay = el("audio", { controls: true, hidden: true, "aria-label": "Your recording" });
    this.useButton = el("button", { type: "button", hidden: true, onclick: guarded(() => this.use()) }, useLabel);
    this.discardButton = el("button", { type: "button", class: "secondary", hidden: true, onclick: () => this.discard() }, "Discard");
    holder.classList.add("recorder");
    holder.dataset.state = "idle";
    holder.replaceChildren(
      el("div", { class: "row" }, el("span", {}, "Or record now:"), this.recordButton, this.stopButton, this.meter, this.clock),
      this.status,
      el("div", { class: "row" }, this.replay, this.useButton, this.discardButton),
    );
  }

  async start() {
    if (this.session) return;
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
      throw Object.assign(new Error(window.isSecureContext
        ? "This browser cannot record audio. Choose a file instead."
        : "The microphone needs a secure (https) page. Choose a file instead."), { expected: true });
    }
    this.discard();
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(MICROPHONE);
    } catch (error) {
      this.say(microphoneMessage(error));
      throw Object.assign(new Error(microphoneMessage(error)), { expected: true });
    }
    const mimeType = CONTAINERS.find((type) => MediaRecorder.isTypeSupported(type));
    const recorder = new MediaRecorder(stream, { mimeType, audioBitsPerSecond: BITS_PER_SECOND });
    const audio = new AudioContext();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 2048;
    audio.createMediaStreamSource(stream).connect(analyser);
    const chunks = [];
    recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
    const done = new Promise((resolve) => { recorder.onstop = resolve; });
    const session = { stream, recorder, audio, analyser, chunks, done, began: performance.now(), peak: 0, clipped: false };
    this.session = session;
    recorder.start(1000);
    // a timer, not animation frames: it keeps counting (and stops the take) in a hidden tab
    session.timer = setInterval(() => this.tick(), 50);
    this.holder.dataset.state = "recording";
    this.holder.dataset.peak = "0";
    this.recordButton.hidden = true;
    this.stopButton.hidden = false;
    this.meter.hidden = false;
    this.clock.hidden = false;
    this.say(`Recording… (${this.lengthHint()})`);
    announce("Recording.");
  }

  tick() {
    const s = this.session;
    if (!s) return;
    const frame = new Float32Array(s.analyser.fftSize);
    s.analyser.getFloatTimeDomainData(frame);
    const peak = peakOf(frame);
    s.peak = Math.max(s.peak, peak);
    s.clipped ||= peak >= CLIPPING;
    this.meter.value = meterPosition(peak);
    this.holder.dataset.peak = s.peak.toFixed(4);
    const seconds = (performance.now() - s.began) / 1000;
    this.clock.textContent = `${formatDuration(seconds)} / ${formatDuration(this.maxSeconds)}`;
    if (s.clipped) this.say("Too loud: the recording clips. Move back from the microphone or turn its level down.");
    if (seconds >= this.maxSeconds) guarded(() => this.stop())();
  }

  async stop() {
    const s = this.session;
    if (!s) return;
    this.session = null;
    clearInterval(s.timer);
    if (s.recorder.state !== "inactive") s.recorder.stop();
    await s.done;
    for (const track of s.stream.getTracks()) track.stop();
    await s.audio.close();
    this.stopButton.hidden = true;
    this.meter.hidden = true;
    this.meter.value = 0;
    this.recordButton.hidden = false;
    this.recordButton.textContent = "🎤 Record again";
    this.say("Preparing the recording…");
    const blob = new Blob(s.chunks, { type: s.recorder.mimeType });
    let decoded;
    try {
      decoded = await new OfflineAudioContext(1, 1, TAKE_RATE).decodeAudioData(await blob.arrayBuffer());
    } catch {
      this.holder.dataset.state = "idle";
      throw Object.assign(new Error("The recording could not be read back. Record again, or choose a file instead."), { expected: true });
    }
    const channels = Array.from({ length: decoded.numberOfChannels }, (_, c) => decoded.getChannelData(c));
    const samples = mixdown(channels, Math.floor(this.maxSeconds * TAKE_RATE));
    const seconds = samples.length / TAKE_RATE;
    const stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, "-");
    this.take = new File([encodeWav(samples, TAKE_RATE)], `${this.name}-${stamp}.wav`, { type: "audio/wav" });
    this.replay.src = URL.createObjectURL(this.take);
    this.replay.hidden = false;
    this.discardButton.hidden = false;
    const short = seconds < this.minSeconds;
    this.useButton.hidden = false;
    this.useButton.disabled = short;
    this.holder.dataset.state = "recorded";
    this.holder.dataset.seconds = seconds.toFixed(2);
    this.say(short ? `This take is ${seconds.toFixed(1)} s; at least ${this.minSeconds} s are needed. Record again.`
      : `${formatDuration(seconds)} recorded${s.clipped ? ", but it clips: consider recording again at a lower level" : ""}. Listen to it, then ${this.useButton.textContent.toLowerCase()}.`);
    announce("Recording stopped: listen to it before using it.");
  }

  /** A new shortest length (the same recorder serves a first sample and a shorter clip). */
  setMinimum(seconds) {
    this.minSeconds = seconds;
    if (!this.take) return;
    const short = Number(this.holder.dataset.seconds) < seconds;
    this.useButton.disabled = short;
    if (short) this.say(`This take is ${Number(this.holder.dataset.seconds).toFixed(1)} s; at least ${seconds} s are needed. Record again.`);
  }

  async use() {
    if (!this.take) return;
    const take = this.take;
    this.discard();
    await this.onTake(take);
  }

  discard() {
    if (this.replay.src) URL.revokeObjectURL(this.replay.src);
    this.replay.removeAttribute("src");
    this.replay.hidden = true;
    this.useButton.hidden = true;
    this.discardButton.hidden = true;
    this.take = null;
    this.holder.dataset.state = "idle";
    this.say("");
  }

  lengthHint() {
    const max = `stops by itself at ${formatDuration(this.maxSeconds)}`;
    return this.minSeconds ? `at least ${formatDuration(this.minSeconds)}, ${max}` : max;
  }

  say(text) { this.status.textContent = text; }
}

/** Puts a file in a file input, as if it had been picked there (its form's checks still apply). */
export function pickFile(input, file) {
  const transfer = new DataTransfer();
  transfer.items.add(file);
  input.files = transfer.files;
  input.dispatchEvent(new Event("change", { bubbles: true }));
}
