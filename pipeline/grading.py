"""The graded half of the probe's verdict: warnings with a sentence and a number, a noise
word, and a grade. None of this rejects a file; people decide what to fix.

Thresholds, and why:
- noise (`snr_db`, vocal over the steady noise under it): 25 dB and up is clean (hiss that
  far under a vocal is hard to hear and the model hardly learns it); under 15 dB the
  model learns the noise as part of the voice.
- voice activity (Silero VAD): a speech model, so a sung line may score low though it is
  clean; on a clean file it is a note that leaves the grade alone, on a noisy one it counts.
- energy below 70 Hz: a voice has almost none; bass, kick drum and rumble have a lot.
"""

from dataclasses import dataclass

from pipeline.audio import AudioStats
from schemas.profiles import QualityWarning

CLEAN_SNR_DB = 25.0
NOISY_SNR_DB = 15.0
LOW_VOICE_RATIO = 0.3
QUIET_LUFS = -35.0
LOW_BAND_MINOR = 0.05
LOW_BAND_MAJOR = 0.2
SOME_CLIPPING = 0.001
MOSTLY_SILENCE = 0.6
GOOD_SAMPLE_RATE = 32000


@dataclass(frozen=True)
class Grading:
    grade: str  # good, fair or poor
    notes: str
    noise_level: str | None  # clean, some or noisy
    warnings: list[QualityWarning]


def noise_level(snr_db: float | None) -> str | None:
    if snr_db is None:
        return None
    return "clean" if snr_db >= CLEAN_SNR_DB else "some" if snr_db >= NOISY_SNR_DB else "noisy"


def _warnings(stats: AudioStats) -> list[QualityWarning]:
    found: list[QualityWarning] = []

    def warn(code: str, severity: str, value: float, message: str) -> None:
        found.append(QualityWarning(code=code, severity=severity, value=value, message=message))

    snr = stats.snr_db
    if snr is not None and snr < NOISY_SNR_DB:
        warn(
            "NOISY",
            "major",
            snr,
            f"Noisy: the voice is only {snr:.0f} dB above the steady noise under it; the "
            "model would learn the noise too. Record somewhere quieter or closer to the mic.",
        )
    elif snr is not None and snr < CLEAN_SNR_DB:
        warn(
            "SOME_NOISE",
            "minor",
            snr,
            f"Some background noise: the voice is {snr:.0f} dB above it ({CLEAN_SNR_DB:.0f} dB or "
            "more is clean).",
        )
    low = stats.low_band_ratio
    if low is not None and low > LOW_BAND_MINOR:
        warn(
            "MUSIC_UNDERNEATH",
            "major" if low > LOW_BAND_MAJOR else "minor",
            low,
            f"{low:.0%} of the sound is below 70 Hz, where a voice has almost nothing: "
            "probably music (bass, drums) or rumble underneath. Use an isolated vocal.",
        )
    voice = stats.voice_ratio
    if voice is not None and voice < LOW_VOICE_RATIO:
        warn(
            "LOW_VOICE_ACTIVITY",
            "minor" if noise_level(snr) not in {None, "clean"} else "note",
            voice,
            f"The voice detector hears voice in only {voice:.0%} of this file. It is "
            "trained on speech, so clean singing can score low; check that the file is "
            "mostly your voice.",
        )
    if stats.loudness_lufs is not None and stats.loudness_lufs < QUIET_LUFS:
        warn(
            "QUIET",
            "minor",
            stats.loudness_lufs,
            f"Very quiet ({stats.loudness_lufs:.0f} LUFS); record or export it louder.",
        )
    if stats.clipping_ratio > SOME_CLIPPING:
        warn(
            "SOME_CLIPPING",
            "minor",
            stats.clipping_ratio,
            f"Some clipping ({stats.clipping_ratio:.1%} of samples at full scale).",
        )
    if stats.sample_rate < GOOD_SAMPLE_RATE:
        warn(
            "LOW_SAMPLE_RATE",
            "minor",
            stats.sample_rate,
            f"{stats.sample_rate} Hz loses the top of the voice; 44.1 kHz or more is best.",
        )
    if stats.silence_ratio > MOSTLY_SILENCE:
        warn(
            "MOSTLY_SILENCE",
            "minor",
            stats.silence_ratio,
            f"Mostly silence ({stats.silence_ratio:.0%}); trim the quiet parts.",
        )
    return found


def grade(stats: AudioStats) -> Grading:
    warnings = _warnings(stats)
    majors = sum(w.severity == "major" for w in warnings)
    counted = [w for w in warnings if w.severity != "note"]
    if not warnings:
        grade_, notes = "good", "Clean and usable."
    else:
        grade_ = "poor" if majors or len(counted) >= 3 else "fair" if counted else "good"
        notes = " ".join(w.message for w in warnings)
    return Grading(grade_, notes, noise_level(stats.snr_db), warnings)
