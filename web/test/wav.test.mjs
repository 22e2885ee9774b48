import assert from "node:assert/strict";
import { test } from "node:test";

import { encodeWav, meterPosition, mixdown, peakOf } from "../public/js/wav.js";

test("a WAV header a probe reads: RIFF/WAVE, PCM, mono, 16-bit, the rate and length given", () => {
  const view = new DataView(encodeWav(new Float32Array([0, 0.5, -0.5, 1, -1, 2]), 48000));
  const text = (offset) => String.fromCharCode(...new Uint8Array(view.buffer, offset, 4));
  assert.equal(text(0), "RIFF");
  assert.equal(view.getUint32(4, true), 36 + 12);
  assert.equal(text(8), "WAVE");
  assert.equal(view.getUint16(20, true), 1);
  assert.equal(view.getUint16(22, true), 1);
  assert.equal(view.getUint32(24, true), 48000);
  assert.equal(view.getUint32(28, true), 96000);
  assert.equal(view.getUint16(34, true), 16);
  assert.equal(text(36), "data");
  assert.equal(view.getUint32(40, true), 12);
  const samples = [0, 1, 2, 3, 4, 5].map((i) => view.getInt16(44 + 2 * i, true));
  assert.deepEqual(samples, [0, 16384, -16384, 32767, -32768, 32767]); // beyond ±1 clips
});

test("two channels are averaged into one, cut at the longest allowed", () => {
  const mono = mixdown([new Float32Array([1, 0.5, 0]), new Float32Array([0, 0.5, 1])], 2);
  assert.deepEqual([...mono], [0.5, 0.5]);
  assert.equal(mixdown([]).length, 0);
});

test("the level meter: a peak on a -60..0 dBFS scale", () => {
  assert.equal(peakOf(new Float32Array([0.1, -0.5, 0.25])), 0.5);
  assert.equal(meterPosition(0), 0);
  assert.equal(meterPosition(1), 1);
  assert.ok(Math.abs(meterPosition(0.001) - 0) < 1e-9); // -60 dBFS: the bottom
  assert.ok(Math.abs(meterPosition(0.1) - 2 / 3) < 1e-9); // -20 dBFS
});
