from schemas.common import Model
from schemas.instant import MIN_CLIP_SECONDS


class Limits(Model):
    """What a client checks before sending anything, so a person hears "too long" early."""

    allowed_formats: list[str]
    max_file_bytes: int
    min_dataset_file_seconds: float
    max_dataset_file_seconds: float
    min_dataset_seconds: float
    max_dataset_seconds: float
    max_dataset_files: int
    max_conversion_seconds: float
    max_conversion_bytes: int
    trainings_per_month: int
    conversions_per_day: int
    conversion_retention_days: int  # how long a conversion's input and result are kept
    text_max_chars: int = 500  # the longest line `POST /profiles/{id}/speech` speaks
    texts_per_day: int = 50
    # an instant voice's reference (a recording in the browser stops itself at the maximum)
    min_reference_seconds: float = 10.0
    max_reference_seconds: float = 30.0
    min_clip_seconds: float = MIN_CLIP_SECONDS  # another clip of the same instant voice
