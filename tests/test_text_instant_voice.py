"""A line spoken in an instant voice hears the voice as its conversions do, in SQL, without a
worker: `text_voice` hands the worker the voice's added clips (`instant_voice_for_worker`,
the one view `instant_job_voice` also reads), a clip's own id is not a voice to speak in, and
the voice is not deleted from under a line still being spoken in it."""

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from pipeline import keys
from pipeline.errors import PipelineError
from pipeline.instant import InstantCalls, delete_voice
from pipeline.text import text_voice
from tests.test_instant import _voice


def _clip(repo, voice) -> str:
    """A ready clip added to `voice` (no audio: the worker's view is all that is read)."""
    calls, clip_id = InstantCalls(repo), uuid4()
    key = keys.instant_reference_key(voice.user_id, voice.profile_id, clip_id, "wav")
    calls.add_clip(
        user_id=voice.user_id, voice_id=voice.id, clip_id=clip_id, reference_key=key,
        filename="more.wav", size_bytes=1000, consent_text="mine",
        upload_expires_at=datetime.now(UTC),
    )  # fmt: skip
    calls.record_reference(clip_id, "ready", 5.0)
    return key


def _start(repo, voice, voice_id: UUID) -> dict:
    s = repo.settings
    return repo.db.call(
        "start_text", user_id=voice.user_id, profile_id=voice.profile_id, job_id=uuid4(),
        voice_kind="instant", model_version_id=None, instant_voice_id=voice_id,
        text="Hello there.", language="en-us", params={}, max_chars=s.text_max_chars,
        default_limit=s.texts_per_day, max_active=s.max_active_texts,
    )  # fmt: skip


def test_a_line_hears_every_clip_and_a_clip_is_not_a_voice(services, alice) -> None:
    repo = services.repo
    profile = repo.create_profile(alice.id, "clips spoken")
    voice = _voice(repo, services.storage, alice.id, profile.id)
    clip_key = _clip(repo, voice)

    with pytest.raises(PipelineError) as refused:
        _start(repo, voice, UUID(clip_key.split("/")[-2]))
    assert refused.value.code == "NOT_FOUND"

    job = _start(repo, voice, voice.id)
    heard = text_voice(repo, UUID(job["id"]))
    assert heard.instant_voice is not None
    assert heard.instant_voice.reference_key == voice.reference_key
    assert heard.instant_voice.clip_keys == [clip_key]
    repo.cancel_job("text", alice.id, UUID(job["id"]))


def test_a_voice_is_not_deleted_from_under_a_line_being_spoken(services, alice) -> None:
    repo = services.repo
    profile = repo.create_profile(alice.id, "busy voice")
    voice = _voice(repo, services.storage, alice.id, profile.id)
    job = _start(repo, voice, voice.id)

    with pytest.raises(PipelineError) as refused:
        delete_voice(repo, services.storage, alice.id, voice.id)
    assert refused.value.code == "INSTANT_IN_PROGRESS"
    assert repo.get_job_by_id("text", UUID(job["id"])).status == "queued"

    repo.cancel_job("text", alice.id, UUID(job["id"]))
    assert delete_voice(repo, services.storage, alice.id, voice.id) >= 1
    assert services.storage.head(voice.reference_key) is None
