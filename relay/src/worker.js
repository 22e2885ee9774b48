// Cloudflare Queue consumer: forwards each R2 event notification to the pipeline's
// POST /events/r2, signed per Standard Webhooks with v1a (Ed25519 over
// "{webhook-id}.{webhook-timestamp}.{body}"). 2xx acks; 5xx, 401, 429 and network errors
// retry with backoff; other 4xx are poison and are acked (the reconciler still finds the
// upload). The webhook id is stable per message, so the API drops a redelivered duplicate.

const PKCS8_ED25519_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

function base64ToBytes(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

// whsk_<base64 of a 32-byte seed, or a 64-byte libsodium secret key whose first half is the seed>
export async function importSigningKey(secret) {
  if (!secret || !secret.startsWith("whsk_")) throw new Error("WEBHOOK_SIGNING_KEY must start with whsk_");
  const seed = base64ToBytes(secret.slice(5)).slice(0, 32);
  const der = new Uint8Array(PKCS8_ED25519_PREFIX.length + 32);
  der.set(PKCS8_ED25519_PREFIX);
  der.set(seed, PKCS8_ED25519_PREFIX.length);
  return crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
}

export async function signedHeaders(key, id, body, now = Date.now()) {
  const timestamp = Math.floor(now / 1000).toString();
  const content = new TextEncoder().encode(`${id}.${timestamp}.${body}`);
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, content);
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": timestamp,
    "webhook-signature": `v1a,${bytesToBase64(signature)}`,
  };
}

export function backoffSeconds(attempts) {
  return Math.min(5 * 2 ** Math.max(attempts - 1, 0), 3600);
}

function shouldRetry(status) {
  return status >= 500 || status === 401 || status === 429 || status === 408;
}

export default {
  async queue(batch, env) {
    const key = await importSigningKey(env.WEBHOOK_SIGNING_KEY);
    const url = `${env.PIPELINE_URL.replace(/\/$/, "")}/events/r2`;
    for (const message of batch.messages) {
      const body = typeof message.body === "string" ? message.body : JSON.stringify(message.body);
      const headers = await signedHeaders(key, `msg_${message.id}`, body);
      let status = 0;
      try {
        status = (await fetch(url, { method: "POST", headers, body })).status;
      } catch (error) {
        console.warn(`push of ${message.id} failed: ${error}`);
      }
      if (status >= 200 && status < 300) {
        message.ack();
      } else if (status !== 0 && !shouldRetry(status)) {
        console.error(`dropping ${message.id}: the pipeline answered ${status}`);
        message.ack();
      } else {
        message.retry({ delaySeconds: backoffSeconds(message.attempts) });
      }
    }
  },
};
