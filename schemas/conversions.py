"""Conversion requests and the answers that carry upload and download links."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from schemas.common import Request
from schemas.jobs import ConversionJob, ConversionParams


class ConversionRequest(Request):
    filename: str = Field(min_length=1, max_length=1000)
    content_type: str = Field(min_length=1, max_length=200)
    size_bytes: int
    model_version_id: UUID | None = None  # the profile's active model when omitted
    params: ConversionParams = Field(default_factory=ConversionParams)


class InputUpload(BaseModel):
    upload_url: str
    headers: dict[str, str]
    expires_at: datetime


class ConversionTicket(BaseModel):
    job: ConversionJob
    upload: InputUpload


class DownloadLink(BaseModel):
    url: str
    filename: str
    expires_in: int
