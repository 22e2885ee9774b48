"""`POST /events/r2`: signed pushes of R2 notifications (Standard Webhooks, v1 or v1a)."""

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from endpoints.deps import ServicesDep
from pipeline.errors import PipelineError
from pipeline.services import Services
from pipeline.webhooks import verify
from schemas.events import EventsAccepted, R2Event

router = APIRouter(tags=["events"])
_EVENTS = TypeAdapter(list[R2Event])


@router.post("/events/r2")
async def receive_r2_events(request: Request, services: ServicesDep) -> EventsAccepted:
    """One message or a batch. A replayed webhook id is acknowledged with no second effect;
    the id is remembered only once every message in it was handled, so a failed delivery
    can be retried."""
    body = await _read_capped(request, services.settings.max_event_body_bytes)
    return await run_in_threadpool(_accept, services, dict(request.headers), body)


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refused from its Content-Length before a byte is read when it declares too
    much, and cut off as soon as a stream without one passes the limit: memory stays bounded."""
    too_large = PipelineError("TOO_LARGE", "The event batch is too large.", {"max_bytes": limit})
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise PipelineError("VALIDATION_FAILED", "The Content-Length header is not a number.")
        if int(declared) > limit:
            raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _accept(services: Services, headers: dict[str, str], body: bytes) -> EventsAccepted:
    tolerance = services.settings.webhook_tolerance_seconds
    webhook_id = verify(headers, body, services.webhook_keys, tolerance=tolerance)
    events = _parse(body)
    repo = services.repo
    if repo.event_seen("webhook", webhook_id):
        return EventsAccepted(received=len(events), outcomes=[])
    handler = services.events
    outcomes = [handler.handle(event) for event in events]
    repo.record_event("webhook", webhook_id)
    return EventsAccepted(received=len(events), outcomes=outcomes)


def _parse(body: bytes) -> list[R2Event]:
    try:
        payload: Any = json.loads(body)
    except ValueError as exc:
        raise PipelineError("VALIDATION_FAILED", "The event body is not JSON.") from exc
    items = payload if isinstance(payload, list) else [payload]
    try:
        return _EVENTS.validate_python(items)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()
        ]
        raise PipelineError(
            "VALIDATION_FAILED",
            "The event does not look like an R2 notification.",
            {"errors": problems[:10]},
        ) from exc
