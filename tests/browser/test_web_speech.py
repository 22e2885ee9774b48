"""Text to speak on the page, against the whole local stack: a voice trained with `tiny` (by
the real worker, through the API's own code), a line typed beside the conversion upload, the
job's progress, and the result playing in the page with its report and its two downloads."""

import os
import re
from uuid import uuid4

import pytest
from playwright.sync_api import Page, expect

from pipeline.services import build_services
from pipeline.settings import as_worker_env
from tests.browser.conftest import screenshot
from tests.browser.pages import sign_in, unnamed_controls
from tests.voices import train_tiny_voice

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_typed_line_is_spoken_in_the_voice_and_plays(web_stack, page: Page) -> None:
    email = f"speaker-{uuid4().hex[:8]}@local.test"
    settings = web_stack.settings()
    services = build_services(settings)
    try:
        user_id = web_stack.ensure_user(email)
        env = os.environ | as_worker_env(settings)
        trained = train_tiny_voice(services.repo, services.storage, env, user_id)
        name = services.repo.get_profile(user_id, trained.profile_id).name
    finally:
        services.close()

    sign_in(page, web_stack, email)
    page.get_by_role("button", name=name).click()
    expect(page.locator("#profile-title")).to_have_text(name)
    expect(page.locator("#speech-max")).to_have_text(str(settings.text_max_chars))
    text = page.get_by_label("Text for this voice to say")
    speak = page.get_by_role("button", name="Speak")
    expect(speak).to_be_enabled(timeout=30_000)

    # with no instant sample, the trained model is the one voice offered, and the one sent
    voice = page.get_by_label("Voice to speak in")
    expect(voice.locator("option")).to_have_text(["Your trained voice (the active model)"])
    text.fill("Hello from the page. This is my voice.")
    expect(page.locator("#speech-count")).to_have_text("38")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/speech")) as sent:
        speak.click()
    assert sent.value.post_data_json["voice"] == {"kind": "trained"}
    status = page.locator("#speech-status")
    expect(page.locator("#speech-run")).to_be_visible()
    expect(status).to_have_text("Done. Listen below.", timeout=300_000)
    expect(page.locator("#speech-result")).to_be_visible()
    expect(page.locator("#speech-report")).to_contain_text("Spoken first by en_US-joe-medium")
    expect(page.locator("#speech-report")).not_to_contain_text("your sample")
    page.wait_for_function(
        "el => el.readyState >= 1 && el.duration > 1",
        arg=page.locator("#speech-audio").element_handle(),
    )
    expect(page.locator("#speech-mp3")).to_have_attribute("download", re.compile(r"\.mp3$"))
    expect(page.locator("#speech-wav")).to_have_attribute("download", re.compile(r"\.wav$"))
    assert unnamed_controls(page) == []
    screenshot(page, "speech-played")

    # An empty line is refused in words by the API, and nothing is started.
    text.fill("   ")
    speak.click()
    expect(page.locator("#alert")).to_contain_text("Type something")
