"""Every error leaves as `{"error": {"code", "message", "details"}}`
(docs/architecture.md, "Errors").

404 covers "not yours" too, so existence is never revealed; nothing a client sends yields 500.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pipeline.errors import ErrorKind, PipelineError
from schemas.common import ErrorBody, ErrorInfo

log = logging.getLogger(__name__)

STATUS_OF_KIND: dict[ErrorKind, int] = {
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.UNSUPPORTED: 415,
    ErrorKind.INVALID: 422,
    ErrorKind.QUOTA: 429,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}

CODE_OF_STATUS: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "TOO_LARGE",
    415: "UNSUPPORTED_FORMAT",
    422: "VALIDATION_FAILED",
    429: "RATE_LIMITED",
}


# Seconds a client waits before retrying a 503 that did not say (a dependency outage).
UNAVAILABLE_RETRY_AFTER = 5


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorInfo(code=code, message=message, details=details or {}))
    headers = dict(headers or {})
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"} | headers
    retry_after = (details or {}).get("retry_after")
    if status == 503 and not isinstance(retry_after, int | float):
        retry_after = UNAVAILABLE_RETRY_AFTER  # a dependency is down: come back shortly
    if status in (429, 503) and isinstance(retry_after, int | float):
        headers.setdefault("Retry-After", str(max(1, int(retry_after))))
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers or None)


async def _pipeline_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PipelineError)
    status = STATUS_OF_KIND[exc.kind]
    if status >= 500:
        log.warning("pipeline error %s: %s", exc.code, exc.message)
    return error_response(status, exc.code, exc.message, exc.details)


def _describe(error: dict[str, Any]) -> dict[str, Any]:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    return {"field": where, "problem": error.get("msg", "invalid"), "type": error.get("type")}


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_describe(e) for e in exc.errors()]
    first = problems[0] if problems else {"field": "", "problem": "invalid"}
    message = f"{first['field'] or 'The request'}: {first['problem']}"
    return error_response(422, "VALIDATION_FAILED", message, {"errors": problems})


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's own `Allow` names only the
    first route that matched the path, and a path here often has one route per method."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        if route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = CODE_OF_STATUS.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else "The request failed."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allow = allowed_methods(request)
        headers["Allow"] = ", ".join(allow)
        message = f"{request.method} is not allowed here; use {' or '.join(allow)}."
    return error_response(exc.status_code, code, message, headers=headers or None)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "INTERNAL", "Something went wrong on our side. Please try again.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PipelineError, _pipeline_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
