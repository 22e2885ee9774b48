"""Jobs: what a client may ask for, what a worker reports, and the rows both read."""

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from schemas.common import Model, Request
from schemas.pitch import DEFAULT_F0_METHOD, F0Method, PitchAdvice, PitchRange

TrainingStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
ConversionStatus = Literal[
    "awaiting_upload", "queued", "running", "succeeded", "failed", "canceled"
]
SeparationStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
JobKind = Literal["training", "conversion", "separation", "instant", "text"]
# Where a job is, as its `progress.phase`: the SQL functions write `awaiting_upload`,
# `queued` and the three endings; the workers write the others (training: download, prepare,
# features, train, upload, evaluate; conversion: download, [separate,] load_model, pitch,
# convert, [mix,] upload, the bracketed ones for a full song; separation of a full-mix dataset
# file: download, separate, upload). The page has a sentence for each phase it shows
# (tests/test_schemas.py holds it to this list).
Phase = Literal[
    "awaiting_upload",
    "queued",
    "download",
    "prepare",
    "features",
    "train",
    "separate",
    "load_model",
    "pitch",
    "convert",
    "mix",
    "upload",
    "evaluate",
    "succeeded",
    "failed",
    "canceled",
]


PresetName = Literal["standard", "tiny"]
# The most steps and epochs a client may ask of each preset: `standard` never runs past its
# own scaled default, so `max_steps` can shorten a training but not stretch its GPU time.
PRESET_CAPS: dict[str, tuple[int, int]] = {"standard": (10_000, 1_000), "tiny": (200, 100)}


class TrainingParams(Request):
    preset: PresetName = "standard"
    f0_method: F0Method = DEFAULT_F0_METHOD
    max_steps: int | None = Field(None, ge=10, le=10_000)
    max_epochs: int | None = Field(None, ge=1, le=1_000)

    @model_validator(mode="after")
    def _within_preset_caps(self) -> "TrainingParams":
        steps, epochs = PRESET_CAPS[self.preset]
        if self.max_steps is not None and self.max_steps > steps:
            raise ValueError(f"max_steps can be at most {steps} with the {self.preset} preset")
        if self.max_epochs is not None and self.max_epochs > epochs:
            raise ValueError(f"max_epochs can be at most {epochs} with the {self.preset} preset")
        return self


# What a conversion's input is: a sung stem alone, or a whole song to separate, convert the
# vocal of and mix back over its instrumental.
InputKind = Literal["vocal", "song"]
# A song conversion's three results (`GET /conversions/{id}/download?part=`); a vocal one has
# one, its converted vocal, which `vocal` names too.
ConversionPart = Literal["mix", "vocal", "instrumental"]


MixLoudness = Literal["original", "streaming"]


class ConversionParams(Request):
    input_kind: InputKind = "vocal"
    # Songs only: transpose the instrumental with the vocal. None (the default) follows the
    # key: shifted when the transpose is not a whole number of octaves (a vocal moved by 3
    # semitones over the original backing would sing out of key), kept as it is when it is
    # (an octave keeps the key, and an unshifted backing keeps its sound).
    shift_instrumental: bool | None = None
    # Songs only: the cover's loudness. "original" keeps the song's (the converted vocal is
    # matched to the vocal it replaces, the mix only turned down to -1 dBTP if it must);
    # "streaming" then brings the whole cover to -14 LUFS integrated with one static gain,
    # true peak at most -1 dBTP (a mix whose peaks forbid it stops at the ceiling, quieter).
    loudness: MixLoudness = "original"
    transpose: int = Field(0, ge=-24, le=24)
    f0_method: F0Method = DEFAULT_F0_METHOD
    auto_predict_f0: bool = False
    noise_scale: float = Field(0.4, ge=0.0, le=1.0)
    # Timbre retrieval: how far the content features are pulled toward the model's k-means
    # centres of the singer's own (0 = none, 1 = only the centres). None uses the version's
    # `cluster_ratio`, the one its quality report measured as the more like the singer; a
    # version without a cluster model converts at 0 whatever is asked.
    cluster_ratio: float | None = Field(None, ge=0.0, le=1.0)
    db_thresh: int = Field(-40, ge=-120, le=0)
    pad_seconds: float = Field(0.5, ge=0.0, le=5.0)
    chunk_seconds: float = Field(0.5, ge=0.1, le=5.0)
    max_chunk_seconds: float = Field(10.0, ge=1.0, le=40.0)

    def instrumental_shift(self) -> int:
        """Semitones to shift a song's instrumental by (0 for a vocal, or when kept)."""
        if self.input_kind != "song" or self.transpose == 0:
            return 0
        shift = self.shift_instrumental
        if shift is None:
            shift = self.transpose % 12 != 0
        return self.transpose if shift else 0


# Why a training ended (`gpu/training/trainer.py`):
# the held-out loss stopped improving, the step (or
# epoch) limit was reached, or the GPU budget ran out (the job then fails with
# GPU_BUDGET_EXHAUSTED and no model version, its checkpoints kept in the work dir).
StopReason = Literal["plateau", "step_limit", "budget"]


class HeldOut(Model):
    """The dataset pieces kept out of training to validate it (`gpu/training/held_out.py`); they are
    the fork's validation list in the training's `config.json`."""

    pieces: int
    files: int  # the dataset files they were cut from
    seconds: float
    target_seconds: float  # what was aimed at; less when the dataset is too small
    names: list[str]  # piece files, `{dataset file id}_{start}_{end}.wav`


class Progress(Model):
    """What a worker writes with each heartbeat; every field but the phase is optional."""

    phase: Phase = "queued"
    step: int | None = None
    total_steps: int | None = None
    epoch: int | None = None
    loss_g: float | None = None
    loss_d: float | None = None
    mel_loss: float | None = None
    percent: float | None = None
    eta_s: float | None = None
    history: list[list[float | None]] | None = None  # [step, loss_g, loss_d, mel_loss]
    held_out: HeldOut | None = None
    val_loss: float | None = None  # mel L1 on the held-out pieces at the last validation
    val_history: list[list[float | None]] | None = None  # [step, val_loss], per validation
    best_step: int | None = None  # the step of the lowest val_loss: the model exported
    best_val_loss: float | None = None
    stop_reason: StopReason | None = None


class JobBase(Model):
    id: UUID
    profile_id: UUID
    progress: Progress
    attempt: int
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    gpu_seconds: float = 0.0  # worker time charged to the GPU budget, whatever the outcome


class TrainingJob(JobBase):
    status: TrainingStatus
    params: dict
    pitch_range: PitchRange | None = None  # of the audio it trains on, once measured


class ConversionJob(JobBase):
    status: ConversionStatus
    model_version_id: UUID
    params: dict
    input_filename: str | None = None
    input_duration_sec: float | None = None
    upload_expires_at: datetime | None = None
    files_removed_at: datetime | None = None  # input and result deleted by retention
    pitch: PitchAdvice | None = None  # the input's range, the voice's, a suggested transpose


class JobRowBase(Model):
    """What every job row holds beyond what a client sees: for workers and the server."""

    user_id: UUID
    worker_call_id: str | None = None
    quota_period_start: date
    quota_state: Literal["reserved", "charged", "refunded"]


class TrainingJobRow(TrainingJob, JobRowBase):
    """A training job's whole row."""


class ConversionJobRow(ConversionJob, JobRowBase):
    """A conversion job's whole row, object keys included: for the worker, the event path
    and download links."""

    input_key: str
    output_key: str | None = None
    input_size_bytes: int | None = None


class SeparationJob(JobBase):
    """Separating a full-mix dataset file's vocal into a dataset file of its own."""

    status: SeparationStatus
    source_file_id: UUID  # the mix
    derived_file_id: UUID  # the vocal's dataset file, once the worker registers it


class SeparationJobRow(SeparationJob):
    """A separation job's whole row: quota-free, so no reservation columns."""

    user_id: UUID
    worker_call_id: str | None = None
    quota_state: Literal["free"] = "free"


class SeparationTake(Model):
    """`take_separation`: whether this caller is the one to launch the job."""

    taken: bool
    job: SeparationJobRow | None = None


JobRow = TrainingJobRow | ConversionJobRow | SeparationJobRow


class ModelVersion(Model):
    id: UUID
    profile_id: UUID
    training_job_id: UUID
    status: Literal["ready", "disabled"]
    size_bytes: int
    metrics: dict
    pitch_range: PitchRange | None = None  # of its training audio: where this voice sings
    created_at: datetime
    active: bool = False
    # Timbre retrieval: whether the version has the fork's cluster model (trained before it
    # existed, it has none), and the ratio a conversion that does not say uses.
    has_cluster: bool = False
    cluster_ratio: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _cluster_from_row(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cluster_key" in data:
            data = data | {"has_cluster": data["cluster_key"] is not None}
        return data


class ModelVersionRow(ModelVersion):
    """The row with its object keys: for a download link and for a worker loading it."""

    user_id: UUID
    model_key: str
    config_key: str
    cluster_key: str | None = None


class TrainingInput(Model):
    """One ready dataset file a training job trains on."""

    id: UUID
    object_key: str
    duration_sec: float
    # What the probe recorded, so the worker reads exactly those bytes and checks them again.
    etag: str | None = None
    size_bytes: int
    sample_rate: int | None = None
    channels: int | None = None


class ModelDownload(Model):
    """Short-lived links to a model version's weights and config."""

    model_url: str
    config_url: str
    # The fork's k-means cluster model, for `svc infer -k cluster.pt -r RATIO`; None for a
    # version trained before timbre retrieval.
    cluster_url: str | None = None
    expires_in: int
