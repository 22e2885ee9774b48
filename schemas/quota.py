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


class Quota(Model):
    training: QuotaUsage
    conversion: QuotaUsage
