"""Production sign-in: the page's real supabase-js against a stand-in for Supabase Auth's
HTTP API (hosted auth cannot run here), issuing tokens the API verifies for real."""

import json
import time
from uuid import uuid4

import pytest
from playwright.sync_api import Page, Route, expect

pytestmark = pytest.mark.browser
SUPABASE = "http://supabase.test"
PASSWORD = "correct horse battery"


class FakeGoTrue:
    """Answers the three calls the page makes: password sign-in, sign-up, sign-out."""

    def __init__(self, stack, email: str, base: str = SUPABASE) -> None:
        self.stack, self.email, self.base = stack, email, base
        self.calls: list[str] = []

    def __call__(self, route: Route) -> None:
        request = route.request
        path = request.url.removeprefix(self.base).split("?")[0]
        self.calls.append(f"{request.method} {path}")
        if path == "/auth/v1/logout":
            route.fulfill(status=204)
        elif path == "/auth/v1/token" and request.post_data_json.get("password") == PASSWORD:
            route.fulfill(json=self.session(), headers=_cors())
        elif path == "/auth/v1/token":
            body = {
                "code": 400,
                "error_code": "invalid_credentials",
                "msg": "Invalid login credentials",
            }
            route.fulfill(status=400, json=body, headers=_cors())
        else:
            route.fulfill(status=404, json={"msg": "not here"}, headers=_cors())

    def session(self) -> dict:
        user_id = self.stack.ensure_user(self.email)
        now = int(time.time())
        user = {
            "id": str(user_id),
            "aud": "authenticated",
            "role": "authenticated",
            "email": self.email,
            "app_metadata": {},
            "user_metadata": {},
            "created_at": "2026-11-01T00:00:00Z",
        }
        return {
            "access_token": self.stack.issuer.issue(user_id, self.email, 3600),
            "token_type": "bearer",
            "expires_in": 3600,
            "expires_at": now + 3600,
            "refresh_token": uuid4().hex,
            "user": user,
        }


def _cors() -> dict[str, str]:
    return {"Access-Control-Allow-Origin": "*"}


def test_sign_in_with_supabase_keeps_the_session_and_signs_out(web_stack, page: Page):
    email = f"sb-{uuid4().hex[:8]}@example.com"
    gotrue = FakeGoTrue(web_stack, email)
    auth = {"mode": "supabase", "url": SUPABASE, "anonKey": "anon", "realtime": False}
    config = {"apiUrl": web_stack.api_url, "trainingPreset": "standard", "auth": auth}
    body = json.dumps(config)
    page.route(
        "**/config.json", lambda route: route.fulfill(body=body, content_type="application/json")
    )
    page.route(f"{SUPABASE}/**", gotrue)
    page.goto(web_stack.web_url)

    form = page.locator("#supabase-sign-in")
    expect(form).to_be_visible()
    expect(page.locator("#local-sign-in")).to_be_hidden()
    page.locator("#sb-email").fill(email)
    page.locator("#sb-password").fill("wrong password")
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#alert-text")).to_have_text(
        "That email and password do not match an account."
    )

    page.locator("#sb-password").fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-email")).to_have_text(email)
    expect(page.locator("#alert")).to_be_hidden()
    create = page.get_by_placeholder("New voice name")
    create.fill("Baritone")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#profile-title")).to_have_text("Baritone")  # the API took the token
    expect(page.locator("#train-preset")).to_have_value("standard")

    page.reload()
    expect(page.locator("#account-email")).to_have_text(email)
    expect(page.locator("#profile-title")).to_have_text("Baritone")

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in")).to_be_visible()
    assert gotrue.calls.count("POST /auth/v1/token") == 2
    assert "POST /auth/v1/logout" in gotrue.calls
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()
