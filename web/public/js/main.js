// Boots the page: reads config.json, signs the person in, then wires the panels.

import { Api } from "./api.js";
import { createAuth } from "./auth.js";
import { ConversionPanel } from "./conversion.js";
import { DatasetPanel } from "./dataset.js";
import { InstantPanel } from "./instant.js";
import { ProfilesPanel } from "./profiles.js";
import { SpeechPanel } from "./speech.js";
import { TrainingPanel } from "./training.js";
import { $, clearError, formatDuration, guarded, showError, showNotice } from "./ui.js";

async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) {
    throw new Error("This page has no config.json. Copy config.example.json to config.json and fill in your project's URLs.");
  }
  return response.json();
}

async function boot() {
  const config = await loadConfig();
  const auth = await createAuth(config);
  const api = new Api(config.apiUrl, () => auth.token(),
    (error) => auth.signOut(`You were signed out (${error.message}). Sign in again.`));
  const limits = await api.get("/limits");
  const ctx = { config, auth, api, limits, profile: null, quota: null };
  $("dataset-window").textContent = `${formatDuration(limits.min_dataset_seconds)}–${formatDuration(limits.max_dataset_seconds)}`;
  ctx.training = new TrainingPanel(ctx);
  ctx.dataset = new DatasetPanel(ctx);
  ctx.conversion = new ConversionPanel(ctx);
  ctx.instant = new InstantPanel(ctx);
  ctx.speech = new SpeechPanel(ctx);
  ctx.profiles = new ProfilesPanel(ctx);
  wireSignIn(auth, config);
  $("alert-close").addEventListener("click", clearError);
  $("sign-out").addEventListener("click", guarded(() => auth.signOut()));
  auth.onChange((user, reason) => guarded(() => showUser(ctx, user, reason))());
  $("booting").hidden = true;
  await guarded(showUser)(ctx, await auth.init());
}

async function showUser(ctx, user, reason) {
  $("sign-in").hidden = Boolean(user);
  $("app").hidden = !user;
  $("account").hidden = !user;
  $("account-email").textContent = user?.email || "";
  if (reason) showError({ message: reason, expected: true });
  if (user) {
    clearError();
    await ctx.profiles.load();
  } else {
    ctx.profiles.reset();
  }
}

function wireSignIn(auth, config) {
  if (auth.mode === "local") {
    const form = $("local-sign-in");
    form.hidden = false;
    $("local-email").value = config.auth.defaultEmail || "";
    form.addEventListener("submit", guarded(async (event) => {
      event.preventDefault();
      await auth.signIn($("local-email").value);
    }));
    return;
  }
  const form = $("supabase-sign-in");
  form.hidden = false;
  form.addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const email = $("sb-email").value;
    const password = $("sb-password").value;
    if (event.submitter?.value === "sign-up") {
      const outcome = await auth.signUp(email, password);
      if (outcome === "confirm-email") showNotice("Check your inbox: confirm your email, then sign in.");
    } else {
      await auth.signIn(email, password);
    }
  }));
  $("sb-magic").addEventListener("click", guarded(async () => {
    if (!$("sb-email").reportValidity()) return;
    await auth.sendLink($("sb-email").value);
    showNotice("A sign-in link is on its way to your inbox.");
  }));
}

boot().catch((error) => {
  $("booting").textContent = "The page could not start.";
  showError(error);
});
