"""Every knob of the pipeline, read from the environment (prefix ``VC_``) or a ``.env`` file.

Defaults are the product's decisions (docs/architecture.md, "Limits"); operators override
them per deployment.
"""

import json
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VC_", env_file=".env", extra="ignore")

    # Database: `postgres` talks to Postgres directly (local stack, tests, Supabase's pooler);
    # `supabase` goes through PostgREST's rpc with the service-role key.
    db_transport: Literal["postgres", "supabase"] = "postgres"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # The login of the worker processes this process starts (train, convert, the probe): the
    # `svc_worker` role, which may execute only the worker functions. Unset: `database_url`.
    # A worker container is simply given the worker login as its `database_url`.
    worker_database_url: str | None = None
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)

    # Supabase project: its URL locates the JWKS and names the token issuer.
    supabase_url: str = "http://127.0.0.1:54321"
    supabase_service_role_key: SecretStr | None = None
    jwt_issuer: str | None = None  # defaults to {supabase_url}/auth/v1
    jwt_audience: str = "authenticated"
    jwt_secret: SecretStr | None = None  # legacy HS256 secret; unset disables HS256
    jwks_cache_seconds: int = Field(600, ge=0)
    # An unknown `kid` refetches the JWKS at most this often; a fetch gives up after the timeout.
    jwks_refetch_seconds: float = Field(30, ge=0)
    jwks_timeout_seconds: float = Field(3, gt=0)
    # Supabase anonymous sign-ins (`is_anonymous`) would let one person multiply quotas.
    allow_anonymous_users: bool = False

    # Object storage (Cloudflare R2 in production, SeaweedFS locally).
    s3_endpoint_url: str = "http://127.0.0.1:8333"
    s3_public_endpoint_url: str | None = None  # host the browser reaches, if different
    s3_bucket: str = "svc-pipeline"
    s3_access_key_id: str = "local"
    s3_secret_access_key: SecretStr = SecretStr("local-secret")
    s3_region: str = "auto"
    # A worker's upload (a trained model, a conversion's output) keeps trying this long while
    # the store is unreachable or answers 5xx, so an incident of a minute does not fail a job
    # at its end; well under VC_HEARTBEAT_TIMEOUT_SECONDS.
    upload_patience_seconds: float = Field(120, ge=0)

    cors_origins: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000"])

    # Limits (docs/architecture.md, "Limits").
    allowed_formats: list[str] = Field(default_factory=lambda: ["wav", "flac", "mp3"])
    max_file_bytes: int = Field(200 * MB, gt=0)
    max_dataset_file_seconds: float = Field(6 * 60, gt=0)
    min_dataset_seconds: float = Field(3 * 60, ge=0)
    max_dataset_seconds: float = Field(12 * 60, gt=0)
    max_conversion_seconds: float = Field(10 * 60, gt=0)
    max_conversion_bytes: int = Field(200 * MB, gt=0)
    trainings_per_month: int = Field(3, ge=0)
    conversions_per_day: int = Field(3, ge=0)
    max_active_trainings: int = Field(1, ge=1)
    max_active_conversions: int = Field(1, ge=1)
    # Separations dispatched or running per person; the rest of an album waits in line.
    max_active_separations: int = Field(2, ge=1)
    # Instant voice (gpu/instant/): a 10-30 s reference, counted apart from conversions.
    instant_conversions_per_day: int = Field(10, ge=0)
    max_active_instant: int = Field(1, ge=1)
    min_reference_seconds: float = Field(10.0, ge=0)
    max_reference_seconds: float = Field(30.0, gt=0)
    # Seed-VC's flow-matching steps (its CLI's default 30) and pitch tracker ("rmvpe", what it
    # was trained with; offline stacks use "fcpe", whose real weights ship in its wheel).
    instant_diffusion_steps: int = Field(30, ge=1, le=100)
    instant_f0_method: Literal["rmvpe", "fcpe"] = "rmvpe"
    max_profiles: int = Field(20, ge=1)
    max_dataset_files: int = Field(100, ge=1)
    upload_url_seconds: int = Field(5 * 60, gt=0)
    download_url_seconds: int = Field(5 * 60, gt=0)

    # Probe: what a dataset file must be to count (beyond the limits above).
    min_dataset_file_seconds: float = Field(2.0, ge=0)
    min_sample_rate: int = Field(16000, gt=0)
    max_channels: int = Field(2, ge=1)
    # One-singer check: a file whose voice is less similar than this (cosine, Resemblyzer)
    # to the dataset's other files is flagged as probably another person.
    singer_min_similarity: float = Field(0.75, ge=-1, le=1)
    singer_check: bool = True  # start the check after each ready file (a torch worker)
    # A profile's check is one worker at a time; a check asked for or started longer ago
    # than this is taken for dead, and the next request spawns a fresh worker.
    singer_check_stale_seconds: float = Field(15 * 60, gt=0)
    max_probe_attempts: int = Field(3, ge=1)  # then the file is rejected with PROBE_FAILED

    # GPU budget: worker seconds per user per UTC month, whatever the jobs' outcomes
    # (`quota_overrides.gpu_seconds_per_month` overrides it per user).
    gpu_seconds_per_month: int = Field(8 * 3600, ge=0)

    # Rate limits (token buckets in the database): a burst, refilled at a rate per minute.
    rate_upload_burst: int = Field(30, ge=1)
    rate_upload_per_minute: float = Field(30, ge=0)
    rate_job_start_burst: int = Field(10, ge=1)
    rate_job_start_per_minute: float = Field(6, ge=0)
    rate_cancel_burst: int = Field(20, ge=1)
    rate_cancel_per_minute: float = Field(20, ge=0)
    rate_public_burst: int = Field(120, ge=1)  # per client IP, on unauthenticated routes
    rate_public_per_minute: float = Field(120, ge=0)
    # The header the edge puts the client's address in (its last value is used); unset: the
    # connection's peer address.
    client_ip_header: str | None = None
    scratch_dir: str | None = None  # temp files; the system default when unset

    # Events: Standard Webhooks keys for POST /events/r2 (either or both).
    webhook_secret: SecretStr | None = None  # whsec_… (v1, HMAC-SHA256)
    webhook_public_key: str | None = None  # whpk_… (v1a, Ed25519)
    webhook_tolerance_seconds: int = Field(300, ge=1)
    # How R2 notifications arrive in production: `push` (the relay Worker signs and POSTs
    # them; the web endpoint needs a webhook key) or `pull` (the queue_pull cron fetches
    # them with the VC_CF_* settings).
    event_delivery: Literal["push", "pull"] = "push"
    max_event_body_bytes: int = Field(1 * MB, gt=0)

    # Cloudflare Queue HTTP pull (the "Modal alone" path; no relay Worker needed).
    cf_account_id: str | None = None
    cf_queue_id: str | None = None
    cf_api_token: SecretStr | None = None
    cf_api_base_url: str = "https://api.cloudflare.com/client/v4"

    # Where background work runs: `inline` (in the caller; tests), `thread` (the local
    # stack), `modal` (production, wired by the deployment).
    dispatch: Literal["inline", "thread", "modal"] = "thread"
    modal_app_name: str = "svc-pipeline"
    modal_environment: str | None = None
    # With `modal`, start-up refuses settings still at a local default (pipeline/production.py);
    # this accepts hosts on this machine only: a deployment's code run against a local stack.
    allow_local_urls: bool = False

    # GPU workers: where weights are cached, where jobs keep resumable work (a Modal Volume
    # in production), whether weights come from the network or are built tiny offline.
    model_cache_dir: str = ".local/models"
    work_dir: str = ".local/work"
    # A budget-stopped training keeps its work dir (checkpoints, and the recordings it was
    # made from) this long, to resume once requeued; then the sweep removes it.
    work_dir_grace_days: float = Field(7.0, ge=0)
    offline_models: bool = True
    heartbeat_seconds: float = Field(3.0, gt=0)
    # Training bookkeeping (gpu/training/schedule.py):
    # validation on the held-out pieces every so many
    # steps (and at the end); a full resume checkpoint (G, D, optimizers, ~1 GB for the
    # standard model) at the first epoch end this many seconds after the last one (0: every
    # epoch) and at the end. Early stopping: a training ends once this many steps went by
    # without a validation lowering the best held-out loss by more than the min delta; 0 trains
    # to the preset's cap. The best generator is exported either way.
    validate_every_steps: int = Field(100, ge=1)
    checkpoint_seconds: float = Field(300.0, ge=0)
    early_stop_patience_steps: int = Field(1000, ge=0)
    early_stop_min_delta: float = Field(0.0, ge=0)

    # Maintenance.
    reconcile_after_seconds: int = Field(180, ge=0)
    # A queued job with no worker this long (the API died between its row and the spawn) is
    # launched by the reaper's cron (`take_unlaunched_jobs`); a spawn takes seconds.
    unlaunched_after_seconds: int = Field(120, ge=0)
    heartbeat_timeout_seconds: int = Field(10 * 60, gt=0)
    queued_timeout_seconds: int = Field(2 * 60 * 60, gt=0)

    # Retention (pipeline/retention.py; the rules are in SQL). A voice is personal data.
    conversion_retention_days: int = Field(30, ge=1)
    deleted_profile_grace_days: int = Field(7, ge=0)
    # Objects no row claims are deleted once this old (a worker uploads before it records).
    orphan_grace_seconds: int = Field(24 * 60 * 60, ge=0)
    retention_batch: int = Field(1000, ge=1)  # objects deleted per queue round

    # Text in a voice (gpu/text/, schemas/text.py). The engine that speaks the base speech:
    # `kokoro` in production (its two model files baked into `<model_cache_dir>/kokoro` at
    # image build), `piper` with the packaged voice for tests and local use (its voice's data
    # is not for commercial use), `espeak` (robotic; many languages).
    text_engine: Literal["kokoro", "piper", "espeak"] = "kokoro"
    text_max_chars: int = Field(500, ge=1, le=5000)
    texts_per_day: int = Field(50, ge=0)  # its own counted quota, beside conversions'
    max_active_texts: int = Field(1, ge=1)

    @property
    def issuer(self) -> str:
        return self.jwt_issuer or f"{self.supabase_url.rstrip('/')}/auth/v1"

    @property
    def jwks_url(self) -> str:
        return f"{self.supabase_url.rstrip('/')}/auth/v1/.well-known/jwks.json"

    @property
    def quota_limits(self) -> dict[str, int]:
        """Each counted quota's default limit, by its name in `svc_private.quotas`: /quota
        lists the quotas named here (tests/test_quota.py checks every declared one is)."""
        return {
            "training": self.trainings_per_month,
            "conversion": self.conversions_per_day,
            "instant": self.instant_conversions_per_day,
            "text": self.texts_per_day,
        }

    @property
    def worker_login_url(self) -> str:
        """The database URL a worker connects with (postgres transport)."""
        return self.worker_database_url or self.database_url


@lru_cache
def get_settings() -> Settings:
    return Settings()


def as_env(settings: Settings) -> dict[str, str]:
    """The settings as `VC_*` variables, so a worker process sees exactly what its parent saw."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"VC_{name.upper()}"] = text
    return env


def as_worker_env(settings: Settings) -> dict[str, str]:
    """The settings a worker process is started with: the worker login is its only login."""
    env = as_env(settings)
    env["VC_DATABASE_URL"] = settings.worker_login_url
    return env
