"""Reading the settings for a command: one line per refused setting, then exit 2.

Every command (`python -m app …` and Alembic's env.py) reads its settings through
`load_settings`, so a bad value is reported the same way everywhere: the
setting's environment name, what it must be and an example, never its value
(which may be a password or a key) and never a traceback.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterable
from datetime import date
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

from app.core.config import LIMITS_RULE, Settings, SettingsProblems

EXIT_BAD_SETTINGS = 2

_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PRIVATE_KEY", "DATABASE_URL")
_LIMITS = "1/minute;5/hour;10/day"
_PROBLEM_NAME = re.compile(r"([A-Z][A-Z0-9_]*[A-Z0-9])")

# What a setting must be, where its type and bounds do not say it well enough.
RULES: dict[str, str] = {
    "database_url": "sqlite+aiosqlite:///<file> or postgresql+asyncpg://<user>:<password>@<host>/<db>",
    "markets": "a JSON object of markets by name, each with region and language "
    "(optionally code_ttl_minutes, channels, sms_budget, price_usd)",
    "rate_limit_storage_url": "memory://, redis://<host>:<port>/<db> (or rediss://), "
    "redis+sentinel://<host>:<port>[,<host>:<port>]/<service> or "
    "redis+cluster://<host>:<port>[,<host>:<port>]",
    "rate_limit_send_per_phone": LIMITS_RULE,
    "rate_limit_send_per_ip": LIMITS_RULE,
    "rate_limit_verify_per_ip": LIMITS_RULE,
    "rate_limit_verify_per_phone": LIMITS_RULE,
    "trusted_proxies": "addresses or CIDRs, separated by commas",
    "cors_allow_origins": "origins such as https://shop.example.com, separated by commas",
    "test_phone_numbers": "phone=code pairs of the configured markets, separated by commas",
    "jwt_private_key": "an unencrypted PEM private key (RSA 2048+ bits, or EC P-256)",
    "jwt_private_key_file": "the path of a readable PEM private key file",
    "jwt_previous_public_keys": "PEM public keys (RSA or EC), one after the other",
}

# A value to copy. Secrets get a way to make one, or a placeholder: never a value.
EXAMPLES: dict[str, str] = {
    "log_format": "console",
    "metrics_port": "9090",
    "database_url": "postgresql+asyncpg://phone_auth:<password>@db:5432/phone_auth",
    "twilio_account_sid": "AC<32 hex characters>",
    "twilio_auth_token": "<the auth token from the Twilio console>",
    "twilio_verify_service_sid": "VA<32 hex characters>",
    "markets": '{"KG": {"region": "KG", "language": "ru", "sms_budget": "500/hour"}}',
    "jwt_secret_key": '$(python -c "import secrets; print(secrets.token_urlsafe(48))")',
    "jwt_private_key_file": "/run/secrets/jwt.pem",
    "jwt_private_key": '"$(cat jwt.pem)"',
    "jwt_previous_public_keys": '"$(cat old-public.pem)"',
    "rate_limit_storage_url": "redis://redis:6379/0",
    "rate_limit_send_per_phone": _LIMITS,
    "trusted_proxies": "10.0.0.0/8",
    "cors_allow_origins": "https://shop.example.com",
    "test_phone_numbers": "+12025550100=123456",
    "test_phone_numbers_valid_until": "2030-12-31",
}
# Examples written as shell words already (a command substitution), not to be quoted.
_RAW_EXAMPLES = frozenset({"jwt_secret_key", "jwt_private_key", "jwt_previous_public_keys"})


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment and `.env` (`overrides` on top); when any is
    refused, print one line per refused setting to stderr and exit with status 2."""
    try:
        return Settings(**overrides)
    except (ValidationError, SettingsError) as exc:
        lines = settings_problems(exc, overrides)
    for line in lines:
        print(line, file=sys.stderr)
    raise SystemExit(EXIT_BAD_SETTINGS)


def settings_problems(
    error: ValidationError | SettingsError, overrides: dict[str, Any] | None = None
) -> list[str]:
    """One line per setting `error` refuses: `NAME: what it must be; e.g. NAME=…`.

    The checks across settings run only once every setting is valid on its own, so
    they are run again with the refused settings at their defaults, and what they
    refuse among the others is listed too.
    """
    if isinstance(error, SettingsError):
        return [f"Settings: {error}"]
    problems = _describe(error)
    fields = {entry["loc"][0] for entry in error.errors() if entry["loc"]}
    if fields and fields <= set(Settings.model_fields):
        defaults = {
            str(field): Settings.model_fields[str(field)].get_default(call_default_factory=True)
            for field in fields
        }
        try:
            Settings(**{**(overrides or {}), **defaults})
        except (ValidationError, SettingsError) as again:
            if isinstance(again, SettingsError):
                return list(problems.values())
            for name, line in _describe(again).items():
                problems.setdefault(name, line)
    return list(problems.values())


def _describe(error: ValidationError) -> dict[str, str]:
    """Lines by setting name, in the order the errors come."""
    details: dict[str, list[str]] = {}
    for entry in error.errors(include_url=False, include_input=False):
        loc = entry["loc"]
        if loc and isinstance(loc[0], str) and loc[0] in Settings.model_fields:
            found = details.setdefault(loc[0].upper(), [])
            detail = _field_detail(loc[0], loc[1:], entry)
            if detail:
                found.append(detail)
        else:
            for message in _messages(entry):
                name = _named(message)
                details.setdefault(name, []).append(_without_name(name, message))
    return {name: _line(name, found) for name, found in details.items()}


def _messages(entry: Any) -> list[str]:
    cause = (entry.get("ctx") or {}).get("error")
    if isinstance(cause, SettingsProblems):
        return list(cause.problems)
    if isinstance(cause, ValueError):
        return [str(cause)]
    return [str(entry["msg"])]


def _named(message: str) -> str:
    """The setting a cross-check's message is about: the name it starts with."""
    match = _PROBLEM_NAME.match(message)
    if match and match.group(1).lower() in Settings.model_fields:
        return match.group(1)
    return "Settings"


def _without_name(name: str, message: str) -> str:
    """`DATABASE_URL must …` → `must …`; `X: y` → `y`; `X=1 …` stays whole."""
    if message.startswith(name) and message[len(name) : len(name) + 1] in (" ", ":"):
        return message[len(name) :].lstrip(": ")
    return message


def _field_detail(field: str, path: tuple[Any, ...], entry: Any) -> str | None:
    """What the error adds to the field's rule: a validator's own message, or where
    inside the value it is (MARKETS); nothing for a plain type or bounds error."""
    cause = (entry.get("ctx") or {}).get("error")
    message = str(cause) if isinstance(cause, ValueError) else None
    if path:
        where = ".".join(str(part) for part in path)
        return f"{where}: {message or entry['msg']}"
    return None if message is None else _without_name(field.upper(), message)


def _line(name: str, details: list[str]) -> str:
    """`NAME: what it must be (what is wrong); e.g. NAME=example`, on one line."""
    field = name.lower()
    musts = [detail for detail in details if detail.startswith("must ")]
    others = [detail for detail in details if not detail.startswith("must ")]
    if field not in Settings.model_fields:
        text = f"{name}: " + "; ".join(details)
    else:
        # A validator's "must …" says it better than the type and bounds do.
        what = "; ".join(musts) if musts else f"must be {_rule(field)}"
        if others:
            what += f" ({'; '.join(others)})"
        text = f"{name}: {what}; e.g. {name}={_example(field)}"
    return " ".join(text.split())


def _rule(field: str) -> str:
    if field in RULES:
        return RULES[field]
    info = Settings.model_fields[field]
    annotation, optional = _unwrap(info.annotation)
    rule = _type_rule(annotation, info)
    return f"empty or {rule}" if optional else rule


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type inside `X | None`, and whether None was allowed."""
    if get_origin(annotation) in (Union, UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _type_rule(annotation: Any, info: FieldInfo) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(arg) for arg in get_args(annotation))
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return "one of " + ", ".join(str(member.value) for member in annotation)
        if annotation is bool:
            return "true or false"
        if annotation is int:
            return "a whole number" + _bounds(info.metadata)
        if annotation is float:
            return "a number" + _bounds(info.metadata)
        if annotation is date:
            return "a date, YYYY-MM-DD"
        if issubclass(annotation, Path):
            return "a file path"
        if annotation is SecretStr:
            return "a secret"
    return "text"


def _bounds(metadata: Iterable[Any]) -> str:
    low = high = ""
    for item in metadata:
        if isinstance(item, Ge):
            low = f"{item.ge}"
        elif isinstance(item, Gt):
            low = f"over {item.gt}"
        elif isinstance(item, Le):
            high = f"{item.le}"
        elif isinstance(item, Lt):
            high = f"under {item.lt}"
    if low and high:
        if low.startswith("over") or high.startswith("under"):
            return f" {low} and at most {high}" if high[0].isdigit() else f" {low}, {high}"
        return f" from {low} to {high}"
    if low:
        return f" of at least {low}" if low[0].isdigit() else f" {low}"
    if high:
        return f" of at most {high}" if high[0].isdigit() else f" {high}"
    return ""


def _example(field: str) -> str:
    if field in _RAW_EXAMPLES:
        return EXAMPLES[field]
    if field in EXAMPLES:
        return shlex.quote(EXAMPLES[field])
    value = Settings.model_fields[field].get_default(call_default_factory=True)
    if value is None or isinstance(value, SecretStr) or _is_secret(field):
        return "<see .env.example>"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, Enum):
        text = str(value.value)
    elif isinstance(value, list | tuple):
        text = ",".join(str(item) for item in value)
    else:
        text = str(value)
    return shlex.quote(text) if text else "<see .env.example>"


def _is_secret(field: str) -> bool:
    """A setting whose value must never be printed (the lines never print values;
    this keeps examples of them placeholders too)."""
    info = Settings.model_fields[field]
    annotation, _ = _unwrap(info.annotation)
    return annotation is SecretStr or any(word in field.upper() for word in _SECRET_WORDS)
