"""The Seed-VC adapter (gpu/instant/): tiny random weights through the production code path.

With random weights the output is noise-like, so what is tested is what holds whatever the
weights: length and rate, finite samples, the 25 s reference cap, cancel between windows,
nothing downloaded and the process environment untouched. The chunk-and-crossfade loop is
tested on its own with a sine "model", where a seam would show as a phase jump.
"""

import os
import sys

import numpy as np
import pytest

from gpu.errors import JobCanceled
from gpu.instant import seedvc, weights
from gpu.instant.stitch import stitch
from tests.conftest import MODEL_CACHE
from tests.vocals import singing

RATE = 44100


@pytest.fixture(scope="module")
def model() -> seedvc.InstantModel:
    weights.write_tiny(MODEL_CACHE)
    return seedvc.load(MODEL_CACHE, "cpu", f0_method="fcpe")


def sine_render(hop: int, freq: float = 441.0):
    def render(start: int, end: int) -> np.ndarray:
        t = np.arange(start * hop, end * hop) / RATE
        return np.sin(2 * np.pi * freq * t).astype(np.float32)

    return render


def test_three_minutes_stitched_exactly_without_seams() -> None:
    """A 3-minute input at the real window (a 25 s reference leaves 427 frames of the 30 s
    context): the output is exactly as long, and a sine rendered window by window comes out
    as one sine, its phase continuous across every crossfade."""
    hop, frames = seedvc.HOP, 180 * RATE // seedvc.HOP
    window = RATE // hop * seedvc.CONTEXT_SECONDS - int(25 * RATE) // hop
    done: list[float] = []
    out = stitch(frames, window, seedvc.OVERLAP_FRAMES, hop, sine_render(hop), done.append)
    assert len(out) == frames * hop
    t = np.arange(frames * hop) / RATE
    assert np.abs(out - np.sin(2 * np.pi * 441.0 * t)).max() < 1e-5
    # a phase jump at a seam would step further than the sine's steepest slope allows
    assert np.abs(np.diff(out)).max() <= 2 * np.pi * 441.0 / RATE * 1.001
    assert len(done) > 30 and done == sorted(done) and done[-1] < 1.0


def test_stitch_stops_between_windows_when_the_job_left_running() -> None:
    rendered: list[int] = []

    def render(start: int, end: int) -> np.ndarray:
        rendered.append(start)
        return np.zeros((end - start) * 4, np.float32)

    with pytest.raises(JobCanceled):
        stitch(1000, 100, 10, 4, render, lambda done: done < 0.2)
    assert len(rendered) == 3  # windows 1-3, the third answered False: no fourth


@pytest.mark.slow
def test_converts_to_the_input_length_at_44k(model: seedvc.InstantModel) -> None:
    source = singing(2.3, f0=220, seed=1).astype(np.float32)
    reference = singing(3.0, f0=330, seed=2).astype(np.float32)
    before = os.environ.get("HF_HUB_CACHE")
    out = model.convert(source, reference, diffusion_steps=3)
    assert out.dtype == np.float32 and out.shape == source.shape
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    assert seedvc.RATE == 44100 and model.mel_args["sampling_rate"] == 44100
    assert os.environ.get("HF_HUB_CACHE") == before  # seed_vc.inference sets it on import
    assert "seed_vc.inference" not in sys.modules


@pytest.mark.slow
def test_same_seed_same_output_and_transpose_changes_it(model: seedvc.InstantModel) -> None:
    source = singing(1.5, f0=220, seed=3).astype(np.float32)
    reference = singing(2.0, f0=330, seed=4).astype(np.float32)
    a = model.convert(source, reference, diffusion_steps=2)
    b = model.convert(source, reference, diffusion_steps=2)
    c = model.convert(source, reference, diffusion_steps=2, transpose=5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # the F0 conditioning reaches the model


@pytest.mark.slow
def test_reference_capped(model: seedvc.InstantModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """What follows the cap does not change the output; within it, it does. (The cap is 25 s;
    here 1.5 s, so the test stays short on a CPU: the same code cuts.)"""
    assert seedvc.REFERENCE_SECONDS == 25.0
    monkeypatch.setattr(seedvc, "REFERENCE_SECONDS", 1.5)
    source = singing(1.0, f0=220, seed=5).astype(np.float32)
    reference = singing(2.0, f0=330, seed=6).astype(np.float32)
    tail_changed = reference.copy()
    tail_changed[int(1.5 * RATE) :] = singing(0.5, f0=500, seed=7)
    head_changed = reference.copy()
    head_changed[: int(0.5 * RATE)] = singing(0.5, f0=500, seed=7)
    base = model.convert(source, reference, diffusion_steps=2)
    assert np.array_equal(base, model.convert(source, tail_changed, diffusion_steps=2))
    assert not np.array_equal(base, model.convert(source, head_changed, diffusion_steps=2))


@pytest.mark.slow
def test_cancel_between_windows(
    model: seedvc.InstantModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 30 s context shrunk to 2 s, so a 4 s input takes several windows on a CPU."""
    monkeypatch.setattr(seedvc, "CONTEXT_SECONDS", 2)
    source = singing(4.0, f0=220, seed=8).astype(np.float32)
    reference = singing(1.0, f0=330, seed=9).astype(np.float32)
    asked: list[float] = []

    def progress(done: float) -> bool:
        asked.append(done)
        return False

    with pytest.raises(JobCanceled):
        model.convert(source, reference, diffusion_steps=2, progress=progress)
    assert len(asked) == 1 and 0 < asked[0] < 0.5
    full = model.convert(source, reference, diffusion_steps=2, progress=asked.append)
    assert full.shape == source.shape and len(asked) > 3


@pytest.mark.slow
def test_whisper_content_of_a_long_input_in_windows(model: seedvc.InstantModel) -> None:
    """Over 30 s, Whisper runs in 30 s windows overlapping 5 s: 50 frames a second kept."""
    import torch

    audio = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, 16000 * 70).astype(np.float32))
    features = model.whisper.long(audio[None])
    assert abs(features.size(1) - 70 * 50) <= 5


def test_missing_weights_fail_clearly(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="python -m gpu models"):
        seedvc.load(tmp_path, "cpu")
