// Who is signed in: Supabase Auth in production, the local stack's dev sessions locally.
// Both give the page the same thing: a user and a bearer token for the API.

import { ApiError, errorFrom } from "./api.js";

const LOCAL_KEY = "svc.local-session";

export async function createAuth(config) {
  return config.auth?.mode === "supabase" ? SupabaseAuth.create(config.auth) : LocalAuth.create(config.auth || {});
}

class LocalAuth {
  /** With `realtime` and `url` (the local stack's Supabase stand-in), the page subscribes to
   * Realtime through supabase-js exactly as in production, with the local token. */
  static async create(options) {
    if (options.realtime && options.url) await loadScript("vendor/supabase.js");
    return new LocalAuth(options);
  }

  constructor(options) {
    this.mode = "local";
    this.options = options;
    this.listeners = [];
    this.session = null;
    this.client = null; // a Realtime-only supabase-js client for the current session
  }

  async init() {
    try {
      const stored = JSON.parse(localStorage.getItem(LOCAL_KEY) || "null");
      if (stored && stored.expires_at * 1000 > Date.now() + 30_000) this.session = stored;
    } catch {
      localStorage.removeItem(LOCAL_KEY);
    }
    return this.user;
  }

  get user() { return this.session?.user || null; }

  get realtime() {
    if (!this.options.realtime || !this.options.url || !window.supabase || !this.session) return null;
    if (!this.client) {
      const token = this.session.access_token;
      this.client = window.supabase.createClient(this.options.url, "local", { accessToken: async () => token });
      // now, not a tick later as createClient does: a channel subscribed before would join
      // without the token, as anon, and hear of nothing
      this.client.realtime.setAuth(token);
    }
    return this.client;
  }

  async token() {
    if (this.session && this.session.expires_at * 1000 <= Date.now()) {
      this.signOut("Your session expired. Sign in again.");
      return null;
    }
    return this.session?.access_token || null;
  }

  async signIn(email) {
    let response;
    try {
      response = await fetch(this.options.sessionUrl, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email }),
      });
    } catch {
      throw new ApiError("Could not reach the local stack. Is `make dev` still running?");
    }
    if (!response.ok) throw await errorFrom(response);
    this.session = await response.json();
    this.client = null; // the next one carries the new token
    localStorage.setItem(LOCAL_KEY, JSON.stringify(this.session));
    this.emit();
  }

  async signOut(reason) {
    this.session = null;
    this.client = null;
    localStorage.removeItem(LOCAL_KEY);
    this.emit(reason);
  }

  onChange(listener) { this.listeners.push(listener); }
  emit(reason) { for (const listener of this.listeners) listener(this.user, reason); }
}

class SupabaseAuth {
  static async create(options) {
    await loadScript("vendor/supabase.js");
    return new SupabaseAuth(options, window.supabase.createClient(options.url, options.anonKey));
  }

  constructor(options, client) {
    this.mode = "supabase";
    this.options = options;
    this.client = client;
    this.listeners = [];
    this.currentUser = null;
    client.auth.onAuthStateChange((_event, session) => {
      const before = this.currentUser?.id;
      this.currentUser = session?.user || null;
      if (before !== this.currentUser?.id) this.emit();
    });
  }

  async init() {
    const { data } = await this.client.auth.getSession();
    this.currentUser = data.session?.user || null;
    return this.user;
  }

  get user() { return this.currentUser; }
  get realtime() { return this.options.realtime === false ? null : this.client; }

  async token() {
    const { data } = await this.client.auth.getSession();
    return data.session?.access_token || null;
  }

  async signIn(email, password) {
    const { error } = await this.client.auth.signInWithPassword({ email, password });
    if (error) throw new ApiError(authMessage(error), { code: "SIGN_IN_FAILED" });
  }

  async signUp(email, password) {
    const { data, error } = await this.client.auth.signUp({ email, password });
    if (error) throw new ApiError(authMessage(error), { code: "SIGN_UP_FAILED" });
    return data.session ? "signed-in" : "confirm-email";
  }

  async sendLink(email) {
    const { error } = await this.client.auth.signInWithOtp({
      email, options: { emailRedirectTo: location.origin + location.pathname },
    });
    if (error) throw new ApiError(authMessage(error), { code: "SIGN_IN_FAILED" });
  }

  async signOut(reason) {
    // this browser only: the default (global) scope would revoke every device's session
    await this.client.auth.signOut({ scope: "local" });
    this.currentUser = null;
    this.emit(reason);
  }

  onChange(listener) { this.listeners.push(listener); }
  emit(reason) { for (const listener of this.listeners) listener(this.user, reason); }
}

function authMessage(error) {
  const text = error?.message || "Sign-in failed.";
  if (/invalid login credentials/i.test(text)) return "That email and password do not match an account.";
  if (/email not confirmed/i.test(text)) return "Confirm your email first: the link is in your inbox.";
  return text;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new ApiError(`Could not load ${src}. Run \`make web\` to vendor the page's libraries.`));
    document.head.append(script);
  });
}
