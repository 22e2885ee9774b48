"""The one-singer check: real Resemblyzer embeddings of espeak-ng voices, computed by the
worker process after the probe, compared in SQL; the odd voice out is flagged."""

import os
import subprocess
import sys
from uuid import UUID, uuid4

import pytest

from pipeline import keys
from pipeline.dispatch import InlineDispatcher, RoutingDispatcher
from pipeline.probe import probe_dataset_file
from pipeline.services import build_services
from pipeline.settings import as_worker_env
from pipeline.singer_check import KIND, request_singer_check
from tests.audio import encode
from tests.vocals import RATE, have_espeak, speech

pytestmark = pytest.mark.skipif(not have_espeak(), reason="espeak-ng (make espeak)")


def register(repo, storage, user_id: UUID, profile_id: UUID, samples, name: str) -> UUID:
    data = encode(samples, RATE, "wav")
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, name)
    repo.register_upload(user_id, profile_id, file_id, key, name, "audio/wav", len(data))
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
    return file_id


def put_ready(repo, storage, user_id: UUID, profile_id: UUID, samples, name: str):
    file_id = register(repo, storage, user_id, profile_id, samples, name)
    row = probe_dataset_file(repo, storage, file_id)
    assert row.status == "ready", row.reject_message
    return row


def test_other_singer_is_flagged_until_deleted(repo, services, settings, alice) -> None:
    profile = repo.create_profile(alice.id, "one singer")
    storage = services.storage
    same = [
        put_ready(
            repo, storage, alice.id, profile.id, speech(8, voice="en+m3", seed=s), f"m{s}.wav"
        )
        for s in range(3)
    ]
    other = put_ready(
        repo, storage, alice.id, profile.id, speech(8, voice="en+f2", seed=7), "f.wav"
    )
    env = as_worker_env(settings.model_copy(update={"singer_check": True}))  # svc_worker login
    done = subprocess.run(
        [sys.executable, "-m", "gpu", "singers", str(profile.id)],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r.id: r for r in repo.list_dataset_files(alice.id, profile.id)}
    for row in same:
        checked = rows[row.id]
        assert checked.other_singer is False, (checked.filename, checked.singer_similarity)
        assert checked.singer_similarity > settings.singer_min_similarity
    odd = rows[other.id]
    assert odd.other_singer is True and odd.singer_similarity < settings.singer_min_similarity
    summary = repo.get_profile(alice.id, profile.id).dataset
    assert summary.other_singer_files == 1
    assert summary.singer_consistency == pytest.approx(
        sum(r.singer_similarity for r in rows.values()) / 4
    )
    print({r.filename: round(r.singer_similarity, 3) for r in rows.values()})

    # The odd voice deleted: the others are compared among themselves, now closer together.
    repo.delete_dataset_file(alice.id, profile.id, other.id)
    left = {r.id: r for r in repo.list_dataset_files(alice.id, profile.id)}
    assert set(left) == {r.id for r in same}
    for file_id, row in left.items():
        assert row.other_singer is False
        assert row.singer_similarity > rows[file_id].singer_similarity, row.filename
    after = repo.get_profile(alice.id, profile.id).dataset
    assert after.other_singer_files == 0
    assert after.singer_consistency == pytest.approx(
        sum(r.singer_similarity for r in left.values()) / 3
    )
    assert after.singer_consistency > summary.singer_consistency

    # An object removed from the bucket (its event marks the row deleted) recomputes too: two
    # files left are each other's centroid, too few to flag anyone.
    repo.mark_object_deleted(same[0].object_key)
    pair = {r.id: r for r in repo.list_dataset_files(alice.id, profile.id)}
    assert set(pair) == {same[1].id, same[2].id}
    first, second = pair.values()
    assert first.singer_similarity == pytest.approx(second.singer_similarity)
    assert first.singer_similarity != pytest.approx(left[first.id].singer_similarity)
    assert first.other_singer is None and second.other_singer is None
    print(
        "after deleting the odd one:",
        {r.filename: round(r.singer_similarity, 3) for r in left.values()},
    )


def test_the_probe_asks_for_the_check_when_a_file_is_ready(repo, services, settings, alice):
    asked: list[UUID] = []
    dispatcher = RoutingDispatcher({KIND: InlineDispatcher({KIND: asked.append})})
    on = settings.model_copy(update={"singer_check": True})
    probing = build_services(on, dispatcher)
    try:
        probe = probing.runners()["probe"]
        profile = repo.create_profile(alice.id, "asks")
        ready = register(repo, services.storage, alice.id, profile.id, speech(4, seed=3), "a.wav")
        silent = register(repo, services.storage, alice.id, profile.id, speech(4) * 0, "s.wav")
        assert probe(ready).status == "ready"
        assert probe(silent).reject_code == "SILENT"
    finally:
        probing.close()
    assert asked == [profile.id]  # once, for the ready file
    row = repo.get_dataset_file(ready)
    assert request_singer_check(repo, dispatcher, row) is None  # switched off


def _check(services, profile_id: UUID) -> None:
    from gpu.measures.singers import check_profile

    check_profile(services.worker_repo, services.storage, profile_id)


def test_bytes_put_again_after_the_probe_are_not_what_the_check_hears(repo, services, alice):
    """A second PUT through a still-valid upload URL swaps a probed file for another voice:
    the check reads the sealed bytes (the probed eTag) or nothing, never the swapped ones."""
    profile = repo.create_profile(alice.id, "swapped")
    storage = services.storage
    same = [
        put_ready(repo, storage, alice.id, profile.id, speech(8, voice="en+m3", seed=s), f"{s}.wav")
        for s in range(4)
    ]
    swapped = same[-1]
    other = encode(speech(8, voice="en+f2", seed=7), RATE, "wav")
    storage._s3.put_object(Bucket=storage.bucket, Key=swapped.object_key, Body=other)

    _check(services, profile.id)

    rows = {r.id: r for r in repo.list_dataset_files(alice.id, profile.id)}
    assert rows[swapped.id].singer_similarity is None, "the swapped bytes were embedded"
    assert all(rows[r.id].singer_similarity is not None for r in same[:-1])


def test_a_forged_header_rate_fails_that_file_not_the_check(repo, services, alice) -> None:
    profile = repo.create_profile(alice.id, "forged")
    storage = services.storage
    fine = [
        put_ready(repo, storage, alice.id, profile.id, speech(6, voice="en+m3", seed=s), f"{s}.wav")
        for s in range(3)
    ]
    data = bytearray(encode(speech(6, voice="en+m3", seed=9), RATE, "wav"))
    forged_rate = 2_000_000_011  # a prime: resampling from it would need a gigantic filter
    data[24:28] = forged_rate.to_bytes(4, "little")
    data[28:32] = (forged_rate * 2).to_bytes(4, "little")[:4]
    file_id = register(repo, storage, alice.id, profile.id, [], "forged.wav")
    key = repo.get_dataset_file(file_id).object_key
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=bytes(data))
    info = storage.head(key)
    # As if the probe had let it through (it does not: this is the worker's own guard).
    repo.record_probe(
        file_id, etag=info.etag, size_bytes=info.size, probe={"duration_sec": 6.0, "format": "wav"}
    )

    _check(services, profile.id)  # no MemoryError

    rows = {r.id: r for r in repo.list_dataset_files(alice.id, profile.id)}
    assert rows[file_id].singer_similarity is None
    assert all(rows[r.id].singer_similarity is not None for r in fine)
