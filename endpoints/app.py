"""The FastAPI app factory (uvicorn `endpoints.app:create_app --factory`, Modal's asgi_app).

Building the app connects to nothing; the services are built on startup, so importing and
creating the app stays cheap for a cold start.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from endpoints.body_limit import MAX_JSON_BODY_BYTES, BodyLimit
from endpoints.errors import install_error_handlers
from endpoints.openapi import install_contract
from endpoints.routers import (
    conversions,
    dataset,
    events,
    health,
    instant,
    limits,
    me,
    models,
    profiles,
    quota,
    separations,
    speech,
    trainings,
)
from pipeline import redact
from pipeline.production import require_production_ready
from pipeline.services import Services, build_services
from pipeline.settings import Settings, get_settings


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or (services.settings if services else get_settings())
    redact.install()  # no log line of the API names a person (pipeline/redact.py)
    require_production_ready(settings, "web")  # at creation: a bad secret fails the deploy

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or build_services(settings, zone="web")
        try:
            yield
        finally:
            if owned:
                app.state.services.close()

    app = FastAPI(title="svc-pipeline", version="0.1.0", lifespan=lifespan)
    # Added first, so it runs inside CORS: a 413 still carries the CORS headers a page reads.
    app.add_middleware(BodyLimit, limit_for=_body_limit(settings))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        # Not a CORS-safelisted header: without this a page on another origin cannot read how
        # long a 429 or 503 asks it to wait, and so cannot wait.
        expose_headers=["Retry-After"],
        max_age=600,
    )
    install_error_handlers(app)
    routers = (
        health,
        limits,
        profiles,
        dataset,
        trainings,
        separations,
        models,
        conversions,
        instant,
        speech,
        quota,
        events,
        me,
    )
    for router in (module.router for module in routers):
        app.include_router(router)
    install_contract(app, settings)
    return app


def _body_limit(settings: Settings) -> Callable[[str], int]:
    """Every body is capped before FastAPI reads it (endpoints/body_limit.py); the R2 event
    batches have their own, larger limit."""

    def limit_for(path: str) -> int:
        return settings.max_event_body_bytes if path == "/events/r2" else MAX_JSON_BODY_BYTES

    return limit_for
