"""The audio formats a client may declare, by extension and content type."""

from pipeline.errors import PipelineError
from pipeline.settings import MB
from schemas.constraints import CONTENT_TYPES, matches_format

__all__ = [
    "CONTENT_TYPES",
    "check_declared_format",
    "check_published_format",
    "check_size",
    "too_large_message",
]


def check_declared_format(ext: str, content_type: str, allowed: list[str]) -> str:
    """The normalised content type, if the extension and declared type agree on an allowed
    format. The bytes are checked again by the probe; this only refuses what is plainly wrong."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if ext not in allowed or ext not in CONTENT_TYPES:
        raise PipelineError(
            "UNSUPPORTED_FORMAT",
            f"Only {', '.join(sorted(allowed)).upper()} files are accepted.",
            {"extension": ext, "allowed": sorted(allowed)},
        )
    if mime not in CONTENT_TYPES[ext]:
        raise PipelineError(
            "UNSUPPORTED_FORMAT",
            f"A .{ext} file should be sent as {sorted(CONTENT_TYPES[ext])[0]}, not {mime!r}.",
            {"extension": ext, "content_type": mime},
        )
    return mime


def check_published_format(filename: str, content_type: str, allowed: list[str]) -> None:
    """The last word: the name and type as sent must fit the patterns the OpenAPI document
    publishes, so nothing the spec calls invalid is accepted."""
    if not matches_format(filename, content_type, allowed):
        raise PipelineError(
            "UNSUPPORTED_FORMAT",
            "The file name and content type must name the same allowed format "
            f"({', '.join(sorted(allowed)).upper()}).",
            {"filename": filename, "content_type": content_type},
        )


def too_large_message(max_bytes: int, noun: str = "Files") -> str:
    """The one sentence a person reads about a size limit, whichever check refuses the file:
    the API on the declared size, the probe or the conversion worker on the stored one."""
    return f"{noun} can be at most {max_bytes // MB} MB."


def check_size(size_bytes: int, max_bytes: int) -> None:
    if size_bytes <= 0:
        raise PipelineError("INVALID_ARGUMENT", "The file is empty.", {"size_bytes": size_bytes})
    if size_bytes > max_bytes:
        raise PipelineError(
            "TOO_LARGE",
            too_large_message(max_bytes),
            {"size_bytes": size_bytes, "max_bytes": max_bytes},
        )
