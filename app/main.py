"""The ASGI application: `app.main:app`, built by `create_app(settings)`.

This is the composition root: the lifespan builds what a process shares
(engine, HTTP client, providers, limits, services) and hands it to the
dependencies through `app.state`; it is the one module that knows every domain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.engine import make_url

from app.core.client_ip import parse_networks
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.errors import install_error_handlers
from app.core.garbage_collection import tuned_for_serving
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.metrics_port import MetricsPortMiddleware
from app.core.request_context import RequestContextMiddleware
from app.core.request_limits import RequestLimitsMiddleware
from app.routers import login, ops, sessions, users
from app.services.limits.service import LoginLimits
from app.services.limits.steps import Clock
from app.services.limits.windows import RateLimiter
from app.services.login.service import LoginService
from app.services.ops.service import ReadinessChecker
from app.services.sessions.service import SessionService
from app.services.sessions.tokens import TokenService
from app.services.users.service import UserService
from app.services.verification.providers.base import VerifyProvider
from app.services.verification.providers.circuit_breaker import CircuitBreaker
from app.services.verification.providers.console import ConsoleVerifyProvider
from app.services.verification.providers.http_client import create_http_client
from app.services.verification.providers.local_codes import CodeHasher
from app.services.verification.providers.test_numbers import TestNumberProvider, TestNumbers
from app.services.verification.providers.twilio import TwilioCredentials, TwilioVerifyClient
from app.services.verification.service import Providers, VerificationService

logger = logging.getLogger(__name__)

DESCRIPTION = """
Log in with a phone number. `POST /api/v1/auth/send-verification` texts a
one-time code; `POST /api/v1/auth/verify-code` checks it and returns a JWT
access token for `GET /api/v1/users/me`.

Invalid input answers **400** with messages per field, e.g.
`{"phone": ["Enter a valid phone number."]}`.
"""


@dataclass(frozen=True, slots=True)
class Clocks:
    """The time sources a process reads: epoch seconds for limit windows, monotonic
    seconds for the circuit breaker. Tests pass their own to move time."""

    wall: Clock = field(default=time.time)
    monotonic: Clock = field(default=time.monotonic)


def create_provider(
    settings: Settings,
    client: httpx.AsyncClient,
    hasher: CodeHasher,
    metrics: Metrics,
    clocks: Clocks,
) -> VerifyProvider | None:
    """The configured provider, or None when Twilio is chosen but not configured."""
    if settings.verify_provider == "console":
        return ConsoleVerifyProvider(hasher, settings.verification_code_length)
    sid, token, service = (
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_verify_service_sid,
    )
    if not (sid and token and token.get_secret_value() and service):
        return None
    twilio = TwilioVerifyClient(
        client,
        TwilioCredentials(
            account_sid=sid, auth_token=token.get_secret_value(), service_sid=service
        ),
        base_url=settings.twilio_verify_base_url,
        max_retries=settings.twilio_max_retries,
        metrics=metrics,
    )
    return CircuitBreaker(
        twilio,
        failures=settings.twilio_circuit_failures,
        reset_seconds=settings.twilio_circuit_reset_seconds,
        deadline_seconds=settings.twilio_deadline_seconds,
        metrics=metrics,
        clock=clocks.monotonic,
    )


@asynccontextmanager
async def _process_state(
    app: FastAPI, settings: Settings, metrics: Metrics, clocks: Clocks
) -> AsyncIterator[None]:
    """Build what the process shares, put it on `app.state`, and close it at the end."""
    database = Database(create_engine(settings))
    http_client = create_http_client(settings)
    hasher = CodeHasher(settings.signing_secret)
    test_numbers = TestNumbers(settings.test_phone_numbers, settings.test_phone_numbers_valid_until)
    limiter = RateLimiter(
        settings.rate_limit_storage_url,
        settings.rate_limit_key_prefix,
        max_connections=settings.rate_limit_redis_max_connections,
        clock=clocks.wall,
        metrics=metrics,
        max_keys=settings.rate_limit_memory_max_keys,
        on_evict=metrics.rate_limit_evictions.inc,
    )
    limits = LoginLimits(settings, limiter, metrics)
    primary = create_provider(settings, http_client, hasher, metrics, clocks)
    providers = Providers(
        primary=primary, test=TestNumberProvider(test_numbers, hasher), test_numbers=test_numbers
    )
    user_service = UserService()
    session_service = SessionService(settings, TokenService(settings), user_service, clocks.wall)
    state = app.state
    state.database = database
    state.metrics = metrics
    state.trusted_proxies = parse_networks(settings.trusted_proxies)
    state.user_service = user_service
    state.session_service = session_service
    state.login_service = LoginService(
        settings, VerificationService(settings, providers, metrics), limits, session_service
    )
    state.readiness = ReadinessChecker(database, limits, provider_configured=primary is not None)
    logger.info(
        "Starting: environment=%s provider=%s%s database=%s rate_limits=%s",
        settings.environment.value,
        settings.verify_provider,
        "" if primary is not None else " (NOT CONFIGURED: verification answers 503)",
        make_url(settings.database_url).render_as_string(hide_password=True),
        "redis" if limits.shared else "in-process",
    )
    try:
        yield
    finally:
        await http_client.aclose()
        await limits.aclose()
        await database.dispose()
        logger.info("Stopped: HTTP client and database pool closed")


def create_app(settings: Settings | None = None, clocks: Clocks | None = None) -> FastAPI:
    """Build the application for `settings` (read from the environment when omitted)."""
    settings = settings or Settings()
    clocks = clocks or Clocks()
    configure_logging(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _process_state(app, settings, metrics, clocks):
            with tuned_for_serving():
                yield

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
    app.include_router(login.router)
    app.include_router(sessions.router)
    app.include_router(users.router)
    app.include_router(sessions.keys_router)
    app.include_router(ops.router)
    ops.install_docs(app)
    # Last added runs first: the metrics port (with METRICS_PORT), request context, CORS,
    # then body limits.
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
    if settings.metrics_port is not None:
        app.add_middleware(MetricsPortMiddleware, metrics_port=settings.metrics_port)
    ops.finish_openapi(app)
    return app


def _app_from_environment() -> FastAPI:
    return create_app(Settings())


app = _app_from_environment()
