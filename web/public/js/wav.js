// Writes recorded audio as a 16-bit PCM WAV: the one container the upload probe reads that a
// browser can write without a library (MediaRecorder makes WebM/Ogg Opus, which the probe
// refuses), so a recording takes exactly the path a picked file takes.

/** Channels (Float32Arrays of one length) mixed down to one, at most `maxSamples` long. */
export function mixdown(channels, maxSamples = Infinity) {
  const length = Math.min(channels[0]?.length || 0, maxSamples);
  const out = new Float32Array(length);
  for (const data of channels) for (let i = 0; i < length; i++) out[i] += data[i] / channels.length;
  return out;
}

/** Mono float samples (−1…1) as a 16-bit PCM WAV file's bytes; values beyond ±1 clip. */
export function encodeWav(samples, sampleRate) {
  const bytes = new ArrayBuffer(44 + 2 * samples.length);
  const view = new DataView(bytes);
  const text = (offset, value) => { for (let i = 0; i < value.length; i++) view.setUint8(offset + i, value.charCodeAt(i)); };
  text(0, "RIFF");
  view.setUint32(4, 36 + 2 * samples.length, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, 2 * sampleRate, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, 2 * samples.length, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + 2 * i, s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff), true);
  }
  return bytes;
}

/** The loudest sample's magnitude in a frame of the analyser's time-domain data (0…1). */
export function peakOf(frame) {
  let peak = 0;
  for (const value of frame) peak = Math.max(peak, Math.abs(value));
  return Math.min(1, peak);
}

/** A peak as the meter's 0…1 position on a −60…0 dBFS scale: quiet singing still moves it. */
export function meterPosition(peak) {
  if (!(peak > 0)) return 0;
  return Math.max(0, Math.min(1, 1 + (20 * Math.log10(peak)) / 60));
}
