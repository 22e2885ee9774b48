"""The event handler: the key is the security boundary, and every delivery is idempotent."""

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx

from pipeline import keys
from pipeline.events import IGNORED
from pipeline.local.relay import LocalRelay
from pipeline.reconcile import reconcile_uploads
from pipeline.repository import Repository
from schemas.events import R2Event
from tests.audio import encode, hostile_corpus, voice
from tests.events_helpers import deliver, r2_event
from tests.helpers import trained_profile


def _upload(user, profile_id: str, data: bytes, name: str, content_type: str) -> dict:
    body = {"filename": name, "content_type": content_type, "size_bytes": len(data)}
    ticket = user.client.post(f"/profiles/{profile_id}/dataset/uploads", json=body)
    assert ticket.status_code == 201, ticket.text
    t = ticket.json()
    assert httpx.put(t["upload_url"], content=data, headers=t["headers"]).status_code == 200
    return t


def _event_for(services, key: str, action: str = "PutObject") -> dict:
    info = services.storage.head(key)
    etag = info.etag if info else "gone"
    return r2_event(services.settings.s3_bucket, key, etag, info.size if info else 1, action)


def test_keys_outside_the_layout_and_foreign_ids_are_ignored(services, repo, alice, bob) -> None:
    handler = services.events
    profile = repo.create_profile(alice.id, "boundary")
    file_id = uuid4()
    key = keys.dataset_key(alice.id, profile.id, file_id, "a.wav")
    repo.register_upload(alice.id, profile.id, file_id, key, "a.wav", "audio/wav", 10)
    bucket = services.settings.s3_bucket
    forged = [
        "vc/users/whatever/a.wav",
        "../../etc/passwd",
        keys.dataset_key(bob.id, profile.id, file_id, "a.wav"),  # bob's id on alice's file
        keys.dataset_key(alice.id, uuid4(), file_id, "a.wav"),  # wrong profile
        keys.dataset_key(alice.id, profile.id, uuid4(), "a.wav"),  # unknown row
        keys.dataset_key(alice.id, profile.id, file_id, "b.wav"),  # right ids, other name
        keys.conversion_input_key(alice.id, profile.id, uuid4(), "wav"),  # unknown job
        keys.model_key(alice.id, profile.id, uuid4()),  # our own artifacts
    ]
    before = sum(IGNORED.values())
    for forged_key in forged:
        event = R2Event.model_validate(r2_event(bucket, forged_key, "e1"))
        assert handler.handle(event).outcome == "ignored", forged_key
    other_bucket = R2Event.model_validate(r2_event("someone-else", key, "e1"))
    assert handler.handle(other_bucket).outcome == "ignored"
    assert sum(IGNORED.values()) - before == len(forged) + 1
    assert repo.get_dataset_file(file_id).status == "pending"


def test_delete_events_mark_rows_deleted(services, repo, alice) -> None:
    profile = alice.client.post("/profiles", json={"name": "deletes"}).json()
    t = _upload(alice, profile["id"], encode(voice(3.0), 44100, "wav"), "a.wav", "audio/wav")
    handler = services.events
    event = R2Event.model_validate(_event_for(services, t["object_key"], "DeleteObject"))
    assert handler.handle(event).outcome == "deleted"
    assert repo.get_dataset_file(t["file_id"]).status == "deleted"
    assert handler.handle(event).outcome == "duplicate"


def test_replayed_webhook_has_no_second_effect(api_url, services, repo, alice, relay_secret_key):
    profile = alice.client.post("/profiles", json={"name": "replay"}).json()
    t = _upload(alice, profile["id"], encode(voice(3.0), 44100, "flac"), "a.flac", "audio/flac")
    event = _event_for(services, t["object_key"])
    first = deliver(api_url, relay_secret_key, event, msg_id="msg_replay_1")
    assert first.json()["outcomes"][0]["outcome"] == "probed"
    probed = repo.get_dataset_file(t["file_id"])
    assert probed.status == "ready"
    again = deliver(api_url, relay_secret_key, event, msg_id="msg_replay_1")
    assert again.status_code == 200 and again.json()["outcomes"] == []
    other_id = deliver(api_url, relay_secret_key, event)
    assert other_id.json()["outcomes"][0]["outcome"] == "duplicate"
    assert repo.get_dataset_file(t["file_id"]) == probed


def test_conversion_input_event_queues_the_job(services, repo, alice) -> None:
    made = trained_profile(repo, alice.id)
    job_id = uuid4()
    input_key = keys.conversion_input_key(alice.id, made["profile_id"], job_id, "wav")
    repo.create_conversion(
        alice.id,
        made["profile_id"],
        job_id,
        model_version_id=None,
        params={},
        input_key=input_key,
        input_filename="in.wav",
        input_size_bytes=10,
        upload_expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )
    queued = []
    from pipeline.events import EventHandler

    handler = EventHandler(repo, services.dispatcher, on_conversion_queued=queued.append)
    event = R2Event.model_validate(r2_event(services.settings.s3_bucket, input_key, "e1", 10))
    assert handler.handle(event).outcome == "queued"
    assert repo.get_job("conversion", alice.id, job_id).status == "queued"
    again = R2Event.model_validate(r2_event(services.settings.s3_bucket, input_key, "e2", 10))
    assert handler.handle(again).outcome == "no_op"
    assert queued == [job_id]


def test_chaos_duplicated_reordered_dropped_then_reconciled(
    api_url, services, repo, alice, relay_secret_key
) -> None:
    profile = alice.client.post("/profiles", json={"name": "chaos"}).json()
    hostile = list(hostile_corpus().values())[:5]
    uploads = []
    for i in range(20):
        if i < 15:
            data, name, ctype = (
                encode(voice(3.0 + i * 0.1, seed=i), 44100, "flac"),
                f"{i}.flac",
                "audio/flac",
            )
        else:
            data, name, _ = hostile[i - 15]
            ctype = "audio/flac" if name.endswith(".flac") else "audio/wav"
        uploads.append(_upload(alice, profile["id"], data, name, ctype))
    events = [_event_for(services, t["object_key"]) for t in uploads]
    delivered = [e for i, e in enumerate(events) if i % 3 != 0]  # a third never arrives
    deliveries = delivered * 2 + [delivered[:4]]  # duplicates, and one batch
    random.Random(3).shuffle(deliveries)
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(lambda p: deliver(api_url, relay_secret_key, p).status_code, deliveries)
        )
    assert set(statuses) == {200}
    pending = [f for f in repo.list_dataset_files(alice.id, profile["id"]) if f.status == "pending"]
    assert len(pending) == 7  # indexes 0, 3, …, 18

    eager = Repository(repo.db, repo.settings.model_copy(update={"reconcile_after_seconds": 0}))
    report = reconcile_uploads(eager, services.storage, services.dispatcher)
    assert sorted(report.probed) == sorted(str(f.id) for f in pending)

    files = repo.list_dataset_files(alice.id, profile["id"])
    assert len(files) == 20
    assert all(f.status in {"ready", "rejected"} for f in files)
    ready = [f for f in files if f.status == "ready"]
    assert len(ready) >= 15
    # Everything again, and the reconciler again: nothing changes.
    for payload in events:
        deliver(api_url, relay_secret_key, payload)
    reconcile_uploads(eager, services.storage, services.dispatcher)
    assert repo.list_dataset_files(alice.id, profile["id"]) == files
    summary = repo.get_profile(alice.id, profile["id"]).dataset
    assert summary.ready_files == len(ready)
    assert abs(summary.ready_seconds - sum(f.duration_sec for f in ready)) < 1e-6


def test_reconciler_expires_uploads_that_never_came(services, repo, alice) -> None:
    profile = repo.create_profile(alice.id, "expired")
    file_id = uuid4()
    key = keys.dataset_key(alice.id, profile.id, file_id, "never.wav")
    repo.register_upload(alice.id, profile.id, file_id, key, "never.wav", "audio/wav", 10)
    eager = Repository(repo.db, repo.settings.model_copy(update={"reconcile_after_seconds": 0}))
    soon = reconcile_uploads(eager, services.storage, services.dispatcher)
    assert str(file_id) not in soon.expired  # its upload URL is still valid
    later = datetime.now(UTC) + timedelta(hours=1)
    report = reconcile_uploads(eager, services.storage, services.dispatcher, now=later)
    assert str(file_id) in report.expired
    row = repo.get_dataset_file(file_id)
    assert (row.status, row.reject_code) == ("rejected", "UPLOAD_EXPIRED")


def test_local_relay_makes_uploads_event_driven(stack, api_url, repo, alice, services) -> None:
    secret, _ = stack.relay_keys()
    relay = LocalRelay(
        f"127.0.0.1:{stack.s3.ports.filer}", services.settings.s3_bucket, api_url, secret
    ).start()
    try:
        time.sleep(1.0)  # the tail subscribes from "now"
        profile = alice.client.post("/profiles", json={"name": "relay"}).json()
        started = time.monotonic()
        t = _upload(alice, profile["id"], encode(voice(4.0), 44100, "wav"), "a.wav", "audio/wav")
        while repo.get_dataset_file(t["file_id"]).status == "pending":
            assert time.monotonic() - started < 15, "not probed within 15 s"
            time.sleep(0.2)
        assert repo.get_dataset_file(t["file_id"]).status == "ready"
        services.storage.delete(t["object_key"])
        while repo.get_dataset_file(t["file_id"]).status != "deleted":
            assert time.monotonic() - started < 30, "delete not relayed"
            time.sleep(0.2)
    finally:
        relay.stop()


def test_a_killed_relay_tail_is_restarted_and_misses_nothing(
    stack, api_url, repo, alice, services, caplog
) -> None:
    """The tail exits when it loses the filer (its gRPC port taken, the filer restarted):
    the relay logs why, starts it again, and an upload made meanwhile is still probed at once
    rather than minutes later by the reconciler."""
    secret, _ = stack.relay_keys()
    relay = LocalRelay(
        f"127.0.0.1:{stack.s3.ports.filer}", services.settings.s3_bucket, api_url, secret
    ).start()
    try:
        time.sleep(1.0)  # the tail subscribes from "now"
        profile = alice.client.post("/profiles", json={"name": "relay restart"}).json()
        first = relay.process
        first.kill()
        first.wait(5)
        started = time.monotonic()
        t = _upload(alice, profile["id"], encode(voice(4.0), 44100, "wav"), "a.wav", "audio/wav")
        while repo.get_dataset_file(t["file_id"]).status == "pending":
            assert time.monotonic() - started < 15, "not probed within 15 s of a killed tail"
            time.sleep(0.2)
        assert repo.get_dataset_file(t["file_id"]).status == "ready"
        assert relay.process is not first and relay.process.poll() is None
        assert any("relay tail exited" in r.getMessage() for r in caplog.records)
    finally:
        relay.stop()
    assert relay.process.poll() is not None  # stopping stops the supervisor too


def test_services_build_the_repository_and_the_handler_once(services) -> None:
    """One process, one of each: the handler keeps its dispatcher and repository for good."""
    assert services.repo is services.repo
    assert services.events is services.events
    assert services.events.repo is services.repo
