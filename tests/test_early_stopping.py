"""Held-out pieces and early stopping, without training: the choice of pieces on synthetic
datasets, the fork's file lists rewritten from it, the stopping rule on scripted validation
losses, and the export of the best generator rather than the newest."""

import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gpu.training import held_out
from gpu.training.early_stop import EarlyStopping
from gpu.training.held_out import MIN_TRAIN_PIECES, Piece, choose
from gpu.training.prepare import read_held_out, write_config
from gpu.training.presets import TINY
from gpu.training.trainer import ProgressCallback, export_generator
from gpu.training.validation import best_generator


def _pieces(lengths_by_file: dict[str, list[float]]) -> list[Piece]:
    return [
        Piece(Path(f"/d/{source}_{i * 10:.3f}_{i * 10 + s:.3f}.wav"), s)
        for source, lengths in lengths_by_file.items()
        for i, s in enumerate(lengths)
    ]


def _names(pieces: list[Piece]) -> list[str]:
    return [p.path.name for p in pieces]


# --- which pieces are held out ------------------------------------------------------------


def test_the_choice_is_the_same_for_a_job_whatever_the_listing_order() -> None:
    pieces = _pieces({f"file{k}": [8.0, 9.5, 7.0, 10.0] for k in range(6)})
    first = choose(pieces, "job-1")
    assert _names(choose(list(reversed(pieces)), "job-1").held_out) == _names(first.held_out)
    assert _names(choose(pieces, "job-1").train) == _names(first.train)
    # another job holds out other pieces (the seed decides, not the names' order alone)
    others = {_names(choose(pieces, f"job-{n}").held_out)[0] for n in range(2, 12)}
    assert len(others) > 1


def test_at_least_ten_seconds_in_whole_pieces_from_several_files_never_trained_on() -> None:
    pieces = _pieces({f"file{k}": [6.0, 4.0, 9.0] for k in range(4)})
    split = choose(pieces, "job")
    assert split.held_out_seconds >= held_out.MIN_SECONDS
    assert len({p.source for p in split.held_out}) >= 2
    assert set(split.held_out).isdisjoint(split.train)
    assert set(split.held_out) | set(split.train) == set(pieces)


def test_a_few_percent_of_a_large_dataset() -> None:
    pieces = _pieces({f"file{k}": [9.0] * 20 for k in range(10)})  # 1800 s
    split = choose(pieces, "job")
    share = split.held_out_seconds / 1800
    assert 0.03 <= share < 0.03 + 9.0 / 1800, share
    assert len({p.source for p in split.held_out}) == len(split.held_out), "one per file first"


def test_long_pieces_still_come_from_two_files() -> None:
    """One 10 s piece would reach the target alone; a second file gives one more."""
    split = choose(_pieces({f"file{k}": [10.0] * 9 for k in range(3)}), "job")
    assert len(split.held_out) == 2 and len({p.source for p in split.held_out}) == 2


def test_one_file_still_gives_its_held_out_pieces() -> None:
    split = choose(_pieces({"only": [5.0] * 8}), "job")
    assert split.held_out_seconds >= 10 and len(split.train) == 6


def test_a_dataset_too_small_keeps_enough_to_train() -> None:
    """Five pieces of 3 s: ten seconds cannot be held out; one piece is, four still train."""
    split = choose(_pieces({"a": [3.0, 3.0, 3.0], "b": [3.0, 3.0]}), "job")
    assert len(split.train) == MIN_TRAIN_PIECES and len(split.held_out) == 1
    assert split.held_out_seconds < held_out.MIN_SECONDS


def test_the_forks_lists_are_rewritten_from_the_choice(tmp_path) -> None:
    """`write_config` on real pieces: the validation list is the held-out set, disjoint from
    the training list, recorded in `held_out.json`, and the test list holds nothing else."""
    dataset = tmp_path / "dataset" / "44k"
    (dataset / "voice").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        for start in (0, 5, 10):
            audio = 0.1 * rng.standard_normal(44100 * 4).astype("float32")
            sf.write(dataset / "voice" / f"file{k}_{start:.3f}_{start + 4:.3f}.wav", audio, 44100)
    config_path = write_config(dataset, tmp_path, TINY, 6, seed="job-42")
    config = json.loads(config_path.read_text())
    train = Path(config["data"]["training_files"]).read_text().split()
    val = Path(config["data"]["validation_files"]).read_text().split()
    assert Path(val[0]).exists() and set(train).isdisjoint(val)
    assert len(train) + len(val) == 9, "every piece trains or validates; none is lost"
    assert sorted(Path(v).name for v in val) == read_held_out(tmp_path).names
    record = read_held_out(tmp_path)
    assert record.seconds >= 10 and record.files >= 2 and record.pieces == len(val)
    assert config["train"]["eval_interval"] == len(train) // TINY.batch_size
    again = write_config(dataset, tmp_path, TINY, 6, seed="job-42")
    assert (
        Path(json.loads(again.read_text())["data"]["validation_files"]).read_text().split() == val
    )


# --- when to stop --------------------------------------------------------------------------


def _run(losses: list[float], patience: int, min_delta: float = 0.0) -> EarlyStopping:
    stopping = EarlyStopping(patience, min_delta)
    for n, loss in enumerate(losses, start=1):
        stopping.observe(step=10 * n, epoch=n, loss=loss)
        if stopping.should_stop:
            break
    return stopping


def test_stops_after_patience_steps_without_improvement_and_keeps_the_minimum() -> None:
    losses = [5.0, 4.0, 3.0, 3.4, 3.1, 2.9, 3.0, 3.2, 3.3, 1.0, 0.5]
    stopping = _run(losses, patience=30)  # steps; validations are 10 steps apart here
    assert (stopping.best_loss, stopping.best_step, stopping.best_epoch) == (2.9, 60, 6)
    assert len(stopping.evaluations) == 9, "stopped 30 steps after the best"
    assert stopping.should_stop


def test_patience_zero_never_stops_but_still_tracks_the_best() -> None:
    stopping = _run([3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9], patience=0)
    assert len(stopping.evaluations) == 7 and not stopping.should_stop
    assert stopping.best_step == 20


def test_improvements_smaller_than_min_delta_do_not_count() -> None:
    stopping = _run([3.0, 2.99, 2.98, 2.97, 1.0], patience=30, min_delta=0.05)
    assert stopping.best_loss == 3.0 and len(stopping.evaluations) == 4


def test_a_loss_that_is_not_a_number_is_never_the_best() -> None:
    stopping = _run([math.nan, 4.0, math.nan, 5.0], patience=50)
    assert stopping.best_loss == 4.0 and stopping.since_best == 2


def test_a_resumed_worker_goes_on_from_the_saved_best(tmp_path) -> None:
    path = tmp_path / "state.json"
    first = _run([5.0, 4.0, 4.5], patience=30)
    first.save(path)
    resumed = EarlyStopping.load(path, patience=30, min_delta=0.0)
    resumed.observe(40, 4, 4.2)
    assert not resumed.should_stop and resumed.since_best == 2 and resumed.best_step == 20
    resumed.observe(50, 5, 4.1)
    assert resumed.should_stop, "30 steps without improvement, across attempts"
    assert EarlyStopping.load(tmp_path / "none.json", 2, 0.0).evaluations == []


# --- which generator is exported ------------------------------------------------------------


def _checkpoint(path: Path, value: float, iteration: int) -> None:
    weights = {"dec.weight": torch.full((4, 4), value)}
    torch.save(
        {"model": weights, "iteration": iteration, "learning_rate": 1e-4, "optimizer": {}}, path
    )


def test_the_export_is_the_best_generator_not_the_newest(tmp_path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for epoch in (1, 2, 3):
        _checkpoint(model_dir / f"G_{epoch}.pth", float(epoch), epoch)
    target = tmp_path / "model.pth"
    export_generator(model_dir, target)
    assert torch.load(target, weights_only=True)["iteration"] == 3, "no validation: the newest"

    best_generator(model_dir).parent.mkdir()
    _checkpoint(best_generator(model_dir), 2.0, 2)
    export_generator(model_dir, target)
    exported = torch.load(target, weights_only=True)
    assert exported["iteration"] == 2 and exported["optimizer"] is None
    assert torch.equal(exported["model"]["dec.weight"], torch.full((4, 4), 2.0))


def test_the_best_copy_is_out_of_reach_of_the_forks_cleaning(tmp_path) -> None:
    from so_vits_svc_fork import utils

    for epoch in (1, 2, 3, 4):
        _checkpoint(tmp_path / f"G_{epoch}.pth", float(epoch), epoch)
        _checkpoint(tmp_path / f"D_{epoch}.pth", float(epoch), epoch)
    best = best_generator(tmp_path)
    best.parent.mkdir()
    _checkpoint(best, 1.0, 1)
    utils.clean_checkpoints(tmp_path, n_ckpts_to_keep=2, sort_by_time=True)
    assert best.exists() and not (tmp_path / "G_1.pth").exists()
    assert utils.latest_checkpoint_path(tmp_path, "G_*.pth").name == "G_4.pth"


def test_patience_is_counted_in_steps_whatever_the_validation_schedule() -> None:
    """Validations 100 steps apart: a patience of 250 steps is the third one after the best."""
    stopping = EarlyStopping(patience=250)
    for step, loss in ((100, 3.0), (200, 2.0), (300, 2.5), (400, 2.4)):
        stopping.observe(step, 1, loss)
    assert stopping.steps_since_best == 200 and not stopping.should_stop
    stopping.observe(500, 1, 2.1)
    assert stopping.should_stop and stopping.best_step == 200


def test_cleaning_keeps_the_newest_epochs_by_number_not_by_file_age(tmp_path) -> None:
    """A resume reads the highest-numbered whole pair; a file touched later (a copy, a
    restore) must not make the cleaning delete the newest epoch. The best generator stays."""
    import os

    from gpu.training.validation import clean_checkpoints

    for epoch in (0, 3, 7, 12):
        for side in "GD":
            _checkpoint(tmp_path / f"{side}_{epoch}.pth", float(epoch), epoch)
    old = (tmp_path / "G_12.pth").stat().st_mtime - 100
    os.utime(tmp_path / "G_12.pth", (old, old))  # the newest epoch has the oldest file
    best = best_generator(tmp_path)
    best.parent.mkdir()
    _checkpoint(best, 1.0, 1)
    clean_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "D_12.pth",
        "D_7.pth",
        "G_12.pth",
        "G_7.pth",
    ]
    assert best.exists()
    clean_checkpoints(tmp_path, keep=0)  # 0 keeps everything
    assert len(list(tmp_path.glob("*.pth"))) == 4


def test_the_validation_curve_on_the_job_row_has_no_nan() -> None:
    """Postgres' JSON has no NaN: a loss that is not a number is drawn as a gap."""
    stopping = _run([3.0, math.nan, 2.0], patience=0)
    callback = ProgressCallback(total_steps=100, every_seconds=0, sink=lambda _: True)
    assert callback.validation_curve(stopping) == [[10, 3.0], [20, None], [30, 2.0]]
    json.dumps(callback._validation(type("M", (), {"stopping": stopping})()), allow_nan=False)
