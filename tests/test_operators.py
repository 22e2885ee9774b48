"""Operators on the dashboard: a scripted day against the local stack, then each `ops` view's
rows, each control seen through the API afterwards, and no view or control within reach of a
user's role."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest

from pipeline import cron, keys, redact
from pipeline.local.stack import LocalStack
from pipeline.reconcile import reconcile_uploads
from pipeline.repository import Repository
from tests.audio import encode, png, voice
from tests.events_helpers import deliver, r2_event
from tests.helpers import new_conversion, ready_dataset, trained_profile


@dataclass
class Person:
    id: UUID
    client: httpx.Client


@dataclass
class Day:
    alice: Person  # uploads (one rejected, one reconciled), a failed and a stuck training
    bob: Person  # a trained voice and two conversions, one failed
    alice_profile: UUID
    bob_profile: UUID
    failed_training: UUID
    stuck_training: UUID
    failed_code: str
    ignored_key: str
    caught_key: str
    model_version: UUID
    upload_bytes: int
    before: dict[tuple[str, str, str], int]
    after: dict[tuple[str, str, str], int]
    pending_before: dict[str, int]
    pending_backdated: dict[str, int]


def _person(stack: LocalStack, api_url: str) -> Person:
    email = f"ops-{uuid4().hex[:10]}@test.local"
    user_id = stack.ensure_user(email)
    headers = {"Authorization": f"Bearer {stack.dev_token(email)}"}
    return Person(user_id, httpx.Client(base_url=api_url, headers=headers, timeout=60))


def _rows(conn: psycopg.Connection, query: str, *args: Any) -> list[dict[str, Any]]:
    cur = conn.execute(query, args)
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _outcomes(conn: psycopg.Connection) -> dict[tuple[str, str, str], int]:
    rows = _rows(
        conn,
        "select source, outcome, coalesce(reason, '') as reason, count "
        "from ops.event_health where day = (now() at time zone 'UTC')::date",
    )
    return {(r["source"], r["outcome"], r["reason"]): r["count"] for r in rows}


def _pending(conn: psycopg.Connection) -> dict[str, int]:
    return {r["age"]: r["files"] for r in _rows(conn, "select age, files from ops.pending_uploads")}


def _upload(person: Person, profile: UUID, data: bytes, name: str, ctype: str) -> dict:
    body = {"filename": name, "content_type": ctype, "size_bytes": len(data)}
    ticket = person.client.post(f"/profiles/{profile}/dataset/uploads", json=body)
    assert ticket.status_code == 201, ticket.text
    t = ticket.json()
    assert httpx.put(t["upload_url"], content=data, headers=t["headers"]).status_code == 200
    return t


@pytest.fixture(scope="module")
def day(stack, services, api_url, relay_secret_key) -> Iterator[Day]:
    repo: Repository = services.repo
    bucket = services.settings.s3_bucket
    alice, bob = _person(stack, api_url), _person(stack, api_url)
    with psycopg.connect(stack.database_url, autocommit=True) as sql:
        before = _outcomes(sql)
        pending_before = _pending(sql)

        # Alice uploads: a good take (its event delivered twice), an image (rejected), and a
        # take whose event never comes; then a forged event for a file that does not exist.
        profile = UUID(alice.client.post("/profiles", json={"name": "day"}).json()["id"])
        good = encode(voice(3.0), 44100, "wav")
        t1 = _upload(alice, profile, good, "take1.wav", "audio/wav")
        t2 = _upload(alice, profile, png(), "cover.wav", "audio/wav")
        t3 = _upload(alice, profile, good, "take3.wav", "audio/wav")
        for t in (t1, t2):
            info = services.storage.head(t["object_key"])
            event = r2_event(bucket, t["object_key"], info.etag, info.size)
            assert deliver(api_url, relay_secret_key, event).status_code == 200
        info = services.storage.head(t1["object_key"])
        again = deliver(api_url, relay_secret_key, r2_event(bucket, t1["object_key"], info.etag))
        assert again.json()["outcomes"][0]["outcome"] == "duplicate"
        ignored_key = keys.dataset_key(alice.id, profile, uuid4(), "ghost.wav")
        ghost = deliver(api_url, relay_secret_key, r2_event(bucket, ignored_key, "e1"))
        assert ghost.json()["outcomes"][0]["outcome"] == "ignored"
        assert repo.get_dataset_file(t2["file_id"]).status == "rejected"

        # The lost event: the upload waits, ages past the reconciler's threshold, is caught.
        sql.execute(
            "update public.dataset_files set created_at = now() - interval '10 minutes' "
            "where id = %s",
            (t3["file_id"],),
        )
        pending_backdated = _pending(sql)
        report = reconcile_uploads(repo, services.storage, services.dispatcher)
        assert t3["file_id"] in report.probed

        # Alice's trainings: one fails in the worker, the next one's worker goes silent.
        ready_dataset(repo, alice.id, profile, 200)
        failed_code = f"TRAINER_CRASHED_{uuid4().hex[:6].upper()}"
        failed = repo.start_training(alice.id, profile, {"preset": "tiny"})
        repo.claim_job("training", failed.id)
        repo.fail_job("training", failed.id, failed_code, "The trainer ran out of memory.")
        stuck = repo.start_training(alice.id, profile, {"preset": "tiny"})
        repo.claim_job("training", stuck.id)
        repo.heartbeat_job("training", stuck.id, {"phase": "train", "percent": 40.0})
        sql.execute(
            "update public.training_jobs set heartbeat_at = now() - interval '20 minutes' "
            "where id = %s",
            (stuck.id,),
        )

        # Bob has a trained voice and converts twice: one succeeds, one fails.
        made = trained_profile(repo, bob.id, "bob's voice")
        ok = new_conversion(repo, bob.id, made["profile_id"])
        repo.queue_conversion(ok)
        repo.claim_job("conversion", ok)
        output = keys.conversion_output_key(bob.id, made["profile_id"], ok)
        repo.finish_conversion(ok, output, 12.5)
        bad = new_conversion(repo, bob.id, made["profile_id"])
        repo.queue_conversion(bad)
        repo.claim_job("conversion", bad)
        repo.fail_job("conversion", bad, "CONVERSION_FAILED", "The input could not be decoded.")

        after = _outcomes(sql)
    upload_bytes = 2 * len(good) + len(png()) + 1000  # + ready_dataset's registered file
    yield Day(
        alice,
        bob,
        profile,
        made["profile_id"],
        failed.id,
        stuck.id,
        failed_code,
        ignored_key,
        t3["object_key"],
        made["model_version_id"],
        upload_bytes,
        before,
        after,
        pending_before,
        pending_backdated,
    )
    alice.client.close()
    bob.client.close()


@pytest.fixture
def ops(stack: LocalStack) -> Iterator[psycopg.Connection]:
    """The dashboard's connection (postgres), as an operator in the SQL editor."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        yield conn


# The views ----------------------------------------------------------------------------


def test_jobs_in_flight_shows_the_stuck_training_with_its_heartbeat_age(day, ops) -> None:
    rows = _rows(
        ops, "select * from ops.jobs_in_flight where user_id in (%s, %s)", day.alice.id, day.bob.id
    )
    assert [(r["kind"], r["id"], r["status"], r["phase"]) for r in rows] == [
        ("training", day.stuck_training, "running", "train")
    ]
    assert rows[0]["percent"] == 40.0 and rows[0]["attempt"] == 1
    assert rows[0]["heartbeat_age"].total_seconds() >= 20 * 60


def test_failures_counts_each_code_over_the_day_and_week(day, ops) -> None:
    rows = _rows(ops, "select * from ops.failures")
    by = {(r["source"], r["status"], r["code"]): r for r in rows}
    crash = by[("training", "failed", day.failed_code)]
    assert (crash["last_day"], crash["last_week"]) == (1, 1)
    assert crash["last_message"] == "The trainer ran out of memory."
    assert by[("conversion", "failed", "CONVERSION_FAILED")]["last_day"] >= 1
    assert by[("upload", "rejected", "UNSUPPORTED_FORMAT")]["last_week"] >= 1


def test_usage_this_period_per_user(day, ops) -> None:
    rows = _rows(
        ops,
        "select * from ops.usage_this_period where user_id in (%s, %s)",
        day.alice.id,
        day.bob.id,
    )
    by = {r["user_id"]: r for r in rows}
    alice, bob = by[day.alice.id], by[day.bob.id]
    # The failed training was refunded; the stuck one still holds its reservation.
    assert (alice["trainings_used"], alice["trainings_this_month"]) == (1, 2)
    assert alice["dataset_bytes"] == day.upload_bytes
    assert alice["model_bytes"] == 0 and alice["disabled"] is False
    # Bob's success is charged, his failed conversion refunded.
    assert (bob["trainings_used"], bob["conversions_used"], bob["conversions_today"]) == (1, 1, 2)
    assert bob["model_bytes"] == 1234 and bob["conversion_input_bytes"] == 200
    assert bob["stored_bytes"] == bob["dataset_bytes"] + 1234 + 200
    assert bob["gpu_seconds_this_month"] >= 0


def test_upload_pipeline_health(day, ops) -> None:
    def delta(source: str, outcome: str, reason: str = "") -> int:
        key = (source, outcome, reason)
        return day.after.get(key, 0) - day.before.get(key, 0)

    # t1 and the image were probed by their events, t3 by the reconciler.
    assert delta("r2", "probed") == 2
    assert delta("r2", "duplicate") == 1
    assert delta("r2", "ignored", "no such upload for that user") == 1
    # The reconciler sweeps the whole shared stack: other tests may leave lost uploads too.
    assert delta("reconciler", "probed") >= 1
    # The operators' view names the last key as `kind:row id`, never the user id or the file
    # name (pipeline/redact.py).
    rows = _rows(
        ops,
        "select * from ops.event_health where last_key in (%s, %s)",
        redact.key(day.ignored_key),
        redact.key(day.caught_key),
    )
    assert {(r["source"], r["outcome"], r["reason"]) for r in rows} == {
        ("r2", "ignored", "no such upload for that user"),
        ("reconciler", "probed", None),
    }
    # The lost upload showed in the 5 to 60 minute bucket while it waited, and is gone now.
    bucket = "2: 5 to 60 minutes"
    assert day.pending_backdated.get(bucket, 0) == day.pending_before.get(bucket, 0) + 1
    assert _pending(ops).get(bucket, 0) == day.pending_before.get(bucket, 0)


def test_model_versions_per_profile_with_metrics(day, ops) -> None:
    rows = _rows(ops, "select * from ops.model_versions where profile_id = %s", day.bob_profile)
    assert len(rows) == 1
    row = rows[0]
    assert (row["model_version_id"], row["active"], row["status"]) == (
        day.model_version,
        True,
        "ready",
    )
    assert row["metrics"] == {"loss_g": 1.0} and row["preset"] == "tiny"
    assert row["profile_name"] == "bob's voice"


# The controls, seen through the API ---------------------------------------------------


def _audit(ops: psycopg.Connection, target: UUID) -> list[dict[str, Any]]:
    return _rows(ops, "select * from ops.recent_actions where target_id = %s order by at", target)


def test_disabled_user_is_refused_with_the_reason_then_reenabled(day, ops) -> None:
    assert day.alice.client.get("/quota").status_code == 200
    ops.execute(
        "select ops.disable_user(%s, 'Uploading other people''s recordings.')", (day.alice.id,)
    )
    for response in (
        day.alice.client.get("/quota"),
        day.alice.client.get("/profiles"),
        day.alice.client.post("/profiles", json={"name": "another"}),
    ):
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "USER_DISABLED"
        assert "Uploading other people's recordings." in error["message"]
    shown = _rows(ops, "select * from ops.disabled where id = %s", day.alice.id)
    assert [(r["kind"], r["disabled_by"]) for r in shown] == [("user", "postgres")]
    ops.execute("select ops.enable_user(%s, 'Appeal accepted.', 'ops@svc')", (day.alice.id,))
    assert day.alice.client.get("/quota").status_code == 200
    actions = [(a["action"], a["actor"], a["reason"]) for a in _audit(ops, day.alice.id)]
    assert actions[-2:] == [
        ("disable_user", "postgres", "Uploading other people's recordings."),
        ("enable_user", "ops@svc", "Appeal accepted."),
    ]


def test_disabled_profile_refuses_actions_but_stays_readable(day, ops) -> None:
    bob, profile = day.bob, day.bob_profile
    ops.execute("select ops.disable_profile(%s, 'Voice of a public figure.')", (profile,))
    body = {"filename": "in.wav", "content_type": "audio/wav", "size_bytes": 1000}
    for response in (
        bob.client.post(f"/profiles/{profile}/conversions", json=body),
        bob.client.post(f"/profiles/{profile}/dataset/uploads", json=body),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "PROFILE_DISABLED"
        assert "Voice of a public figure." in response.json()["error"]["message"]
    seen = bob.client.get(f"/profiles/{profile}").json()
    assert (seen["status"], seen["disabled_reason"]) == ("disabled", "Voice of a public figure.")
    with pytest.raises(psycopg.errors.RaiseException, match="INVALID_TRANSITION"):
        ops.execute("select ops.disable_profile(%s, 'again')", (profile,))
    ops.execute("select ops.enable_profile(%s, 'Consent on file.')", (profile,))
    seen = bob.client.get(f"/profiles/{profile}").json()
    assert (seen["status"], seen["disabled_reason"]) == ("ready", None)
    assert [a["action"] for a in _audit(ops, profile)] == ["disable_profile", "enable_profile"]


def _quota(person: Person) -> dict[str, Any]:
    response = person.client.get("/quota")
    assert response.status_code == 200, response.text
    return response.json()


def test_fail_a_stuck_job_refunds_it_then_requeue_once(day, ops, services) -> None:
    alice, stuck = day.alice, day.stuck_training
    assert _quota(alice)["training"]["used"] == 1
    ops.execute("select ops.fail_job('training', %s, 'The worker is wedged.')", (stuck,))
    job = alice.client.get(f"/trainings/{stuck}").json()
    assert (job["status"], job["error_code"]) == ("failed", "OPERATOR_FAILED")
    assert "The worker is wedged." in job["error_message"]
    assert _quota(alice)["training"]["used"] == 0  # refunded
    with pytest.raises(psycopg.errors.RaiseException, match="INVALID_TRANSITION"):
        ops.execute("select ops.fail_job('training', %s, 'twice')", (stuck,))

    # The earlier failure is requeued: a reservation again, and the cron launches it once.
    ops.execute(
        "select ops.requeue_job('training', %s, 'Out-of-memory fixed.')", (day.failed_training,)
    )
    job = alice.client.get(f"/trainings/{day.failed_training}").json()
    assert (job["status"], job["error_code"]) == ("queued", None)
    assert _quota(alice)["training"]["used"] == 1
    with pytest.raises(psycopg.errors.RaiseException, match="TRAINING_IN_PROGRESS"):
        ops.execute("select ops.requeue_job('training', %s, 'this one too')", (stuck,))

    spawned: list[tuple[str, UUID]] = []

    class Recording:
        def spawn(self, kind: str, target_id: UUID) -> str:
            spawned.append((kind, target_id))
            return f"rec-{target_id}"

        def cancel(self, call_id: str) -> None:
            return None

    worker = SimpleNamespace(repo=services.repo, dispatcher=Recording())
    # (the cron also launches what other tests left requeued or waiting in line: only ours
    # is counted)
    assert str(day.failed_training) in cron.launch_requeued(worker)
    assert str(day.failed_training) not in cron.launch_requeued(worker)
    assert spawned.count(("train", day.failed_training)) == 1
    row = services.repo.get_job_by_id("training", day.failed_training)
    assert row.worker_call_id == f"rec-{day.failed_training}"

    # Once only: after failing again it stays failed.
    services.repo.claim_job("training", day.failed_training)
    services.repo.fail_job("training", day.failed_training, "TRAINER_CRASHED", "Again.")
    with pytest.raises(psycopg.errors.RaiseException, match="requeued once already"):
        ops.execute("select ops.requeue_job('training', %s, 'please')", (day.failed_training,))
    assert _quota(alice)["training"]["used"] == 0
    actions = [a["action"] for a in _audit(ops, stuck)] + [
        a["action"] for a in _audit(ops, day.failed_training)
    ]
    assert actions == ["fail_job", "requeue_job"]


def test_grant_quota_raises_this_periods_limit(day, ops) -> None:
    bob = day.bob
    before = _quota(bob)["conversion"]
    ops.execute("select ops.grant_quota(%s, 'conversion', 2, 'Launch-day promo.')", (bob.id,))
    after = _quota(bob)["conversion"]
    assert after["limit"] == before["limit"] + 2
    assert after["remaining"] == before["remaining"] + 2
    with pytest.raises(psycopg.errors.RaiseException, match="INVALID_ARGUMENT"):
        ops.execute("select ops.grant_quota(%s, 'conversion', -1, 'oops')", (bob.id,))
    with pytest.raises(psycopg.errors.RaiseException, match="INVALID_ARGUMENT"):
        ops.execute("select ops.grant_quota(%s, 'conversion', 1, '  ')", (bob.id,))
    (audit,) = _audit(ops, bob.id)
    assert (audit["action"], audit["details"]["extra"]) == ("grant_quota", 2)


# Nobody else ------------------------------------------------------------------------------


def _as(stack: LocalStack, role: str, user_id: UUID | None, query: str) -> None:
    with psycopg.connect(stack.database_url) as conn:
        conn.execute(f"set local role {role}")
        if user_id is not None:
            claims = json.dumps({"sub": str(user_id), "role": role})
            conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        conn.execute(query)


def _ops_objects(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    relations = [
        r[0]
        for r in conn.execute(
            "select format('ops.%I', c.relname) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'ops' and c.relkind in ('r', 'v')"
        ).fetchall()
    ]
    functions = [
        r[0]
        for r in conn.execute(
            "select p.oid::regprocedure::text from pg_proc p "
            "join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'ops'"
        ).fetchall()
    ]
    return relations, functions


def test_no_view_or_control_is_reachable_by_an_api_role(stack, ops, day) -> None:
    relations, functions = _ops_objects(ops)
    assert {
        "ops.jobs_in_flight",
        "ops.failures",
        "ops.usage_this_period",
        "ops.pending_uploads",
        "ops.event_health",
        "ops.model_versions",
        "ops.audit_log",
    } <= set(relations)
    assert len(functions) == 7
    roles: list[tuple[str, UUID | None]] = [("authenticated", day.alice.id), ("anon", None)]
    if ops.execute("select 1 from pg_roles where rolname = 'svc_worker'").fetchone():
        roles.append(("svc_worker", None))  # the workers' login, where it exists
    for role, user in roles:
        for relation in relations:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                _as(stack, role, user, f"select * from {relation}")
        for control in (
            f"select ops.disable_user('{day.bob.id}', 'x')",
            f"select ops.grant_quota('{day.alice.id}', 'training', 5, 'x')",
            f"select ops.fail_job('training', '{day.stuck_training}', 'x')",
            f"select public.require_enabled_user('{day.alice.id}')",
            "select public.record_event_outcome('r2', 'probed')",
            "select public.take_requeued_jobs()",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                _as(stack, role, user, control)
    # The service role reads every view.
    for relation in relations:
        _as(stack, "service_role", None, f"select * from {relation}")
