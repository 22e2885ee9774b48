"""Production sign-in: the page's real supabase-js against a stand-in for Supabase Auth's
HTTP API (hosted auth cannot run here), issuing tokens the API verifies for real."""

import json
import time
from urllib.parse import parse_qs, urlsplit
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
        self.logout_scopes: list[str] = []

    def __call__(self, route: Route) -> None:
        request = route.request
        path = request.url.removeprefix(self.base).split("?")[0]
        self.calls.append(f"{request.method} {path}")
        if path == "/auth/v1/logout":
            self.logout_scopes += parse_qs(urlsplit(request.url).query).get("scope", ["global"])
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


def test_an_outage_keeps_the_session_and_a_rejected_token_signs_out_this_browser_only(
    web_stack, page: Page
):
    """A 503 (the API cannot check tokens: an Auth outage) leaves the person signed in; a
    token the real API rejects (401) signs out, with supabase-js's `local` scope: the default,
    `global`, revokes the refresh tokens of every device the person uses."""
    email = f"sb-{uuid4().hex[:8]}@example.com"
    gotrue = FakeGoTrue(web_stack, email)
    auth = {"mode": "supabase", "url": SUPABASE, "anonKey": "anon", "realtime": False}
    body = json.dumps({"apiUrl": web_stack.api_url, "auth": auth})
    page.route(
        "**/config.json", lambda route: route.fulfill(body=body, content_type="application/json")
    )
    page.route(f"{SUPABASE}/**", gotrue)
    page.goto(web_stack.web_url)
    page.locator("#sb-email").fill(email)
    page.locator("#sb-password").fill(PASSWORD)
    page.locator("#supabase-sign-in").get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-email")).to_have_text(email)

    outage = json.dumps(
        {"error": {"code": "SERVICE_UNAVAILABLE", "message": "Sign-in cannot be checked.",
                   "details": {"retry_after": 1}}}
    )  # fmt: skip
    unavailable = {
        "Retry-After": "1",
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "authorization, content-type",
        "Access-Control-Expose-Headers": "Retry-After",
    }
    api = f"{web_stack.api_url}/**"

    def down(route: Route) -> None:  # every signed-in call; the public /limits still answers
        if urlsplit(route.request.url).path == "/limits":
            route.continue_()
            return
        preflight = route.request.method == "OPTIONS"
        route.fulfill(status=200 if preflight else 503, body=outage, headers=unavailable)

    page.route(api, down)
    page.reload()
    expect(page.locator("#alert-text")).to_contain_text("Sign-in cannot be checked")
    expect(page.locator("#account-email")).to_have_text(email)
    assert gotrue.logout_scopes == []

    def rejected(route: Route) -> None:  # the real API judges a token that is not valid
        headers = route.request.headers | {"authorization": "Bearer not-a-token"}
        route.continue_(headers=headers)

    page.unroute(api)
    page.route(api, rejected)
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()
    assert gotrue.logout_scopes == ["local"]
