"""The probe judges a header's claims before anything is sized by them: forged rates, channel
counts and frame counts are answered from the first bytes in bounded time and memory; a file
whose probe keeps crashing ends as PROBE_FAILED; the reconciler serves users fairly."""

import struct
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import numpy as np
import pytest

from pipeline import keys, probe
from pipeline.probe import probe_dataset_file
from pipeline.reconcile import reconcile_uploads
from tests.audio import encode, voice

MB = 1024 * 1024


def forged_wav(rate: int, channels: int, data_bytes: int, claimed: int | None = None) -> bytes:
    """A PCM WAV header with any rate and channel count over `data_bytes` of quiet noise, its
    data chunk claiming `claimed` bytes (the truth by default)."""
    block = 2 * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) & 0xFFFFFFFF, block, 16)
    samples = (np.random.default_rng(1).standard_normal(data_bytes // 2) * 300).astype("<i2")
    body = samples.tobytes()
    size = len(body) if claimed is None else claimed
    riff = 4 + (8 + len(fmt)) + (8 + len(body))
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", size)
        + body
    )


def wav_claiming(data_bytes: int) -> bytes:
    """A real 5 s WAV whose data chunk claims `data_bytes` (hours of audio)."""
    data = bytearray(encode(voice(5.0), 44100, "wav", "PCM_16"))
    at = data.index(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", data_bytes)
    return bytes(data)


def flac_claiming(seconds_claimed: float) -> bytes:
    """A real 3 s FLAC whose STREAMINFO says it is much longer."""
    data = bytearray(encode(voice(3.0), 44100, "flac"))
    packed = int.from_bytes(data[8 + 10 : 8 + 18], "big")
    packed = (packed & ~((1 << 36) - 1)) | int(seconds_claimed * 44100)
    data[8 + 10 : 8 + 18] = packed.to_bytes(8, "big")
    return bytes(data)


FORGED = {
    # name: (bytes, expected verdict)
    "2 GHz rate": (lambda: forged_wav(2_000_000_000, 1, 16 * MB), "HIGH_SAMPLE_RATE"),
    "1024 channels": (lambda: forged_wav(44100, 1024, 16 * MB), "TOO_MANY_CHANNELS"),
    "data chunk claims 4 GB": (lambda: wav_claiming(0xFFFFFFF0), "ready"),
    "FLAC claims 10 hours": (lambda: flac_claiming(36000), "TOO_LONG"),
}


def _put(repo, storage, user_id, profile_id, data: bytes, name: str):
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, name)
    repo.register_upload(user_id, profile_id, file_id, key, name, "audio/wav", len(data))
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
    return file_id


@pytest.mark.parametrize("name", list(FORGED))
def test_forged_headers_are_judged_in_bounded_time_and_memory(repo, services, alice, name):
    make, expected = FORGED[name]
    data = make()
    profile = repo.create_profile(alice.id, f"forged {name}")
    # A good file first, untraced, so imports and pools are warm and only the file is measured.
    warm = encode(voice(3.0), 44100, "wav")
    probe_dataset_file(
        repo, services.storage, _put(repo, services.storage, alice.id, profile.id, warm, "warm.wav")
    )
    file_id = _put(repo, services.storage, alice.id, profile.id, data, "forged.wav")
    tracemalloc.start()
    started = time.perf_counter()
    row = probe_dataset_file(repo, services.storage, file_id)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    outcome = "ready" if row.status == "ready" else row.reject_code
    print(
        f"\n{name}: {len(data) / MB:.1f} MB file -> {outcome} in {seconds * 1000:.0f} ms, "
        f"peak Python/numpy memory {peak / MB:.1f} MB"
    )
    assert outcome == expected, (outcome, row.reject_message)
    assert peak < 24 * MB, f"{peak / MB:.1f} MB"


def test_frame_counts_are_clamped_to_the_bytes_present() -> None:
    from pipeline.audio_header import Header, read_header

    wav = forged_wav(48000, 2, 48000 * 4, claimed=0xFFFFFFF0)
    assert read_header(wav, len(wav)) == Header("wav", 48000, 2, 48000)
    truncated = wav[: 44 + 48000 * 2]
    assert read_header(truncated, len(truncated)).frames == 24000


def test_a_probe_that_keeps_crashing_ends_as_probe_failed(repo, services, alice, monkeypatch):
    profile = repo.create_profile(alice.id, "crashes")
    data = encode(voice(3.0), 44100, "wav")
    file_id = _put(repo, services.storage, alice.id, profile.id, data, "crash.wav")

    def crash(*_args, **_kwargs):
        raise RuntimeError("the decoder crashed")

    monkeypatch.setattr(probe, "measure", crash)
    for _ in range(services.settings.max_probe_attempts):
        with pytest.raises(RuntimeError):
            probe_dataset_file(repo, services.storage, file_id)
    row = probe_dataset_file(repo, services.storage, file_id)
    assert (row.status, row.reject_code, row.probe_attempts) == ("rejected", "PROBE_FAILED", 3)
    assert "upload" in row.reject_message
    # Nothing more for the reconciler to re-spawn.
    assert file_id not in {f.id for f in repo.list_stale_uploads(0, 1000)}


def test_the_reconciler_takes_a_fair_share_per_user(repo, services, sql, alice, bob) -> None:
    storage = services.storage
    mine = repo.create_profile(alice.id, "many stuck")
    theirs = repo.create_profile(bob.id, "one lost")
    stuck = [_register(repo, alice.id, mine.id) for _ in range(6)]
    lost = _register(repo, bob.id, theirs.id)
    # Alice's rows are the oldest in the database; Bob's lost upload is a day younger.
    long_ago = datetime.now(UTC) - timedelta(days=400)
    for i, file_id in enumerate(stuck):
        _age(sql, file_id, long_ago + timedelta(minutes=i))
    _age(sql, lost, long_ago + timedelta(days=1))
    batch = repo.list_stale_uploads(0, 2)
    assert [f.id for f in batch] == [stuck[0], lost]
    # The whole reconciler run sees Bob's upload (its object is there) and probes it.
    key = repo.get_dataset_file(lost).object_key
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=encode(voice(3.0), 44100, "wav"))
    small = type(repo)(repo.db, repo.settings.model_copy(update={"reconcile_after_seconds": 0}))
    original = small.list_stale_uploads
    small.list_stale_uploads = lambda older, limit=2: original(older, 2)  # a tiny batch
    report = reconcile_uploads(small, storage, services.dispatcher)
    assert str(lost) in report.probed
    assert repo.get_dataset_file(lost).status == "ready"


def _register(repo, user_id, profile_id):
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, "take.wav")
    repo.register_upload(user_id, profile_id, file_id, key, "take.wav", "audio/wav", 1000)
    return file_id


def _age(sql, file_id, created_at) -> None:
    sql.execute(
        "update public.dataset_files set created_at = %s where id = %s", (created_at, file_id)
    )
