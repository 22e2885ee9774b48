"""Worker entry point: `python -m gpu train <job_id>`, `python -m gpu convert <job_id>…`,
`python -m gpu singers <profile_id>`, `python -m gpu separate <job_id>`,
`python -m gpu instant <job_id>…` and
`python -m gpu models`. The local dispatcher runs
these as child processes; the Modal functions call the same code."""

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from gpu import logs

if TYPE_CHECKING:
    from gpu.runtime import WorkerContext

logs.setup()
app = typer.Typer(add_completion=False, help="svc-pipeline GPU worker")


class Terminated(BaseException):
    """SIGTERM, the local dispatcher's cancel (pipeline/dispatch.py), raised where the worker
    is, as Modal raises `InputCancellation` in a container: the job's exit path runs, so a
    canceled training's work dir goes (gpu/training/job.py) instead of dying with the process."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


signal.signal(signal.SIGTERM, _terminate)


def _run_jobs(runs: "Callable[[WorkerContext], list[str]]") -> None:
    """The worker context first (it points the model cache before training or conversion
    code is imported), then the runs; exit 0 when every job succeeded or was canceled."""
    from gpu.runtime import worker_context

    ctx = worker_context()
    try:
        statuses = runs(ctx)
    finally:
        ctx.close()
    sys.exit(0 if all(s in {"succeeded", "canceled"} for s in statuses) else 1)


@app.command()
def train(job_id: UUID) -> None:
    """Run one training job to its end (or resume it)."""

    def run(ctx: "WorkerContext") -> list[str]:
        from gpu.training.job import TrainingRun

        return [TrainingRun(ctx.repo, ctx.storage, ctx.settings, job_id).run()]

    _run_jobs(run)


@app.command()
def convert(job_ids: list[UUID]) -> None:
    """Run conversion jobs in one process, so later ones reuse the loaded models."""

    def run(ctx: "WorkerContext") -> list[str]:
        from gpu.conversion.job import ConversionRun
        from gpu.runtime import model_cache

        cache = model_cache(ctx)
        return [ConversionRun(ctx.repo, ctx.storage, ctx.settings, cache, j).run() for j in job_ids]

    _run_jobs(run)


@app.command()
def speak(job_ids: list[UUID]) -> None:
    """Speak text jobs in their voices in one process (the voices stay loaded)."""

    def run(ctx: "WorkerContext") -> list[str]:
        from gpu.runtime import model_cache
        from gpu.text.job import TextRun

        cache = model_cache(ctx)
        return [TextRun(ctx.repo, ctx.storage, ctx.settings, cache, j).run() for j in job_ids]

    _run_jobs(run)


@app.command()
def singers(profile_id: UUID) -> None:
    """Embed the profile's new ready files and refresh its one-singer check."""
    from gpu.measures.singers import check_profile
    from gpu.runtime import worker_context

    ctx = worker_context()
    try:
        check_profile(ctx.repo, ctx.storage, profile_id)
    finally:
        ctx.close()


@app.command()
def separate(job_id: UUID) -> None:
    """Separate a full-mix dataset file's vocal into a dataset file of its own."""

    def run(ctx: "WorkerContext") -> list[str]:
        from gpu.separation.job import SeparationRun

        return [SeparationRun(ctx.repo, ctx.storage, ctx.settings, job_id).run()]

    _run_jobs(run)


@app.command()
def instant(job_ids: list[UUID]) -> None:
    """Run instant conversions (Seed-VC from a reference) in one process, the model loaded once."""

    def run(ctx: "WorkerContext") -> list[str]:
        from gpu.instant.job import InstantRun

        return [InstantRun(ctx.repo, ctx.storage, ctx.settings, j).run() for j in job_ids]

    _run_jobs(run)


@app.command()
def models(
    offline: Annotated[bool | None, typer.Option(help="tiny offline weights")] = None,
) -> None:
    """Prepare the weights training and conversion load (ContentVec, pretrained G_0/D_0)."""
    from gpu.weights import prepare
    from pipeline.settings import Settings

    settings = Settings()
    prepare(Path(settings.model_cache_dir), settings.offline_models if offline is None else offline)


if __name__ == "__main__":
    try:
        app()
    except Terminated:
        sys.exit(128 + signal.SIGTERM)
