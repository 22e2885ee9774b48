// Calls the API with the signed-in person's token and turns every failure into a sentence.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "NETWORK", details = {} } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.expected = true;
  }
}

export class Api {
  /**
   * `sleep` is injectable so the page's tests need not wait in real time; `retries` is how
   * often a request refused for now (429 or 503, with `Retry-After`) is sent again.
   */
  constructor(baseUrl, getToken, onUnauthorized, { sleep = wait, retries = 2, maxWaitSeconds = 60 } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
    this.sleep = sleep;
    this.retries = retries;
    this.maxWaitSeconds = maxWaitSeconds;
  }

  get(path) { return this.request("GET", path); }
  post(path, body, options) { return this.request("POST", path, body, options); }
  delete(path) { return this.request("DELETE", path); }

  /**
   * A 429 (rate limited) or 503 (a dependency down) is the server saying "not now": the
   * request is sent again after its `Retry-After`, up to `retries` times, instead of failing
   * the person's action. Only a 401 (the server rejected the token) signs out.
   */
  async request(method, path, body, { retries = this.retries } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const response = await this.send(method, path, body);
      // a 204 (DELETE /instant/voices/{id}) has no body to read
      if (response.ok) return response.status === 204 ? null : response.json();
      const delay = retryDelay(response, this.maxWaitSeconds, await retryAfterInBody(response));
      if (delay !== null && attempt < retries) {
        await this.sleep(delay * 1000);
        continue;
      }
      const error = await errorFrom(response);
      if (error.status === 401 && this.onUnauthorized) {
        error.signedOut = true; // the sign-out says why; the failed call need not say it again
        await this.onUnauthorized(error);
      }
      throw error;
    }
  }

  async send(method, path, body) {
    const headers = {};
    const token = await this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await fetch(this.baseUrl + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(`Could not reach the server at ${this.baseUrl}. Check your connection and try again.`);
    }
  }
}

/**
 * Seconds to wait before sending a refused request again, or null when it is not worth it:
 * the `Retry-After` header, else the error body's `details.retry_after` (a proxy or a CORS
 * setup that hides the header), else 5 s for a 503.
 */
export function retryDelay(response, maxWaitSeconds = 60, fromBody = null) {
  if (response.status !== 429 && response.status !== 503) return null;
  const header = Number(response.headers.get("Retry-After") ?? Number.NaN);
  const said = Number.isFinite(header) && header > 0 ? header : fromBody;
  const seconds = said > 0 ? said : response.status === 503 ? 5 : null;
  return seconds !== null && seconds <= maxWaitSeconds ? seconds : null;
}

/** `details.retry_after` of a refusal's error body, read from a copy (the caller reads it too). */
async function retryAfterInBody(response) {
  if (response.status !== 429 && response.status !== 503) return null;
  try {
    const seconds = Number((await response.clone().json())?.error?.details?.retry_after);
    return Number.isFinite(seconds) ? seconds : null;
  } catch {
    return null;
  }
}

function wait(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

/** The API's `{"error": {code, message, details}}`, or a plain sentence for anything else. */
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy or gateway page
  }
  const info = body?.error;
  if (info?.message) {
    return new ApiError(info.message, { status: response.status, code: info.code, details: info.details || {} });
  }
  const message = response.status >= 500
    ? "The server had a problem. Please try again in a moment."
    : `The request failed (HTTP ${response.status}).`;
  return new ApiError(message, { status: response.status, code: `HTTP_${response.status}` });
}
