"""The Modal app: `modal deploy modal_app.py`.

Thin wrappers only: every function builds its context from the environment (the Modal
secrets named in modal.toml) and calls into the packages, importing heavy modules inside its
body. Sizes, GPUs, retries and schedules come from modal.toml; requirements from
pyproject.toml, so there is one source for each.
"""

import tomllib
from pathlib import Path
from typing import Any

import modal

from pipeline.manifest import load_manifest

ROOT = Path(__file__).parent
MANIFEST = load_manifest(ROOT / "modal.toml")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
WEB_REQUIREMENTS: list[str] = PROJECT["dependencies"]
GPU_REQUIREMENTS: list[str] = WEB_REQUIREMENTS + PROJECT["optional-dependencies"]["gpu"]
SOURCES = ("schemas", "pipeline", "endpoints")
WORK_DIR = "/work"

app = modal.App(MANIFEST.app.name)
secrets = [modal.Secret.from_name(name) for name in MANIFEST.secrets.names]
work_volume = modal.Volume.from_name(MANIFEST.storage.work_volume, create_if_missing=True)
runtime_env = {
    "VC_DISPATCH": "modal",
    "VC_MODAL_APP_NAME": MANIFEST.app.name,
    "VC_MODAL_ENVIRONMENT": MANIFEST.app.environment,
    "VC_MODEL_CACHE_DIR": MANIFEST.storage.model_cache_dir,
    "VC_WORK_DIR": WORK_DIR,
    "VC_OFFLINE_MODELS": "false",
}

# The web image has no torch: the API cold-starts in well under a second of imports.
web_image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install(*WEB_REQUIREMENTS)
    .env(runtime_env)
    .add_local_python_source(*SOURCES)
)

# The GPU image bakes ContentVec and the pretrained G_0/D_0 in at build time.
gpu_image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("libsndfile1")
    .pip_install(*GPU_REQUIREMENTS)
    .env(runtime_env)
    .add_local_python_source(*SOURCES, "gpu", copy=True)
    .run_commands("python -m gpu models --no-offline")
)

FUNCTION_OPTIONS: dict[str, dict[str, Any]] = {}  # what each function was registered with


def options(name: str, **extra: Any) -> dict[str, Any]:
    spec = MANIFEST.functions[name]
    opts = spec.options() | {"secrets": secrets} | extra
    if spec.schedule:
        opts["schedule"] = modal.Cron(spec.schedule, timezone="UTC")
    FUNCTION_OPTIONS[name] = opts
    return opts


@app.function(image=web_image, **options("web"))
@modal.concurrent(max_inputs=MANIFEST.functions["web"].concurrency or 100)
@modal.asgi_app()
def web() -> Any:
    from endpoints.app import create_app

    return create_app()


@app.function(image=gpu_image, **options("train", volumes={WORK_DIR: work_volume}))
def train(job_id: str) -> str:
    """A retry of the same job resumes from the checkpoints on the work volume."""
    from uuid import UUID

    from gpu.runtime import worker_context

    ctx = worker_context()
    from gpu.train_job import TrainingRun

    try:
        return TrainingRun(ctx.repo, ctx.storage, ctx.settings, UUID(job_id)).run()
    finally:
        work_volume.commit()
        ctx.close()


@app.cls(image=gpu_image, **options("convert"))
class Converter:
    """One container converts many jobs: ContentVec loads once, models stay warm."""

    @modal.enter()
    def load(self) -> None:
        from gpu.runtime import model_cache, worker_context

        self.ctx = worker_context()
        self.cache = model_cache(self.ctx)

    @modal.method()
    def convert(self, job_id: str) -> str:
        from uuid import UUID

        from gpu.convert_job import ConversionRun

        ctx = self.ctx
        return ConversionRun(ctx.repo, ctx.storage, ctx.settings, self.cache, UUID(job_id)).run()


def _services() -> Any:
    from pipeline.services import build_services
    from pipeline.settings import Settings

    return build_services(Settings())


@app.function(image=web_image, **options("probe"))
def probe(file_id: str) -> str | None:
    from uuid import UUID

    from pipeline.probe import probe_dataset_file

    services = _services()
    row = probe_dataset_file(services.repo, services.storage, UUID(file_id))
    return row.status if row else None


@app.function(image=web_image, **options("quota_reset"))
def quota_reset() -> dict[str, int]:
    from pipeline import cron

    return cron.reset_quotas(_services())


@app.function(image=web_image, **options("reaper"))
def reaper() -> list[dict[str, Any]]:
    from pipeline import cron

    return cron.reap(_services())


@app.function(image=web_image, **options("reconciler"))
def reconciler() -> dict[str, Any]:
    from pipeline import cron

    return cron.reconcile(_services())


@app.function(image=web_image, **options("retention"))
def retention() -> dict[str, Any]:
    from pipeline import cron

    return cron.retention(_services())


@app.function(image=web_image, **options("queue_pull"))
def queue_pull() -> dict[str, int]:
    from pipeline import cron

    return cron.pull_queue(_services())
