"""Recording in the browser, against the whole local stack: Chromium's fake microphone plays a
known sung WAV (`--use-file-for-fake-audio-capture`, looped), the page records it through
MediaRecorder with a live level meter, replays the take, and sends it as a WAV through the
same upload and probe as a picked file: an instant sample that reaches `ready` (and a second
clip of the same voice), a dataset take that is checked like any file. A refused microphone
says so in words."""

import re
from collections.abc import Iterator
from uuid import uuid4

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from tests.audio import encode
from tests.browser.conftest import CHROMIUM, FLAGS, screenshot
from tests.browser.pages import create_voice, file_row, sign_in
from tests.vocals import singing

pytestmark = pytest.mark.browser
MIC_RATE = 48000


@pytest.fixture(scope="module")
def mic_browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """A Chromium whose microphone is a 4 s sung line at 330 Hz, granted without a prompt."""
    sung = tmp_path_factory.mktemp("mic") / "sung.wav"
    sung.write_bytes(encode(singing(4.0, f0=330, seed=4, rate=MIC_RATE), MIC_RATE, "wav", "PCM_16"))
    flags = [
        *FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={sung}",
    ]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
    yield browser
    browser.close()


@pytest.fixture
def mic_page(mic_browser: Browser) -> Iterator[Page]:
    context: BrowserContext = mic_browser.new_context(
        viewport={"width": 1200, "height": 900}, permissions=["microphone"]
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def record(page: Page, holder: str, seconds: float) -> None:
    """Presses Record in `holder`, checks the meter moves with the sung line, stops after
    `seconds` of recording and checks the replay holds the take."""
    box = page.locator(holder)
    box.get_by_role("button", name="Record").click()
    expect(box).to_have_attribute("data-state", "recording")
    meter = box.get_by_label("Microphone level")
    expect(meter).to_be_visible()
    # the meter itself moves (a -60..0 dBFS scale), and the loudest peak so far is the line's
    page.wait_for_function("sel => document.querySelector(sel + ' meter').value > 0.3", arg=holder)
    page.wait_for_function(
        "sel => Number(document.querySelector(sel).dataset.peak) > 0.05", arg=holder
    )
    page.wait_for_timeout(int(seconds * 1000))
    box.get_by_role("button", name="Stop").click()
    expect(box).to_have_attribute("data-state", "recorded")
    replay = box.get_by_label("Your recording")
    expect(replay).to_be_visible()
    duration = replay.evaluate(
        """a => a.readyState >= 1 ? a.duration
              : new Promise(r => a.addEventListener("loadedmetadata", () => r(a.duration)))"""
    )
    assert duration == pytest.approx(float(box.get_attribute("data-seconds")), abs=0.05)
    played = replay.evaluate(
        """a => a.play().then(() => new Promise(r => setTimeout(() => r(a.currentTime), 500)))"""
    )
    assert played > 0  # the replay plays
    replay.evaluate("a => a.pause()")


def test_record_an_instant_sample_and_a_clip(web_stack, mic_page: Page) -> None:
    page = mic_page
    sign_in(page, web_stack, f"rec-{uuid4().hex[:8]}@local.test")
    create_voice(page, "Recorded")
    record(page, "#instant-recorder", 11.0)
    screenshot(page, "instant-recorded")
    seconds = float(page.locator("#instant-recorder").get_attribute("data-seconds"))
    assert 10.0 < seconds < 13.0
    page.get_by_role("button", name="Use this recording").click()
    picked = page.eval_on_selector(
        "#instant-reference", "i => [i.files[0].name, i.files[0].type, i.files[0].size]"
    )
    assert re.fullmatch(r"my-voice-.*\.wav", picked[0]) and picked[1] == "audio/wav"
    assert picked[2] == 44 + 2 * round(seconds * MIC_RATE)  # 16-bit mono at 48 kHz
    page.locator("#instant-consent").check()
    page.get_by_role("button", name="Add the sample").click()
    voice = page.locator("#instant-voices > li")
    expect(voice).to_contain_text(" sample", timeout=60_000)
    expect(voice).to_contain_text(f"0:{round(seconds):02d}")
    expect(page.locator("#instant-form")).to_be_visible()

    # a second, shorter clip of the same voice, recorded the same way
    page.get_by_label("Add to").select_option(label="My voice (another clip)")
    expect(page.locator("#instant-voice-name")).to_be_hidden()
    record(page, "#instant-recorder", 4.0)
    page.get_by_role("button", name="Use this recording").click()
    page.locator("#instant-consent").check()
    page.get_by_role("button", name="Add the sample").click()
    clip = voice.locator("li[data-clip]")
    expect(clip).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(voice).to_contain_text("+ 1 clip")
    page.get_by_role("button", name=re.compile("^Delete the clip")).click()
    expect(clip).to_have_count(0)


def test_record_a_dataset_take(web_stack, mic_page: Page) -> None:
    page = mic_page
    sign_in(page, web_stack, f"take-{uuid4().hex[:8]}@local.test")
    create_voice(page, "Takes")
    page.locator("#full-mix").check()  # a take is never a full song, whatever the box says
    record(page, "#dataset-recorder", 3.0)
    page.get_by_role("button", name="Upload this take").click()
    row = page.locator('#file-rows tr[data-filename^="take-"]')
    expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(row).to_have_attribute("data-kind", "upload")
    name = row.get_attribute("data-filename")
    expect(file_row(page, name)).to_contain_text("WAV")


def test_a_refused_microphone_says_so(web_stack, mic_page: Page) -> None:
    page = mic_page
    page.add_init_script(
        """navigator.mediaDevices.getUserMedia = () =>
             Promise.reject(new DOMException("Permission denied", "NotAllowedError"));"""
    )
    sign_in(page, web_stack, f"nomic-{uuid4().hex[:8]}@local.test")
    create_voice(page, "No mic")
    page.locator("#instant-recorder").get_by_role("button", name="Record").click()
    expect(page.locator("#alert-text")).to_contain_text("The microphone was refused")
    expect(page.locator("#instant-recorder")).to_have_attribute("data-state", "idle")
