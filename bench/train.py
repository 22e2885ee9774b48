"""The pipeline's training job next to the fork's own CLI doing the same training, same run.

Both start from the same six synthetic clips and the `tiny` preset's config: the pipeline as
a worker process (`python -m gpu train`: download → prepare → features → train → upload →
evaluate), the fork as its CLI stages (`svc pre-split`, `pre-resample`, `pre-config`,
`pre-hubert`, `train`). Prints wall time, the ratio (goal ≤ 1.1), seconds per step, peak RSS,
the time the job spent validating on its held-out pieces (the fork CLI validates each epoch
too, on its own two pieces, without a loss), and the quality report's share of the job (its
own measured seconds, the ratio with and without it; goal ≤ 10 % of a standard training,
where training dominates far more than here).

    .venv/bin/python -m bench.train --steps 12
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from uuid import uuid4

import soundfile as sf

from bench.common import prepare_offline_models, run_measured, throwaway_stack
from gpu.training.presets import TINY, apply
from pipeline import keys
from pipeline.local.stack import REPO_ROOT
from pipeline.probe import probe_dataset_file
from pipeline.services import build_services
from pipeline.settings import as_env
from tests.audio import voice


def clips(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(6):
        path = folder / f"take{i}.wav"
        sf.write(path, voice(5.0, f0=180 + 25 * i, seed=i), 44100)
        paths.append(path)
    return paths


def pipeline_run(root: Path, steps: int) -> tuple[float, float, dict]:
    with throwaway_stack(root) as (stack, settings):
        services = build_services(settings)
        repo, storage = services.repo, services.storage
        user = stack.ensure_user("bench@localhost")
        profile = repo.create_profile(user, "bench")
        for path in clips(root / "clips"):
            file_id = uuid4()
            key = keys.dataset_key(user, profile.id, file_id, path.name)
            size = path.stat().st_size
            repo.register_upload(user, profile.id, file_id, key, path.name, "audio/wav", size)
            storage.upload_file(path, key, "audio/wav")
            probe_dataset_file(repo, storage, file_id)
        env = os.environ | as_env(settings)
        prepare_offline_models(env)
        job = repo.start_training(user, profile.id, {"preset": "tiny", "max_steps": steps})
        seconds, rss = run_measured(
            [sys.executable, "-m", "gpu", "train", str(job.id)], env, REPO_ROOT
        )
        version = repo.list_model_versions(user, profile.id)[0]
        services.close()
        return seconds, rss, version.metrics


def fork_cli_run(root: Path, steps: int, models: Path) -> tuple[float, float]:
    work = root / "cli"
    clips(work / "in")
    env = os.environ | {"HF_HOME": str(models / "huggingface"), "HF_HUB_OFFLINE": "1"}
    svc = str(Path(sys.executable).with_name("svc"))
    total, peak = 0.0, 0.0
    stages = [
        [svc, "pre-split", "-i", "in", "-o", "dataset_raw/voice", "-n", "1", "-f", "0.5",
         "-ho", "0.1"],
        [svc, "pre-resample", "-i", "dataset_raw", "-o", "dataset/44k", "-n", "1",
         "-f", "0.1", "-ho", "0.05"],
        [svc, "pre-config", "-i", "dataset/44k", "-f", "filelists/44k",
         "-c", "configs/44k/config.json", "-t", "so-vits-svc-4.0v1"],
        [svc, "pre-hubert", "-i", "dataset/44k", "-c", "configs/44k/config.json", "-n", "1"],
        [svc, "train", "-c", "configs/44k/config.json", "-m", "logs/44k", "-nt"],
    ]  # fmt: skip
    for stage in stages:
        if stage[1] == "pre-hubert":
            _tiny_config(work / "configs/44k/config.json", steps)
        seconds, rss = run_measured(stage, env, work)
        total, peak = total + seconds, max(peak, rss)
    return total, peak


def _tiny_config(path: Path, steps: int) -> None:
    config = json.loads(path.read_text())
    items = len(Path(path.parents[2] / config["data"]["training_files"]).read_text().split())
    apply(config, TINY, max(1, items // TINY.batch_size), steps)
    config["model"]["pretrained"] = {}  # offline: no G_0/D_0 download, as in the pipeline
    path.write_text(json.dumps(config, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ours, our_rss, metrics = pipeline_run(root, args.steps)
        cli, cli_rss = fork_cli_run(root, args.steps, root / "models")
    steps = metrics["steps"]
    print(f"tiny preset, {steps} steps, 6 clips x 5 s, CPU, one run each\n")
    row = "{:<42}{:8.2f} {}".format
    print(row("pipeline job (download … evaluate)", ours, f"s   peak RSS {our_rss:6.0f} MB"))
    print(row("fork CLI stages (split … train)", cli, f"s   peak RSS {cli_rss:6.0f} MB"))
    print(row("ratio pipeline / CLI", ours / cli, "x"))
    print(row("pipeline seconds per step (whole job)", ours / steps, "s"))
    validation = metrics.get("validation_seconds", 0.0)
    print(
        f"held-out validation in the job         {validation:7.1f} s   "
        f"({validation / ours:.1%} of the job; {metrics.get('validations', 0)} validations on "
        f"{metrics.get('held_out_seconds', 0):.1f} s held out; stopped: "
        f"{metrics.get('stop_reason')}, best at step {metrics.get('best_step')})"
    )
    quality = metrics.get("quality")
    if quality is None:
        print(f"quality report: none ({metrics.get('quality_error')})")
        return
    q = quality["seconds"]
    share = f"s   {100 * q / ours:.1f} % of the job"
    print(row("quality step (evaluate: convert, measure)", q, share))
    print(row("ratio pipeline / CLI without the report", (ours - q) / cli, "x"))
    pieces = f"s in {quality['held_out_pieces']} pieces"
    print(row("held-out audio measured", quality["held_out_seconds"], pieces))


if __name__ == "__main__":
    main()
