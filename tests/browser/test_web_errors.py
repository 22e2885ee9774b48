"""What the page says when things go wrong: every refusal in words, nothing silent."""

import json
from uuid import uuid4

import httpx
import psycopg
import pytest
from playwright.sync_api import Page, expect

from tests.audio import encode, voice
from tests.browser.conftest import screenshot
from tests.browser.pages import create_voice, drop_files, file_row, sign_in, unnamed_controls

pytestmark = pytest.mark.browser


def _limit(stack, email: str, trainings: int, conversions: int) -> None:
    user_id = stack.ensure_user(email)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.quota_overrides (user_id, trainings_per_month, conversions_per_day)"
            " values (%s, %s, %s)",
            (user_id, trainings, conversions),
        )


def test_refusals_are_shown_in_words(web_stack, page: Page, tmp_path):
    email = f"refused-{uuid4().hex[:8]}@local.test"
    _limit(web_stack, email, trainings=0, conversions=0)
    sign_in(page, web_stack, email)
    # /quota's every counted quota is shown, the instant and text ones beside the old two.
    quota = page.locator("#quota")
    expect(quota).to_contain_text("Trainings left this month: 0 of 0")
    expect(quota).to_contain_text("Spoken lines left today: ")
    expect(quota).to_contain_text("Instant conversions left today: ")

    page.get_by_placeholder("New voice name").fill("   ")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#alert")).to_be_visible()
    expect(page.locator("#alert-text")).to_contain_text("the name must be printable text")
    page.get_by_role("button", name="Dismiss this message").click()
    expect(page.locator("#alert")).to_be_hidden()

    create_voice(page, "Tenor")
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(3000))
    page.set_input_files("#dataset-input", [notes, corrupt])

    refused = file_row(page, "notes.txt")
    expect(refused).to_have_attribute("data-status", "refused")
    expect(refused).to_contain_text("Only FLAC, MP3, WAV files are accepted.")
    rejected = file_row(page, "corrupt.wav")
    expect(rejected).to_have_attribute("data-status", "rejected", timeout=30_000)
    expect(rejected).to_contain_text("This is not a WAV, FLAC or MP3 file.")
    expect(page.locator("#announce")).not_to_be_empty()

    train = page.get_by_role("button", name="Train this voice")
    expect(train).to_be_disabled()
    expect(page.locator("#train-reason")).to_contain_text(
        "No trainings left this month (0 of 0 used)"
    )
    expect(page.get_by_role("button", name="Convert", exact=True)).to_be_disabled()
    expect(page.locator("#convert-reason")).to_contain_text("Train a model first")
    screenshot(page, "05-refusals")

    rejected.get_by_role("button", name="Delete corrupt.wav").click()
    expect(rejected).to_have_count(0)
    refused.get_by_role("button", name="Dismiss notes.txt").click()
    expect(refused).to_have_count(0)
    assert unnamed_controls(page) == []

    page.get_by_role("button", name="Delete voice").click()  # the confirm() is accepted
    expect(page.locator("#profiles-empty")).to_be_visible()
    expect(page.locator("#profile-panel")).to_be_hidden()


def test_files_dropped_on_the_page_are_uploaded(web_stack, page: Page):
    sign_in(page, web_stack, f"drop-{uuid4().hex[:8]}@local.test")
    create_voice(page, "Dropped")
    clip = encode(voice(3.0, seed=4), 44100, "flac")
    drop_files(page, "#drop", {"dropped.flac": clip})
    row = file_row(page, "dropped.flac")
    expect(row).to_have_attribute("data-status", "ready", timeout=30_000)
    expect(row).to_contain_text("FLAC")
    expect(row).to_contain_text("0:03")


def test_dataset_too_short_says_how_much_more(web_stack, page: Page, tmp_path):
    from tests.browser.pages import write_clips

    sign_in(page, web_stack, f"short-{uuid4().hex[:8]}@local.test")
    create_voice(page, "Soprano")
    page.set_input_files("#dataset-input", write_clips(tmp_path, count=1))
    expect(file_row(page, "take0.wav")).to_have_attribute("data-status", "ready", timeout=30_000)
    expect(page.locator("#minutes-text")).to_contain_text("add 0:15 more to train")
    expect(page.locator("#train-reason")).to_contain_text("Add 0:15 more of usable singing")
    expect(page.get_by_role("button", name="Train this voice")).to_be_disabled()


def test_a_forged_session_is_signed_out_with_a_reason(web_stack, page: Page):
    forged = {
        "access_token": "eyJhbGciOiJub25lIn0.e30.",
        "expires_at": 4102444800,
        "user": {"id": str(uuid4()), "email": "mallory@local.test"},
    }
    page.goto(web_stack.web_url)
    expect(page.locator("#sign-in")).to_be_visible()  # booted: it has read the storage
    page.evaluate("s => localStorage.setItem('svc.local-session', s)", json.dumps(forged))
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()
    alert = page.locator("#alert-text")
    expect(alert).to_contain_text("You were signed out (The access token")
    expect(alert).to_contain_text("Sign in again.")
    assert page.evaluate("localStorage.getItem('svc.local-session')") is None


def test_local_sign_in_refuses_a_non_email(web_stack):
    response = httpx.post(f"{web_stack.web_url}/local/session", json={"email": "nobody"})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("Enter an email address")
    ok = httpx.post(f"{web_stack.web_url}/local/session", json={"email": " Dev@LocalHost "})
    session = ok.json()
    assert session["user"]["email"] == "dev@localhost"
    me = httpx.get(
        f"{web_stack.api_url}/quota", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.status_code == 200
