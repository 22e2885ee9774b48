"""Pitch: FCPE and RMVPE through the fork's own `compute_f0`, the features training writes,
the ranges the workers record, and the transpose suggested from them."""

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest
import soundfile as sf

from gpu.errors import JobFailure
from gpu.measures import f0, rmvpe
from pipeline import keys
from schemas.jobs import ConversionParams, TrainingParams
from schemas.pitch import PitchRange, suggest
from tests.singing import RATE, SINGERS, add_accompaniment, errors, sing


def fork_f0(audio: np.ndarray, method: str) -> np.ndarray:
    import so_vits_svc_fork.f0 as fork

    return np.asarray(fork.compute_f0(audio, sampling_rate=RATE, hop_length=512, method=method))


@pytest.fixture(scope="module")
def melody():
    """A tenor line over an octave and a half: glides, vibrato, breaths."""
    f0.install()
    return sing(SINGERS[1], 12.0, seed=3)


def test_fcpe_follows_a_sung_melody_and_is_the_default(melody) -> None:
    result = errors(fork_f0(melody.audio, "fcpe"), melody)
    assert result["gpe"] < 0.02, result
    assert result["median_cents"] < 10, result
    assert result["voicing_error"] < 0.05, result
    assert TrainingParams().f0_method == "fcpe" == ConversionParams().f0_method


def test_with_backing_track_bleed_fcpe_holds_and_dio_loses_the_melody(melody) -> None:
    """Why the default changed: a separated stem keeps some of the mix; at -20 dB, dio
    follows the accompaniment's bass for much of the song, FCPE stays on the voice."""
    stem = add_accompaniment(melody.audio, -20)
    fcpe, dio = errors(fork_f0(stem, "fcpe"), melody), errors(fork_f0(stem, "dio"), melody)
    assert fcpe["gpe"] < 0.10, fcpe
    assert dio["gpe"] >= 0.10, dio


def test_other_methods_still_reach_the_forks_own_trackers(melody) -> None:
    import so_vits_svc_fork.f0 as fork

    original = fork.compute_f0.svc_pipeline_original
    clip = melody.audio[: 3 * RATE]
    ours = fork_f0(clip, "dio")
    theirs = np.asarray(original(clip, sampling_rate=RATE, hop_length=512, method="dio"))
    np.testing.assert_array_equal(ours, theirs)
    f0.install()  # twice is harmless: still one wrapper around the original
    assert fork.compute_f0.svc_pipeline_original is original


def test_rmvpe_runs_the_same_path_offline_and_refuses_without_weights(
    melody, tmp_path: Path
) -> None:
    clip = melody.audio[: 2 * RATE]
    f0.configure(tmp_path / "empty")
    f0._state["models"].pop("rmvpe", None)
    with pytest.raises(JobFailure) as refused:
        fork_f0(clip, "rmvpe")
    assert refused.value.code == "PITCH_TRACKER_UNAVAILABLE"

    rmvpe.write_tiny(tmp_path / "cache" / f0.RMVPE_DIRNAME)
    f0.configure(tmp_path / "cache")
    try:
        out = fork_f0(clip, "rmvpe")
    finally:
        f0._state["models"].pop("rmvpe", None)
    assert out.shape == (len(clip) // 512,)
    assert np.all((out == 0) | ((out >= f0.F0_MIN) & (out <= f0.F0_MAX)))


def test_rmvpe_architecture_has_the_published_layout() -> None:
    """The real network's size and a few of its state-dict names, so `rmvpe.pt` loads."""
    model = rmvpe.E2E(**rmvpe.REAL_SIZES)
    names = dict(model.state_dict())
    assert names["unet.encoder.bn.weight"].shape == (1,)
    assert names["unet.encoder.layers.0.conv.0.shortcut.weight"].shape == (16, 1, 1, 1)
    assert names["unet.decoder.layers.4.conv1.0.weight"].shape == (32, 16, 3, 3)
    assert names["cnn.weight"].shape == (3, 16, 3, 3)
    assert names["fc.0.gru.weight_ih_l0"].shape == (768, 384)
    assert names["fc.1.weight"].shape == (360, 512)
    params = sum(p.numel() for p in model.parameters())
    assert 88e6 < params < 92e6, params  # rmvpe.pt: ~181 MB of float16


def test_pitch_range_of_a_file_is_its_melodys(melody, tmp_path: Path) -> None:
    from gpu.measures.pitch_range import of_file

    path = tmp_path / "melody.wav"
    sf.write(path, melody.audio, RATE)
    found = of_file(path, "fcpe")
    voiced = melody.f0[melody.f0 > 0]
    assert found is not None and found.method == "fcpe"
    assert found.median_hz == pytest.approx(np.median(voiced), rel=0.03)
    assert found.p5_hz == pytest.approx(np.percentile(voiced, 5), rel=0.05)
    assert found.p95_hz == pytest.approx(np.percentile(voiced, 95), rel=0.05)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(3 * RATE, np.float32), RATE)
    assert of_file(silent, "fcpe") is None


def _range(median: float, spread: float = 1.5) -> PitchRange:
    return PitchRange(
        median_hz=median,
        p5_hz=median / spread,
        p95_hz=median * spread,
        voiced_seconds=60,
        method="fcpe",
    )


def test_an_input_an_octave_below_the_voice_gets_plus_twelve() -> None:
    advice = suggest(_range(110.0), _range(220.0))
    assert advice.suggested_transpose == 12
    assert advice.keeps_key is True
    assert advice.interval_semitones == pytest.approx(12.0)
    assert suggest(_range(440.0), _range(220.0)).suggested_transpose == -12
    assert suggest(_range(225.0), _range(220.0)).suggested_transpose == 0
    # a fifth away, a narrow voice no octave reaches: semitones, and the key changes
    narrow = suggest(_range(147.0), _range(220.0, spread=1.1))
    assert narrow.suggested_transpose == 7 and narrow.keeps_key is False
    # two octaves and more stay within what a job accepts
    assert suggest(_range(40.0), _range(400.0)).suggested_transpose == 24
    assert suggest(_range(110.0), None).suggested_transpose is None


def test_features_training_writes_carry_fcpes_f0(worker_env, tmp_path: Path) -> None:
    """The fork's own feature extraction, asked for `fcpe`, stores FCPE's F0 (interpolated
    through unvoiced frames as the fork does) and the voicing FCPE decided."""
    import os
    import subprocess
    import sys

    dataset = tmp_path / "dataset" / "44k" / "voice"
    dataset.mkdir(parents=True)
    for i in range(5):
        take = sing(SINGERS[i % 4], 3.0, seed=10 + i)
        sf.write(dataset / f"{i}.wav", take.audio, RATE)
    code = f"""
from pathlib import Path
from gpu.measures import f0
from gpu.training.prepare import extract_features, write_config
from gpu.training.presets import TINY
f0.install()
dataset = Path({str(dataset.parent)!r})
config = write_config(dataset, Path({str(tmp_path)!r}), TINY, 6)
extract_features(dataset, config, "fcpe")
"""
    env = worker_env | {"PYTHONPATH": os.getcwd()}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600, cwd=tmp_path)
    import so_vits_svc_fork.f0 as fork
    import torch

    for i in range(5):
        data = torch.load(dataset / f"{i}.wav.data.pt", weights_only=True)
        audio, _ = sf.read(dataset / f"{i}.wav", dtype="float32")
        expected = f0.track(audio, RATE, 512, "fcpe")
        smooth, uv = fork.interpolate_f0(expected.copy())
        size = len(data["f0"])
        np.testing.assert_allclose(data["f0"].numpy(), smooth[:size], rtol=1e-4)
        np.testing.assert_array_equal(data["uv"].numpy(), uv[:size])


def test_workers_record_ranges_and_a_model_version_takes_its_jobs(repo, make_user) -> None:
    """`record_training_pitch` on the running job; `finish_training` then creates a model
    version carrying that range; a conversion records its input's range with the advice; the
    API shows both."""
    from tests.helpers import ready_dataset

    user = make_user()
    profile = repo.create_profile(user.id, "pitch")
    ready_dataset(repo, user.id, profile.id, seconds=120)
    job = repo.start_training(user.id, profile.id, {"preset": "tiny"})
    repo.claim_job("training", job.id)
    voice = _range(220.0)
    repo.record_training_pitch(job.id, voice)
    assert repo.get_job("training", user.id, job.id).pitch_range == voice
    version = uuid4()
    prefix = f"vc/users/{user.id}/profiles/{profile.id}/models/{version}/"
    repo.finish_training(job.id, version, prefix + "model.pth", prefix + "config.json", 10, {})
    model = repo.list_model_versions(user.id, profile.id)[0]
    assert model.pitch_range == voice
    # a finished job is left as it was
    repo.record_training_pitch(job.id, _range(100.0))
    assert repo.get_job("training", user.id, job.id).pitch_range == voice

    conversion = uuid4()
    key = keys.conversion_input_key(user.id, profile.id, conversion, "wav")
    repo.create_conversion(
        user.id,
        profile.id,
        conversion,
        model_version_id=None,
        params={},
        input_key=key,
        input_filename="in.wav",
        input_size_bytes=10,
        upload_expires_at=datetime.now(UTC),
    )
    repo.queue_conversion(conversion)
    repo.claim_job("conversion", conversion)
    advice = suggest(_range(110.0), model.pitch_range)
    repo.record_conversion_pitch(conversion, advice)
    seen = user.client.get(f"/conversions/{conversion}").json()
    assert seen["pitch"]["suggested_transpose"] == 12
    assert seen["pitch"]["voice"]["median_hz"] == 220.0
    listed = user.client.get(f"/profiles/{profile.id}/models").json()
    assert listed[0]["pitch_range"]["median_hz"] == 220.0
