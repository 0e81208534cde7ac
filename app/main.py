"""The ASGI application: `app.main:app`, built by `create_app(settings)`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.errors import MSG_DATABASE_UNAVAILABLE, install_error_handlers
from app.core.garbage_collection import tuned_for_serving
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.request_context import RequestContextMiddleware
from app.core.request_limits import MSG_MEDIA_TYPE, MSG_TOO_LARGE, RequestLimitsMiddleware
from app.core.resources import create_resources
from app.routers import auth, health, users, well_known
from app.routers.docs import install_docs

logger = logging.getLogger(__name__)

DESCRIPTION = """
Log in with a phone number. `POST /api/v1/auth/send-verification` texts a
one-time code; `POST /api/v1/auth/verify-code` checks it and returns a JWT
access token for `GET /api/v1/users/me`.

Invalid input answers **400** with messages per field, e.g.
`{"phone": ["Enter a valid phone number."]}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for `settings` (read from the environment when omitted)."""
    settings = settings or Settings()
    configure_logging(settings)

    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = create_resources(settings, metrics)
        app.state.resources = resources
        logger.info(
            "Starting: environment=%s provider=%s%s database=%s rate_limits=%s",
            settings.environment.value,
            settings.verify_provider,
            ""
            if resources.providers.primary is not None
            else " (NOT CONFIGURED: verification answers 503)",
            make_url(settings.database_url).render_as_string(hide_password=True),
            "redis" if resources.limiter.shared else "in-process",
        )
        try:
            with tuned_for_serving():
                yield
        finally:
            await resources.aclose()
            logger.info("Stopped: HTTP client and database pool closed")

    app = FastAPI(
        title="Phone Auth",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Operation ids are the route names (send_verification, verify_code, …),
        # which is what generated clients call their methods.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(well_known.router)
    app.include_router(health.router)
    install_docs(app)
    # Last added runs first: request context wraps everything, then CORS, then body limits.
    app.add_middleware(RequestLimitsMiddleware)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_credentials="*" not in settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        quiet_paths=frozenset({"/healthz", "/readyz", "/metrics"}),
    )
    _finish_openapi(app)
    return app


def _detail_response(description: str, detail: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/DetailBody"},
                "example": {"detail": detail},
            }
        },
    }


def _finish_openapi(app: FastAPI) -> None:
    """Validation answers 400 with a field map, so FastAPI's generated 422 goes; every
    operation with a body also documents the 413 and 415 of `RequestLimitsMiddleware`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        for path_name, path in schema.get("paths", {}).items():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if path_name.startswith("/api/"):
                    responses.setdefault(
                        "503",
                        _detail_response("The database is unavailable", MSG_DATABASE_UNAVAILABLE),
                    )
                if "requestBody" in operation:
                    responses.setdefault(
                        "413", _detail_response("Request body over 16 KiB", MSG_TOO_LARGE)
                    )
                    responses.setdefault(
                        "415", _detail_response("Body that is not JSON", MSG_MEDIA_TYPE)
                    )
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _app_from_environment() -> FastAPI:
    return create_app(Settings())


app = _app_from_environment()
