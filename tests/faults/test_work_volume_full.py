"""A worker whose disk fills up fails its job as WORK_VOLUME_FULL, refunded, its dirs removed.

Found with the harness's `work_volume_full` (a small tmpfs as the training work volume):
feature extraction met ENOSPC and the job failed INTERNAL ("failed unexpectedly"), which tells
neither the person nor an operator what happened; and a checkpoint written by torch.save on a
full disk does not even say ENOSPC (a bare RuntimeError "file write failed"). The runtime now
asks, before the scratch dir goes, whether the error or the disk says full.

Real full filesystems: a tmpfs of a few MB mounted as the work volume or the scratch dir
(skipped where mounting is not allowed).
"""

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest
import torch

from gpu.job_runtime import KINDS, JobRun
from pipeline.repository import Repository
from tests.helpers import ready_dataset

pytestmark = pytest.mark.faults
VOLUME_BYTES = 4 * 2**20


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Iterator[Path]:
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_BYTES}", "tmpfs", str(volume)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)


class FillingRun(JobRun):
    """A training whose features phase writes more than the disk holds."""

    spec = KINDS["training"]

    def __init__(self, services, settings, job_id: UUID, write: Callable[[JobRun], None]):
        super().__init__(services.worker_repo, services.storage, settings, job_id)
        self.write = write
        self.saw: list[Path] = []

    def phases(self, job) -> None:
        self.phase("features", percent=0)
        self.work.mkdir(parents=True, exist_ok=True)
        self.saw = [self.scratch, self.work]
        self.write(self)


def _checkpoint_on_the_volume(run: JobRun) -> None:
    torch.save(torch.zeros(2 * VOLUME_BYTES // 4), run.work / "G_1.pth")  # no errno said


def _features_in_scratch(run: JobRun) -> None:
    np.save(run.scratch / "features.npy", np.zeros(VOLUME_BYTES // 4))  # OSError ENOSPC


def _job(repo: Repository, user_id: UUID, name: str) -> UUID:
    profile = repo.create_profile(user_id, name)
    ready_dataset(repo, user_id, profile.id, 200)
    return repo.start_training(user_id, profile.id, {"preset": "tiny"}).id


@pytest.mark.parametrize(
    ("full", "write"),
    [("work", _checkpoint_on_the_volume), ("scratch", _features_in_scratch)],
)
def test_a_full_disk_fails_the_job_as_work_volume_full_with_a_refund(
    services, repo, alice, tiny_volume, tmp_path, full, write
) -> None:
    dirs = {"work": tmp_path / "work", "scratch": tmp_path / "scratch"}
    dirs[full] = tiny_volume
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    settings = services.settings.model_copy(
        update={"work_dir": str(dirs["work"]), "scratch_dir": str(dirs["scratch"])}
    )
    job_id = _job(repo, alice.id, f"full {full}")
    run = FillingRun(services, settings, job_id, write)

    assert run.run() == "failed"
    job = repo.get_job("training", alice.id, job_id)
    assert job.error_code == "WORK_VOLUME_FULL", (job.error_code, job.error_message)
    assert "disk space" in (job.error_message or "")
    assert job.quota_state == "refunded"
    assert run.saw and not any(p.exists() for p in run.saw)  # scratch and work dir removed
    assert [p for p in tiny_volume.rglob("*") if p.is_file()] == []  # the volume is free again
