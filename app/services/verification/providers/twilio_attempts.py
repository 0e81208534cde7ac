"""Twilio Verify's Attempts API answers, read into `ReportedAttempt`s.

The fields follow `verify.v2.verification_attempt` in Twilio's OpenAPI description
(`tests/contract/twilio_verify_v2.yaml`, operation ListVerificationAttempt). An
attempt that cannot be read is skipped with a WARNING naming its sid and the field;
`channel_data.to` (the whole number) is never read into anything that is logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

from app.services.verification.providers.attempts import ReportedAttempt

logger = logging.getLogger(__name__)

T = TypeVar("T")

MICROS = Decimal(1_000_000)
# Column widths of `delivery_attempts`: longer values are not Twilio's.
MAX_SID = 64
MAX_CHANNEL = 16
MAX_STATUS = 24
MAX_ERROR_CODE = 16
# The query parameters of `meta.next_page_url` that carry the position.
PAGING_PARAMETERS = ("PageToken", "Page")
CONVERSION = {"converted": True, "unconverted": False}


class MalformedAttempt(ValueError):
    """An attempt with a field the service cannot read."""


def parse_attempts(items: list[Any]) -> tuple[ReportedAttempt, ...]:
    """Every attempt of a page that can be read; the others are logged and skipped."""
    attempts: list[ReportedAttempt] = []
    for item in items:
        try:
            attempts.append(parse_attempt(item))
        except MalformedAttempt as exc:
            sid = item.get("sid") if isinstance(item, dict) else None
            shown = sid if isinstance(sid, str) and len(sid) <= MAX_SID else "?"
            logger.warning("Twilio attempt %s skipped: %s", shown, exc)
    return tuple(attempts)


def parse_attempt(item: Any) -> ReportedAttempt:
    """One attempt; `MalformedAttempt` names the field that cannot be read."""
    if not isinstance(item, dict):
        raise MalformedAttempt("not a JSON object")
    channel_data = item.get("channel_data")
    if channel_data is None:
        channel_data = {}
    elif not isinstance(channel_data, dict):
        raise MalformedAttempt("channel_data is not an object")
    verification_sid = item.get("verification_sid") or channel_data.get("verification_sid")
    price_micros, currency = _price(item.get("price"))
    status = channel_data.get("message_status") or channel_data.get("call_status")
    country = _text(channel_data, "country", 2)
    return ReportedAttempt(
        sid=_required(_text(item, "sid", MAX_SID), "sid"),
        verification_sid=_required(
            _text({"verification_sid": verification_sid}, "verification_sid", MAX_SID),
            "verification_sid",
        ),
        channel=_required(_text(item, "channel", MAX_CHANNEL), "channel").lower(),
        created_at=_required(_timestamp(item, "date_created"), "date_created"),
        updated_at=_timestamp(item, "date_updated"),
        converted=_conversion(item.get("conversion_status")),
        delivery_status=_lower(_text({"message_status": status}, "message_status", MAX_STATUS)),
        delivery_error_code=_error_code(channel_data.get("error_code")),
        price_micros=price_micros,
        price_currency=currency,
        country=country.upper() if country else None,
    )


def next_page(meta: Any) -> str | None:
    """The cursor to the page after this one: the paging parameters of
    `meta.next_page_url`, None on the last page."""
    if not isinstance(meta, dict):
        return None
    url = meta.get("next_page_url")
    if not isinstance(url, str) or not url:
        return None
    query = parse_qs(urlsplit(url).query)
    paging = {name: query[name][0] for name in PAGING_PARAMETERS if query.get(name)}
    return urlencode(paging) or None


def page_parameters(cursor: str) -> dict[str, str]:
    """The query parameters a cursor from `next_page` stands for."""
    query = parse_qs(cursor)
    return {name: query[name][0] for name in PAGING_PARAMETERS if query.get(name)}


def _required(value: T | None, field: str) -> T:
    if value is None:
        raise MalformedAttempt(f"{field} is missing")
    return value


def _text(item: dict[str, Any], field: str, max_length: int) -> str | None:
    value = item.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedAttempt(f"{field} is not a string")
    if len(value) > max_length:
        raise MalformedAttempt(f"{field} is longer than {max_length} characters")
    return value


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def _timestamp(item: dict[str, Any], field: str) -> datetime | None:
    value = _text(item, field, 64)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        # Twilio's older APIs give RFC 2822 times (`Tue, 11 Aug 2020 18:36:59 +0000`).
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError) as exc:
            raise MalformedAttempt(f"{field} is not an ISO 8601 time") from exc
    # Twilio gives GMT; a time without a zone is read as such.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _conversion(value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedAttempt("conversion_status is not a string")
    return CONVERSION.get(value.lower())


def _error_code(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedAttempt("channel_data.error_code is not a code")
    text = str(value)
    if len(text) > MAX_ERROR_CODE:
        raise MalformedAttempt("channel_data.error_code is too long")
    return text


def _price(value: Any) -> tuple[int | None, str | None]:
    """Twilio's `{"value": "0.005", "currency": "usd"}` as micros and `USD`; None
    while Twilio does not know it yet."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise MalformedAttempt("price is not an object")
    amount, currency = value.get("value"), value.get("currency")
    if amount is None or amount == "":
        return None, None
    if isinstance(amount, bool) or not isinstance(amount, str | int | float):
        raise MalformedAttempt("price.value is not a number")
    try:
        decimal = Decimal(str(amount))
    except InvalidOperation as exc:
        raise MalformedAttempt("price.value is not a number") from exc
    if not decimal.is_finite():
        raise MalformedAttempt("price.value is not a number")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise MalformedAttempt("price.currency is not a currency code")
    micros = int((decimal * MICROS).to_integral_value(rounding=ROUND_HALF_UP))
    return micros, currency.upper()
