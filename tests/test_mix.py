"""The cover's mix (gpu/conversion/mix.py) and the meters it trusts (gpu/measures/loudness.py), on
synthetic songs whose stems are known: an oracle separation remixes to the song, the converted vocal
lands at the original vocal's loudness, and no mix goes above -1 dBTP."""

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from gpu.conversion.mix import CEILING_DB, mix
from gpu.errors import JobCanceled
from gpu.measures.loudness import db, integrated_loudness, true_peak
from tests.songs import Song, song

MODEL_RATE = 44100


def write_stems(tmp: Path, s: Song, converted: np.ndarray, converted_rate: int) -> dict:
    """The song's known stems as a separator would write them, and a 'converted' vocal."""
    paths = {"vocals": tmp / "vocals.wav", "inst": tmp / "inst.wav", "conv": tmp / "conv.wav"}
    sf.write(paths["vocals"], s.vocals, s.rate, subtype="FLOAT")
    sf.write(paths["inst"], s.instrumental, s.rate, subtype="FLOAT")
    sf.write(paths["conv"], converted, converted_rate, subtype="PCM_16")
    return paths


def outputs(tmp: Path) -> dict[str, Path]:
    return {part: tmp / f"{part}.wav" for part in ("mix", "vocal", "instrumental")}


def read(path: Path) -> tuple[np.ndarray, int]:
    return sf.read(path, dtype="float32", always_2d=True)


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (48000, 2), (22050, 1)])
def test_an_oracle_separation_and_an_identity_conversion_remix_to_the_song(
    tmp_path, rate, channels
) -> None:
    s = song(12.0, rate, channels)
    # "converted": the original vocal line itself, mono at the model's rate
    import soxr

    conv = soxr.resample(s.vocals[:, 0], rate, MODEL_RATE) if rate != MODEL_RATE else s.vocals
    stems = write_stems(
        tmp_path, s, np.asarray(conv)[:, None] if conv.ndim == 1 else conv[:, :1], MODEL_RATE
    )
    out = outputs(tmp_path)

    report = mix(stems["conv"], stems["vocals"], stems["inst"], out)

    assert abs(report.vocal_gain_db) < 0.05 and report.limiter_db == 0.0
    mixed, got_rate = read(out["mix"])
    assert got_rate == rate and mixed.shape == s.mix.shape
    error = mixed - s.mix
    assert np.sqrt(np.mean(error**2)) < 0.01 * np.sqrt(np.mean(s.mix**2))  # -40 dB
    vocal, _ = read(out["vocal"])
    rest, _ = read(out["instrumental"])
    assert vocal.shape == (len(s.mix), 1) and rest.shape == s.mix.shape
    assert np.abs(vocal + rest - mixed).max() < 3 / 32768  # the parts add up to the mix


def test_a_quiet_conversion_is_brought_to_the_vocals_loudness_and_a_loud_mix_is_limited(
    tmp_path,
) -> None:
    s = song(12.0)
    s = Song(s.vocals * 3.0, s.instrumental * 2.5, s.rate)  # peaks well above full scale
    assert np.abs(s.mix).max() > 1.2
    quiet = 0.1 * s.vocals[:, :1]  # -20 dB
    stems = write_stems(tmp_path, s, quiet, MODEL_RATE)
    out = outputs(tmp_path)

    report = mix(stems["conv"], stems["vocals"], stems["inst"], out)

    assert report.vocal_gain_db == pytest.approx(20.0, abs=0.1)
    assert report.limiter_db < -3.0
    assert true_peak(out["mix"]) <= 10 ** ((CEILING_DB + 0.01) / 20)
    assert report.true_peak_db <= CEILING_DB + 0.01
    # the vocal in the mix: the original's loudness, less only the limiter's common gain
    vocal, _ = read(out["vocal"])
    placed = tmp_path / "vocal-stereo.wav"
    sf.write(placed, np.repeat(vocal, 2, axis=1), s.rate, subtype="FLOAT")
    original = integrated_loudness(stems["vocals"])
    assert integrated_loudness(placed) - report.limiter_db == pytest.approx(original, abs=0.1)


def test_the_instrumental_follows_the_transpose_when_asked(tmp_path) -> None:
    rate = 44100
    t = np.arange(rate * 8) / rate
    tone = (0.2 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    s = Song(np.zeros((len(t), 1), np.float32), tone[:, None], rate)
    stems = write_stems(tmp_path, s, np.zeros((len(t), 1), np.float32), rate)
    out = outputs(tmp_path)

    mix(stems["conv"], stems["vocals"], stems["inst"], out, shift_semitones=3)

    rest, _ = read(out["instrumental"])
    assert len(rest) == len(t)
    spectrum = np.abs(np.fft.rfft(rest[rate : 7 * rate, 0]))
    peak_hz = np.argmax(spectrum) * rate / (6 * rate)
    assert peak_hz == pytest.approx(220.0 * 2 ** (3 / 12), rel=0.01)


def test_cancel_stops_the_mix(tmp_path) -> None:
    s = song(4.0)
    stems = write_stems(tmp_path, s, s.vocals[:, :1], MODEL_RATE)
    with pytest.raises(JobCanceled):
        mix(
            stems["conv"],
            stems["vocals"],
            stems["inst"],
            outputs(tmp_path),
            progress=lambda f: False,
        )


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (22050, 1), (48000, 2)])
def test_streamed_loudness_is_pyloudnorms(tmp_path, rate, channels) -> None:
    x = song(25.0, rate, channels).mix
    sf.write(tmp_path / "x.wav", x, rate, subtype="FLOAT")
    expected = pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64))
    assert integrated_loudness(tmp_path / "x.wav") == pytest.approx(expected, abs=1e-6)


def test_true_peak_sees_the_peak_between_samples(tmp_path) -> None:
    rate = 44100
    n = np.arange(rate)
    # a tone at a quarter of the rate, sampled 45° off its crests: every sample is at
    # 0.707 of the true peak
    from scipy.signal.windows import tukey

    fades = tukey(len(n), 0.1)  # no abrupt start for the resampler to ring at
    x = (0.9 * fades * np.sin(np.pi / 2 * n + np.pi / 4)).astype(np.float32)[:, None]
    sf.write(tmp_path / "x.wav", x, rate, subtype="FLOAT")
    assert np.abs(x).max() == pytest.approx(0.9 * 0.7071, abs=1e-3)
    assert true_peak(tmp_path / "x.wav") == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize("level", [0.05, 0.6])
def test_streaming_loudness_brings_the_cover_to_minus_14_lufs_under_the_ceiling(
    tmp_path, level
) -> None:
    """A quiet song is brought up and a loud one down to -14 LUFS integrated, true peak at
    most -1 dBTP, the parts still adding up to the mix; "original" leaves a quiet one as is."""
    s = song(10.0, 44100, 2)
    s = Song(s.vocals * level / 0.3, s.instrumental * level / 0.3, s.rate)
    stems = write_stems(tmp_path, s, s.vocals[:, :1], s.rate)
    out = outputs(tmp_path)

    mix(stems["conv"], stems["vocals"], stems["inst"], out, loudness="streaming")

    assert integrated_loudness(out["mix"]) == pytest.approx(-14.0, abs=0.3)
    assert db(true_peak(out["mix"])) <= -1.0 + 0.05
    mixed, _ = read(out["mix"])
    vocal, _ = read(out["vocal"])
    rest, _ = read(out["instrumental"])
    assert np.abs(vocal + rest - mixed).max() < 3 / 2**23 * 8
    if level < 0.1:
        kept = tmp_path / "kept"
        kept.mkdir()
        mix(stems["conv"], stems["vocals"], stems["inst"], outputs(kept))
        assert integrated_loudness(outputs(kept)["mix"]) < -20
