"""The local stack's web server: the static page from `web/public`, its `config.json`, and a
sign-in that hands out local tokens.

In production the page is served by any static host with a hand-written `config.json` that
names the Supabase project; here the config points the page at this stack and at
`/local/session`, which mints a token from the local issuer for the email it is given. It
binds to 127.0.0.1 only: anyone who can reach it can act as any local user, by design.
"""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from schemas.common import ErrorBody, ErrorInfo

SESSION_PATH = "/local/session"
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")
Minter = Callable[[str], dict[str, Any]]


def page_config(
    api_url: str, default_email: str, training_preset: str, realtime_url: str | None = None
) -> dict[str, Any]:
    """realtime_url: the Supabase stand-in whose /realtime/v1 the page subscribes to, as it
    does to a Supabase project's in production; None leaves the page to polling alone."""
    auth = {"mode": "local", "sessionUrl": SESSION_PATH, "defaultEmail": default_email}
    if realtime_url:
        auth |= {"url": realtime_url, "realtime": True}
    return {"apiUrl": api_url, "auth": auth, "trainingPreset": training_preset}


def web_app(public_dir: Path, config: dict[str, Any], mint: Minter) -> Starlette:
    async def config_json(_: Request) -> JSONResponse:
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    async def session(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        email = body.get("email") if isinstance(body, dict) else None
        if not isinstance(email, str) or not _EMAIL.fullmatch(email.strip()):
            return _error(422, "VALIDATION_FAILED", "Enter an email address, like dev@localhost.")
        return JSONResponse(mint(email.strip().lower()), headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/config.json", config_json),
            Route(SESSION_PATH, session, methods=["POST"]),
            Mount("/", StaticFiles(directory=public_dir, html=True)),
        ]
    )


def _error(status: int, code: str, message: str) -> JSONResponse:
    """The API's error body, so the page reads both servers' errors the same way."""
    body = ErrorBody(error=ErrorInfo(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status)
