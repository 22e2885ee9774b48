"""Choosing the base voice: of the engine's voices for the language, the one whose speech
sounds most like the target voice by the same measure the job reports (Resemblyzer cosine).

The complaint about TTS-then-voice-conversion is that the result still sounds like the TTS
voice; a conversion has less to move when it starts from a voice that is already close, so the
chooser starts there. Each engine voice speaks a fixed sentence once per worker process and its
embedding is kept, so a warm worker chooses without speaking anything again.
"""

from collections.abc import Callable, Sequence

import numpy as np

from gpu.errors import JobFailure
from gpu.text.engines import Engine
from schemas.text import BaseVoiceChoice

# A sentence per language that covers its common sounds; English when a language has none.
PROBES = {
    "en-us": "The quick brown fox jumps over the lazy dog, and then it rests in the warm sun.",
    "en-gb": "The quick brown fox jumps over the lazy dog, and then it rests in the warm sun.",
    "es": "El veloz murciélago hindú comía feliz cardillo y kiwi, y luego descansó al sol.",
    "fr": "Portez ce vieux whisky au juge blond qui fume, puis reposez-vous au soleil.",
    "it": "Quel vituperabile xenofobo zelante assaggia il whisky ed esclama: alleluja!",
    "pt-br": "Um pequeno jabuti xereta viu dez cegonhas felizes voando sobre o rio.",
    "de": "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
}
Embed = Callable[[np.ndarray, int], np.ndarray]
_EMBEDDINGS: dict[tuple[str, str, str], np.ndarray] = {}


def voice_embedding(engine: Engine, voice: str, language: str, embed: Embed) -> np.ndarray:
    key = (engine.name, voice, language)
    if key not in _EMBEDDINGS:
        speech = engine.speak(PROBES.get(language, PROBES["en-us"]), voice, language)
        _EMBEDDINGS[key] = embed(speech.audio, speech.rate)
    return _EMBEDDINGS[key]


def choose(
    engines: Sequence[Engine],
    language: str,
    target: np.ndarray | None,
    embed: Embed,
    requested: str | None = None,
) -> tuple[Engine, BaseVoiceChoice]:
    """The engine and voice to speak with. A requested voice must be one of theirs; with no
    target to compare with (a voice without a centroid), the first voice is used."""
    candidates = [(e, v) for e in engines for v in e.voices(language)]
    if not candidates:
        raise JobFailure("INVALID_ARGUMENT", f"No voice here speaks {language!r}.")
    if requested is not None:
        for engine, voice in candidates:
            if voice == requested:
                return engine, BaseVoiceChoice(engine=engine.name, voice=voice, chosen="requested")
        names = ", ".join(v for _, v in candidates)
        raise JobFailure(
            "INVALID_ARGUMENT", f"No base voice {requested!r} for {language}: {names}."
        )
    if target is None or len(candidates) == 1:
        engine, voice = candidates[0]
        return engine, BaseVoiceChoice(engine=engine.name, voice=voice, chosen="only")
    scores = {
        (e, v): _cosine(voice_embedding(e, v, language, embed), target) for e, v in candidates
    }
    engine, voice = max(scores, key=lambda pair: scores[pair])
    return engine, BaseVoiceChoice(
        engine=engine.name,
        voice=voice,
        chosen="similarity",
        similarity=round(scores[(engine, voice)], 4),
        candidates={f"{e.name}:{v}": round(s, 4) for (e, v), s in scores.items()},
    )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
