"""Live updates without polling: the page served by the local stack subscribes through its
real supabase-js to the stack's Realtime stand-in, and a row changed in the database is on
screen without the page asking for it, also after its panels restarted (every panel leaves its
channel and joins a new one when another voice is picked)."""

import time
from collections.abc import Callable
from uuid import UUID, uuid4

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from pipeline.local.stack import LocalStack
from tests.browser.pages import create_voice, file_row, sign_in
from tests.browser.test_web_supabase import PASSWORD, FakeGoTrue

pytestmark = pytest.mark.browser
NO_POLLING_MS = 3_600_000  # an hour: within a test only Realtime can refresh the page


def without_polling(page: Page) -> None:
    """Serves the stack's own config.json with polling pushed out of reach."""

    def handle(route: Route) -> None:
        config = route.fetch().json() | {"pollMs": NO_POLLING_MS}
        route.fulfill(json=config, headers={"Cache-Control": "no-store"})

    page.route("**/config.json", handle)


def wait_until(condition: Callable[[], bool], what: Callable[[], str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(what())
        time.sleep(0.05)


def reserve_upload(stack: LocalStack, email: str, voice: str, filename: str) -> None:
    """A dataset row appears for the voice, as when another tab asks for an upload URL."""
    headers = {"Authorization": f"Bearer {stack.dev_token(email)}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as api:
        [profile] = [p for p in api.get("/profiles").json() if p["name"] == voice]
        body = {"filename": filename, "content_type": "audio/wav", "size_bytes": 480_044}
        api.post(f"/profiles/{profile['id']}/dataset/uploads", json=body).raise_for_status()


def test_a_row_change_reaches_the_page_after_its_panels_restart(web_stack: LocalStack, page: Page):
    realtime = web_stack.realtime
    assert realtime is not None
    email = f"live-{uuid4().hex[:8]}@example.com"
    user_id: UUID = web_stack.ensure_user(email)
    without_polling(page)
    sign_in(page, web_stack, email)

    create_voice(page, "First")
    joins = lambda: realtime.joins[(str(user_id), "dataset_files")]  # noqa: E731
    live = lambda: realtime.subscribed(user_id, "dataset_files")  # noqa: E731
    wait_until(
        lambda: live() == 1,
        lambda: f"the page is not subscribed to its dataset rows ({joins()} joins, {live()} live)",
    )
    reserve_upload(web_stack, email, "First", "pushed.wav")
    expect(file_row(page, "pushed.wav")).to_contain_text("Checking")

    create_voice(page, "Second")  # every panel stops, then starts on the new voice
    expect(file_row(page, "pushed.wav")).to_have_count(0)
    wait_until(
        lambda: joins() >= 2 and live() == 1,
        lambda: (
            f"after the panels restarted the page is not subscribed to its dataset rows "
            f"({joins()} joins, {live()} live)"
        ),
    )
    reserve_upload(web_stack, email, "Second", "after-restart.wav")
    expect(file_row(page, "after-restart.wav")).to_contain_text("Checking")


def test_the_production_page_follows_its_rows_through_realtime(web_stack: LocalStack, page: Page):
    """Production's path: Supabase sign-in (a stand-in for its Auth HTTP API), then the
    client's own Realtime, on the URL a Supabase project serves it, after a panel restart."""
    realtime = web_stack.realtime
    assert realtime is not None
    email = f"sb-live-{uuid4().hex[:8]}@example.com"
    user_id = web_stack.ensure_user(email)
    auth = {"mode": "supabase", "url": web_stack.supabase_url, "anonKey": "anon", "realtime": True}
    config = {
        "apiUrl": web_stack.api_url,
        "trainingPreset": "tiny",
        "auth": auth,
        "pollMs": NO_POLLING_MS,
    }
    page.route("**/config.json", lambda route: route.fulfill(json=config))
    page.route(
        f"{web_stack.supabase_url}/auth/v1/**", FakeGoTrue(web_stack, email, web_stack.supabase_url)
    )
    page.goto(web_stack.web_url)
    page.locator("#sb-email").fill(email)
    page.locator("#sb-password").fill(PASSWORD)
    page.locator("#supabase-sign-in").get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-email")).to_have_text(email)

    create_voice(page, "Alto")
    create_voice(page, "Mezzo")  # a restart: every panel leaves its channel and joins anew
    joins = lambda: realtime.joins[(str(user_id), "dataset_files")]  # noqa: E731
    live = lambda: realtime.subscribed(user_id, "dataset_files")  # noqa: E731
    wait_until(
        lambda: joins() >= 2 and live() == 1,
        lambda: f"the page is not subscribed to its dataset rows ({joins()} joins, {live()} live)",
    )
    reserve_upload(web_stack, email, "Mezzo", "live.wav")
    expect(file_row(page, "live.wav")).to_contain_text("Checking")
