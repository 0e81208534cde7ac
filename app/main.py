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
from app.core.config import Environment, Settings
from app.core.database import Database, create_engine
from app.core.errors import SUCCESS_ENVELOPE_ROUTES, install_error_handlers
from app.core.garbage_collection import tuned_for_serving
from app.core.input_rules import InputRules, InputRulesMiddleware
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.metrics_port import MetricsPortMiddleware
from app.core.request_context import RequestContextMiddleware
from app.core.request_limits import RequestLimitsMiddleware
from app.core.settings_loader import load_settings
from app.routers import admin, callbacks, login, ops, sessions, users
from app.services.admin.service import AdminService
from app.services.challenge.service import ChallengeService
from app.services.delivery.callbacks import VonageCallbacks
from app.services.delivery.reporting import DeliveryFigures
from app.services.delivery.stats import DeliveryStats
from app.services.limits.service import LoginLimits
from app.services.limits.steps import Clock
from app.services.limits.windows import RateLimiter
from app.services.login.service import LoginService
from app.services.ops.service import ReadinessChecker
from app.services.phone_change.service import PhoneChangeService
from app.services.sessions.service import SessionService
from app.services.sessions.tokens import TokenService
from app.services.users.service import UserService
from app.services.verification.providers.base import VerifyProvider
from app.services.verification.providers.circuit_breaker import CircuitBreaker
from app.services.verification.providers.console import ConsoleVerifyProvider
from app.services.verification.providers.failover import FailoverProvider, ProviderSet
from app.services.verification.providers.http_client import create_http_client
from app.services.verification.providers.local_codes import CodeHasher
from app.services.verification.providers.test_numbers import TestNumberProvider, TestNumbers
from app.services.verification.providers.twilio import TwilioVerifyClient, credentials_from
from app.services.verification.providers.vonage import VonageCredentials, VonageVerifyClient
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


def _with_breaker(
    provider: VerifyProvider, settings: Settings, metrics: Metrics, clocks: Clocks
) -> CircuitBreaker:
    """A provider behind its own circuit breaker."""
    return CircuitBreaker(
        provider,
        failures=settings.twilio_circuit_failures,
        reset_seconds=settings.twilio_circuit_reset_seconds,
        deadline_seconds=settings.twilio_deadline_seconds,
        metrics=metrics,
        clock=clocks.monotonic,
    )


def create_provider(
    settings: Settings,
    client: httpx.AsyncClient,
    hasher: CodeHasher,
    metrics: Metrics,
    clocks: Clocks,
) -> VerifyProvider | None:
    """The console provider, or Twilio; None when Twilio is chosen but not configured."""
    if settings.verify_provider == "console":
        return ConsoleVerifyProvider(hasher, settings.verification_code_length)
    credentials = credentials_from(settings)
    if credentials is None:
        return None
    twilio = TwilioVerifyClient(
        client,
        credentials,
        base_url=settings.twilio_verify_base_url,
        max_retries=settings.twilio_max_retries,
        metrics=metrics,
    )
    return _with_breaker(twilio, settings, metrics, clocks)


def create_vonage_provider(
    settings: Settings, client: httpx.AsyncClient, metrics: Metrics, clocks: Clocks
) -> VerifyProvider | None:
    """Vonage behind its circuit breaker; None without its credentials."""
    key, secret = settings.vonage_api_key, settings.vonage_api_secret
    if not (key and secret and secret.get_secret_value()):
        return None
    vonage = VonageVerifyClient(
        client,
        VonageCredentials(api_key=key, api_secret=secret.get_secret_value()),
        brand=settings.vonage_brand,
        code_length=settings.verification_code_length,
        base_url=settings.vonage_base_url,
        max_retries=settings.twilio_max_retries,
        whatsapp_from=settings.vonage_whatsapp_from,
        metrics=metrics,
    )
    return _with_breaker(vonage, settings, metrics, clocks)


def create_routes(
    settings: Settings,
    client: httpx.AsyncClient,
    hasher: CodeHasher,
    metrics: Metrics,
    clocks: Clocks,
) -> tuple[VerifyProvider | None, ProviderSet]:
    """The primary provider (the console, or Twilio) and every configured provider with
    each market's order of them. A provider without credentials is left out of every
    order, and the log says so."""
    primary = create_provider(settings, client, hasher, metrics, clocks)
    if settings.verify_provider == "console":
        assert primary is not None
        return primary, ProviderSet(
            {primary.name: primary}, dict.fromkeys(settings.markets, primary)
        )
    candidates: dict[str, VerifyProvider | None] = {
        "twilio": primary,
        "vonage": create_vonage_provider(settings, client, metrics, clocks),
    }
    named = {name: p for name, p in candidates.items() if p is not None}
    missing: dict[str, list[str]] = {}
    by_market: dict[str, VerifyProvider | None] = {}
    for market, market_settings in settings.markets.items():
        members: list[VerifyProvider] = []
        for name in market_settings.providers:
            if name in named:
                members.append(named[name])
            else:
                missing.setdefault(name, []).append(market)
        by_market[market] = FailoverProvider(market, members, metrics) if members else None
    for absent, markets in missing.items():
        logger.warning(
            "Provider %s has no credentials: left out of the provider order of %s",
            absent,
            ", ".join(markets),
        )
    return primary, ProviderSet(named, by_market)


def _describe_limits(limits: LoginLimits) -> str:
    """`in-process`, or `redis` with its topology (`redis (sentinel)`)."""
    state = limits.storage_state
    if state is None:
        return "in-process"
    return f"redis ({state.topology})"


def _describe_orders(settings: Settings, routes: ProviderSet) -> str:
    """`KG:vonage>twilio US:twilio`, for the start-up log."""
    parts = []
    for market in settings.markets:
        provider = routes.for_market(market)
        if isinstance(provider, FailoverProvider):
            order = ">".join(provider.order)
        else:
            order = provider.name if provider is not None else "NONE"
        parts.append(f"{market}:{order}")
    return " ".join(parts)


def _provider_states(routes: ProviderSet) -> dict[str, str]:
    """Each configured provider: `ok`, or `circuit open` while it fails fast."""
    return {
        provider.name: "circuit open"
        if isinstance(provider, CircuitBreaker) and provider.is_open
        else "ok"
        for provider in routes.providers
    }


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
    primary, routes = create_routes(settings, http_client, hasher, metrics, clocks)
    providers = Providers(
        primary=primary,
        test=TestNumberProvider(test_numbers, hasher),
        test_numbers=test_numbers,
        routes=routes,
    )
    user_service = UserService(metrics)
    session_service = SessionService(
        settings, TokenService(settings), user_service, clock=clocks.wall
    )
    state = app.state
    state.database = database
    state.metrics = metrics
    state.trusted_proxies = parse_networks(settings.trusted_proxies)
    state.user_service = user_service
    state.session_service = session_service
    state.login_service = LoginService(
        settings,
        VerificationService(settings, providers, metrics),
        limits,
        session_service,
        ChallengeService(settings, limits, metrics, http_client),
    )
    state.phone_change_service = PhoneChangeService(state.login_service, session_service, metrics)
    state.admin_service = AdminService(user_service, session_service, metrics)
    state.delivery_stats = DeliveryStats(
        DeliveryFigures(database.engine),
        metrics,
        list(settings.markets),
        clock=clocks.wall,
        cache_seconds=settings.delivery_metrics_cache_seconds,
    )
    signature_secret = settings.vonage_signature_secret
    state.vonage_callbacks = VonageCallbacks(
        signature_secret.get_secret_value() if signature_secret else None,
        settings.vonage_api_key,
        clock=clocks.wall,
    )
    state.readiness = ReadinessChecker(
        database,
        limits,
        provider_configured=routes.complete,
        provider_states=lambda: _provider_states(routes),
    )
    logger.info(
        "Starting: environment=%s provider=%s%s providers=%s database=%s rate_limits=%s "
        "challenge=%s",
        settings.environment.value,
        settings.verify_provider,
        "" if routes.complete else " (NOT CONFIGURED: verification answers 503)",
        _describe_orders(settings, routes),
        make_url(settings.database_url).render_as_string(hide_password=True),
        _describe_limits(limits),
        settings.captcha_provider.value
        if settings.captcha_provider.value == "none"
        else f"{settings.captcha_provider.value} ({settings.captcha_mode})",
    )
    try:
        yield
    finally:
        await http_client.aclose()
        await limits.aclose()
        await database.dispose()
        logger.info("Stopped: HTTP client and database pool closed")


# A frontend's dev server on this machine: http(s), localhost or 127.0.0.1, any port.
LOCAL_ORIGINS = r"https?://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?"


def local_origin_pattern(settings: Settings) -> str | None:
    """The origins CORS allows beyond CORS_ALLOW_ORIGINS: a local frontend in development
    when CORS_ALLOW_ORIGINS is empty; none otherwise (production stays explicit)."""
    if settings.environment is Environment.DEVELOPMENT and not settings.cors_allow_origins:
        return LOCAL_ORIGINS
    return None


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
    app.include_router(login.settings_router)
    app.include_router(sessions.router)
    app.include_router(users.router)
    app.include_router(sessions.keys_router)
    app.include_router(admin.router)
    app.include_router(callbacks.router)
    app.include_router(ops.router)
    ops.install_docs(app)
    # Last added runs first: the metrics port (with METRICS_PORT), request context, CORS,
    # body limits, then the input rules the body's validation reads.
    app.add_middleware(InputRulesMiddleware, rules=InputRules.from_settings(settings))
    envelope_paths = frozenset(str(app.url_path_for(name)) for name in SUCCESS_ENVELOPE_ROUTES)
    app.add_middleware(RequestLimitsMiddleware, envelope_paths=envelope_paths)
    local_origins = local_origin_pattern(settings)
    if settings.cors_allow_origins or local_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_origin_regex=local_origins,
            allow_credentials="*" not in settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PATCH", "OPTIONS", "DELETE", "PUT"],
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
    # `uvicorn app.main:app` too reports bad settings one line each (exit 2).
    return create_app(load_settings())


app = _app_from_environment()
