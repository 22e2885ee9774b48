"""A whole local stack (as `make dev` runs it: API process, web server, relay, GPU workers in
their own processes) and headless Debian Chromium driving its page."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from pipeline.local.seaweed import find_free_base, free_port
from pipeline.local.stack import REPO_ROOT, LocalStack, StackConfig

CHROMIUM = os.environ.get("SVC_CHROMIUM", "/usr/bin/chromium")
# Chromium reaches for Google's hosts at start; on a closed network that is noise and delay.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip
ARTIFACTS = Path(os.environ.get("SVC_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "screens"


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        root=tmp_path_factory.mktemp("web-stack"),
        api_port=free_port(),
        auth_port=free_port(),
        web_port=free_port(),
        s3_base_port=find_free_base(),
        bucket="svc-web",
        api_env={
            "VC_MIN_DATASET_SECONDS": "20",
            "VC_HEARTBEAT_SECONDS": "1",
            "VC_SINGER_CHECK": "false",
        },  # a torch worker per file would slow training
    )
    if not (REPO_ROOT / "web" / "public" / "vendor" / "uPlot.iife.min.js").exists():
        pytest.fail("the page's libraries are not vendored: run `make web`")
    stack = LocalStack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright for the session: its sync API runs an event loop in this thread, so a
    second `sync_playwright()` while it lives fails ("Sync API inside the asyncio loop");
    a test that needs a Chromium of its own launches it from this one."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)")
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page whose script errors fail the test: nothing may fail silently."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path
