"""Deleting a voice profile with a live job of every kind on it: each job is canceled as
erasure cancels it (through the job machine, with its refund), none keeps running on a
deleted voice, and once retention purges the profile no row and no object of any kind is
left (trainings, models, conversions, separations, instant voices and jobs, text jobs)."""

from uuid import uuid4

from pipeline import keys
from pipeline.retention import drain_deletions
from tests.helpers import instant_rows, new_conversion, ready_dataset
from tests.test_retention import objects, put, voice_with_files

KINDS = {"training", "conversion", "separation", "instant", "text"}
PROFILE_TABLES = [
    "dataset_files", "training_jobs", "model_versions", "conversion_jobs", "separation_jobs",
    "instant_voices", "instant_jobs", "text_jobs", "singer_checks",
]  # fmt: skip


def _live_job_of_every_kind(services, sql, user_id, made) -> None:
    repo, storage, pid = services.repo, services.storage, made["profile_id"]
    sql.execute(
        "insert into public.quota_overrides (user_id, trainings_per_month, conversions_per_day)"
        " values (%s, 100, 100)",
        (user_id,),
    )
    training = repo.start_training(user_id, pid, {"preset": "tiny"})
    repo.claim_job("training", training.id)  # running, on a worker
    sql.execute(
        "update public.training_jobs set worker_call_id = %s where id = %s",
        (f"fc-{uuid4().hex}", training.id),
    )
    conversion = new_conversion(repo, user_id, pid)
    put(storage, keys.conversion_input_key(user_id, pid, conversion, "wav"))
    mix = ready_dataset(repo, user_id, pid, 30, full_mix=True)  # queues its separation
    put(storage, repo.get_dataset_file(mix).object_key)
    instant = instant_rows(repo, user_id, pid)
    job = repo.get_job_by_id("instant", instant)
    put(storage, job.input_key)
    put(storage, keys.instant_reference_key(user_id, pid, job.voice_id, "wav"))
    text = repo.db.call(
        "start_text", user_id=user_id, profile_id=pid, job_id=uuid4(), voice_kind="trained",
        model_version_id=made["model_version_id"], instant_voice_id=None, text="Hello there.",
        language="en", params={}, max_chars=5000, default_limit=100, max_active=5,
        gpu_seconds_per_month=None,
    )  # fmt: skip
    for leaf in ("speech.wav", "speech.mp3"):  # as its worker would have written them
        put(storage, f"{keys.ROOT}/{user_id}/profiles/{pid}/speech/{text['id']}/{leaf}")


def _jobs(sql, profile_id) -> dict[str, set[tuple[str, str | None]]]:
    found: dict[str, set[tuple[str, str | None]]] = {}
    for kind, status, code in sql.execute(
        "select kind, status, error_code from svc_private.jobs where profile_id = %s",
        (profile_id,),
    ).fetchall():
        found.setdefault(kind, set()).add((status, code))
    return found


def test_deleting_a_profile_ends_every_kind_and_its_purge_leaves_nothing(
    services, sql, alice
) -> None:
    repo, storage = services.repo, services.storage
    made = voice_with_files(repo, storage, alice.id, "every kind")
    pid = made["profile_id"]
    _live_job_of_every_kind(services, sql, alice.id, made)
    live = {k for k, rows in _jobs(sql, pid).items() if rows - {("succeeded", None)}}
    assert live == KINDS, "a live job of every kind"
    used = repo.quota_status(alice.id)

    deleted = alice.client.delete(f"/profiles/{pid}")

    assert deleted.status_code == 200, deleted.text
    assert alice.client.get(f"/profiles/{pid}").status_code == 404
    jobs = _jobs(sql, pid)
    for kind in KINDS:
        statuses = {status for status, _ in jobs[kind]}
        assert statuses <= {"succeeded", "canceled"}, (kind, jobs[kind])
        assert ("canceled", "CANCELED") in jobs[kind], kind
    after = repo.quota_status(alice.id)
    assert after.training.used == used.training.used - 1, "the training's unit refunded"
    assert after.conversion.used == used.conversion.used - 1

    # Retention, once the grace period is over: every row and every object of every kind.
    sql.execute(
        "update public.voice_profiles set deleted_at = now() - interval '1000 days' where id = %s",
        (pid,),
    )
    repo.apply_retention()
    drain_deletions(repo, storage, alice.id)
    for table in [*PROFILE_TABLES, "voice_profiles"]:
        column = "id" if table == "voice_profiles" else "profile_id"
        count = sql.execute(
            f"select count(*) from public.{table} where {column} = %s",
            (pid,),
        ).fetchone()[0]
        assert count == 0, table
    assert objects(storage, alice.id, pid) == set()
    assert repo.list_object_deletions(10, alice.id) == []
