"""`modal.toml`, typed: what the Modal app file deploys, checked before anything is built,
so a typo fails with a message naming the field instead of a surprise in production."""

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

REQUIRED_FUNCTIONS = (
    "web", "train", "convert", "probe", "quota_reset", "reaper", "reconciler", "queue_pull",
    "retention",
)  # fmt: skip
GPU_TYPES = {"T4", "L4", "A10G", "A100", "A100-40GB", "A100-80GB", "L40S", "H100", "H200", "B200"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppSection(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    environment: str = "main"


class SecretsSection(_Strict):
    names: list[str] = Field(min_length=1)


class StorageSection(_Strict):
    bucket: str = Field(min_length=3)
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
