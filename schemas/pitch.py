"""Pitch: which tracker follows the melody, the range a voice or an input sings in, and the
transpose that puts an input into a voice's range.

The shift is suggested, never applied: the person converting decides. An octave keeps the
song's key (the converted vocal still fits its backing track), so an octave is suggested
whenever it lands the input's median inside the voice's 5-95 % range; only when no octave
does is a semitone shift suggested, marked as one that changes the key.
"""

import math
from typing import Literal

from pydantic import Field

from schemas.common import Model

F0Method = Literal["fcpe", "rmvpe", "dio", "harvest", "parselmouth", "crepe"]
"""Trackers a job may ask for. `fcpe` follows singing best of those that run anywhere (see
`bench/pitch.py`); `rmvpe` needs its weights baked into the worker's image; `dio` is the
fork's old default, fast but it loses sung notes; `crepe-tiny` is not offered (it misses
almost half the frames of a sung melody)."""

DEFAULT_F0_METHOD: F0Method = "fcpe"
MAX_TRANSPOSE = 24
FITS_SEMITONES = 2.0  # closer than this to the voice's median needs no shift


class PitchRange(Model):
    """Where a recording's voiced frames sit: the median and the 5th-95th percentile of F0."""

    median_hz: float = Field(gt=0)
    p5_hz: float = Field(gt=0)
    p95_hz: float = Field(gt=0)
    voiced_seconds: float = Field(ge=0)
    method: str


class PitchAdvice(Model):
    """A conversion input's range next to its voice's, and the shift that would fit them."""

    input: PitchRange
    voice: PitchRange | None = None
    interval_semitones: float | None = None  # the voice's median above the input's
    suggested_transpose: int | None = None
    keeps_key: bool | None = None  # an octave multiple (0 included): the key is unchanged


def semitones(from_hz: float, to_hz: float) -> float:
    return 12.0 * math.log2(to_hz / from_hz)


def suggest(input_range: PitchRange, voice: PitchRange | None) -> PitchAdvice:
    """The octave shift that puts the input's median inside the voice's 5-95 % range, else
    the nearest semitone shift; none when the input already sits near the voice's median."""
    if voice is None:
        return PitchAdvice(input=input_range)
    interval = semitones(input_range.median_hz, voice.median_hz)
    if abs(interval) < FITS_SEMITONES:
        shift = 0
    else:
        octave = 12 * round(interval / 12)
        shifted = input_range.median_hz * 2 ** (octave / 12)
        fits = voice.p5_hz <= shifted <= voice.p95_hz
        shift = octave if fits else round(interval)
    shift = max(-MAX_TRANSPOSE, min(MAX_TRANSPOSE, shift))
    return PitchAdvice(
        input=input_range,
        voice=voice,
        interval_semitones=round(interval, 2),
        suggested_transpose=shift,
        keeps_key=shift % 12 == 0,
    )
