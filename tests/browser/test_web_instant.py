"""The instant path on the page, against the whole local stack: add a 12 s sample (refused
until the consent box is ticked), see it checked, generate from a stem with tiny random
Seed-VC weights, hear and download a result as long as the stem at 44.1 kHz, and switch the
before/after player between the stem and its conversion at the same position."""

import io
from uuid import uuid4

import httpx
import pytest
import soundfile as sf
from playwright.sync_api import Page, expect

from tests.audio import encode
from tests.browser.pages import create_voice, painted_pixels, sign_in, write_stem
from tests.vocals import singing

# A CPU runs the real code path at 30 diffusion steps: minutes, not the GPU's seconds.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1500)]


def test_sample_then_generate(web_stack, page: Page, tmp_path) -> None:
    sign_in(page, web_stack, f"instant-{uuid4().hex[:8]}@local.test")
    create_voice(page, "Instant")
    sample = tmp_path / "me.wav"
    sample.write_bytes(encode(singing(12.0, f0=330, seed=1), 44100, "wav"))
    page.set_input_files("#instant-reference", str(sample))
    add = page.get_by_role("button", name="Add the sample")
    add.click()  # the consent box is required: the form does not submit
    expect(page.locator("#instant-voices li")).to_have_count(0)
    page.locator("#instant-consent").check()
    add.click()
    expect(page.locator("#instant-voices li")).to_contain_text("0:12 sample", timeout=60_000)
    expect(page.locator("#instant-form")).to_be_visible()

    page.set_input_files("#instant-file", str(write_stem(tmp_path / "stem.flac", seconds=3.0)))
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#instant-result")).to_be_visible(timeout=1_200_000)
    expect(page.locator("#instant-quality")).to_contain_text("Likeness to your sample")
    url = page.locator("#instant-download").get_attribute("href")
    info = sf.info(io.BytesIO(httpx.get(url).content))
    assert info.samplerate == 44100 and abs(info.duration - 3.0) < 0.02

    player = page.locator("#instant-ab")
    expect(player).to_have_attribute("data-ready", "true")
    assert all(n > 100 for n in painted_pixels(page, "#instant-ab canvas")), "both waveforms"
    expect(player.locator(".track-label")).to_have_text(
        ["Before (your upload)", "After (instant conversion)"]
    )
    player.get_by_role("button", name="Play").click()
    expect(player).to_have_attribute("data-playing", "true")
    page.wait_for_function("Number(document.querySelector('#instant-ab input').value) > 0.3")
    before = float(player.get_by_label("Position").input_value())
    player.get_by_role("button", name="A: before").click()
    expect(player).to_have_attribute("data-live", "before")
    expect(player.get_by_role("button", name="A: before")).to_have_attribute("aria-pressed", "true")
    # the switch changes which side is heard, not where: playback runs on from the same point
    expect(player).to_have_attribute("data-playing", "true")
    assert float(player.get_by_label("Position").input_value()) >= before
    player.get_by_role("button", name="B: after").click()
    expect(player).to_have_attribute("data-live", "after")
    player.get_by_role("button", name="Pause").click()
    expect(player).to_have_attribute("data-playing", "false")

    # another clip added while a second conversion runs: the clip's check and the job are
    # watched apart, so the result still arrives (one shared timer dropped the job's polling)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#instant-result")).to_be_hidden()
    clip = tmp_path / "more.wav"
    clip.write_bytes(encode(singing(5.0, f0=300, seed=2), 44100, "wav"))
    page.get_by_label("Add to").select_option(label="My voice (another clip)")
    page.set_input_files("#instant-reference", str(clip))
    add.click()
    voice = page.locator("#instant-voices > li")
    expect(voice.locator("li[data-clip]")).to_have_attribute("data-status", "ready")
    expect(voice).to_contain_text("+ 1 clip, 0:17 in all")
    expect(page.locator("#instant-result")).to_be_visible(timeout=1_200_000)
