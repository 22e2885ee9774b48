"""R2 event notifications exactly as Cloudflare delivers them to a Queue."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

R2Action = Literal[
    "PutObject", "CopyObject", "CompleteMultipartUpload", "DeleteObject", "LifecycleDeletion"
]
CREATE_ACTIONS = frozenset({"PutObject", "CopyObject", "CompleteMultipartUpload"})


class _Tolerant(BaseModel):
    """Cloudflare may add fields; unknown ones are kept, required ones must be there."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class R2Object(_Tolerant):
    key: str = Field(min_length=1, max_length=1024)
    size: int | None = Field(None, ge=0)
    etag: str | None = Field(None, alias="eTag")


class CopySource(_Tolerant):
    bucket: str
    object: str


class R2Event(_Tolerant):
    account: str
    action: R2Action
    bucket: str = Field(min_length=1)
    object: R2Object
    event_time: datetime = Field(alias="eventTime")
    copy_source: CopySource | None = Field(None, alias="copySource")

    @property
    def is_create(self) -> bool:
        return self.action in CREATE_ACTIONS


class EventOutcome(BaseModel):
    """What the handler did with one message."""

    key: str
    outcome: Literal["probed", "queued", "deleted", "duplicate", "ignored", "no_op"]
    reason: str | None = None


class EventsAccepted(BaseModel):
    received: int
    outcomes: list[EventOutcome]
