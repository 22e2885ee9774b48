"""What a worker process needs, built from the environment. Call `worker_context()` before
importing training or conversion code: it points the model cache first (huggingface_hub
reads its location once, at import)."""

from dataclasses import dataclass
from pathlib import Path

from gpu.weights import use_cache
from pipeline import redact
from pipeline.db import connect_database
from pipeline.production import require_production_ready
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import Storage


@dataclass
class WorkerContext:
    repo: Repository
    storage: Storage
    settings: Settings

    def close(self) -> None:
        self.repo.db.close()


def worker_context(settings: Settings | None = None) -> WorkerContext:
    """Connects as the worker login; refuses unsafe production settings first."""
    settings = settings or Settings()
    require_production_ready(settings, "worker")
    redact.install()  # no log line of a worker names a person (pipeline/redact.py)
    use_cache(Path(settings.model_cache_dir), settings.offline_models)
    db = connect_database(settings, worker=True)
    return WorkerContext(Repository(db, settings), Storage(settings), settings)


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_cache(ctx: WorkerContext):  # noqa: ANN201 - torch-side type, imported lazily
    from gpu.conversion.model_cache import ModelCache

    return ModelCache(ctx.storage, Path(ctx.settings.model_cache_dir) / "voices", device())
