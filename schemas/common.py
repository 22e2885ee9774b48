"""Shared pieces of the contract."""

from typing import Any

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base for bodies read from the database: unknown columns are ignored, not echoed."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)


class Request(BaseModel):
    """Base for bodies a client sends: unknown fields are refused, so typos do not pass."""

    model_config = ConfigDict(extra="forbid")


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorBody(BaseModel):
    """Every error response: `{"error": {"code", "message", "details"}}`."""

    error: ErrorInfo
