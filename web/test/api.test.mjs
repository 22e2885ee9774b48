import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";

import { Api } from "../public/js/api.js";

/** A real HTTP server answering from a script of [status, headers, body] replies. */
async function serve(script) {
  const seen = [];
  const server = createServer((request, response) => {
    seen.push(`${request.method} ${request.url}`);
    const [status, headers, body] = script.length > 1 ? script.shift() : script[0];
    response.writeHead(status, { "Content-Type": "application/json", ...headers });
    response.end(JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, seen, close: () => new Promise((resolve) => server.close(resolve)) };
}

const refused = (code, status, seconds) => [status, seconds ? { "Retry-After": String(seconds) } : {},
  { error: { code, message: `${code} for now`, details: {} } }];

test("a rate-limited upload ticket waits its Retry-After and asks again", async () => {
  const server = await serve([refused("RATE_LIMITED", 429, 2), refused("RATE_LIMITED", 429, 3), [200, {}, { file_id: "f" }]]);
  const slept = [];
  const api = new Api(server.url, async () => "t", () => assert.fail("not a sign-out"), {
    sleep: async (ms) => slept.push(ms),
  });
  try {
    assert.deepEqual(await api.post("/uploads", { name: "a.wav" }, { retries: 20 }), { file_id: "f" });
    assert.deepEqual(slept, [2000, 3000]);
    assert.equal(server.seen.length, 3);
  } finally {
    await server.close();
  }
});

test("an outage (503) keeps the session: retried, then a clear error, never a sign-out", async () => {
  const server = await serve([refused("SERVICE_UNAVAILABLE", 503, 5)]);
  let signedOut = false;
  const api = new Api(server.url, async () => "t", () => { signedOut = true; }, { sleep: async () => {} });
  try {
    await assert.rejects(api.get("/profiles"), (error) => error.status === 503 && !error.signedOut);
    assert.equal(server.seen.length, 3, "the first try and two retries");
    assert.equal(signedOut, false);
  } finally {
    await server.close();
  }
});

test("a token the server rejected (401) signs out, at once", async () => {
  const server = await serve([refused("UNAUTHORIZED", 401)]);
  const reasons = [];
  const api = new Api(server.url, async () => "t", (error) => reasons.push(error.code), { sleep: async () => {} });
  try {
    await assert.rejects(api.get("/profiles"), (error) => error.signedOut === true);
    assert.deepEqual(reasons, ["UNAUTHORIZED"]);
    assert.equal(server.seen.length, 1);
  } finally {
    await server.close();
  }
});

test("a wait longer than the page will hold is an error at once", async () => {
  const server = await serve([refused("RATE_LIMITED", 429, 3600)]);
  const api = new Api(server.url, async () => "t", null, { sleep: async () => assert.fail("no wait") });
  try {
    await assert.rejects(api.get("/quota"), (error) => error.status === 429);
    assert.equal(server.seen.length, 1);
  } finally {
    await server.close();
  }
});

test("a refusal whose header the browser hides is waited out by its body's retry_after", async () => {
  const server = await serve([[429, {}, { error: { code: "RATE_LIMITED", message: "slow down", details: { retry_after: 4 } } }], [200, {}, { ok: true }]]);
  const slept = [];
  const api = new Api(server.url, async () => "t", null, { sleep: async (ms) => slept.push(ms) });
  try {
    assert.deepEqual(await api.get("/quota"), { ok: true });
    assert.deepEqual(slept, [4000]);
  } finally {
    await server.close();
  }
});

test("a 204 (a delete) resolves with nothing instead of failing to read a body", async () => {
  const server = createServer((request, response) => { response.writeHead(204); response.end(); });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const api = new Api(`http://127.0.0.1:${server.address().port}`, async () => "t", () => assert.fail("not a sign-out"));
  try {
    assert.equal(await api.delete("/instant/voices/v"), null);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
