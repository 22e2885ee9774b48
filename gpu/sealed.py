"""Training reads exactly what the probe judged: each ready file is fetched by the eTag the
probe recorded (If-Match, then its MD5 checked), and its header is judged again with the
probe's own limits and compared with what the probe measured. A file replaced after its probe
(a second PUT on a still-valid upload URL) fails the job with DATASET_CHANGED before any GPU
work, so the dataset limits cannot be bypassed and a worker cannot be fed arbitrary bytes.
"""

from pathlib import Path

from gpu.errors import JobFailure
from pipeline.audio_header import HeaderError, HeaderLimits, screen_file
from pipeline.settings import Settings
from pipeline.storage import ObjectChanged, Storage
from schemas.jobs import TrainingInput

CHANGED_MESSAGE = (
    "A dataset file changed after it was checked. Delete it, upload it again and retrain; "
    "your quota was refunded."
)
DURATION_SLACK = (1.02, 0.5)  # header durations of MP3 are estimates


def fetch_sealed(storage: Storage, item: TrainingInput, path: Path) -> None:
    if not item.etag:
        raise JobFailure("DATASET_CHANGED", CHANGED_MESSAGE)
    try:
        storage.download_sealed(item.object_key, path, item.etag, item.size_bytes)
    except ObjectChanged as exc:
        raise JobFailure("DATASET_CHANGED", CHANGED_MESSAGE) from exc


def input_check(settings: Settings):  # noqa: ANN201 - a prepare.InputCheck
    """Re-judges a fetched file's rate, channels and length as the probe did."""

    def check(path: Path, item: TrainingInput) -> None:
        try:
            ours = screen_file(path, HeaderLimits.for_dataset(settings))
        except HeaderError as exc:
            raise JobFailure("DATASET_CHANGED", CHANGED_MESSAGE) from exc
        import soundfile as sf

        info = sf.info(str(path))
        recorded = item.duration_sec
        if (
            (item.sample_rate is not None and info.samplerate != item.sample_rate)
            or (item.channels is not None and info.channels != item.channels)
            or (ours.sample_rate is not None and ours.sample_rate != info.samplerate)
            or info.duration
            > min(recorded, settings.max_dataset_file_seconds) * DURATION_SLACK[0]
            + DURATION_SLACK[1]
        ):
            raise JobFailure("DATASET_CHANGED", CHANGED_MESSAGE)

    return check
