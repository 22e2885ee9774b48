"""A drop bigger than what the upload rate limit lets through at once all uploads: the page
waits out each 429's Retry-After (read across origins, so the API must expose it) and asks
again, instead of marking the rest "Not uploaded". The real API and its real bucket: the
person's bucket is spent down first, as a big drop would, so a few clips show it."""

import re
from uuid import uuid4

import psycopg
import pytest
from playwright.sync_api import Page, expect

from tests.audio import encode, voice
from tests.browser.pages import create_voice, drop_files, file_row, sign_in

pytestmark = pytest.mark.browser
CLIPS = 5
LEFT = 1  # tokens the drop finds in the bucket: the other clips are refused with 429 first


def test_a_drop_past_the_upload_burst_all_uploads(web_stack, page: Page):
    email = f"bulk-{uuid4().hex[:8]}@local.test"
    sign_in(page, web_stack, email)
    create_voice(page, "Bulk")
    settings = web_stack.settings()
    burst, per_minute = settings.rate_upload_burst, settings.rate_upload_per_minute
    subject = f"user:{web_stack.ensure_user(email)}"
    with psycopg.connect(web_stack.database_url, autocommit=True) as conn:
        for _ in range(burst - LEFT):  # the first clips of a 100-clip drop
            conn.execute(
                "select public.take_rate_token(%s, 'upload', %s, %s)", (subject, burst, per_minute)
            )

    clips = {f"bulk{i}.flac": encode(voice(3.0, seed=20 + i), 44100, "flac") for i in range(CLIPS)}
    drop_files(page, "#drop", clips)
    for name in clips:
        expect(file_row(page, name)).to_have_attribute(
            "data-status", re.compile("pending|ready"), timeout=60_000
        )
    expect(page.locator('#file-rows tr[data-status="refused"]')).to_have_count(0)
