// Before/after player: both files decoded into one AudioContext, played in lockstep, with
// A/B switching that changes only which gain is open, so the switch lands on the same
// instant. Each side is turned down to the quieter one's loudness (BS.1770-style: K-weighted
// through the browser's own filters, gated), so a person compares the voice, not the volume.

import { el, formatDuration } from "./ui.js";

const FADE_S = 0.01;

export class ABPlayer {
  constructor(holder) {
    this.holder = holder;
    this.audio = null;
    this.tracks = [];
    this.live = "after";
    this.playing = null; // {sources, startedAt, offset}
    this.offset = 0;
    this.frame = 0;
  }

  async load(beforeUrl, afterUrl, labels = ["Before (your upload)", "After (converted)"]) {
    this.stop();
    this.holder.dataset.ready = "false";
    this.holder.replaceChildren(el("p", { class: "hint" }, "Loading both versions…"));
    this.audio ||= new AudioContext();
    const [before, after] = await Promise.all([beforeUrl, afterUrl].map((url) => decode(this.audio, url)));
    const levels = await Promise.all([loudness(before), loudness(after)]);
    const target = Math.min(...levels.filter(isFinite));
    this.tracks = [["before", labels[0], before, levels[0]], ["after", labels[1], after, levels[1]]]
      .map(([id, label, buffer, lufs]) => ({ id, label, buffer, lufs, gain: isFinite(lufs) ? 10 ** ((target - lufs) / 20) : 1 }));
    this.duration = Math.max(before.duration, after.duration);
    this.offset = 0;
    this.render();
    Object.assign(this.holder.dataset, {
      ready: "true", lufsBefore: levels[0].toFixed(2), lufsAfter: levels[1].toFixed(2),
      gainBefore: this.tracks[0].gain.toFixed(4), gainAfter: this.tracks[1].gain.toFixed(4),
    });
  }

  render() {
    this.playButton = el("button", { type: "button", onclick: () => this.togglePlay() }, "Play");
    const choose = this.tracks.map((t) => el("button", {
      type: "button", "aria-pressed": String(this.live === t.id), dataset: { track: t.id },
      onclick: () => this.choose(t.id),
    }, t.id === "before" ? "A: before" : "B: after"));
    this.position = el("input", { type: "range", min: "0", max: String(this.duration), step: "0.01", value: "0",
      "aria-label": "Position", oninput: (e) => this.seek(Number(e.target.value)) });
    this.clock = el("span", { class: "hint" }, `0:00 / ${formatDuration(this.duration)}`);
    const [b, a] = this.tracks;
    const louder = a.lufs > b.lufs ? a : b;
    const gap = Math.abs(a.lufs - b.lufs);
    const note = isFinite(gap) ? `Loudness: before ${b.lufs.toFixed(1)} LUFS, after ${a.lufs.toFixed(1)} LUFS; `
      + (gap < 0.1 ? "already matched." : `${louder.id} is turned down ${gap.toFixed(1)} dB so both play equally loud.`) : "";
    this.canvases = this.tracks.map((t) => {
      const canvas = el("canvas", { "aria-hidden": "true", dataset: { track: t.id } });
      canvas.addEventListener("click", (e) => {
        const box = canvas.getBoundingClientRect();
        this.seek(((e.clientX - box.left) / box.width) * this.duration);
      });
      return canvas;
    });
    this.holder.replaceChildren(
      el("div", { class: "row" }, this.playButton, ...choose, this.clock),
      this.position,
      el("p", { class: "hint loudness" }, note),
      ...this.tracks.map((t, i) => el("div", { class: `track ${this.live === t.id ? "live" : ""}`, dataset: { track: t.id } },
        el("div", { class: "track-label" }, t.label), this.canvases[i])),
    );
    this.holder.classList.add("ab");
    this.canvases.forEach((canvas, i) => drawWave(canvas, this.tracks[i].buffer));
    this.drawHead();
  }

  choose(id) {
    this.live = id;
    this.holder.dataset.live = id;
    for (const button of this.holder.querySelectorAll("button[data-track]")) {
      button.setAttribute("aria-pressed", String(button.dataset.track === id));
    }
    for (const track of this.holder.querySelectorAll(".track")) track.classList.toggle("live", track.dataset.track === id);
    if (this.playing) {
      const now = this.audio.currentTime;
      this.playing.gains.forEach((node, i) => node.gain.setTargetAtTime(this.levelOf(i), now, FADE_S));
    }
  }

  levelOf(i) {
    return this.tracks[i].id === this.live ? this.tracks[i].gain : 0;
  }

  async togglePlay() {
    if (this.playing) {
      this.offset = this.now();
      this.stop();
      return;
    }
    await this.audio.resume();
    if (this.offset >= this.duration) this.offset = 0;
    const startAt = this.audio.currentTime + 0.05;
    const gains = this.tracks.map((_, i) => {
      const node = this.audio.createGain();
      node.gain.value = this.levelOf(i);
      node.connect(this.audio.destination);
      return node;
    });
    const sources = this.tracks.map((t, i) => {
      const source = this.audio.createBufferSource();
      source.buffer = t.buffer;
      source.connect(gains[i]);
      source.start(startAt, Math.min(this.offset, t.buffer.duration));
      return source;
    });
    sources[0].onended = () => { if (this.playing?.sources === sources && this.now() >= this.duration - 0.1) this.finish(); };
    this.playing = { sources, gains, startAt, offset: this.offset };
    this.holder.dataset.playing = "true";
    this.playButton.textContent = "Pause";
    this.tickHead();
  }

  now() {
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.playing.offset + Math.max(0, this.audio.currentTime - this.playing.startAt));
  }

  seek(seconds) {
    const wasPlaying = Boolean(this.playing);
    this.stop();
    this.offset = Math.max(0, Math.min(seconds, this.duration));
    this.drawHead();
    if (wasPlaying) this.togglePlay();
  }

  finish() {
    this.stop();
    this.offset = 0;
    this.drawHead();
  }

  stop() {
    cancelAnimationFrame(this.frame);
    if (!this.playing) return;
    for (const source of this.playing.sources) {
      source.onended = null;
      try { source.stop(); } catch { /* already stopped */ }
    }
    for (const node of this.playing.gains) node.disconnect();
    this.playing = null;
    this.holder.dataset.playing = "false";
    if (this.playButton) this.playButton.textContent = "Play";
  }

  tickHead() {
    this.drawHead();
    if (this.playing) this.frame = requestAnimationFrame(() => this.tickHead());
  }

  drawHead() {
    if (!this.canvases) return;
    const t = this.now();
    this.position.value = String(t);
    this.clock.textContent = `${formatDuration(t)} / ${formatDuration(this.duration)}`;
    this.canvases.forEach((canvas, i) => drawWave(canvas, this.tracks[i].buffer, t / this.duration));
  }
}

async function decode(audio, url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`Could not fetch the audio to compare (HTTP ${response.status}).`);
  return audio.decodeAudioData(await response.arrayBuffer());
}

/** Integrated loudness (LUFS): K-weighting by the browser's biquads, 400 ms blocks with
 * 75% overlap, absolute gate −70 LUFS and relative gate −10 LU, as in ITU-R BS.1770. */
export async function loudness(buffer) {
  const offline = new OfflineAudioContext(buffer.numberOfChannels, buffer.length, buffer.sampleRate);
  const source = offline.createBufferSource();
  source.buffer = buffer;
  const shelf = Object.assign(offline.createBiquadFilter(), { type: "highshelf" });
  shelf.frequency.value = 1681;
  shelf.gain.value = 4;
  const highpass = Object.assign(offline.createBiquadFilter(), { type: "highpass" });
  highpass.frequency.value = 38;
  highpass.Q.value = 20 * Math.log10(0.5); // Web Audio takes a highpass Q in dB
  source.connect(shelf).connect(highpass).connect(offline.destination);
  source.start();
  const weighted = await offline.startRendering();
  const block = Math.round(0.4 * buffer.sampleRate);
  const hop = Math.round(block / 4);
  const powers = [];
  for (let start = 0; start + block <= weighted.length; start += hop) {
    let power = 0;
    for (let c = 0; c < weighted.numberOfChannels; c++) {
      const data = weighted.getChannelData(c);
      let sum = 0;
      for (let i = start; i < start + block; i++) sum += data[i] * data[i];
      power += sum / block;
    }
    powers.push(power);
  }
  const lufs = (p) => -0.691 + 10 * Math.log10(p);
  const mean = (list) => list.reduce((a, b) => a + b, 0) / list.length;
  const loud = powers.filter((p) => lufs(p) > -70);
  if (!loud.length) return -Infinity;
  const relative = lufs(mean(loud)) - 10;
  const gated = loud.filter((p) => lufs(p) > relative);
  return lufs(mean(gated));
}

function drawWave(canvas, buffer, head = 0) {
  const scale = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * scale));
  const height = Math.max(1, Math.round(canvas.clientHeight * scale));
  if (canvas.width !== width || canvas.height !== height || !canvas.peaks) {
    canvas.width = width;
    canvas.height = height;
    canvas.peaks = peaks(buffer, width);
  }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  const mid = height / 2;
  const played = Math.round(head * width);
  for (let x = 0; x < width; x++) {
    const [lo, hi] = canvas.peaks[x];
    g.fillStyle = x < played ? "#3246c8" : "#9aa3e0";
    g.fillRect(x, mid - hi * mid, 1, Math.max(1, (hi - lo) * mid));
  }
}

function peaks(buffer, columns) {
  const data = buffer.getChannelData(0);
  const per = Math.max(1, Math.floor(data.length / columns));
  const out = [];
  for (let x = 0; x < columns; x++) {
    let lo = 0;
    let hi = 0;
    for (let i = x * per, end = Math.min(data.length, i + per); i < end; i++) {
      if (data[i] < lo) lo = data[i];
      if (data[i] > hi) hi = data[i];
    }
    out.push([lo, hi]);
  }
  return out;
}
