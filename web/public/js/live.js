// Keeps a panel fresh: polls while something is in flight, and when Supabase Realtime is
// configured, refreshes at once on a change to the person's own rows (RLS filters them).
//
// Each start() subscribes on a topic of its own. realtime-js's channel(topic) hands back any
// channel of that topic it still holds, whose subscribe() does nothing once it is leaving.
// With the vendored realtime-js (Phoenix's leave() closes the channel at once, without
// waiting for the server) removeChannel() has dropped the old one by then; a topic per start
// keeps a restart working whatever a later version does with the leave, and the callback
// ignores a channel that is no longer this panel's.

import { showError } from "./ui.js";

let topics = 0;

export class Live {
  /** refresh() returns true while there is still something to wait for. */
  constructor(ctx, table, refresh, intervalMs = ctx.config?.pollMs ?? 1500) {
    this.ctx = ctx;
    this.table = table;
    this.refresh = refresh;
    this.intervalMs = intervalMs;
    this.timer = null;
    this.channel = null;
    this.client = null; // the client the channel belongs to: sign-out may replace auth's
    this.running = false;
  }

  start() {
    this.stop();
    this.running = true;
    const realtime = this.ctx.auth.realtime;
    const user = this.ctx.auth.user;
    if (realtime && user) {
      const channel = realtime
        .channel(`${this.table}-${user.id}-${++topics}`)
        .on("postgres_changes", { event: "*", schema: "public", table: this.table, filter: `user_id=eq.${user.id}` },
          () => { if (this.channel === channel) this.changed(); });
      this.channel = channel;
      this.client = realtime;
      channel.subscribe();
    }
    this.tick();
  }

  /** A row changed: refresh now, in place of the poll that was due. */
  changed() {
    clearTimeout(this.timer);
    this.tick();
  }

  /** Polls again soon: after an upload or a button press that starts something. */
  kick() {
    if (this.running && !this.timer) this.schedule(0);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.channel) this.client.removeChannel(this.channel);
    this.channel = null;
    this.client = null;
  }

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), delay);
  }

  async tick() {
    this.timer = null;
    if (!this.running) return;
    let again = false;
    let delay = this.intervalMs;
    try {
      again = await this.refresh();
    } catch (error) {
      if (error.status === 401) return;
      showError(error);
      again = true;
      delay = this.intervalMs * 4;
    }
    if (again && this.running && !this.timer) this.schedule(delay);
  }
}
