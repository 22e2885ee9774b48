"""The object keys (docs/architecture.md, "Object keys"): the one place that builds and
parses them.

The parser is a security boundary for events: anything that does not match the layout
exactly (UUIDs in canonical form, known leaf names) is rejected, never guessed at.
"""

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from uuid import UUID

from pipeline.errors import PipelineError
from schemas.constraints import has_refused_chars
from schemas.jobs import ConversionPart

ROOT = "vc/users"
MAX_FILENAME_CHARS = 255
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# A conversion's results: its output (a song's mix), and a song's converted vocal and
# instrumental beside it.
PART_LEAVES = {"mix": "output.wav", "vocal": "vocal.wav", "instrumental": "instrumental.wav"}
_OUTPUT_LEAVES = "|".join(re.escape(leaf) for leaf in PART_LEAVES.values())
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_KEY = re.compile(
    rf"vc/users/(?P<user>{_UUID})/profiles/(?P<profile>{_UUID})/"
    rf"(?:dataset/(?P<file>{_UUID})/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{{0,99}})"
    rf"|models/(?P<model>{_UUID})/(?P<artifact>model\.pth|config\.json|cluster\.pt|preview-(?:original|converted)\.wav)"
    rf"|conversions/(?P<job>{_UUID})/(?P<leaf>input\.(?:wav|flac|mp3)|{_OUTPUT_LEAVES})"
    rf"|instant/(?P<voice>{_UUID})/(?P<reference>reference\.(?:wav|flac|mp3))"
    rf"|instant-jobs/(?P<instant>{_UUID})/(?P<ileaf>input\.(?:wav|flac|mp3)|{_OUTPUT_LEAVES})"
    rf"|speech/(?P<speech>{_UUID})/(?P<sleaf>speech\.(?:wav|mp3)))"
)

KeyKind = Literal[
    "dataset", "model", "model_config", "model_cluster", "model_preview", "conversion_input",
    "conversion_output",
    "instant_reference", "instant_input", "instant_output", "speech_output",
]  # fmt: skip
PreviewSide = Literal["original", "converted"]
_MODEL_KINDS: dict[str, KeyKind] = {
    "model.pth": "model",
    "config.json": "model_config",
    "cluster.pt": "model_cluster",
}


@dataclass(frozen=True)
class ParsedKey:
    kind: KeyKind
    user_id: UUID
    profile_id: UUID
    object_id: UUID  # the file, model version, voice or job the key belongs to
    leaf: str


def _prefix(user_id: UUID, profile_id: UUID) -> str:
    return f"{ROOT}/{user_id}/profiles/{profile_id}"


def check_filename(filename: str) -> str:
    """Refuses names a client could use to smuggle paths or control characters."""
    if not filename or not filename.strip():
        raise PipelineError("INVALID_FILENAME", "The file needs a name.")
    if len(filename) > MAX_FILENAME_CHARS:
        raise PipelineError(
            "INVALID_FILENAME",
            f"File names can be at most {MAX_FILENAME_CHARS} characters.",
            {"length": len(filename)},
        )
    if has_refused_chars(filename):
        raise PipelineError("INVALID_FILENAME", "The file name contains control characters.")
    if "/" in filename or "\\" in filename or filename.strip() in {".", ".."}:
        raise PipelineError("INVALID_FILENAME", "The file name must not contain a path.")
    return filename.strip()


def extension_of(filename: str) -> str:
    return PurePosixPath(filename).suffix.lower().lstrip(".")


def safe_filename(filename: str) -> str:
    """A key-safe form of a display name: ASCII letters, digits, `._-`, at most 100 chars."""
    name = filename.strip()
    ext = _SAFE_CHARS.sub("", extension_of(name))
    stem = name[: -len(ext) - 1] if ext and name.lower().endswith("." + ext) else name
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    safe_stem = _SAFE_CHARS.sub("_", ascii_stem).strip("._-") or "audio"
    suffix = f".{ext}" if ext else ""
    return f"{safe_stem[: 100 - len(suffix)]}{suffix}"


def dataset_key(user_id: UUID, profile_id: UUID, file_id: UUID, filename: str) -> str:
    return f"{_prefix(user_id, profile_id)}/dataset/{file_id}/{safe_filename(filename)}"


def separated_vocal_key(user_id: UUID, profile_id: UUID, file_id: UUID, mix_filename: str) -> str:
    """The vocal separated from a full mix: a dataset file of its own (its own id, under the
    same dataset prefix), named after the song, so its upload is probed like any other."""
    return dataset_key(user_id, profile_id, file_id, separated_vocal_name(mix_filename))


def separated_vocal_name(mix_filename: str) -> str:
    """The display name of a mix's separated vocal: `song.mp3` → `song (vocals).wav`."""
    stem = PurePosixPath(mix_filename).stem or "song"
    return f"{stem[:200]} (vocals).wav"


def model_key(user_id: UUID, profile_id: UUID, model_version_id: UUID) -> str:
    return f"{_prefix(user_id, profile_id)}/models/{model_version_id}/model.pth"


def model_config_key(user_id: UUID, profile_id: UUID, model_version_id: UUID) -> str:
    return f"{_prefix(user_id, profile_id)}/models/{model_version_id}/config.json"


def model_cluster_key(user_id: UUID, profile_id: UUID, model_version_id: UUID) -> str:
    """The fork's k-means cluster model (timbre retrieval), in the fork's own file format so
    its `svc infer -k` reads it; the database derives it from `model_key` (trigger
    `model_version_cluster`), so the two layouts must agree."""
    return f"{_prefix(user_id, profile_id)}/models/{model_version_id}/cluster.pt"


def model_preview_key(
    user_id: UUID, profile_id: UUID, model_version_id: UUID, side: PreviewSide
) -> str:
    """The held-out clip (`original`) or the model's conversion of it (`converted`), beside
    the model, so whatever removes a model version's prefix removes its preview too."""
    return f"{_prefix(user_id, profile_id)}/models/{model_version_id}/preview-{side}.wav"


def conversion_input_key(user_id: UUID, profile_id: UUID, job_id: UUID, ext: str) -> str:
    return f"{_prefix(user_id, profile_id)}/conversions/{job_id}/input.{ext}"


def conversion_output_key(user_id: UUID, profile_id: UUID, job_id: UUID) -> str:
    return f"{_prefix(user_id, profile_id)}/conversions/{job_id}/output.wav"


def conversion_part_key(user_id: UUID, profile_id: UUID, job_id: UUID, part: ConversionPart) -> str:
    """Where one of a song conversion's results lives (`mix` is the output)."""
    return f"{_prefix(user_id, profile_id)}/conversions/{job_id}/{PART_LEAVES[part]}"


def text_keys(user_id: UUID, profile_id: UUID, job_id: UUID) -> tuple[str, str]:
    """A text job's WAV and MP3 (`svc_private.text_keys` holds the same). Written by the
    worker only: their events are ignored, and the orphan sweep parses them like any other
    key, so a line a worker uploaded and never recorded is swept."""
    prefix = f"{_prefix(user_id, profile_id)}/speech/{job_id}"
    return f"{prefix}/speech.wav", f"{prefix}/speech.mp3"


def parse_key(key: str) -> ParsedKey | None:
    """The parsed key, or None for anything outside the layout."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    groups = match.groupdict()
    user, profile = UUID(groups["user"]), UUID(groups["profile"])
    if groups["file"]:
        return ParsedKey("dataset", user, profile, UUID(groups["file"]), groups["name"])
    if groups["model"]:
        artifact = groups["artifact"]
        kind: KeyKind = _MODEL_KINDS.get(artifact, "model_preview")
        return ParsedKey(kind, user, profile, UUID(groups["model"]), artifact)
    if groups["voice"]:
        return ParsedKey(
            "instant_reference", user, profile, UUID(groups["voice"]), groups["reference"]
        )
    if groups["speech"]:
        return ParsedKey("speech_output", user, profile, UUID(groups["speech"]), groups["sleaf"])
    if groups["instant"]:
        leaf = groups["ileaf"]
        kind = "instant_input" if leaf.startswith("input.") else "instant_output"
        return ParsedKey(kind, user, profile, UUID(groups["instant"]), leaf)
    leaf = groups["leaf"]
    kind = "conversion_input" if leaf.startswith("input.") else "conversion_output"
    return ParsedKey(kind, user, profile, UUID(groups["job"]), leaf)


def instant_reference_key(user_id: UUID, profile_id: UUID, voice_id: UUID, ext: str) -> str:
    return f"{_prefix(user_id, profile_id)}/instant/{voice_id}/reference.{ext}"


def instant_input_key(user_id: UUID, profile_id: UUID, job_id: UUID, ext: str) -> str:
    return f"{_prefix(user_id, profile_id)}/instant-jobs/{job_id}/input.{ext}"


def instant_part_key(user_id: UUID, profile_id: UUID, job_id: UUID, part: ConversionPart) -> str:
    """An instant conversion's output (`mix`: a song's mix, or a stem's converted vocal) and a
    song's converted vocal and instrumental, laid out as a conversion's."""
    return f"{_prefix(user_id, profile_id)}/instant-jobs/{job_id}/{PART_LEAVES[part]}"
