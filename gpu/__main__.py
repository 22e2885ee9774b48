"""Worker entry point: `python -m gpu train <job_id>` and `python -m gpu models`.

The local dispatcher runs these as child processes; Modal functions call the same code.
"""

import sys
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer

from gpu import logs

logs.setup()
app = typer.Typer(add_completion=False, help="svc-pipeline GPU worker")


def _services():  # noqa: ANN202 - built lazily: pipeline settings come from the environment
    from gpu.weights import use_cache
    from pipeline.db import connect_database
    from pipeline.repository import Repository
    from pipeline.settings import Settings
    from pipeline.storage import Storage

    settings = Settings()
    use_cache(Path(settings.model_cache_dir), settings.offline_models)
    return Repository(connect_database(settings), settings), Storage(settings), settings


@app.command()
def train(job_id: UUID) -> None:
    """Run one training job to its end (or resume it)."""
    repo, storage, settings = _services()  # first: it points the model cache before imports
    from gpu.train_job import TrainingRun

    status = TrainingRun(repo, storage, settings, job_id).run()
    repo.db.close()
    sys.exit(0 if status in {"succeeded", "canceled"} else 1)


@app.command()
def convert(job_ids: list[UUID]) -> None:
    """Run conversion jobs in one process, so the second reuses the loaded models."""
    repo, storage, settings = _services()
    import torch

    from gpu.convert_job import ConversionRun
    from gpu.model_cache import ModelCache

    device = "cuda" if torch.cuda.is_available() else "cpu"
    cache = ModelCache(storage, Path(settings.model_cache_dir) / "voices", device)
    statuses = [ConversionRun(repo, storage, settings, cache, job).run() for job in job_ids]
    repo.db.close()
    sys.exit(0 if all(s in {"succeeded", "canceled"} for s in statuses) else 1)


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
    app()
