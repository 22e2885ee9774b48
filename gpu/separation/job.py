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
import tempfile
import time
from pathlib import Path
from uuid import UUID

from gpu.errors import STALE_ATTEMPT, Heartbeat, JobCanceled, JobFailure, describe_failure
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


class SeparationRun:
    def __init__(
        self,
        repo: Repository,
        storage: Storage,
        settings: Settings,
        job_id: UUID,
        separator: Separator | None = None,
        device: str | None = None,
    ) -> None:
        self.repo, self.storage, self.settings, self.job_id = repo, storage, settings, job_id
        self.separator = separator
        self.device = device
        self.heartbeat = Heartbeat(repo, "separation", job_id)
        self._last_beat = 0.0

    def run(self) -> str:
        job = self.heartbeat.claim()
        if job.status != "running":
            log.info("separation %s is %s; nothing to do", self.job_id, job.status)
            return job.status
        try:
            self._separate(job)
            return "succeeded"
        except JobCanceled:
            code = self.heartbeat.stop_code
            log.info("separation %s stopped: %s", self.job_id, code or "canceled")
            return "canceled" if code in {None, "CANCELED", STALE_ATTEMPT} else "failed"
        except Exception as exc:  # every failure ends the job with a readable code
            code, message = describe_failure(exc, "Separation")
            if code == "INTERNAL":  # no quota to refund: say how to try again instead
                message = "Separating the song failed unexpectedly. Try again."
            log.exception("separation %s failed: %s", self.job_id, code)
            self.heartbeat.fail(code, message)
            return "canceled" if self.heartbeat.stop_code == STALE_ATTEMPT else "failed"

    def _progress(self, fraction: float) -> bool:
        """The separator's callback: a heartbeat at most every `VC_HEARTBEAT_SECONDS`; False
        once the row stopped running, which stops the separator."""
        now = time.monotonic()
        if now - self._last_beat < self.settings.heartbeat_seconds and fraction < 1:
            return True
        self._last_beat = now
        percent = round(100 * min(max(fraction, 0.0), 1.0), 1)
        return self.heartbeat.send({"phase": "separate", "percent": percent})

    def _separate(self, job: SeparationJobRow) -> None:
        self.heartbeat.require(phase="download", percent=0)
        mix = self.repo.separation_source(self.job_id)
        if mix.status != "ready" or not mix.etag:
            raise JobCanceled  # deleted meanwhile: the delete canceled the job too
        with tempfile.TemporaryDirectory(dir=self.settings.scratch_dir, prefix="sep-") as tmp:
            work = Path(tmp)
            source = work / "mix"
            try:
                self.storage.download_sealed(mix.object_key, source, mix.etag, mix.size_bytes)
            except ObjectChanged as exc:
                raise JobFailure("DATASET_CHANGED", CHANGED_MESSAGE) from exc
            self.heartbeat.require(phase="separate", percent=0)
            separator = self.separator or default_separator()
            vocals, rest = work / "vocals.wav", work / "instrumental.wav"
            separator(
                source,
                vocals,
                rest,
                cache_dir=Path(self.settings.model_cache_dir),
                device=self.device or _device(),
                progress=self._progress,
            )
            self.heartbeat.require(phase="upload", percent=100)
            out = work / "vocal16.wav"
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
        with self.heartbeat.fenced():
            self.repo.finish_separation(self.job_id, self.heartbeat.attempt)


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
