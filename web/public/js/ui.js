// Small DOM helpers shared by every panel: element building, messages, formatting.

export const $ = (id) => document.getElementById(id);

/** Builds an element: el("button", {type: "button", onclick}, "text", child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Shows an error to the person (role=alert is read out by screen readers). */
export function showError(error) {
  if (error?.signedOut) return;
  const message = error?.message || String(error);
  $("alert-text").textContent = message;
  $("alert").classList.remove("info");
  $("alert").hidden = false;
  if (error && !error.expected) console.error(error);
}

/** A message that needs reading but is not a failure ("check your inbox"). */
export function showNotice(text) {
  $("alert-text").textContent = text;
  $("alert").classList.add("info");
  $("alert").hidden = false;
}

export function clearError() {
  $("alert").hidden = true;
  $("alert-text").textContent = "";
}

/** Runs an async action for a UI event and shows what went wrong instead of dropping it. */
export function guarded(action) {
  return async (...args) => {
    try {
      return await action(...args);
    } catch (error) {
      showError(error);
    }
  };
}

/** Says something to screen readers without moving focus. */
export function announce(text) {
  $("announce").textContent = text;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function formatBytes(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function formatDate(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
