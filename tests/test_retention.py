"""Retention and erasure against real Postgres and real SeaweedFS: objects and rows are
counted before and after, and another user's data is shown to be untouched."""

from uuid import UUID, uuid4

import httpx
import pytest

from pipeline import keys
from pipeline.repository import Repository
from pipeline.retention import run_retention, sweep_orphans
from schemas.retention import ERASE_CONFIRMATION
from tests.helpers import USER_TABLES, new_conversion, trained_profile


def put(storage, key: str, data: bytes = b"RIFF-bytes") -> None:
    """Writes an object the way a browser or worker does: a PUT to a presigned URL."""
    signed = storage.presign_put(key, "audio/wav", len(data), 60)
    assert httpx.put(signed.url, content=data, headers=signed.headers).is_success


def objects(storage, user_id: UUID, profile_id: UUID | None = None) -> set[str]:
    prefix = f"vc/users/{user_id}/" + (f"profiles/{profile_id}/" if profile_id else "")
    return {o.key for o in storage.list_prefix(prefix)}


def rows(sql, user_id: UUID) -> dict[str, int]:
    return {
        t: sql.execute(
            f"select count(*) from public.{t} where user_id = %s", (user_id,)
        ).fetchone()[0]
        for t in USER_TABLES
    }


def snapshot(sql, storage, user_id: UUID) -> tuple[dict[str, int], set[str]]:
    return rows(sql, user_id), objects(storage, user_id)


def uploaded_file(
    repo: Repository,
    storage,
    user_id: UUID,
    profile_id: UUID,
    *,
    reject: str | None = None,
    seconds: float = 30,
) -> tuple[UUID, str]:
    """A dataset file whose object is in the bucket, probed ready or rejected."""
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, "take.wav")
    repo.register_upload(user_id, profile_id, file_id, key, "take.wav", "audio/wav", 10)
    put(storage, key)
    repo.record_probe(
        file_id,
        etag="e",
        size_bytes=10,
        probe={"duration_sec": seconds, "format": "wav"},
        reject_code=reject,
        reject_message="refused" if reject else None,
    )
    return file_id, key


def finished_conversion(repo: Repository, storage, user_id: UUID, profile_id: UUID) -> UUID:
    """A succeeded conversion with its input and output in the bucket."""
    job_id = new_conversion(repo, user_id, profile_id)
    put(storage, keys.conversion_input_key(user_id, profile_id, job_id, "wav"))
    repo.queue_conversion(job_id)
    repo.claim_job("conversion", job_id)
    output = keys.conversion_output_key(user_id, profile_id, job_id)
    put(storage, output)
    repo.finish_conversion(job_id, output, 1.0)
    return job_id


def voice_with_files(repo: Repository, storage, user_id: UUID, name: str) -> dict:
    """A trained profile with model objects (weights, config, the preview pair), two dataset
    objects and a finished conversion."""
    made = trained_profile(repo, user_id, name)
    pid, version = made["profile_id"], made["model_version_id"]
    put(storage, keys.model_key(user_id, pid, version))
    put(storage, keys.model_config_key(user_id, pid, version))
    for side in ("original", "converted"):
        put(storage, keys.model_preview_key(user_id, pid, version, side))
    uploaded_file(repo, storage, user_id, pid)
    uploaded_file(repo, storage, user_id, pid)
    made["conversion_id"] = finished_conversion(repo, storage, user_id, pid)
    return made


@pytest.fixture
def storage(services):
    return services.storage


@pytest.fixture
def quota_room(sql):
    def room(user_id: UUID) -> None:
        sql.execute(
            "insert into public.quota_overrides (user_id, conversions_per_day) values (%s, 100)",
            (user_id,),
        )

    return room


def test_rejected_dataset_objects_go_at_once_and_nothing_else(repo, storage, sql, alice, bob):
    profile = repo.create_profile(alice.id, "alto")
    _, ready_key = uploaded_file(repo, storage, alice.id, profile.id)
    rejected_id, rejected_key = uploaded_file(repo, storage, alice.id, profile.id, reject="SILENT")
    bob_profile = repo.create_profile(bob.id, "bass")
    uploaded_file(repo, storage, bob.id, bob_profile.id, reject="SILENT")
    bob_before = snapshot(sql, storage, bob.id)
    assert objects(storage, alice.id) == {ready_key, rejected_key}

    report = run_retention(repo, storage)

    assert report.rules.dataset_objects_queued >= 2  # alice's and bob's refusals
    assert report.text_jobs_expired == 0  # the run asks for old spoken lines too: none here
    assert objects(storage, alice.id) == {ready_key}
    # The row stays, so the person still sees why the file was refused.
    files = alice.client.get(f"/profiles/{profile.id}/dataset/files").json()
    assert {(f["id"], f["status"]) for f in files} >= {(str(rejected_id), "rejected")}
    bob_rows, bob_objects = snapshot(sql, storage, bob.id)
    assert bob_rows == bob_before[0] and bob_objects == set()  # bob's refusal went too
    assert run_retention(repo, storage).rules.dataset_objects_queued == 0  # once only


def test_conversion_files_are_kept_n_days_then_removed(
    repo, storage, sql, alice, bob, settings, quota_room
):
    quota_room(alice.id)
    mine = trained_profile(repo, alice.id)
    job_id = finished_conversion(repo, storage, alice.id, mine["profile_id"])
    theirs = trained_profile(repo, bob.id)
    finished_conversion(repo, storage, bob.id, theirs["profile_id"])
    conversion_keys = objects(storage, alice.id)
    assert len(conversion_keys) == 2
    assert alice.client.get(f"/conversions/{job_id}/download").status_code == 200

    run_retention(repo, storage)
    assert objects(storage, alice.id) == conversion_keys  # younger than the retention

    days = settings.conversion_retention_days
    sql.execute(
        "update public.conversion_jobs set finished_at = now() - make_interval(days => %s) "
        "where id = %s",
        (days + 1, job_id),
    )
    bob_before = snapshot(sql, storage, bob.id)
    report = run_retention(repo, storage)

    assert report.rules.conversion_objects_queued == 2
    assert objects(storage, alice.id) == set()
    assert snapshot(sql, storage, bob.id) == bob_before
    job = alice.client.get(f"/conversions/{job_id}").json()
    assert job["status"] == "succeeded" and job["files_removed_at"]
    gone = alice.client.get(f"/conversions/{job_id}/download")
    assert gone.status_code == 409
    assert gone.json()["error"]["code"] == "FILES_EXPIRED"
    assert f"{days} days" in gone.json()["error"]["message"]


def test_an_expired_tickets_late_object_is_removed(repo, storage, sql, alice, bob):
    mine = trained_profile(repo, alice.id)
    job_id = new_conversion(repo, alice.id, mine["profile_id"], expires_in=-1)
    reaped = {r["id"]: r for r in repo.reap_stale_jobs()}
    assert reaped[str(job_id)]["error_code"] == "UPLOAD_EXPIRED"
    put(storage, keys.conversion_input_key(alice.id, mine["profile_id"], job_id, "wav"))
    theirs = trained_profile(repo, bob.id)
    bob_job = new_conversion(repo, bob.id, theirs["profile_id"])  # live: its upload may come
    put(storage, keys.conversion_input_key(bob.id, theirs["profile_id"], bob_job, "wav"))
    bob_before = snapshot(sql, storage, bob.id)

    run_retention(repo, storage)

    assert objects(storage, alice.id) == set()
    assert snapshot(sql, storage, bob.id) == bob_before


def test_a_deleted_profile_is_purged_after_its_grace_period(repo, storage, sql, alice, bob):
    doomed = voice_with_files(repo, storage, alice.id, "doomed")
    kept = voice_with_files(repo, storage, alice.id, "kept")
    voice_with_files(repo, storage, bob.id, "bob")
    pid = doomed["profile_id"]
    # model, config, 2 previews, 2 takes, input, output
    assert len(objects(storage, alice.id, pid)) == 8
    assert alice.client.delete(f"/profiles/{pid}").status_code == 200

    run_retention(repo, storage)  # within the grace period: everything stays
    assert len(objects(storage, alice.id, pid)) == 8
    assert rows(sql, alice.id)["voice_profiles"] == 2

    sql.execute(
        "update public.voice_profiles set deleted_at = now() - interval '8 days' where id = %s",
        (pid,),
    )
    alice_before = rows(sql, alice.id)
    kept_objects = objects(storage, alice.id, kept["profile_id"])
    bob_before = snapshot(sql, storage, bob.id)

    report = run_retention(repo, storage)

    assert report.rules.profiles_purged.profiles >= 1
    assert objects(storage, alice.id, pid) == set()
    after = rows(sql, alice.id)
    gone = {"voice_profiles": 1, "dataset_files": 3, "training_jobs": 1, "model_versions": 1}
    for table, count in (gone | {"conversion_jobs": 1}).items():
        assert after[table] == alice_before[table] - count, table
    assert objects(storage, alice.id, kept["profile_id"]) == kept_objects
    assert alice.client.get(f"/profiles/{kept['profile_id']}").status_code == 200
    assert snapshot(sql, storage, bob.id) == bob_before


def test_reuploaded_orphans_are_swept(repo, storage, sql, services, alice, bob):
    profile = alice.client.post("/profiles", json={"name": "orphans"}).json()
    body = {"filename": "take.wav", "content_type": "audio/wav", "size_bytes": 5}
    ticket = alice.client.post(f"/profiles/{profile['id']}/dataset/uploads", json=body).json()
    assert httpx.put(ticket["upload_url"], content=b"RIFF!", headers=ticket["headers"]).is_success
    alice.client.delete(f"/profiles/{profile['id']}/dataset/files/{ticket['file_id']}")
    assert objects(storage, alice.id) == set()
    # The link outlives the row: the same bytes come back with no row to claim them.
    assert httpx.put(ticket["upload_url"], content=b"RIFF!", headers=ticket["headers"]).is_success
    pending = alice.client.post(f"/profiles/{profile['id']}/dataset/uploads", json=body).json()
    put(storage, pending["object_key"])  # a pending upload is claimed by its row
    bob_profile = repo.create_profile(bob.id, "bass")
    uploaded_file(repo, storage, bob.id, bob_profile.id)
    bob_before = snapshot(sql, storage, bob.id)

    sweep_orphans(repo, storage)  # too young for the default grace
    assert ticket["object_key"] in objects(storage, alice.id)
    eager = Repository(
        services.db, services.settings.model_copy(update={"orphan_grace_seconds": 0})
    )
    sweep_orphans(eager, storage)

    assert objects(storage, alice.id) == {pending["object_key"]}
    assert snapshot(sql, storage, bob.id) == bob_before
    # No pending upload is left behind for another test's reconciler run to find.
    alice.client.delete(f"/profiles/{profile['id']}/dataset/files/{pending['file_id']}")


def test_a_model_versions_preview_is_claimed_by_it(repo, storage, sql, services, alice):
    """The sweep keeps what a live model version holds under its prefix and removes a
    preview whose model version is gone."""
    made = voice_with_files(repo, storage, alice.id, "previewed")
    pid, version = made["profile_id"], made["model_version_id"]
    previews = {
        keys.model_preview_key(alice.id, pid, version, side) for side in ("original", "converted")
    }
    stray = keys.model_preview_key(alice.id, pid, uuid4(), "converted")
    put(storage, stray)
    eager = Repository(
        services.db, services.settings.model_copy(update={"orphan_grace_seconds": 0})
    )
    sweep_orphans(eager, storage)
    left = objects(storage, alice.id, pid)
    assert previews <= left
    assert stray not in left


def test_delete_me_erases_everything_of_the_caller_only(repo, storage, sql, alice, bob, quota_room):
    quota_room(alice.id)
    voice_with_files(repo, storage, alice.id, "one")
    two = voice_with_files(repo, storage, alice.id, "two")
    gone = voice_with_files(repo, storage, alice.id, "deleted earlier")
    alice.client.delete(f"/profiles/{gone['profile_id']}")  # still in its grace period
    live = new_conversion(repo, alice.id, two["profile_id"])  # reserved, awaiting its upload
    put(storage, keys.conversion_input_key(alice.id, two["profile_id"], live, "wav"))
    put(storage, f"vc/users/{alice.id}/profiles/{uuid4()}/dataset/{uuid4()}/stray.wav")
    voice_with_files(repo, storage, bob.id, "bob")
    bob_before = snapshot(sql, storage, bob.id)
    assert alice.client.get("/quota").json()["conversion"]["used"] == 4

    refused = alice.client.request("DELETE", "/me", json={"confirm": "yes"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "VALIDATION_FAILED"
    assert alice.client.request("DELETE", "/me").status_code == 422
    assert rows(sql, alice.id)["voice_profiles"] == 3  # nothing happened

    erased = alice.client.request("DELETE", "/me", json={"confirm": ERASE_CONFIRMATION})
    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert report["profiles"] == 3 and report["conversion_jobs"] == 4
    assert report["jobs_canceled"] == 1 and report["objects_deleted"] == 26

    assert objects(storage, alice.id) == set()
    after = rows(sql, alice.id)
    assert {t: n for t, n in after.items() if n} == {}, "the account and its counters go too"
    queued = "select count(*) from public.object_deletions where user_id = %s"
    assert sql.execute(queued, (alice.id,)).fetchone()[0] == 0
    account = "select count(*) from auth.users where id = %s"
    assert sql.execute(account, (alice.id,)).fetchone()[0] == 0
    # The token outlives the account until it expires: it is refused as signed out.
    signed_out = alice.client.get("/profiles")
    assert signed_out.status_code == 401
    assert signed_out.json()["error"]["code"] == "ACCOUNT_DELETED"
    again = alice.client.request("DELETE", "/me", json={"confirm": ERASE_CONFIRMATION})
    assert again.status_code == 200 and again.json()["profiles"] == 0, "a retry is harmless"
    assert snapshot(sql, storage, bob.id) == bob_before
    assert bob.client.get("/profiles").status_code == 200


def test_dataset_listing_is_what_matters_and_bounded(repo, storage, alice):
    profile = repo.create_profile(alice.id, "many refusals")
    ready = {uploaded_file(repo, storage, alice.id, profile.id, seconds=5)[0] for _ in range(3)}
    refused = [
        uploaded_file(repo, storage, alice.id, profile.id, reject="SILENT")[0] for _ in range(25)
    ]
    deleted, _ = uploaded_file(repo, storage, alice.id, profile.id)
    repo.delete_dataset_file(alice.id, profile.id, deleted)

    files = alice.client.get(f"/profiles/{profile.id}/dataset/files").json()

    assert {UUID(f["id"]) for f in files if f["status"] == "ready"} == ready
    shown = [UUID(f["id"]) for f in files if f["status"] == "rejected"]
    assert set(shown) == set(refused[-20:])  # the latest refusals, bounded
    assert all(f["status"] in {"ready", "rejected"} for f in files)


def finished_song(repo: Repository, storage, user_id: UUID, profile_id: UUID) -> tuple[UUID, set]:
    """A succeeded song conversion: input, mix (its output), converted vocal, instrumental."""
    job_id = new_conversion(repo, user_id, profile_id, input_kind="song")
    put(storage, keys.conversion_input_key(user_id, profile_id, job_id, "wav"))
    repo.queue_conversion(job_id)
    repo.claim_job("conversion", job_id)
    parts = {p: keys.conversion_part_key(user_id, profile_id, job_id, p) for p in keys.PART_LEAVES}
    for key in parts.values():
        put(storage, key)
    repo.finish_conversion(job_id, parts["mix"], 1.0)
    return job_id, set(parts.values())


def test_a_songs_three_results_are_served_kept_and_removed_with_it(
    repo, storage, sql, services, alice, bob, settings, quota_room
):
    quota_room(alice.id)
    mine = trained_profile(repo, alice.id)
    pid = mine["profile_id"]
    job_id, results = finished_song(repo, storage, alice.id, pid)
    stem = finished_conversion(repo, storage, alice.id, pid)  # a vocal conversion beside it
    assert len(objects(storage, alice.id)) == 4 + 2

    links = {
        part: alice.client.get(f"/conversions/{job_id}/download", params={"part": part})
        for part in ("mix", "vocal", "instrumental")
    }
    assert {p: r.json()["filename"] for p, r in links.items()} == {
        "mix": "in-cover.wav",
        "vocal": "in-cover-vocal.wav",
        "instrumental": "in-instrumental.wav",
    }
    assert {httpx.get(r.json()["url"]).content for r in links.values()} == {b"RIFF-bytes"}
    assert alice.client.get(f"/conversions/{job_id}/download").json()["filename"] == "in-cover.wav"
    # a vocal conversion has its one result, under its own name and as `vocal`
    one = alice.client.get(f"/conversions/{stem}/download", params={"part": "vocal"})
    assert one.json()["filename"] == "in-converted.wav"
    for part in ("mix", "instrumental"):
        missing = alice.client.get(f"/conversions/{stem}/download", params={"part": part})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        assert part in missing.json()["error"]["message"]
    bad = alice.client.get(f"/conversions/{job_id}/download", params={"part": "drums"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_FAILED"
    assert (
        bob.client.get(f"/conversions/{job_id}/download", params={"part": "vocal"}).status_code
        == 404
    )

    eager = Repository(services.db, settings.model_copy(update={"orphan_grace_seconds": 0}))
    sweep_orphans(eager, storage)  # a live result is claimed, parts included
    assert results <= objects(storage, alice.id)

    sql.execute(
        "update public.conversion_jobs set finished_at = now() - make_interval(days => %s) "
        "where id = %s",
        (settings.conversion_retention_days + 1, job_id),
    )
    report = run_retention(repo, storage)
    assert report.rules.conversion_objects_queued == 4
    assert objects(storage, alice.id) & results == set()
    assert len(objects(storage, alice.id)) == 2  # the vocal conversion's input and output


def test_a_deleted_profiles_song_results_go_with_it(repo, storage, sql, alice, quota_room):
    quota_room(alice.id)
    made = trained_profile(repo, alice.id, "singer")
    pid = made["profile_id"]
    _, results = finished_song(repo, storage, alice.id, pid)
    assert results <= objects(storage, alice.id, pid)
    assert alice.client.delete(f"/profiles/{pid}").status_code == 200
    sql.execute(
        "update public.voice_profiles set deleted_at = now() - interval '8 days' where id = %s",
        (pid,),
    )
    run_retention(repo, storage)
    assert objects(storage, alice.id, pid) == set()


def test_a_spoken_line_nobody_recorded_is_swept_and_a_kept_one_stays(
    repo, storage, sql, services, alice
):
    """A text job's WAV and MP3 are layout keys the sweep sees: the files of a line whose row
    holds them stay, those of a job no row names (a worker uploaded, then its job was erased
    before the finish) go. Before, `speech/` keys were outside the parsed layout and no
    sweep ever looked at them."""
    made = trained_profile(repo, alice.id, "spoken")
    pid, kept_id, stray_id = made["profile_id"], uuid4(), uuid4()
    kept, stray = keys.text_keys(alice.id, pid, kept_id), keys.text_keys(alice.id, pid, stray_id)
    sql.execute(
        "insert into public.text_jobs (id, user_id, profile_id, model_version_id, text, language,"
        " status, quota_period_start, output_key, mp3_key, output_seconds)"
        " values (%s, %s, %s, %s, 'Hello.', 'en-us', 'succeeded', current_date, %s, %s, 1.0)",
        (kept_id, alice.id, pid, made["model_version_id"], *kept),
    )
    for key in (*kept, *stray):
        put(storage, key)
    eager = Repository(
        services.db, services.settings.model_copy(update={"orphan_grace_seconds": 0})
    )
    sweep_orphans(eager, storage)
    speech = {k for k in objects(storage, alice.id, pid) if "/speech/" in k}
    assert speech == set(kept)
