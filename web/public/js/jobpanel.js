// What the training and conversion panels share: the job list, which job is in flight, cancel.

import { Live } from "./live.js";
import { announce, formatDate } from "./ui.js";

export class JobPanel {
  /** path: "trainings" or "conversions"; table: the Realtime table of its rows. */
  constructor(ctx, { path, table, activeStatuses, noun }) {
    this.ctx = ctx;
    this.path = path;
    this.activeStatuses = activeStatuses;
    this.noun = noun;
    this.live = new Live(ctx, table, () => this.refresh());
    this.reset();
  }

  reset() {
    this.jobs = [];
    this.watching = null; // the job this page saw in flight: its outcome stays on screen
    this.handled = new Set(); // ended jobs whose ending was already announced
  }

  show() {
    this.reset();
    this.live.start();
  }

  stop() { this.live.stop(); }

  get active() { return this.jobs.find((job) => this.activeStatuses.has(job.status)) || null; }

  /** The job to show: the one in flight, else the last one this page watched. */
  get shown() {
    return this.active || this.jobs.find((job) => job.id === this.watching) || null;
  }

  /** Call after each fetch of `jobs`: returns the watched job once, the first time it is
   * seen ended, so its ending is announced once however often the list is refreshed. */
  takeEnded() {
    if (this.active) {
      this.watching = this.active.id;
      return null;
    }
    const job = this.shown;
    if (!job || this.handled.has(job.id)) return null;
    this.handled.add(job.id);
    return job;
  }

  async cancel() {
    const job = this.active;
    if (!job) return;
    await this.ctx.api.post(`/${this.path}/${job.id}/cancel`);
    announce(`${this.noun} canceled.`);
    await this.ctx.profiles.refreshQuota();
    this.live.kick();
  }
}

/** "No trainings left this month (3 of 3 used); more on …", from a `/quota` entry. */
export function quotaSpent(usage, plural, period) {
  return `No ${plural} left ${period} (${usage.used} of ${usage.limit} used); more on ${formatDate(usage.resets_at)}.`;
}
