"""The instant path on the page, against the whole local stack: add a 12 s sample (refused
until the consent box is ticked), see it checked, generate from a stem with tiny random
Seed-VC weights, hear and download a result as long as the stem at 44.1 kHz."""

import io
from uuid import uuid4

import httpx
import pytest
import soundfile as sf
from playwright.sync_api import Page, expect

from tests.audio import encode
from tests.browser.pages import create_voice, sign_in, write_stem
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
