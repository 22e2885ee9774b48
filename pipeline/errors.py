"""Domain errors: what went wrong in words a person understands, with a stable code.

The pipeline never speaks HTTP; each code belongs to a kind, and the HTTP face maps kinds to
status codes. Codes raised by the SQL functions arrive here through `db`.
"""

from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    INVALID = "invalid"
    QUOTA = "quota"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


KIND_OF_CODE: dict[str, ErrorKind] = {
    "UNAUTHORIZED": ErrorKind.UNAUTHORIZED,
    "USER_NOT_FOUND": ErrorKind.UNAUTHORIZED,
    "ACCOUNT_DELETED": ErrorKind.UNAUTHORIZED,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "PROFILE_NAME_TAKEN": ErrorKind.CONFLICT,
    "PROFILE_LIMIT": ErrorKind.CONFLICT,
    "TOO_MANY_FILES": ErrorKind.CONFLICT,
    "DATASET_TOO_SHORT": ErrorKind.CONFLICT,
    "DATASET_TOO_LONG": ErrorKind.CONFLICT,
    "TRAINING_IN_PROGRESS": ErrorKind.CONFLICT,
    "CONVERSION_IN_PROGRESS": ErrorKind.CONFLICT,
    "SEPARATION_IN_PROGRESS": ErrorKind.CONFLICT,
    "INSTANT_IN_PROGRESS": ErrorKind.CONFLICT,
    "REFERENCE_NOT_READY": ErrorKind.CONFLICT,
    "CONSENT_REQUIRED": ErrorKind.INVALID,
    "NO_MODEL": ErrorKind.CONFLICT,
    "INVALID_TRANSITION": ErrorKind.CONFLICT,
    "STALE_ATTEMPT": ErrorKind.CONFLICT,
    "NOT_READY": ErrorKind.CONFLICT,
    "FILES_EXPIRED": ErrorKind.CONFLICT,
    "TOO_LARGE": ErrorKind.TOO_LARGE,
    "UNSUPPORTED_FORMAT": ErrorKind.UNSUPPORTED,
    "INVALID_ARGUMENT": ErrorKind.INVALID,
    "INVALID_FILENAME": ErrorKind.INVALID,
    "VALIDATION_FAILED": ErrorKind.INVALID,
    "QUOTA_EXCEEDED": ErrorKind.QUOTA,
    "GPU_BUDGET_EXHAUSTED": ErrorKind.QUOTA,
    "RATE_LIMITED": ErrorKind.QUOTA,
    "ANONYMOUS_USER": ErrorKind.FORBIDDEN,
    "USER_DISABLED": ErrorKind.FORBIDDEN,
    "PROFILE_DISABLED": ErrorKind.FORBIDDEN,
    "SERVICE_UNAVAILABLE": ErrorKind.UNAVAILABLE,
    "INTERNAL": ErrorKind.INTERNAL,
}


class PipelineError(Exception):
    """An expected failure with a code, a message for a person, and machine-readable details."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def kind(self) -> ErrorKind:
        return KIND_OF_CODE.get(self.code, ErrorKind.INTERNAL)


class NotFound(PipelineError):
    def __init__(self, message: str = "Not found.", details: dict[str, Any] | None = None) -> None:
        super().__init__("NOT_FOUND", message, details)


class Unauthorized(PipelineError):
    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__("UNAUTHORIZED", message, details)


class Unavailable(PipelineError):
    """A dependency (database, object store) failed; the client may retry."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__("SERVICE_UNAVAILABLE", message, details)
