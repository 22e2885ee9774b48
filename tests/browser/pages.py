"""What the browser tests do on the page, in the words a person would use."""

import base64
import re
from pathlib import Path

import numpy as np
from playwright.sync_api import Page, expect

from pipeline.local.stack import LocalStack
from tests.audio import encode, voice

# Replaces the browser's Notification with a recorder and lets a test hide the tab: headless
# Chromium neither shows notifications nor lets a page be hidden on demand.
NOTIFICATION_RECORDER = """
window.__notifications = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notifications.push({ title, body: options?.body }); }
};
Object.defineProperty(document, "hidden", { get: () => Boolean(window.__hidden) });
"""


def sign_in(page: Page, stack: LocalStack, email: str) -> None:
    page.goto(stack.web_url)
    page.locator("#local-email").fill(email)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-email")).to_have_text(email)


def create_voice(page: Page, name: str) -> None:
    page.get_by_placeholder("New voice name").fill(name)
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#profile-title")).to_have_text(name)


def file_row(page: Page, filename: str):
    return page.locator(f'#file-rows tr[data-filename="{filename}"]')


def write_clips(folder: Path, count: int = 6, seconds: float = 5.0) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"take{i}.wav"
        path.write_bytes(encode(voice(seconds, f0=180 + 25 * i, seed=i), 44100, "wav"))
        paths.append(path)
    return paths


def write_stem(path: Path, seconds: float = 6.0) -> Path:
    samples = voice(seconds, rate=48000, f0=200, seed=9, level=0.5)
    path.write_bytes(encode(samples.astype(np.float32), 48000, "flac"))
    return path


def painted_pixels(page: Page, selector: str) -> list[int]:
    """How many pixels each matching canvas has drawn (0 for a blank one)."""
    return page.eval_on_selector_all(
        selector,
        """canvases => canvases.map(c => {
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })""",
    )


def step_of(text: str) -> int | None:
    match = re.search(r"step (\d+) of (\d+)", text)
    return int(match.group(1)) if match else None


def drop_files(page: Page, target: str, files: dict[str, bytes]) -> None:
    """Drops files on an element the way a file manager does (a drop event with a
    DataTransfer), which Playwright has no call for."""
    encoded = {name: base64.b64encode(data).decode() for name, data in files.items()}
    page.eval_on_selector(
        target,
        """(zone, files) => {
            const transfer = new DataTransfer();
            for (const [name, b64] of Object.entries(files)) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name));
            }
            for (const type of ["dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true }));
            }
        }""",
        encoded,
    )


def unnamed_controls(page: Page) -> list[str]:
    """Visible buttons, inputs and selects a screen reader could not name."""
    return page.eval_on_selector_all(
        "button, input, select, a.button",
        """nodes => nodes.filter(n => n.offsetParent !== null || n.type === "file").filter(n => {
            const label = n.labels && [...n.labels].some(l => l.textContent.trim());
            return !(label || n.getAttribute("aria-label") || n.getAttribute("aria-labelledby")
                     || (n.tagName !== "INPUT" && n.textContent.trim()));
        }).map(n => n.outerHTML.slice(0, 80))""",
    )
