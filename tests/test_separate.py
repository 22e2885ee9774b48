"""The separator's streaming walk (gpu/separation/separate.py): exact lengths, rates and
channels, seamless chunk joins, cancel, flat memory; and the tiny real HTDemucs through the
production loader."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gpu.errors import JobCanceled, JobFailure
from gpu.separation import weights as separator_weights
from gpu.separation.separate import MODEL_RATE, separate, stream
from tests.songs import song

ROOT = Path(__file__).resolve().parents[1]


def linear(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in separator that any join error would show in: a quarter is 'the vocal'."""
    return 0.25 * chunk, 0.75 * chunk


def test_chunks_join_seamlessly_at_the_model_rate(tmp_path) -> None:
    mix = song(23.0).mix
    sf.write(tmp_path / "song.wav", mix, MODEL_RATE, subtype="FLOAT")
    seen: list[float] = []
    stream(
        tmp_path / "song.wav",
        tmp_path / "v.wav",
        tmp_path / "i.wav",
        linear,
        progress=lambda done: seen.append(done) or True,
        chunk_seconds=5.0,
        overlap_seconds=1.0,
    )
    vocals, rate = sf.read(tmp_path / "v.wav", dtype="float32")
    rest, _ = sf.read(tmp_path / "i.wav", dtype="float32")
    assert rate == MODEL_RATE and vocals.shape == rest.shape == mix.shape
    np.testing.assert_allclose(vocals, 0.25 * mix, atol=1e-6)
    np.testing.assert_allclose(rest, 0.75 * mix, atol=1e-6)
    assert seen == sorted(seen) and len(seen) == 6 and seen[-1] == 1.0


@pytest.mark.parametrize(("rate", "channels"), [(22050, 1), (48000, 2)])
def test_other_rates_and_mono_come_back_as_they_went_in(tmp_path, rate, channels) -> None:
    mix = song(12.0, rate, channels).mix
    sf.write(tmp_path / "song.wav", mix, rate, subtype="FLOAT")
    outputs = {}
    for chunk in (4.0, 100.0):  # in three overlapping chunks, and in one
        stream(
            tmp_path / "song.wav",
            tmp_path / "v.wav",
            tmp_path / "i.wav",
            linear,
            chunk_seconds=chunk,
        )
        vocals, got_rate = sf.read(tmp_path / "v.wav", dtype="float32", always_2d=True)
        rest, _ = sf.read(tmp_path / "i.wav", dtype="float32", always_2d=True)
        assert got_rate == rate and vocals.shape == rest.shape == mix.shape
        outputs[chunk] = vocals + rest
    # resampled there and back: the sum is the song within the resampler's error (the
    # hi-hat's top octave), and the chunk joins add nothing audible to that
    error = outputs[4.0] - mix
    assert np.sqrt(np.mean(error**2)) < 0.02 * np.sqrt(np.mean(mix**2))
    np.testing.assert_allclose(outputs[4.0], outputs[100.0], atol=2e-4)


def test_progress_false_cancels_after_the_chunk(tmp_path) -> None:
    sf.write(tmp_path / "song.wav", song(20.0).mix, MODEL_RATE)
    chunks: list[int] = []

    def split(chunk):
        chunks.append(chunk.shape[1])
        return linear(chunk)

    with pytest.raises(JobCanceled):
        stream(
            tmp_path / "song.wav",
            tmp_path / "v.wav",
            tmp_path / "i.wav",
            split,
            progress=lambda done: False,
            chunk_seconds=5.0,
        )
    assert len(chunks) == 1


MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import numpy as np, soundfile as sf
    from gpu.separation.separate import separate, stream

    source, out, model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    largest = [0]

    def split(chunk):
        largest[0] = max(largest[0], chunk.shape[1])
        return 0.5 * chunk, 0.5 * chunk

    if model == "tiny":
        separate(source, out / "v.wav", out / "i.wav", cache_dir=out, device="cpu")
    else:
        stream(source, out / "v.wav", out / "i.wav", split)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": peak_kib / 1024, "largest": largest[0]}))
    """
)


def write_long(path: Path, seconds: float, rate: int = MODEL_RATE) -> None:
    """A long stereo song written block by block (the test itself stays small)."""
    piece = song(30.0, rate).mix
    with sf.SoundFile(path, "w", rate, 2, "PCM_16") as out:
        for _ in range(int(seconds // 30)):
            out.write(piece)


def peak(tmp_path: Path, seconds: float, model: str) -> dict:
    folder = tmp_path / f"{model}-{seconds:g}"
    folder.mkdir()
    if model == "tiny":
        separator_weights.write_tiny(folder)
    write_long(folder / "song.wav", seconds)
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder / "song.wav"), str(folder), model],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert sf.info(folder / "v.wav").frames == sf.info(folder / "song.wav").frames
    return result


def test_memory_stays_flat_from_one_minute_to_ten(tmp_path) -> None:
    short, long = peak(tmp_path, 60, "stream"), peak(tmp_path, 600, "stream")
    # Ten minutes of stereo float held whole would be 200 MiB more for the input alone, and as
    # much again for each stem; one minute's chunk temporaries vary by tens of MiB with the
    # allocator (measured: +0 to +41 MiB), so the bound sits between the two.
    assert long["peak_mib"] - short["peak_mib"] < 100, (short, long)
    assert long["largest"] == short["largest"] == 60 * MODEL_RATE


@pytest.mark.slow
def test_memory_stays_flat_with_the_tiny_htdemucs(tmp_path) -> None:
    short, long = peak(tmp_path, 60, "tiny"), peak(tmp_path, 600, "tiny")
    assert long["peak_mib"] - short["peak_mib"] < 100, (short, long)  # see the test above


def test_tiny_htdemucs_loads_through_the_production_path_and_separates(tmp_path) -> None:
    separator_weights.write_tiny(tmp_path)
    mix = song(9.0, 32000, 1).mix
    sf.write(tmp_path / "song.wav", mix, 32000)
    seen: list[float] = []
    separate(
        tmp_path / "song.wav",
        tmp_path / "v.wav",
        tmp_path / "i.wav",
        cache_dir=tmp_path,
        device="cpu",
        progress=lambda done: seen.append(done) or True,
    )
    for name in ("v.wav", "i.wav"):
        info = sf.info(tmp_path / name)
        assert (info.samplerate, info.channels, info.frames) == (32000, 1, len(mix))
        assert info.subtype == "FLOAT"
    assert seen == [1.0]
    assert (tmp_path / "demucs" / "htdemucs.yaml").read_text().strip().endswith("'0000tiny']")


def test_a_missing_separator_fails_in_words_rather_than_exiting(tmp_path) -> None:
    sf.write(tmp_path / "song.wav", song(2.0).mix, MODEL_RATE)
    with pytest.raises(JobFailure) as failure:
        separate(
            tmp_path / "song.wav",
            tmp_path / "v.wav",
            tmp_path / "i.wav",
            cache_dir=tmp_path / "empty",
            device="cpu",
        )
    assert failure.value.code == "SEPARATOR_UNAVAILABLE"
