"""The OpenAPI document as the contract, for every router at once.

FastAPI documents a route's success and its validation errors; this adds every other status
an operation can answer, each with the one error body, and the constraints that depend on
the deployment's settings (the size limits and allowed formats), so a client generated from
`/openapi.json` and the server agree. Routers need nothing but what they declare already:
which statuses are possible follows from the dependencies (a signed-in user: 401, and 403
when an operator disabled the account or profile), the path
(an id: 404), the table of domain conflicts below, and what a built endpoint declares with
`may_answer` (endpoints/job_routes.py: a route written once for every job kind).
"""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import TypeAdapter

from endpoints.deps import current_user, signed_in_user
from pipeline.settings import Settings
from schemas.common import ErrorBody
from schemas.constraints import MAX_FILENAME_CHARS, format_variants
from schemas.events import R2Event

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}
DESCRIPTIONS = {
    400: "The body is not JSON (or not UTF-8).",
    401: "No valid access token (or, for events, no valid signature).",
    403: "A guest session, or an account or profile an operator disabled (the message says why).",
    404: "No such resource, or it belongs to someone else.",
    409: "Refused by the resource's current state (a limit, a job in progress, not ready).",
    413: "Larger than the deployment allows.",
    415: "Not an accepted audio format.",
    422: "The request does not fit this schema.",
    429: (
        "The quota or GPU budget for this period is used up (`details` says when it resets), "
        "or too many requests in a short time (`RATE_LIMITED`, with `Retry-After`)."
    ),
    503: "The database or object store is unavailable; try again.",
}
# Domain outcomes beyond those derived from the route itself (codes in pipeline/errors.py).
CONFLICTS: dict[tuple[str, str], set[int]] = {
    ("POST", "/profiles"): {409},
    ("DELETE", "/profiles/{profile_id}"): {409},
    ("POST", "/profiles/{profile_id}/dataset/uploads"): {409, 413, 415},
    ("POST", "/profiles/{profile_id}/trainings"): {409, 429},
    ("POST", "/profiles/{profile_id}/conversions"): {409, 413, 415, 429},
    ("GET", "/conversions/{job_id}/download"): {409},  # 404 also for a part a job lacks
    ("GET", "/profiles/{profile_id}/dataset/files/{file_id}/download"): {409},
    ("GET", "/conversions/{job_id}/input"): {409},
    ("POST", "/events/r2"): {401, 413, 422, 503},
}
RETRY_AFTER_HEADERS = {
    "Retry-After": {
        "description": "Seconds until a request may pass.",
        "schema": {"type": "integer"},
    }
}
UNAUTHENTICATED_HEADERS = {
    "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}
}
# Standard Webhooks headers the relay signs each delivery with (pipeline/webhooks.py).
WEBHOOK_HEADERS = [
    ("webhook-id", "The delivery's id; a repeated id is acknowledged without a second effect."),
    ("webhook-timestamp", "Unix seconds when it was signed; outside the tolerance is refused."),
    ("webhook-signature", "Space-separated `v1,<base64 HMAC>` or `v1a,<base64 Ed25519>`."),
]
REQUEST_LIMITS = {"UploadRequest": "max_file_bytes", "ConversionRequest": "max_conversion_bytes"}


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def may_answer(endpoint: Endpoint, *statuses: int) -> Endpoint:
    """Declares the domain outcomes an endpoint can answer beyond those its dependencies and
    path imply, for a route built for many paths (CONFLICTS lists the written ones)."""
    endpoint.conflicts = frozenset(statuses)  # type: ignore[attr-defined]
    return endpoint


def install_contract(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    _add_models(components)
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            for method in route.methods or ():
                operation = doc["paths"][route.path_format][method.lower()]
                _document_errors(operation, route, method)
    _events(doc["paths"]["/events/r2"]["post"])
    _request_constraints(components, settings)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return doc


def _add_models(components: dict[str, Any]) -> None:
    for model in (ErrorBody, R2Event):
        schema = TypeAdapter(model).json_schema(
            ref_template="#/components/schemas/{model}", by_alias=True
        )
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema


def _depends_on(dependant: Dependant, call: object) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _rate_limited(dependant: Dependant) -> bool:
    return any(
        getattr(d.call, "rate_limited", False) or _rate_limited(d) for d in dependant.dependencies
    )


def _statuses(route: RouteContext, method: str) -> set[int]:
    has_ids = "{" in route.path_format
    takes_input = has_ids or bool(get_flat_params(route.dependant)) or route.body_field is not None
    statuses = set(CONFLICTS.get((method, route.path_format), set()))
    statuses |= getattr(route.dependant.call, "conflicts", frozenset())
    if _depends_on(route.dependant, current_user):
        statuses |= {401, 403, 503}
    elif _depends_on(route.dependant, signed_in_user):  # a token, whatever the account's state
        statuses |= {401, 503}
    if _rate_limited(route.dependant):
        statuses.add(429)
    if has_ids:
        statuses.add(404)
    if takes_input:
        statuses.add(422)
    if route.body_field is not None:
        statuses.add(400)
    return statuses


def _document_errors(operation: dict[str, Any], route: RouteContext, method: str) -> None:
    responses = operation.setdefault("responses", {})
    for status in sorted(_statuses(route, method)):
        answer: dict[str, Any] = {
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        if status == 401 and route.path_format != "/events/r2":
            answer["headers"] = UNAUTHENTICATED_HEADERS
        if status == 429 and _rate_limited(route.dependant):
            answer["headers"] = RETRY_AFTER_HEADERS
        responses[str(status)] = answer


def _events(operation: dict[str, Any]) -> None:
    header = {"in": "header", "required": True, "schema": {"type": "string", "minLength": 1}}
    operation["parameters"] = [
        header | {"name": name, "description": text} for name, text in WEBHOOK_HEADERS
    ]
    body = {"$ref": "#/components/schemas/R2Event"}
    operation["requestBody"] = {
        "required": True,
        "description": "One R2 event notification, or a batch of them (at most 1 MiB).",
        "content": {
            "application/json": {"schema": {"anyOf": [body, {"type": "array", "items": body}]}}
        },
    }


def _request_constraints(components: dict[str, Any], settings: Settings) -> None:
    for name, limit in REQUEST_LIMITS.items():
        schema = components[name]
        props = schema["properties"]
        props["size_bytes"].update(minimum=1, maximum=getattr(settings, limit))
        props["filename"]["maxLength"] = MAX_FILENAME_CHARS
        schema["anyOf"] = format_variants(settings.allowed_formats)
