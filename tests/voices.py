"""A tiny voice model trained once per test session, for the conversion tests."""

import subprocess
import sys
from dataclasses import dataclass
from uuid import UUID, uuid4

from pipeline import keys
from pipeline.probe import probe_dataset_file
from pipeline.repository import Repository
from pipeline.storage import Storage
from tests.audio import encode, voice


@dataclass(frozen=True)
class TrainedVoice:
    user_id: UUID
    profile_id: UUID
    model_version_id: UUID


def train_tiny_voice(
    repo: Repository, storage: Storage, env: dict[str, str], user_id: UUID
) -> TrainedVoice:
    profile = repo.create_profile(user_id, f"voice {uuid4().hex[:6]}")
    for i in range(6):
        file_id = uuid4()
        key = keys.dataset_key(user_id, profile.id, file_id, f"{i}.wav")
        data = encode(voice(5.0, f0=180 + 25 * i, seed=i), 44100, "wav")
        repo.register_upload(user_id, profile.id, file_id, key, f"{i}.wav", "audio/wav", len(data))
        storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
        probe_dataset_file(repo, storage, file_id)
    job = repo.start_training(user_id, profile.id, {"preset": "tiny"})
    subprocess.run(
        [sys.executable, "-m", "gpu", "train", str(job.id)],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    version = repo.list_model_versions(user_id, profile.id)[0]
    return TrainedVoice(user_id, profile.id, version.id)
