"""The trainer's step count and bookkeeping with the real fork on the tiny model, in process:
the number of batches a training runs, the Trainer's cuDNN setting, validation on a schedule
in steps on a fixed, batched held-out set, and checkpoints (full on a time interval and at the
end, the generator alone when it improves)."""

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from gpu.training.trainer import fit
from tests.audio import voice

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a shared, loaded CPU


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Six pieces from three files with their features, the tiny preset's config: shared by
    the tests, each of which trains into its own model dir."""
    from gpu.measures import f0
    from gpu.training.prepare import extract_features, write_config
    from gpu.training.presets import TINY
    from gpu.weights import write_tiny_contentvec
    from tests.conftest import MODEL_CACHE

    write_tiny_contentvec(MODEL_CACHE)
    f0.install(MODEL_CACHE)
    work = tmp_path_factory.mktemp("prepared")
    dataset = work / "dataset" / "44k"
    (dataset / "voice").mkdir(parents=True)
    for i in range(8):  # four dataset files, two pieces each
        name = f"file{i // 2}_{i % 2 * 5:.3f}_{i % 2 * 5 + 5:.3f}.wav"
        sf.write(dataset / "voice" / name, voice(5.0, f0=180 + 25 * i, seed=i)[:, 0], 44100)
    config_path = write_config(dataset, work, TINY, 40, seed="job")
    extract_features(dataset, config_path, "dio")
    return config_path


def _config(prepared: Path, tmp_path: Path, **train) -> Path:
    config = json.loads(prepared.read_text())
    config["model_dir"] = str(tmp_path / "model")
    config["train"].update(train)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_n_requested_steps_run_n_batches_and_the_first_reported_step_is_1(
    prepared, tmp_path, monkeypatch
) -> None:
    """The fork's `total_batch_idx` is one ahead when a batch ends: 4 steps asked ran 3
    batches and the first step reported was 2."""
    from gpu.training.validation import ValidatedVits

    calls = []
    original = ValidatedVits.training_step

    def counted(self, batch, batch_idx):
        calls.append(batch_idx)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ValidatedVits, "training_step", counted)
    reported = []

    def sink(progress) -> bool:
        reported.append(progress["step"])
        return True

    result = fit(_config(prepared, tmp_path), 4, 0.0, sink)
    assert len(calls) == 4, calls
    assert result.steps == 4
    assert reported[0] == 1 and reported[-1] == 4, reported


class _Built(Exception):
    pass


def test_the_trainer_never_autotunes_cudnn(prepared, tmp_path, monkeypatch) -> None:
    """Pieces vary in length, so cuDNN's benchmark mode autotunes every new shape (137 GiB
    and 53 s before the first step on an H200): the Trainer is built with it off, even
    where CUDA is available."""

    import gpu.training.trainer

    seen = {}

    class Recorder:
        def __init__(self, *args, **kwargs) -> None:
            seen.update(kwargs)
            raise _Built

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu.training.trainer.pl, "Trainer", Recorder)
    with pytest.raises(_Built):
        fit(_config(prepared, tmp_path), 4, 0.0, lambda _: True)
    assert seen["benchmark"] is False


def test_validation_on_a_step_schedule_and_one_full_checkpoint_at_the_end(
    prepared, tmp_path, monkeypatch
) -> None:
    """Validation every 2 steps (3 steps an epoch here, so not on epoch ends) on the batched
    held-out set; with the checkpoint interval not reached, G+D with optimizers are written
    once, at the end, whole; the best generator alone beside them."""
    from gpu.training.schedule import Schedule
    from gpu.training.validation import ValidatedVits, best_generator

    saves = []
    original = ValidatedVits.save_checkpoints

    def counted(self, adjust=1):
        saves.append(adjust)
        return original(self, adjust)

    monkeypatch.setattr(ValidatedVits, "save_checkpoints", counted)
    config = _config(prepared, tmp_path)
    schedule = Schedule(validate_every=2, checkpoint_seconds=3600)
    result = fit(config, 5, 0.0, lambda _: True, schedule)
    assert [step for step, _ in result.val_history] == [2, 4, 5], "every 2 steps and the end"
    assert result.metrics["validations"] == 3
    assert saves == [0], "one full checkpoint, at the end"
    model = tmp_path / "model"
    assert sorted(p.name for p in model.glob("*.pth")) == ["D_2.pth", "G_2.pth"]
    assert not list(model.rglob("*.part"))
    best = torch.load(best_generator(model), weights_only=True)
    assert best["optimizer"] is None and best["step"] == result.best_step


def test_a_resumed_training_counts_on_from_its_checkpoint(prepared, tmp_path) -> None:
    """A checkpoint each epoch (3 steps); a second attempt asked for 5 steps in all resumes
    at step 3 and trains 2 more batches, validated at the end."""
    from gpu.training.schedule import Schedule

    config = _config(prepared, tmp_path)
    every_epoch = Schedule(validate_every=100, checkpoint_seconds=0)
    first = fit(config, 3, 0.0, lambda _: True, every_epoch)
    assert first.steps == 3 and (tmp_path / "model" / "G_1.pth").exists()
    second = fit(config, 5, 0.0, lambda _: True, every_epoch)
    assert (second.resumed_from_step, second.steps) == (3, 5)
    assert [step for step, _ in second.val_history] == [3, 5], "the first attempt's kept"
