// Runs the Worker's queue() handler against a live svc-pipeline API (PIPELINE_URL) with the
// key the API trusts (WEBHOOK_SIGNING_KEY). The pytest suite starts both and runs this file.
import assert from "node:assert/strict";
import { test } from "node:test";

import worker, { backoffSeconds } from "../src/worker.js";

const env = {
  PIPELINE_URL: process.env.PIPELINE_URL,
  WEBHOOK_SIGNING_KEY: process.env.WEBHOOK_SIGNING_KEY,
};
const realEvent = JSON.parse(process.env.RELAY_TEST_EVENT);

function message(id, body, attempts = 1) {
  return {
    id, body, attempts, timestamp: new Date(),
    acked: false, retried: null,
    ack() { this.acked = true; },
    retry(options) { this.retried = options; },
  };
}

test("a signed event is accepted and acked", async () => {
  const m = message(`real-${Date.now()}`, realEvent);
  await worker.queue({ queue: "uploads", messages: [m] }, env);
  assert.equal(m.acked, true);
  assert.equal(m.retried, null);
});

test("a tampered body is refused and retried, not acked", async () => {
  const realFetch = globalThis.fetch;
  globalThis.fetch = (url, init) =>
    realFetch(url, { ...init, body: init.body.replace("PutObject", "CopyObject") });
  try {
    const m = message(`tampered-${Date.now()}`, realEvent, 3);
    await worker.queue({ queue: "uploads", messages: [m] }, env);
    assert.equal(m.acked, false);
    assert.deepEqual(m.retried, { delaySeconds: backoffSeconds(3) });
  } finally {
    globalThis.fetch = realFetch;
  }
});

test("a key the API does not trust is refused", async () => {
  const seed = Buffer.alloc(32, 7).toString("base64");
  const m = message(`foreign-${Date.now()}`, realEvent);
  await worker.queue({ queue: "uploads", messages: [m] }, { ...env, WEBHOOK_SIGNING_KEY: `whsk_${seed}` });
  assert.equal(m.acked, false);
  assert.ok(m.retried);
});

test("an unreachable API is retried with backoff", async () => {
  const m = message(`down-${Date.now()}`, realEvent, 2);
  await worker.queue({ queue: "uploads", messages: [m] }, { ...env, PIPELINE_URL: "http://127.0.0.1:9" });
  assert.deepEqual(m.retried, { delaySeconds: 10 });
});
