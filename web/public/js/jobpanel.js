// What the training and conversion panels share: the job list, which job is in flight, cancel.

import { Live } from "./live.js";
import { announce } from "./ui.js";

export class JobPanel {
  /** path: "trainings" or "conversions"; table: the Realtime table of its rows. */
  constructor(ctx, { path, table, activeStatuses, noun }) {
    this.ctx = ctx;
    this.path = path;
    this.activeStatuses = activeStatuses;
    this.noun = noun;
    this.jobs = [];
    this.watching = null; // the job this page saw in flight, to tell when it ends
    this.live = new Live(ctx, table, () => this.refresh());
  }

  stop() { this.live.stop(); }

  get active() { return this.jobs.find((job) => this.activeStatuses.has(job.status)) || null; }

  async cancel() {
    const job = this.active;
    if (!job) return;
    await this.ctx.api.post(`/${this.path}/${job.id}/cancel`);
    announce(`${this.noun} canceled.`);
    await this.ctx.profiles.refreshQuota();
    this.live.kick();
  }
}
