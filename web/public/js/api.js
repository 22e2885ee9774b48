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
  constructor(baseUrl, getToken, onUnauthorized) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
  }

  get(path) { return this.request("GET", path); }
  post(path, body) { return this.request("POST", path, body); }
  delete(path) { return this.request("DELETE", path); }

  async request(method, path, body) {
    const headers = {};
    const token = await this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(this.baseUrl + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(`Could not reach the server at ${this.baseUrl}. Check your connection and try again.`);
    }
    if (response.ok) return response.json();
    const error = await errorFrom(response);
    if (error.status === 401 && this.onUnauthorized) {
      error.signedOut = true; // the sign-out says why; the failed call need not say it again
      await this.onUnauthorized(error);
    }
    throw error;
  }
}

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
