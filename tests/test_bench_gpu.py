"""`bench/gpu.py --small` runs end to end on a CPU (tiny sizes), so the GPU bench never rots:
every section (song mode, the instant tier, text in a voice and a training lever against
today's included) and the profile's breakdown are in its JSON. No timing is asserted, only
that each was measured (and that the fused optimizer's held-out loss is today's)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Real fork training and the separation, pitch and conversion models, tiny, on a shared CPU.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_bench_runs_small_on_a_cpu(tmp_path) -> None:
    out = tmp_path / "bench.json"
    env = os.environ | {"PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu",
            "--small",
            "--profile",
            "--json",
            str(out),
            "--only",
            "separation",
            "pitch",
            "training",
            "song",
            "instant",
            "text",
            "levers",
            "--lever",
            "fused AdamW",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=1700,
    )
    assert run.returncode == 0, run.stderr.decode()[-4000:]
    found = json.loads(out.read_text())
    assert found["small"] is True and found["device"] == "cpu"
    assert found["separation"]["warm_s"] > 0
    assert {"fcpe", "rmvpe"} <= found["pitch"].keys()
    conversion = found["conversion"]
    assert conversion["warm_s"] > 0 and conversion["warm_generator_s"] > 0
    training = found["training"]
    assert training["steps"] == 4 and training["validations"] >= 2
    for key in (
        "train_only_s_per_step",
        "all_in_s_per_step",
        "first_step_seconds",
        "validation_seconds",
        "checkpoint_seconds",
        "all_in_over_train_only",
        "old_all_in_over_train_only",
        "validation_one_piece_at_a_time_s",
    ):
        assert training[key] > 0, key  # fmt: skip
    assert set(training["projected_minutes"]) == {"1000", "2000", "200"}
    parts = found["profile"]["parts"]
    assert {"generator", "discriminator", "losses", "backward", "optimizer"} <= parts.keys()
    assert all(parts[p]["host_ms"] > 0 for p in ("generator", "discriminator", "optimizer"))
    song = found["song"]
    assert all(song[f"warm_{p}_s"] > 0 for p in ("separate", "to_mono", "convert", "mix"))
    assert [line["seconds_of_audio"] for line in found["instant"]["inputs"]] == [3.0]
    assert set(found["text"]) == {"50", "100", "500"}
    assert all(line["audio_seconds"] > 1 for line in found["text"].values())
    assert "training: train-only" in run.stdout.decode()
    levers = found["levers"]  # each in a process of its own, as a new container
    assert set(levers) == {"fp32 (today)", "fused AdamW"}
    assert all(lever["first_step_seconds"] > 0 for lever in levers.values())
    today, fused = levers["fp32 (today)"]["val_loss"], levers["fused AdamW"]["val_loss"]
    assert fused == pytest.approx(today, rel=1e-4)
