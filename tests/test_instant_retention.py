"""Retention of the instant kind against real Postgres and real SeaweedFS: an instant
conversion's files go like a conversion's (a canceled one at once, a finished one after the
conversions' retention), a kept voice's reference stays however old, and a voice that never
became usable goes once older than the retention. Another user's objects are untouched."""

from uuid import UUID

from pipeline import keys
from pipeline.instant import InstantCalls
from pipeline.retention import run_retention
from tests.test_instant import _job, _voice
from tests.vocals import singing


def _objects(storage, user_id: UUID) -> set[str]:
    return {o.key for o in storage.list_prefix(f"vc/users/{user_id}/")}


def _finished(repo, storage, voice) -> UUID:
    """A succeeded instant conversion with its input and output in the bucket."""
    job = _job(repo, storage, voice, singing(1.0))
    calls = InstantCalls(repo)
    calls.queue_job(job.id)
    repo.claim_job("instant", job.id)
    output = keys.instant_part_key(voice.user_id, voice.profile_id, job.id, "mix")
    storage._s3.put_object(Bucket=storage.bucket, Key=output, Body=b"RIFF-out")
    calls.finish_job(job.id, output, 1.0, None, None, None)
    return job.id


def _age(sql, table: str, column: str, row_id: UUID, days: int) -> None:
    sql.execute(
        f"update public.{table} set {column} = {column} - make_interval(days => %s) where id = %s",
        (days, row_id),
    )


def test_instant_files_expire_and_a_kept_voices_reference_stays(
    services, sql, alice, bob, settings
) -> None:
    repo, storage = services.repo, services.storage
    profile = repo.create_profile(alice.id, "instant retention")
    kept = _voice(repo, storage, alice.id, profile.id)
    rejected = _voice(repo, storage, alice.id, profile.id, seconds=4.0)
    assert kept.status == "ready" and rejected.status == "rejected"
    abandoned = _job(repo, storage, kept, singing(1.0))
    repo.cancel_job("instant", alice.id, abandoned.id)
    finished = _finished(repo, storage, kept)
    finished_row = repo.get_job_by_id("instant", finished)
    theirs = repo.create_profile(bob.id, "bob instant")
    _finished(repo, storage, _voice(repo, storage, bob.id, theirs.id))
    bob_objects = _objects(storage, bob.id)
    assert len(bob_objects) == 3

    first = run_retention(repo, storage)
    assert first.instant.objects_queued >= 1  # the canceled one's input, at once
    assert storage.head(abandoned.input_key) is None
    young = {kept.reference_key, rejected.reference_key, finished_row.input_key,
             finished_row.output_key}  # fmt: skip
    assert young <= _objects(storage, alice.id)

    days = settings.conversion_retention_days + 1
    _age(sql, "instant_jobs", "finished_at", finished, days)
    _age(sql, "instant_voices", "created_at", kept.id, days)
    _age(sql, "instant_voices", "created_at", rejected.id, days)
    second = run_retention(repo, storage)

    assert second.instant.objects_queued >= 2 and second.instant.voices_deleted >= 1
    assert _objects(storage, alice.id) == {kept.reference_key}  # the kept voice's reference
    assert InstantCalls(repo).voice_by_id(rejected.id) is None
    assert InstantCalls(repo).voice_by_id(kept.id).status == "ready"
    row = repo.get_job_by_id("instant", finished)
    assert row.status == "succeeded" and row.files_removed_at is not None
    gone = alice.client.get(f"/instant/jobs/{finished}/download")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "FILES_EXPIRED"
    assert _objects(storage, bob.id) == bob_objects
    assert run_retention(repo, storage).instant.objects_queued == 0  # once only
