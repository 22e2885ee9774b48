"""A model version's quality report: what the training worker measured on the held-out audio
(pieces of the dataset the model never trained on) once training ended. Stored in
`model_versions.metrics` under `quality` (null, with `quality_error`, when it could not be
measured); the page turns the numbers into words.
"""

from pydantic import Field

from schemas.common import Model

PREVIEW_TRANSPOSE = 3  # semitones: the melody check's second conversion
# Timbre retrieval: the cluster ratios the report compares; the one whose conversions sound
# more like the singer becomes the version's default `cluster_ratio`.
RETRIEVAL_RATIOS = (0.0, 0.5)


class MelodyScore(Model):
    """How the conversion's pitch follows the input's (moved by `transpose` semitones), on
    the frames voiced in both, by torchfcpe."""

    transpose: int
    f0_corr: float | None = None  # Pearson correlation of the two contours in cents
    f0_rmse_cents: float | None = None  # after removing the transpose
    voiced_seconds: float = 0.0  # of frames voiced in both, the ones compared


class RatioSimilarity(Model):
    """Speaker similarity of the held-out conversions at one cluster ratio."""

    cluster_ratio: float
    speaker_similarity: float


class QualityReport(Model):
    speaker_similarity: float | None = Field(
        None, description="SECS: Resemblyzer cosine, conversions vs the training audio's centroid"
    )
    cluster_ratio: float = Field(
        0.0, description="The ratio the report (and the version's conversions) default to"
    )
    similarity_by_ratio: list[RatioSimilarity] = Field(
        [], description="SECS at each compared cluster ratio (only 0 without a cluster model)"
    )
    speaker_similarity_original: float | None = Field(
        None, description="The same for the held-out original itself: the ceiling"
    )
    melody: list[MelodyScore] = []  # transpose 0 and +3
    mcd_db: float | None = Field(
        None, description="Mel-cepstral distortion, original vs conversion at transpose 0"
    )
    held_out_seconds: float
    held_out_pieces: int
    preview_seconds: float = 0.0  # of the preview pair stored beside the model
    f0_method: str  # the tracker the conversions used (the training's)
    seconds: float = 0.0  # how long the measurement took, conversions included
    tools: dict[str, str] = {}  # package versions that measured it


class ModelPreview(Model):
    """Short-lived links to a model version's preview: the held-out original and the model's
    conversion of it, the same seconds of each."""

    original_url: str
    converted_url: str
    seconds: float | None = None
    expires_in: int
