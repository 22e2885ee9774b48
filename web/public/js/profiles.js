// The voice list: create, pick, delete. Picking a voice fills the three panels.

import { $, announce, el, guarded } from "./ui.js";

const PICKED_KEY = "svc.profile";
const QUOTA_LABELS = { instant: "Instant conversions", text: "Spoken lines" };

/** A quota counted per month rather than per day: its period is longer than two days. */
function isMonthly(usage) {
  return Date.parse(usage.resets_at) - Date.parse(usage.period_start) > 2 * 86400 * 1000;
}

export class ProfilesPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.profiles = [];
    $("profile-create").addEventListener("submit", guarded((event) => this.create(event)));
    $("profile-delete").addEventListener("click", guarded(() => this.deletePicked()));
  }

  reset() {
    this.profiles = [];
    this.pick(null);
  }

  async load() {
    this.profiles = await this.ctx.api.get("/profiles");
    await this.refreshQuota();
    const remembered = localStorage.getItem(PICKED_KEY);
    const next = this.profiles.find((p) => p.id === remembered) || this.profiles[0] || null;
    this.render();
    await this.pick(next);
  }

  async refreshQuota() {
    this.ctx.quota = await this.ctx.api.get("/quota");
    const { training, conversion, quotas = {} } = this.ctx.quota;
    const lines = [
      el("p", {}, `Trainings left this month: ${training.remaining} of ${training.limit}`),
      el("p", {}, `Conversions left today: ${conversion.remaining} of ${conversion.limit}`),
    ];
    // The other counted quotas (instant, text, a later kind's) as /quota lists them.
    for (const usage of Object.values(quotas)) {
      if (usage.kind === "training" || usage.kind === "conversion") continue;
      const label = QUOTA_LABELS[usage.kind] || `${usage.kind} jobs`;
      lines.push(el("p", {}, `${label} left ${isMonthly(usage) ? "this month" : "today"}: ${usage.remaining} of ${usage.limit}`));
    }
    $("quota").replaceChildren(...lines);
    return this.ctx.quota;
  }

  render() {
    const picked = this.ctx.profile?.id;
    $("profiles-empty").hidden = this.profiles.length > 0;
    $("profile-list").replaceChildren(...this.profiles.map((profile) => el("li", {},
      el("button", {
        type: "button", "aria-current": profile.id === picked ? "true" : "false",
        onclick: guarded(() => this.pick(profile)),
      }, profile.name),
    )));
  }

  async pick(profile) {
    this.ctx.profile = profile;
    if (profile) localStorage.setItem(PICKED_KEY, profile.id);
    $("no-profile").hidden = Boolean(profile);
    $("profile-panel").hidden = !profile;
    this.render();
    const panels = [this.ctx.dataset, this.ctx.training, this.ctx.conversion, this.ctx.instant, this.ctx.speech];
    for (const panel of panels) panel.stop();
    if (!profile) return;
    $("profile-title").textContent = profile.name;
    await Promise.all(panels.map((panel) => panel.show()));
  }

  async create(event) {
    event.preventDefault();
    const input = $("profile-name");
    const profile = await this.ctx.api.post("/profiles", { name: input.value });
    input.value = "";
    this.profiles.push(profile);
    announce(`Created the voice ${profile.name}.`);
    await this.pick(profile);
  }

  async deletePicked() {
    const profile = this.ctx.profile;
    if (!profile || !confirm(`Delete the voice "${profile.name}"? Its dataset and models stop being usable.`)) return;
    await this.ctx.api.delete(`/profiles/${profile.id}`);
    announce(`Deleted the voice ${profile.name}.`);
    localStorage.removeItem(PICKED_KEY);
    await this.load();
  }

  /** The dataset summary changes as files are probed; the training panel reads it. */
  async refreshPicked() {
    const profile = this.ctx.profile;
    if (!profile) return null;
    const fresh = await this.ctx.api.get(`/profiles/${profile.id}`);
    Object.assign(profile, fresh);
    return profile;
  }
}
