"""Service settings, read from the environment and `.env`."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import secrets
from datetime import date
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.core.keys import load_private_key, parse_public_keys
from app.core.phone import PhoneError, parse_phone
from app.core.redis_url import parse_storage_url

logger = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
MIN_DISTINCT_SECRET_CHARS = 10
# Parts of example values that must never reach production.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "change_me", "changethis", "your-secret", "example"}
)


def _weak_secret(secret: str) -> bool:
    """Too short, mostly one character, or a placeholder left from an example."""
    text = secret.strip()
    lowered = text.lower()
    return (
        len(text.encode()) < MIN_SECRET_BYTES
        or len(set(text)) < MIN_DISTINCT_SECRET_CHARS
        or any(word in lowered for word in PLACEHOLDER_SECRETS)
    )


SUPPORTED_DATABASE_DRIVERS = frozenset({"sqlite+aiosqlite", "postgresql+asyncpg"})
LIMITS_RULE = "limits like 5/hour (per second, minute, hour or day), separated by ';'"


def _check_limits(text: str) -> str:
    """`text` if it parses as rate limits of at least one hit each (the service parses
    them again where it uses them)."""
    try:
        items = parse_many(text)
    except ValueError as exc:
        raise ValueError(f"must be {LIMITS_RULE}, not {text!r}") from exc
    if any(item.amount < 1 for item in items):
        raise ValueError(f"must allow at least 1 per window, not {text!r}")
    return text


class SettingsProblems(ValueError):
    """Several refused settings found by one check; each message starts with the
    setting's name."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Environment(StrEnum):
    """Where the service runs; production turns on every safety check."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Channel(StrEnum):
    """How Twilio delivers the code."""

    SMS = "sms"
    WHATSAPP = "whatsapp"
    CALL = "call"


class CaptchaProvider(StrEnum):
    """Which bot challenge a send may need; `none` turns the challenge off."""

    NONE = "none"
    TURNSTILE = "turnstile"
    HCAPTCHA = "hcaptcha"
    RECAPTCHA = "recaptcha"


# Each provider's own siteverify endpoint (CAPTCHA_VERIFY_URL overrides it).
CAPTCHA_VERIFY_URLS: dict[CaptchaProvider, str] = {
    CaptchaProvider.TURNSTILE: "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    CaptchaProvider.HCAPTCHA: "https://api.hcaptcha.com/siteverify",
    CaptchaProvider.RECAPTCHA: "https://www.google.com/recaptcha/api/siteverify",
}


ProviderName = Literal["twilio", "vonage"]
Price = Annotated[float, Field(ge=0)]


def _default_providers() -> list[ProviderName]:
    return ["twilio"]


class MarketSettings(BaseModel):
    """One market: which numbers belong to it and how codes are sent there."""

    region: str = Field(min_length=2, max_length=2, description="ISO 3166 region of its numbers")
    language: str = Field(min_length=2, max_length=10, description="Twilio `Locale` for its codes")
    code_ttl_minutes: int = Field(default=10, ge=1, le=1440)
    channels: list[Channel] = Field(default_factory=lambda: [Channel.SMS], min_length=1)
    sms_budget: str = Field(default="1000/hour", description="Sends per window, all clients")
    price_usd: Price | dict[ProviderName, Price] = Field(
        default=0.0,
        description="Estimated cost of one verification: one price, or a price per provider",
    )
    providers: list[ProviderName] = Field(
        default_factory=_default_providers,
        min_length=1,
        description="Providers that send this market's codes, tried in this order",
    )

    @model_validator(mode="after")
    def _check_providers(self) -> Self:
        if len(set(self.providers)) != len(self.providers):
            raise ValueError("providers lists a provider twice")
        if isinstance(self.price_usd, dict):
            missing = [name for name in self.providers if name not in self.price_usd]
            if missing:
                raise ValueError(f"price_usd has no price for {', '.join(missing)}")
        return self

    def price_for(self, provider: str) -> float:
        """The estimated cost of one verification sent by `provider` (0 when unpriced,
        e.g. the console provider)."""
        if isinstance(self.price_usd, dict):
            prices: dict[str, float] = {str(name): price for name, price in self.price_usd.items()}
            return prices.get(provider, 0.0)
        return self.price_usd

    @field_validator("sms_budget")
    @classmethod
    def _budget_is_limits(cls, value: str) -> str:
        return _check_limits(value)


DEFAULT_MARKETS: dict[str, MarketSettings] = {
    "KG": MarketSettings(
        region="KG",
        language="ru",
        code_ttl_minutes=10,
        channels=[Channel.SMS, Channel.WHATSAPP],
        sms_budget="500/hour",
        price_usd=0.15,
    ),
    "US": MarketSettings(
        region="US",
        language="en",
        code_ttl_minutes=10,
        channels=[Channel.SMS, Channel.CALL],
        sms_budget="2000/hour",
        price_usd=0.0575,
    ),
}


class Settings(BaseSettings):
    """Every setting of the service; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        # A refused value may hold a password (DATABASE_URL) or a key: errors name
        # the setting and the rule, never the value.
        hide_input_in_errors=True,
        frozen=True,
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    graceful_shutdown_seconds: int = Field(default=20, ge=1, le=300)
    workers: int = Field(default=1, ge=1, le=64)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=32 * 1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_keepalive_timeout_seconds: int = Field(default=5, ge=1, le=3600)
    limit_concurrency: int = Field(default=1000, ge=1, le=100_000)

    database_url: str = "sqlite+aiosqlite:///./phone_auth.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=0, ge=0, le=200)
    database_pool_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    database_pool_pre_ping: bool = False

    verify_provider: Literal["twilio", "console"] = "twilio"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_verify_service_sid: str | None = None
    twilio_verify_base_url: str = "https://verify.twilio.com"
    twilio_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    twilio_read_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    twilio_max_retries: int = Field(default=2, ge=0, le=5)
    twilio_max_connections: int = Field(default=100, ge=1, le=1000)
    twilio_http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    twilio_deadline_seconds: float = Field(default=15.0, gt=0, le=300)
    twilio_circuit_failures: int = Field(default=5, ge=1, le=1000)
    twilio_circuit_reset_seconds: float = Field(default=30.0, gt=0, le=3600)

    vonage_api_key: str | None = None
    vonage_api_secret: SecretStr | None = None
    # Checks the signatures of Vonage's Verify callbacks (POST /api/v1/callbacks/vonage/verify).
    vonage_signature_secret: SecretStr | None = None
    # Vonage shows the brand in the message ("Your <brand> code is …").
    vonage_brand: str = Field(default="Phone Auth", min_length=1, max_length=16)
    vonage_base_url: str = Field(default="https://api.nexmo.com", pattern=r"^https?://")
    # Vonage sends WhatsApp codes only from the account's own WhatsApp Business number.
    vonage_whatsapp_from: str | None = Field(default=None, pattern=r"^\+?[1-9][0-9]{6,14}$")

    markets: Annotated[dict[str, MarketSettings], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_MARKETS)
    )
    verification_code_length: int = Field(default=6, ge=4, le=10)
    verification_max_attempts: int = Field(default=5, ge=1, le=20)

    jwt_secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_private_key: SecretStr | None = None
    jwt_private_key_file: Path | None = None
    jwt_previous_public_keys: str | None = None
    jwt_issuer: str = "phone-auth"
    jwt_audience: str = "phone-auth"
    access_token_expire_seconds: int = Field(default=900, ge=60, le=31536000)
    refresh_token_expire_seconds: int = Field(default=2592000, ge=300, le=31536000)
    refresh_token_reuse_interval_seconds: int = Field(default=10, ge=0, le=300)

    rate_limit_enabled: bool = True
    rate_limit_storage_url: str = Field(
        default="memory://", pattern=r"^(memory|redis|rediss|redis\+sentinel|redis\+cluster)://"
    )
    rate_limit_key_prefix: str = Field(default="phone-auth", min_length=1)
    rate_limit_redis_max_connections: int = Field(default=50, ge=1, le=1000)
    rate_limit_memory_max_keys: int = Field(default=75_000, ge=100, le=100_000_000)
    rate_limit_send_per_phone: str = "1/minute;5/hour;10/day"
    rate_limit_send_per_ip: str = "20/hour"
    rate_limit_verify_per_ip: str = "60/hour"
    rate_limit_verify_per_phone: str = "15/hour"

    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    test_phone_numbers: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    test_phone_numbers_valid_until: date | None = None
    verification_retention_days: int = Field(default=30, ge=1, le=3650)
    # The delivery gauges of /metrics are read from the database at most this often.
    delivery_metrics_cache_seconds: float = Field(default=0.0, ge=0, le=3600)

    # `python -m app sync-attempts`: each run reads the attempts created since the
    # newest one seen, less this overlap (a code's lifetime and late prices), or,
    # on the first run, this far back; this many per page.
    attempts_sync_overlap_seconds: int = Field(default=1800, ge=0, le=7 * 86400)
    attempts_sync_first_lookback_seconds: int = Field(default=86400, ge=60, le=30 * 86400)
    attempts_sync_page_size: int = Field(default=100, ge=1, le=1000)

    # Account lifecycle: deleting the account and changing the number need a login
    # this recent (seconds since the code check that opened the session).
    recent_login_seconds: int = Field(default=300, ge=30, le=86400)

    # Bot challenge (CAPTCHA) on send-verification.
    captcha_provider: CaptchaProvider = CaptchaProvider.NONE
    captcha_secret_key: SecretStr | None = None
    captcha_site_key: str | None = None
    captcha_verify_url: str | None = None
    captcha_mode: Literal["always", "risk"] = "risk"
    captcha_free_sends_per_ip: str = "3/hour"
    captcha_expected_hostnames: Annotated[list[str], NoDecode] = Field(default_factory=list)
    captcha_fail_open: bool = False

    @field_validator("markets", mode="before")
    @classmethod
    def _markets_from_json(cls, value: object) -> object:
        # Decoded here rather than by the settings source, so that bad JSON is a
        # validation error of its own, reported along with the others.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError("MARKETS: not valid JSON") from exc
        return value

    @field_validator(
        "rate_limit_send_per_phone",
        "rate_limit_send_per_ip",
        "rate_limit_verify_per_ip",
        "rate_limit_verify_per_phone",
    )
    @classmethod
    def _limits_parse(cls, value: str) -> str:
        return _check_limits(value)

    @field_validator(
        "trusted_proxies", "cors_allow_origins", "captcha_expected_hostnames", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"TRUSTED_PROXIES: {cidr!r} is not an address or CIDR") from exc
        return value

    @field_validator("test_phone_numbers", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            phone, sep, code = item.partition("=")
            if not sep:
                raise ValueError(f"TEST_PHONE_NUMBERS: {item!r} is not phone=code")
            pairs[phone.strip()] = code.strip()
        return pairs

    @model_validator(mode="after")
    def _check_test_numbers(self) -> Self:
        normalised: dict[str, str] = {}
        for raw, code in self.test_phone_numbers.items():
            try:
                phone = parse_phone(raw)
            except PhoneError as exc:
                raise ValueError(f"TEST_PHONE_NUMBERS: {raw!r}: {exc}") from exc
            if phone.region not in self.market_by_region:
                raise ValueError(f"TEST_PHONE_NUMBERS: {raw!r} is in no configured market")
            length = self.verification_code_length
            if len(code) != length or not (code.isascii() and code.isdigit()):
                raise ValueError(f"TEST_PHONE_NUMBERS: the code of {raw!r} must be {length} digits")
            normalised[phone.e164] = code
        # Frozen model: store the normalised map without going through __setattr__.
        object.__setattr__(self, "test_phone_numbers", normalised)
        return self

    @model_validator(mode="after")
    def _distinct_ports(self) -> Self:
        if self.metrics_port == self.port:
            raise ValueError(
                "METRICS_PORT must differ from PORT (leave it empty to serve /metrics on PORT)"
            )
        return self

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _redis_storage_form(cls, value: str) -> str:
        """A Sentinel or Cluster URL lists host:port addresses (and Sentinel its service)
        when it is read, not when the service starts."""
        if not value.startswith("memory://"):
            parse_storage_url(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("DATABASE_URL is not a database URL") from exc
        if url.drivername not in SUPPORTED_DATABASE_DRIVERS:
            raise ValueError(
                "DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        if url.drivername == "sqlite+aiosqlite" and url.database in (None, "", ":memory:"):
            # Every pooled connection would get its own empty database.
            raise ValueError(
                "DATABASE_URL: SQLite needs a file, e.g. sqlite+aiosqlite:///./phone_auth.db"
            )
        return value

    @field_validator("markets")
    @classmethod
    def _markets_by_upper_name(cls, value: dict[str, MarketSettings]) -> dict[str, MarketSettings]:
        if not value:
            raise ValueError("at least one market must be configured")
        markets = {name.upper(): market for name, market in value.items()}
        regions = [market.region.upper() for market in markets.values()]
        if len(set(regions)) != len(regions):
            raise ValueError("two markets share one region")
        return markets

    @field_validator("captcha_free_sends_per_ip")
    @classmethod
    def _valid_free_sends(cls, value: str) -> str:
        try:
            items = parse_many(value)
        except ValueError as exc:
            raise ValueError(
                "CAPTCHA_FREE_SENDS_PER_IP must be limits such as 3/hour or 2/minute;5/day"
            ) from exc
        if not items:
            raise ValueError("CAPTCHA_FREE_SENDS_PER_IP must name at least one limit")
        return value

    @field_validator("captcha_expected_hostnames")
    @classmethod
    def _lower_hostnames(cls, value: list[str]) -> list[str]:
        return [name.lower().rstrip(".") for name in value]

    @field_validator("captcha_verify_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("CAPTCHA_VERIFY_URL must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _check_captcha(self) -> Self:
        if self.captcha_provider is CaptchaProvider.NONE:
            return self
        name = self.captcha_provider.value
        if self.captcha_secret_key is None or not self.captcha_secret_key.get_secret_value():
            raise ValueError(f"CAPTCHA_PROVIDER={name} needs CAPTCHA_SECRET_KEY")
        if not self.captcha_site_key:
            raise ValueError(f"CAPTCHA_PROVIDER={name} needs CAPTCHA_SITE_KEY")
        return self

    @model_validator(mode="after")
    def _check_key_material(self) -> Self:
        """The keys the service would load at start, loaded now: every command refuses
        what serving would."""
        problems: list[str] = []
        if self.jwt_algorithm != "HS256":
            try:
                pem = self.private_key_pem()
                if pem:
                    load_private_key(pem, self.jwt_algorithm)
            except ValueError as exc:
                problems.append(str(exc))
        try:
            parse_public_keys(self.jwt_previous_public_keys or "")
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise SettingsProblems(problems)
        return self

    @model_validator(mode="after")
    def _check_production_safety(self) -> Self:
        if self.environment is not Environment.PRODUCTION:
            return self
        problems: list[str] = []
        if self.verify_provider == "console":
            problems.append(
                "VERIFY_PROVIDER must be twilio when ENVIRONMENT=production: "
                "VERIFY_PROVIDER=console prints codes to the log"
            )
        if self.jwt_algorithm != "HS256":
            if not self.private_key_pem():
                problems.append(
                    "JWT_PRIVATE_KEY must be set (or JWT_PRIVATE_KEY_FILE) when "
                    f"JWT_ALGORITHM={self.jwt_algorithm} and ENVIRONMENT=production"
                )
        elif _weak_secret(self.jwt_secret_key.get_secret_value() if self.jwt_secret_key else ""):
            problems.append(
                f"JWT_SECRET_KEY must be set to a random value of at least {MIN_SECRET_BYTES} "
                'bytes when ENVIRONMENT=production (python -c "import secrets; '
                'print(secrets.token_urlsafe(48))")'
            )
        if problems:
            raise SettingsProblems(problems)
        return self

    def private_key_pem(self) -> str | None:
        """The PEM private key from JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE."""
        if self.jwt_private_key is not None and self.jwt_private_key.get_secret_value():
            return self.jwt_private_key.get_secret_value().replace("\\n", "\n")
        if self.jwt_private_key_file is not None:
            try:
                return self.jwt_private_key_file.read_text()
            except OSError as exc:
                raise ValueError(f"JWT_PRIVATE_KEY_FILE cannot be read: {exc}") from exc
        return None

    @cached_property
    def signing_secret(self) -> str:
        """The server secret: keys HMACs of codes and refresh tokens, and signs HS256 JWTs.

        JWT_SECRET_KEY when set; with an asymmetric algorithm and no secret, one
        derived from the private key; otherwise (never in production) a random one.
        """
        if self.jwt_secret_key is not None and self.jwt_secret_key.get_secret_value():
            return self.jwt_secret_key.get_secret_value()
        if self.jwt_algorithm != "HS256":
            pem = self.private_key_pem()
            if pem:
                return hashlib.sha256(b"phone-auth secret\x00" + pem.encode()).hexdigest()
            # No key either: the signing keys warn that JWT_PRIVATE_KEY is unset and
            # made up; JWT_SECRET_KEY is not what this deployment is missing.
            return secrets.token_urlsafe(48)
        logger.warning(
            "JWT_SECRET_KEY is not set: using a random key, so tokens stop working on restart"
        )
        return secrets.token_urlsafe(48)

    @property
    def vonage_configured(self) -> bool:
        """Whether both Vonage credentials are present."""
        return bool(
            self.vonage_api_key
            and self.vonage_api_secret
            and self.vonage_api_secret.get_secret_value()
        )

    def provider_configured(self, name: str) -> bool:
        """Whether the provider `name` has its credentials."""
        if name == "twilio":
            return self.twilio_configured
        if name == "vonage":
            return self.vonage_configured
        return False

    @property
    def twilio_configured(self) -> bool:
        """Whether all three Twilio credentials are present."""
        return bool(
            self.twilio_account_sid
            and self.twilio_auth_token
            and self.twilio_auth_token.get_secret_value()
            and self.twilio_verify_service_sid
        )

    @cached_property
    def market_by_region(self) -> dict[str, tuple[str, MarketSettings]]:
        """Markets keyed by the region of their numbers."""
        return {m.region.upper(): (name, m) for name, m in self.markets.items()}

    @property
    def captcha_siteverify_url(self) -> str | None:
        """Where challenge tokens are checked: CAPTCHA_VERIFY_URL, else the provider's own
        siteverify; None without a provider."""
        if self.captcha_provider is CaptchaProvider.NONE:
            return None
        return self.captcha_verify_url or CAPTCHA_VERIFY_URLS[self.captcha_provider]

    @property
    def is_production(self) -> bool:
        """Whether this is a production deployment."""
        return self.environment is Environment.PRODUCTION
