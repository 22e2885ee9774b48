"""What a user may still do this period."""

from datetime import date, datetime

from schemas.common import Model


class QuotaUsage(Model):
    """One counted quota this UTC day or month (its `kind` names it in `svc_private.quotas`)."""

    kind: str
    used: int
    limit: int
    remaining: int
    period_start: date
    resets_at: datetime


class GpuBudget(Model):
    """GPU seconds spent this UTC month by every job, whatever its outcome."""

    used_seconds: float
    limit_seconds: int | None
    remaining_seconds: float | None
    period_start: date
    resets_at: datetime


class Quota(Model):
    """Every counted quota under its name in `quotas` (training, conversion, instant, text,
    and any kind's quota declared later); `training` and `conversion` also sit at the top, as
    they always have, for older clients."""

    training: QuotaUsage
    conversion: QuotaUsage
    quotas: dict[str, QuotaUsage]
    gpu: GpuBudget


class RateDecision(Model):
    """One token bucket's answer: taken, or how long until a token is back."""

    allowed: bool
    remaining: int = 0
    retry_after: int | None = None
