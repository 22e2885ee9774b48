"""Speaker similarity does not follow the level or the dynamics of a clip: the real Resemblyzer
encoder (it reads a power mel spectrogram, so whatever it is given at another level embeds
elsewhere) on Piper's packaged voice and espeak-ng voices. Before, the measures scaled each
clip by its peak: a line through the text output's peak limiter entered the encoder hotter
and scored ~0.95 against itself, and silence around a clip diluted it. bench/similarity.py
prints the whole table."""

from pathlib import Path

import numpy as np
import pytest

from gpu.measures import quality
from pipeline.settings import Settings
from tests.vocals import RATE, have_espeak, speech

LINE = "Every morning the baker opens the shop and the smell of fresh bread fills the street."


@pytest.fixture(scope="module")
def piper_line():
    from gpu.text.engines import PiperEngine

    said = PiperEngine().speak(LINE, "en_US-joe-medium", "en-us")
    return 0.25 * said.audio / np.max(np.abs(said.audio)), said.rate


def test_the_same_voice_scores_as_itself_at_any_level_and_after_the_limiter(
    piper_line, tmp_path: Path
) -> None:
    """-24/-12/0 dB, the text output's own loudness normalisation (-16 LUFS, its true-peak
    limiter taking ~7 dB off Piper's peaks) and 2 s of silence around it: >= 0.98."""
    from gpu.text.speak import normalise

    audio, rate = piper_line
    reference = quality.embedding(audio, rate)
    limited, lufs = normalise(audio, rate, tmp_path)
    assert lufs is not None
    pause = np.zeros(rate, np.float32)
    versions = {f"{gain:+d} dB": audio * 10 ** (gain / 20) for gain in (-24, -12, 0)}
    versions["limited to -16 LUFS"] = limited
    versions["with silence around"] = np.concatenate([pause, audio, pause])
    scores = {
        name: quality.cosine(reference, quality.embedding(v, rate)) for name, v in versions.items()
    }
    print(scores)
    assert min(scores.values()) >= 0.98, scores


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng (make espeak)")
def test_different_voices_stay_under_the_one_singer_threshold(piper_line) -> None:
    threshold = Settings.model_fields["singer_min_similarity"].default
    piper = quality.embedding(*piper_line)
    female = quality.embedding(speech(8, voice="en+f2", seed=1), RATE)
    male = quality.embedding(speech(8, voice="en+m3", seed=1), RATE)
    scores = {
        "piper ~ en+f2": quality.cosine(piper, female),
        "piper ~ en+m3": quality.cosine(piper, male),
        "en+m3 ~ en+f2": quality.cosine(male, female),
    }
    print(scores, "threshold", threshold)
    assert max(scores.values()) < threshold, scores
