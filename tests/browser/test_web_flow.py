"""The whole flow a person follows on the page, against the whole local stack: sign in,
create a voice, upload clips (one corrupt), watch them get probed, train with `tiny`, see
progress move and the model appear, convert a stem, compare before/after, download."""

import io
import math
import re
import time
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
import soundfile as sf
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot
from tests.browser.pages import (
    NOTIFICATION_RECORDER,
    create_voice,
    file_row,
    painted_pixels,
    sign_in,
    step_of,
    write_clips,
    write_stem,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_sign_in_upload_train_convert_compare_download(web_stack, context, page: Page, tmp_path):
    context.add_init_script(NOTIFICATION_RECORDER)
    email = f"singer-{uuid4().hex[:8]}@local.test"
    page.goto(web_stack.web_url)
    expect(page.locator("#sign-in")).to_be_visible()
    screenshot(page, "01-sign-in")
    sign_in(page, web_stack, email)
    create_voice(page, "Alto")

    _upload_dataset(context, page, tmp_path)
    screenshot(page, "02-dataset")

    _train(page)
    screenshot(page, "03-trained")

    output = _convert_and_compare(web_stack, page, email, tmp_path)
    screenshot(page, "04-compare")

    info = sf.info(io.BytesIO(output))
    assert output[:4] == b"RIFF" and output[8:12] == b"WAVE"
    assert info.samplerate == 44100 and abs(info.duration - 6.0) < 0.05


def _upload_dataset(context, page: Page, tmp_path) -> None:
    clips = write_clips(tmp_path)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(4000))
    # Slow the uplink so each file's own progress bar is seen between empty and full.
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 20,
            "downloadThroughput": -1,
            "uploadThroughput": 200_000,
        },
    )
    page.set_input_files("#dataset-input", [*clips, corrupt])
    partial = _watch_upload_progress(page, seconds=20)
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": -1,
        },
    )
    assert partial, "each upload shows its own progress between 0 and 100%"

    for clip in clips:
        row = file_row(page, clip.name)
        expect(row).to_have_attribute("data-status", "ready", timeout=60_000)
        expect(row).to_contain_text("0:05")
        expect(row).to_contain_text("LUFS")
        expect(row).to_contain_text("dB (clean)")
        expect(row.locator("td.voice")).to_contain_text("%")
        expect(row).to_contain_text("Good")
    rejected = file_row(page, "corrupt.wav")
    expect(rejected).to_have_attribute("data-status", "rejected", timeout=30_000)
    expect(rejected).to_contain_text("This is not a WAV, FLAC or MP3 file.")
    expect(page.locator("#minutes-text")).to_contain_text("0:30 usable")
    expect(page.locator("#minutes-text")).to_contain_text("enough to train")
    expect(page.locator("#dataset-analysis")).to_contain_text("Voice activity:")
    expect(page.locator("#dataset-analysis")).to_contain_text("dB (clean)")


def _watch_upload_progress(page: Page, seconds: float) -> set[float]:
    """Fractions strictly between 0 and 1 seen on the rows' progress bars while uploading."""
    seen: set[float] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values = page.eval_on_selector_all("#file-rows progress", "bars => bars.map(b => b.value)")
        seen |= {round(v, 2) for v in values if 0 < v < 1}
        if not values and seen:
            break
        page.wait_for_timeout(100)
    return seen


def _train(page: Page) -> None:
    button = page.get_by_role("button", name="Train this voice")
    expect(button).to_be_enabled(timeout=30_000)
    expect(page.locator("#train-preset")).to_have_value("tiny")
    expect(page.locator("#train-reason")).to_contain_text("3 of 3 left this month")
    _start_and_cancel(page, button)
    button.click()
    expect(button).to_be_disabled()
    expect(page.locator("#train-reason")).to_contain_text("A training is running")

    status = page.locator("#train-status")
    steps: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        text = status.inner_text()
        step = step_of(text)
        if step is not None and (not steps or step != steps[-1]):
            steps.append(step)
            page.evaluate("window.__hidden = true")  # the person switches tabs meanwhile
        if "finished" in text or "failed" in text:
            break
        page.wait_for_timeout(200)
    expect(status).to_have_text(
        re.compile(
            r"^Training finished: the new model is active\. Trained to the step limit\. "
            r"The best model on the held-out audio, at step \d+, is the one kept\.$"
        )
    )
    assert len(steps) >= 2 and steps == sorted(steps), f"progress moves forward: {steps}"
    assert int(page.locator("#loss-chart").get_attribute("data-points") or 0) >= 2
    assert int(page.locator("#loss-chart").get_attribute("data-validation-points") or 0) >= 1

    notes = page.evaluate("window.__notifications")
    assert notes == [{"title": "svc-pipeline", "body": "Alto: Your voice model is ready."}]
    page.evaluate("window.__hidden = false")

    model = page.locator("#model-list li")
    expect(model).to_have_count(1)
    expect(model).to_contain_text("Active")
    expect(page.locator("#train-reason")).to_contain_text("2 of 3 left this month")
    model.get_by_role("button", name="Download").click()
    with page.expect_download() as download:
        model.get_by_role("link", name="model.pth").click()
    assert download.value.suggested_filename.endswith(".pth")
    _check_quality_report(page, model)


def _check_quality_report(page: Page, model) -> None:
    """The report in words and numbers, and the preview in the A/B player (a tiny model's
    numbers mean nothing; that they are measured and shown does)."""
    report = model.locator(".quality")
    expect(report).to_contain_text(re.compile(r"Sounds like the dataset: -?\d\.\d\d — \w+"))
    expect(report).to_contain_text("Melody kept: F0 correlation")
    expect(report).to_contain_text("Distance from the original (MCD):")
    model.get_by_role("button", name="Listen to the preview").click()
    preview = page.locator("#model-ab")
    expect(preview).to_have_attribute("data-ready", "true", timeout=60_000)
    expect(page.locator("#model-preview-title")).to_contain_text("a recording it never trained on")
    expect(preview.get_by_role("button", name="B: converted")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert all(n > 100 for n in painted_pixels(page, "#model-ab canvas")), "both waveforms drawn"


def _start_and_cancel(page: Page, button) -> None:
    """A canceled training is said so, and gives its quota back."""
    button.click()
    page.get_by_role("button", name="Cancel training").click()
    expect(page.locator("#train-status")).to_have_text(
        "Training canceled; it was not counted against your quota."
    )
    expect(page.locator("#train-reason")).to_contain_text("3 of 3 left this month")
    expect(button).to_be_enabled()


def _convert_and_compare(web_stack, page: Page, email: str, tmp_path) -> bytes:
    stem = write_stem(tmp_path / "stem.flac")
    expect(page.locator("#convert-reason")).to_contain_text("3 of 3 conversions left today")
    page.set_input_files("#convert-file", stem)
    page.locator("#transpose").fill("3")
    expect(page.locator("#transpose-out")).to_have_text("3")
    page.get_by_text("Advanced options").click()
    page.get_by_label("Noise scale").fill("0.3")
    page.get_by_role("button", name="Convert", exact=True).click()

    player = page.locator("#ab-player")
    expect(player).to_have_attribute("data-ready", "true", timeout=180_000)
    expect(page.locator("#convert-status")).to_have_text(
        re.compile(r"^Converted\. Kept for 30 days, until .+")
    )
    expect(page.locator("#convert-reason")).to_contain_text("2 of 3 conversions left today")
    expect(page.locator("#conversion-list li")).to_have_attribute("data-status", "succeeded")

    job = _latest_conversion(web_stack, email)
    assert job["params"]["transpose"] == 3 and job["params"]["noise_scale"] == 0.3

    assert all(n > 100 for n in painted_pixels(page, "#ab-player canvas")), "both waveforms drawn"
    output = _download(page)
    _check_loudness_matching(player, stem, output, tmp_path)

    player.get_by_role("button", name="A: before").click()
    expect(player).to_have_attribute("data-live", "before")
    expect(player.get_by_role("button", name="A: before")).to_have_attribute("aria-pressed", "true")
    expect(player.get_by_role("button", name="B: after")).to_have_attribute("aria-pressed", "false")
    player.get_by_role("button", name="Play").click()
    expect(player).to_have_attribute("data-playing", "true")
    page.wait_for_function("Number(document.querySelector('#ab-player input').value) > 0.2")
    player.get_by_role("button", name="B: after").click()  # switching does not stop playback
    expect(player).to_have_attribute("data-playing", "true")
    player.get_by_role("button", name="Pause").click()
    expect(player).to_have_attribute("data-playing", "false")
    _convert_a_broken_stem(page, tmp_path)
    return output


def _convert_a_broken_stem(page: Page, tmp_path) -> None:
    """A stem that is not audio fails in words and is not counted."""
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(5000))
    page.set_input_files("#convert-file", broken)
    page.get_by_role("button", name="Convert", exact=True).click()
    expect(page.locator("#convert-status")).to_have_text(
        "Conversion failed: This is not a WAV, FLAC or MP3 file.", timeout=120_000
    )
    expect(page.locator("#compare")).to_be_hidden()
    expect(page.locator("#conversion-list li").first).to_have_attribute("data-status", "failed")
    expect(page.locator("#convert-reason")).to_contain_text("2 of 3 conversions left today")


def _latest_conversion(web_stack, email: str) -> dict:
    headers = {"Authorization": f"Bearer {web_stack.dev_token(email)}"}
    with httpx.Client(base_url=web_stack.api_url, headers=headers) as api:
        profile = api.get("/profiles").json()[0]
        return api.get(f"/profiles/{profile['id']}/conversions").json()[0]


def _download(page: Page) -> bytes:
    link = page.locator("#convert-download")
    expect(link).to_have_text("Download stem-converted.wav")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "stem-converted.wav"
    return Path(download.value.path()).read_bytes()


def _reference_lufs(path: Path) -> float:
    import pyloudnorm

    audio, rate = sf.read(path, always_2d=True)
    return pyloudnorm.Meter(rate).integrated_loudness(audio)


def _check_loudness_matching(player, stem, output: bytes, tmp_path) -> None:
    """The page's loudness agrees with the reference BS.1770 meter (pyloudnorm, time-domain
    K-weighting) within 1 LU, and the louder side is turned down by the difference. Not the
    probe's meter: it weights 50 ms spectra, which reads steps in a DC offset (what a tiny
    random model outputs) far quieter than a time-domain filter does."""
    out_path = tmp_path / "out.wav"
    out_path.write_bytes(output)
    before, after = (_reference_lufs(path) for path in (stem, out_path))
    assert before is not None and after is not None
    page_before = float(player.get_attribute("data-lufs-before") or "nan")
    page_after = float(player.get_attribute("data-lufs-after") or "nan")
    assert abs(page_before - before) < 1.0 and abs(page_after - after) < 1.0
    gains = {float(player.get_attribute(f"data-gain-{s}") or "nan") for s in ("before", "after")}
    assert max(gains) == 1.0
    assert abs(20 * math.log10(min(gains)) + abs(page_before - page_after)) < 0.01
