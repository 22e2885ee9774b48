// Keeps a panel fresh: polls while something is in flight, and when Supabase Realtime is
// configured, refreshes at once on a change to the person's own rows (RLS filters them).

import { showError } from "./ui.js";

export class Live {
  /** refresh() returns true while there is still something to wait for. */
  constructor(ctx, table, refresh, intervalMs = 1500) {
    this.ctx = ctx;
    this.table = table;
    this.refresh = refresh;
    this.intervalMs = intervalMs;
    this.timer = null;
    this.channel = null;
    this.running = false;
  }

  start() {
    this.stop();
    this.running = true;
    const realtime = this.ctx.auth.realtime;
    const user = this.ctx.auth.user;
    if (realtime && user) {
      this.channel = realtime
        .channel(`${this.table}-${user.id}`)
        .on("postgres_changes", { event: "*", schema: "public", table: this.table, filter: `user_id=eq.${user.id}` },
          () => this.tick())
        .subscribe();
    }
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
    if (this.channel) this.ctx.auth.realtime?.removeChannel(this.channel);
    this.channel = null;
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
