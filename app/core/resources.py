"""What one process shares between requests, built in the lifespan and closed at shutdown."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.database import StatementRunner, create_engine, create_sessionmaker
from app.core.http_client import create_http_client
from app.core.metrics import Metrics
from app.services.auth import AuthService
from app.services.circuit_breaker import CircuitBreaker
from app.services.client_ip import Network, parse_networks
from app.services.console_verify import ConsoleVerifyProvider
from app.services.local_codes import CodeHasher
from app.services.rate_limits import LoginLimits, RateLimiter
from app.services.readiness import ReadinessChecker
from app.services.test_numbers import TestNumberProvider, TestNumbers
from app.services.tokens import TokenService
from app.services.twilio_verify import TwilioCredentials, TwilioVerifyClient
from app.services.verifications import Providers
from app.services.verify_provider import VerifyProvider

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Resources:
    """Engine, sessions, the Twilio client, providers, limits, the token signer and the
    login service."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    writes: StatementRunner
    http_client: httpx.AsyncClient
    providers: Providers
    limiter: RateLimiter
    limits: LoginLimits
    tokens: TokenService
    trusted_proxies: tuple[Network, ...]
    metrics: Metrics
    readiness: ReadinessChecker
    auth: AuthService

    async def aclose(self) -> None:
        """Close the HTTP client, the rate-limit storage and the database pool."""
        await self.http_client.aclose()
        await self.limiter.aclose()
        await self.engine.dispose()


def create_provider(
    settings: Settings, client: httpx.AsyncClient, hasher: CodeHasher, metrics: Metrics
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
    )


def create_resources(settings: Settings, metrics: Metrics) -> Resources:
    """Build everything a process shares."""
    engine = create_engine(settings)
    http_client = create_http_client(settings)
    hasher = CodeHasher(settings.signing_secret)
    test_numbers = TestNumbers(settings.test_phone_numbers, settings.test_phone_numbers_valid_until)
    limiter = RateLimiter(
        settings.rate_limit_storage_url,
        settings.rate_limit_key_prefix,
        max_connections=settings.rate_limit_redis_max_connections,
    )
    primary = create_provider(settings, http_client, hasher, metrics)
    sessionmaker = create_sessionmaker(engine)
    writes = StatementRunner(engine)
    providers = Providers(
        primary=primary,
        test=TestNumberProvider(test_numbers, hasher),
        test_numbers=test_numbers,
    )
    limits = LoginLimits(settings, limiter)
    tokens = TokenService(settings)
    return Resources(
        engine=engine,
        sessionmaker=sessionmaker,
        writes=writes,
        http_client=http_client,
        providers=providers,
        limiter=limiter,
        limits=limits,
        tokens=tokens,
        trusted_proxies=parse_networks(settings.trusted_proxies),
        metrics=metrics,
        readiness=ReadinessChecker(engine, limiter, provider_configured=primary is not None),
        auth=AuthService(sessionmaker, writes, settings, providers, limits, tokens, metrics),
    )
