"""What a user may still do this period."""

from datetime import date, datetime
from typing import Literal

from schemas.common import Model


class QuotaUsage(Model):
    kind: Literal["training", "conversion"]
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
    training: QuotaUsage
    conversion: QuotaUsage
    gpu: GpuBudget


class RateDecision(Model):
    """One token bucket's answer: taken, or how long until a token is back."""

    allowed: bool
    remaining: int = 0
    retry_after: int | None = None
