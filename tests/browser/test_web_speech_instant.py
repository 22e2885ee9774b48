"""Text in an instant voice on the page, against the whole local stack: the text panel offers
only ready instant voices (a sample being checked or refused is not a voice to speak in), says
what to do while there is no voice at all, picks up a sample the moment it is ready, and
speaks a typed line in it end to end: the API's own worker speaks with Piper and converts with
Seed-VC's tiny random weights (the stack's offline models: `gpu.instant.weights.write_tiny`
and `gpu.weights.write_tiny_rmvpe`, as tests/test_text_instant.py uses), and the result plays
with a report measured against the sample."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from playwright.sync_api import Page, expect

from pipeline import keys
from pipeline.instant import InstantCalls
from pipeline.services import build_services
from tests.audio import encode
from tests.browser.conftest import screenshot
from tests.browser.pages import sign_in, unnamed_controls
from tests.test_instant import _voice
from tests.vocals import singing

# A CPU runs Seed-VC's real code path (30 diffusion steps) on the spoken line: minutes.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1500)]


def _profile_with_unusable_voices(web_stack, email: str) -> str:
    """A profile with no model, one refused sample (4 s, too short) and one never uploaded."""
    services = build_services(web_stack.settings())
    try:
        user_id = web_stack.ensure_user(email)
        repo = services.repo
        profile = repo.create_profile(user_id, f"Sampled {uuid4().hex[:6]}")
        refused = _voice(repo, services.storage, user_id, profile.id, seconds=4.0)
        assert refused.status == "rejected"
        voice_id = uuid4()
        InstantCalls(repo).create_voice(
            user_id=user_id, profile_id=profile.id, voice_id=voice_id, name="Unchecked",
            reference_key=keys.instant_reference_key(user_id, profile.id, voice_id, "wav"),
            filename="later.wav", size_bytes=1000, consent_text="mine",
            upload_expires_at=datetime.now(UTC) + timedelta(minutes=30),
        )  # fmt: skip
        return profile.name
    finally:
        services.close()


def test_a_line_spoken_in_an_instant_voice(web_stack, page: Page, tmp_path) -> None:
    email = f"sample-speaker-{uuid4().hex[:8]}@local.test"
    name = _profile_with_unusable_voices(web_stack, email)
    sign_in(page, web_stack, email)
    page.get_by_role("button", name=name).click()
    expect(page.locator("#profile-title")).to_have_text(name)

    # Neither a model nor a ready sample: no form, but what to do.
    expect(page.locator("#instant-voices > li")).to_have_count(2)
    expect(page.locator("#speech-form")).to_be_hidden()
    reason = page.locator("#speech-reason")
    expect(reason).to_contain_text("train a voice")
    expect(reason).to_contain_text("add an instant sample")

    # A sample added on the page is offered as soon as it is ready; the others never are.
    sample = tmp_path / "me.wav"
    sample.write_bytes(encode(singing(12.0, f0=330, seed=1), 44100, "wav"))
    page.set_input_files("#instant-reference", str(sample))
    page.locator("#instant-consent").check()
    page.get_by_role("button", name="Add the sample").click()
    expect(page.locator("#instant-voices")).to_contain_text("0:12 sample", timeout=60_000)
    expect(page.locator("#speech-form")).to_be_visible()
    voice = page.get_by_label("Voice to speak in")
    expect(voice.locator("option")).to_have_text(["My voice (instant sample)"])
    expect(reason).to_have_text("")
    voice_id = page.locator("#instant-voices > li", has_text="0:12 sample").get_attribute(
        "data-voice"
    )

    page.get_by_label("Text for this voice to say").fill("Hello from my sample.")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/speech")) as sent:
        page.get_by_role("button", name="Speak", exact=True).click()
    request = sent.value
    assert request.post_data_json["voice"] == {"kind": "instant", "instant_voice_id": voice_id}
    assert request.post_data_json["text"] == "Hello from my sample."
    assert request.response().status == 201

    expect(page.locator("#speech-run")).to_be_visible()
    expect(page.locator("#speech-status")).to_have_text("Done. Listen below.", timeout=1_200_000)
    expect(page.locator("#speech-result")).to_be_visible()
    report = page.locator("#speech-report")
    expect(report).to_contain_text("Sounds like your sample: ")
    expect(report).to_contain_text("Spoken first by en_US-joe-medium")
    page.wait_for_function(
        "el => el.readyState >= 1 && el.duration > 0.5",
        arg=page.locator("#speech-audio").element_handle(),
    )
    assert unnamed_controls(page) == []
    screenshot(page, "speech-instant-played")
