"""`SeparationRun(...).run()`: one full-mix dataset file's vocal separated into a dataset file
of its own, as a worker runs it.

Claim → fetch exactly the mix the probe judged (by its eTag) → separate (Demucs, streamed in
overlapping segments; `gpu.separation.separate`) with heartbeats → register the vocal as a pending
dataset file derived from the mix → upload it (its object-create event probes it like any
upload, so its verdict, noise, voice share and singer check apply) → `finish_separation`.
The row is the source of truth: a canceled job or a deleted mix registers nothing, and a job
that ends without succeeding takes its pending vocal with it (a trigger in SQL).
"""

import logging
from pathlib import Path
from uuid import UUID

from gpu.errors import JobCanceled, JobFailure
from gpu.job_runtime import KINDS, JobRun
from gpu.sealed import CHANGED_MESSAGE
from gpu.separation.separate import Separator
from pipeline import keys
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import ObjectChanged, Storage
from schemas.jobs import SeparationJobRow

log = logging.getLogger(__name__)
BLOCK_FRAMES = 1 << 16


def default_separator() -> Separator:
    from gpu.separation.separate import separate

    return separate


class SeparationRun(JobRun):
    spec = KINDS["separation"]

    def __init__(
        self,
        repo: Repository,
        storage: Storage,
        settings: Settings,
        job_id: UUID,
        separator: Separator | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(repo, storage, settings, job_id)
        self.separator = separator
        self.device = device

    def phases(self, job: SeparationJobRow) -> None:
        self.phase("download", percent=0)
        mix = self.repo.separation_source(self.job_id)
        if mix.status != "ready" or not mix.etag:
            raise JobCanceled  # deleted meanwhile: the delete canceled the job too
        source = self.scratch / "mix"
        try:
            self.storage.download_sealed(mix.object_key, source, mix.etag, mix.size_bytes)
        except ObjectChanged as exc:
            raise JobFailure("DATASET_CHANGED", CHANGED_MESSAGE) from exc
        self.phase("separate", percent=0)
        separator = self.separator or default_separator()
        vocals, rest = self.scratch / "vocals.wav", self.scratch / "instrumental.wav"
        separator(
            source,
            vocals,
            rest,
            cache_dir=Path(self.settings.model_cache_dir),
            device=self.device or _device(),
            # a heartbeat at most every `VC_HEARTBEAT_SECONDS`; False stops the separator
            progress=self.progress("separate", every=self.settings.heartbeat_seconds),
        )
        self.phase("upload", percent=100)
        out = self.scratch / "vocal16.wav"
        as_pcm16(vocals, out)
        name = keys.separated_vocal_name(mix.filename)
        key = keys.separated_vocal_key(
            job.user_id, job.profile_id, job.derived_file_id, mix.filename
        )
        row = self.repo.register_separated_vocal(self.job_id, key, name, out.stat().st_size)
        if row is None:
            raise JobCanceled
        # A retried worker whose first attempt got as far as the upload leaves that object
        # alone: it may have been probed (and sealed by its eTag) already.
        if self.storage.head(key) is None:
            self.storage.upload_file(out, key, "audio/wav")
        self.finish()


def as_pcm16(source: Path, target: Path) -> None:
    """The separator's float stem as 16-bit PCM, block by block: half the bytes to store and
    probe, and what every decoder reads."""
    import soundfile as sf

    with (
        sf.SoundFile(str(source)) as src,
        sf.SoundFile(
            str(target), "w", samplerate=src.samplerate, channels=src.channels, subtype="PCM_16"
        ) as dst,
    ):
        for block in src.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
            dst.write(block.clip(-1.0, 1.0))


def _device() -> str:
    from gpu.runtime import device

    return device()
