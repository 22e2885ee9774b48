from typing import Literal

from schemas.common import Model


class Health(Model):
    status: Literal["ok", "degraded"]
    database: bool
    storage: bool
