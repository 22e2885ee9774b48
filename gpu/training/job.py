"""`TrainingRun(...).run()`: one training job from claim to model version, as a worker runs it.

The job row is the source of truth: a worker that finds its job finished or canceled leaves
it alone; a retried worker on a running job resumes from the checkpoints in the work dir.
"""

import logging
from pathlib import Path
from uuid import UUID, uuid5

import torch

from gpu.errors import JobFailure
from gpu.job_runtime import KINDS, JobRun
from gpu.measures import f0, pitch_range
from gpu.sealed import input_check
from gpu.training import cluster
from gpu.training.evaluate import Evaluation, measure
from gpu.training.prepare import SAMPLE_RATE, prepare, read_held_out
from gpu.training.presets import PRESETS, Preset
from gpu.training.schedule import Schedule
from gpu.training.trainer import export_generator, fit
from gpu.weights import PRETRAINED_DIRNAME
from pipeline import keys
from pipeline.work_dirs import compile_cache_dir
from schemas.jobs import TrainingJobRow, TrainingParams

log = logging.getLogger(__name__)
MODEL_NAMESPACE = UUID("6f1d8a52-1c55-4c1e-9a8e-6d3f0b7f3a10")


def model_version_id(job_id: UUID) -> UUID:
    """Deterministic, so a retried upload lands on the same keys."""
    return uuid5(MODEL_NAMESPACE, f"model:{job_id}")


class TrainingRun(JobRun):
    """Resumes from the checkpoints in its work dir (`<work_dir>/training/<job id>/`), which
    the runtime keeps while a retry may still use it."""

    spec = KINDS["training"]

    def phases(self, job: TrainingJobRow) -> None:
        params = TrainingParams.model_validate(job.params)
        preset = PRESETS[params.preset]
        inputs = self.repo.training_inputs(self.job_id)
        seconds = sum(i.duration_sec for i in inputs)
        if seconds < self.settings.min_dataset_seconds:
            raise JobFailure("DATASET_TOO_SHORT", "The dataset no longer has enough ready audio.")
        total = preset.total_steps(seconds, params.max_steps)
        f0.install(self.settings.model_cache_dir)
        # Feature extraction and the pitch range report no progress of their own.
        with self.heartbeat.kept_alive(self.settings.heartbeat_seconds):
            config = prepare(
                self.storage,
                inputs,
                self.work,
                preset,
                total,
                params.f0_method,
                self.phase,
                check=input_check(self.settings),
                seed=str(self.job_id),
            )
            self._record_pitch(config, params.f0_method)
        self._place_pretrained(preset)
        held_out = read_held_out(self.work)
        if held_out is not None:  # on the job row from here on, retries included
            self.heartbeat.progress["held_out"] = held_out.model_dump()
        self.phase("train")
        s = self.settings
        result = fit(
            config,
            total,
            s.heartbeat_seconds,
            self.heartbeat.send,
            Schedule.from_settings(s),
            compile_cache=compile_cache_dir(s.work_dir),
        )
        self.phase("upload", val_history=result.val_history, **result.summary())
        version = model_version_id(self.job_id)
        user, profile = job.user_id, job.profile_id
        model_key = keys.model_key(user, profile, version)
        config_key = keys.model_config_key(user, profile, version)
        weights = self.scratch / "model.pth"
        size = export_generator(self.work / "model", weights)
        self.storage.upload_file(weights, model_key, "application/octet-stream")
        self.storage.upload_file(config, config_key, "application/json")
        with self.heartbeat.kept_alive(self.settings.heartbeat_seconds):  # timbre retrieval
            key = keys.model_cluster_key(user, profile, version)
            retrieval = cluster.build(self.storage, config, self.scratch, key)
        quality = self._evaluate(job, version, weights, config, params.f0_method, retrieval.path)
        metrics = (
            result.metrics
            | retrieval.metrics
            | quality
            | {
                "steps": result.steps,
                "epochs": result.epochs,
                "dataset_seconds": seconds,
                "preset": preset.name,
                "resumed_from_step": result.resumed_from_step,
                "held_out_seconds": held_out.seconds if held_out else 0.0,
                **result.summary(),
            }
        )
        self.finish(version, model_key, config_key, size, metrics)

    def _evaluate(
        self,
        job: TrainingJobRow,
        version: UUID,
        weights: Path,
        config: Path,
        f0_method: str,
        cluster_model: Path | None = None,
    ) -> dict:
        """The quality report and its preview (`evaluate`); never fails the training."""
        self.phase("evaluate")

        def beat(percent: float) -> None:
            self.phase("evaluate", percent=round(percent, 1))

        def publish(found: Evaluation) -> None:
            for side, path in (("original", found.original), ("converted", found.converted)):
                key = keys.model_preview_key(job.user_id, job.profile_id, version, side)
                self.storage.upload_file(path, key, "audio/wav")

        preview = self.scratch / "preview"
        return measure(weights, config, f0_method, preview, beat, publish, cluster_model)

    def _record_pitch(self, config: Path, method: str) -> None:
        """Where this voice sings, from the F0 its features were built from."""
        import json

        hop = int(json.loads(config.read_text())["data"]["hop_length"])
        dataset = self.work / "dataset" / "44k"
        found = pitch_range.of_features(dataset, hop, SAMPLE_RATE, method)
        self.repo.record_training_pitch(self.job_id, found)

    def _place_pretrained(self, preset: Preset) -> None:
        """Fine-tuning starts from G_0/D_0 (never from scratch for `standard`)."""
        model_dir = self.work / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        if not preset.needs_pretrained or any(model_dir.glob("G_*.pth")):
            return
        source = Path(self.settings.model_cache_dir) / PRETRAINED_DIRNAME
        for name in ("G_0.pth", "D_0.pth"):
            if not (source / name).exists():
                raise JobFailure(
                    "PRETRAINED_MISSING",
                    "The pretrained base model is not installed on this worker.",
                )
            checkpoint = torch.load(source / name, map_location="cpu", weights_only=True)
            checkpoint.update({"iteration": 0, "optimizer": None})
            checkpoint.setdefault("learning_rate", 1e-4)
            torch.save(checkpoint, model_dir / name)
