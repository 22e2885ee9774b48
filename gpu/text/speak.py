"""Text in a voice, as pure steps on audio: the engine speaks the base speech (in the base
voice the chooser picked), its pitch is brought to the voice, the voice converts it, the result
is loudness-normalised and written as WAV and MP3 at 44.1 kHz, and the report says how much it
sounds like the voice and how much like the TTS it came from.

The voice is a `VoiceTarget`: a trained model version (`trained_target`, the conversion's own
inference path) or an instant voice (`instant_target`: Seed-VC with the voice's reference,
gpu/instant/).
"""

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from gpu.errors import JobFailure
from gpu.measures import loudness, pitch_range
from gpu.text.chooser import choose
from gpu.text.engines import Engine
from schemas.pitch import MAX_TRANSPOSE, PitchRange, semitones
from schemas.text import TextOptions, TextReport

OUTPUT_RATE = 44100
TARGET_LUFS = -16.0  # spoken word for listening on a phone or laptop
PEAK_CEILING_DB = -1.0  # true peak, so the MP3 decoder does not clip
# The limiter aims this far under the ceiling: other meters (ffmpeg's ebur128) oversample with
# other filters and read a tenth of a dB higher, and the WAV is quantised to 16 bits after.
LIMITER_MARGIN_DB = 0.2
# gain, limit, measure: a line whose peaks carry much of its loudness needs more than one
MAKEUP_PASSES = 4
MP3_KBPS = 192

# (audio at the target's rate, transpose in semitones, predict F0?, options) -> converted
Convert = Callable[[np.ndarray, int, bool, TextOptions], np.ndarray]
Beat = Callable[..., None]


@dataclass(frozen=True)
class VoiceTarget:
    kind: str  # "trained" or "instant"
    rate: int  # what `convert` reads and writes
    convert: Convert
    pitch_range: PitchRange | None  # where the voice speaks or sings (its recorded median)
    centroid: np.ndarray | None  # its speaker embedding: the training centroid or reference


@dataclass(frozen=True)
class Spoken:
    wav: Path
    mp3: Path
    report: TextReport


def trained_target(svc: Any, pitch: PitchRange | None, centroid: np.ndarray | None) -> VoiceTarget:
    """A trained model version, loaded as the fork's `Svc`, through the conversion's path."""
    from gpu.conversion.inference import convert
    from schemas.jobs import ConversionParams

    def run(audio: np.ndarray, transpose: int, predict: bool, options: TextOptions) -> np.ndarray:
        params = ConversionParams(
            transpose=transpose,
            auto_predict_f0=predict,
            f0_method=options.f0_method,
            noise_scale=options.noise_scale,
        )
        return convert(svc, audio, params)

    return VoiceTarget("trained", int(svc.target_sample), run, pitch, centroid)


def instant_target(
    model: Any,
    reference: np.ndarray,
    pitch: PitchRange | None,
    diffusion_steps: int,
    progress: Callable[[float], bool] | None = None,
) -> VoiceTarget:
    """An instant voice: the base speech converted zero-shot by Seed-VC (gpu/instant/'s
    `InstantModel`) with the voice's reference (mono at the model's rate; it reads the first
    25 s), so the report's `to_voice` is the similarity to that reference (its embedding is
    the centroid). `shift` mode passes the transpose that moves the speech's median onto the
    reference's; `predict` lets Seed-VC move the median itself (`auto_pitch`)."""
    from gpu.instant import seedvc
    from gpu.measures import quality

    used = np.asarray(reference, np.float32)[: int(seedvc.REFERENCE_SECONDS * seedvc.RATE)]
    centre = quality.embedding(used, seedvc.RATE)

    def run(audio: np.ndarray, transpose: int, predict: bool, options: TextOptions) -> np.ndarray:
        return model.convert(
            audio,
            used,
            transpose=0 if predict else transpose,
            auto_pitch=predict,
            diffusion_steps=diffusion_steps,
            progress=progress,
        )

    return VoiceTarget("instant", seedvc.RATE, run, pitch, centre / np.linalg.norm(centre))


def resample(audio: np.ndarray, rate: int, to: int) -> np.ndarray:
    import soxr

    if rate == to:
        return np.asarray(audio, np.float32)
    return soxr.resample(np.asarray(audio, np.float32), rate, to, quality="HQ").astype(np.float32)


def pitch_plan(base: PitchRange | None, voice: PitchRange | None, mode: str) -> tuple[str, int]:
    """(`shift` or `predict`, transpose): `shift` moves the base speech's median onto the
    voice's, to the nearest semitone (speech has no key to keep); `auto` predicts when either
    median is unknown, since then there is nothing to shift between."""
    if mode == "predict" or (mode == "auto" and (base is None or voice is None)):
        return "predict", 0
    if base is None or voice is None:
        return "shift", 0
    shift = round(semitones(base.median_hz, voice.median_hz))
    return "shift", max(-MAX_TRANSPOSE, min(MAX_TRANSPOSE, shift))


def normalise(audio: np.ndarray, rate: int, scratch: Path) -> tuple[np.ndarray, float | None]:
    """To `TARGET_LUFS` integrated loudness, its true peak held under `PEAK_CEILING_DB` by the
    look-ahead limiter (gpu/text/limiter.py) rather than by turning the whole line down; what
    the limiting took off the loudness is made up again (`MAKEUP_PASSES` in all). Returns the
    audio and its loudness (None for silence or a blip too short to measure)."""
    from gpu.text.limiter import limit

    def measured(signal: np.ndarray) -> float:
        path = scratch / "loudness.wav"
        sf.write(path, signal, rate, subtype="FLOAT")
        return loudness.integrated_loudness(path)

    level = measured(audio)
    if not np.isfinite(level) or not np.any(audio):
        return audio, None
    out = audio
    for _ in range(MAKEUP_PASSES):  # each pass makes up what the last one's limiting took off
        gained = out * 10 ** ((TARGET_LUFS - level) / 20)
        out = limit(gained, rate, PEAK_CEILING_DB - LIMITER_MARGIN_DB)
        level = measured(out)
        if abs(TARGET_LUFS - level) < 0.1:
            break
    return out.astype(np.float32), round(level, 2)


def write_outputs(audio: np.ndarray, out_dir: Path) -> tuple[Path, Path]:
    """`speech.wav` (16-bit) and `speech.mp3` (mono, 192 kbit/s), both at 44.1 kHz."""
    import lameenc

    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    wav, mp3 = out_dir / "speech.wav", out_dir / "speech.mp3"
    sf.write(wav, pcm, OUTPUT_RATE, subtype="PCM_16")
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(MP3_KBPS)
    encoder.set_in_sample_rate(OUTPUT_RATE)
    encoder.set_channels(1)
    encoder.set_quality(2)
    mp3.write_bytes(bytes(encoder.encode(pcm.tobytes())) + bytes(encoder.flush()))
    return wav, mp3


def _range_of(audio: np.ndarray, rate: int, method: str, scratch: Path) -> PitchRange | None:
    path = scratch / "pitch.wav"
    sf.write(path, audio, rate, subtype="FLOAT")
    return pitch_range.of_file(path, method)


def speak(
    text: str,
    language: str,
    options: TextOptions,
    engines: Sequence[Engine],
    target: VoiceTarget,
    out_dir: Path,
    beat: Beat = lambda **progress: None,
) -> Spoken:
    """The text said in the target's voice, as files in `out_dir`, and its report.
    `beat(phase=..., percent=...)` reports progress (and may stop the job by raising)."""
    from gpu.measures import quality

    started = time.monotonic()
    beat(phase="prepare", percent=0)
    engine, choice = choose(
        engines, language, target.centroid, quality.embedding, options.base_voice
    )
    base = engine.speak(text, choice.voice, language)
    if base.audio.size == 0 or not np.any(base.audio):
        raise JobFailure("NOTHING_TO_SAY", "The engine made no sound for this text.")
    base_audio = resample(base.audio, base.rate, target.rate)
    beat(phase="pitch", percent=0)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        scratch = Path(tmp)
        base_range = _range_of(base_audio, target.rate, options.f0_method, scratch)
        mode, transpose = pitch_plan(base_range, target.pitch_range, options.pitch)
        beat(phase="convert", percent=0)
        converted = target.convert(base_audio, transpose, mode == "predict", options)
        converted = resample(converted, target.rate, OUTPUT_RATE)
        converted, lufs = normalise(converted, OUTPUT_RATE, scratch)
    beat(phase="evaluate", percent=0)
    out_vec = quality.embedding(converted, OUTPUT_RATE)
    base_vec = quality.embedding(base.audio, base.rate)
    centre = target.centroid
    wav, mp3 = write_outputs(converted, out_dir)
    report = TextReport(
        base_voice=choice,
        to_voice=None if centre is None else round(quality.cosine(out_vec, centre), 4),
        to_base=round(quality.cosine(out_vec, base_vec), 4),
        base_to_voice=None if centre is None else round(quality.cosine(base_vec, centre), 4),
        pitch_mode=mode,
        transpose=transpose,
        base_median_hz=base_range.median_hz if base_range else None,
        voice_median_hz=target.pitch_range.median_hz if target.pitch_range else None,
        seconds=round(len(converted) / OUTPUT_RATE, 3),
        loudness_lufs=lufs,
        elapsed_s=round(time.monotonic() - started, 3),
    )
    return Spoken(wav, mp3, report)
