"""Datasets from full songs on the page, against the whole local stack (relay, the probe,
`python -m gpu separate` with the tiny HTDemucs): the "full songs" box, the song's row with
the separation's progress, its vocal's row after it, and a player on each."""

from uuid import uuid4

import pytest
from playwright.sync_api import Page, expect

from tests.audio import encode
from tests.browser.conftest import screenshot
from tests.browser.pages import create_voice, file_row, sign_in, unnamed_controls
from tests.test_separation import RATE, song

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_full_song_is_separated_and_both_play(web_stack, page: Page, tmp_path) -> None:
    vocal, music = song(8.0)
    path = tmp_path / "Duet.wav"
    path.write_bytes(encode(vocal + music, RATE, "wav"))
    page.goto(web_stack.web_url)
    sign_in(page, web_stack, f"songs-{uuid4().hex[:8]}@local.test")
    create_voice(page, "From songs")

    page.check("#full-mix")
    page.set_input_files("#dataset-input", [path])
    mix = file_row(page, "Duet.wav")
    expect(mix).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(mix).to_have_attribute("data-kind", "full-mix")
    expect(mix).to_contain_text("Full song")
    expect(mix).to_contain_text("the song itself never does")
    expect(mix.locator("[data-separation]")).to_have_attribute(
        "data-separation", "succeeded", timeout=300_000
    )
    expect(mix).to_contain_text("Vocal separated")

    vocal_row = file_row(page, "Duet (vocals).wav")
    expect(vocal_row).to_have_attribute("data-kind", "separated", timeout=60_000)
    expect(vocal_row).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(vocal_row).to_contain_text("Vocal separated from Duet.wav")
    expect(vocal_row).to_contain_text("0:08")
    # the vocal follows its song in the table
    names = page.eval_on_selector_all("#file-rows tr", "rows => rows.map(r => r.dataset.filename)")
    assert names == ["Duet.wav", "Duet (vocals).wav"]
    expect(page.locator("#minutes-text")).to_contain_text("0:08 usable")

    for row in (mix, vocal_row):
        row.get_by_role("button", name="Listen").click()
        player = row.locator("audio")
        expect(player).to_have_count(1)
        page.wait_for_function(
            "el => el.readyState >= 1 && el.duration > 7.9", arg=player.element_handle()
        )
    assert unnamed_controls(page) == []
    screenshot(page, "songs-separated")

    mix.get_by_role("button", name="Delete Duet.wav").click()
    expect(page.locator("#file-rows tr")).to_have_count(0)
