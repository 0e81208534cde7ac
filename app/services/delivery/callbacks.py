"""Vonage Verify v2's signed callbacks: the price and the outcome of a Vonage code.

Vonage signs each callback with a JWT (HS256, the account's signature secret) in
`Authorization: Bearer`, whose `payload_hash` claim is the SHA-256 of the body. A
*summary* callback carries the request's `status` and its `price` so far, in EUR; an
*event* callback its `status`. Neither says anything of the carrier's receipt, so the
message's delivery status stays what the login path recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from jose import JWTError, jwt

from app.core.database import UnitOfWork
from app.core.errors import BadRequest, FieldErrors
from app.services.delivery.exceptions import (
    MSG_BAD_SIGNATURE,
    MSG_NOT_CONFIGURED,
    CallbacksNotConfigured,
    InvalidSignature,
)
from app.services.delivery.vonage_reports import VonageReport, VonageReports

__all__ = [
    "MSG_BAD_SIGNATURE",
    "MSG_NOT_CONFIGURED",
    "CallbacksNotConfigured",
    "InvalidSignature",
    "VonageCallbacks",
]

logger = logging.getLogger(__name__)

# Vonage's summary price is in euros; its callbacks name no currency.
VONAGE_CURRENCY = "EUR"
MICROS = Decimal(1_000_000)
# The request's status, and whether it says the code was used.
CONVERTED = {
    "completed": True,
    "expired": False,
    "failed": False,
    "user_rejected": False,
    "cancelled": False,
    "blocked": False,
}
MAX_REQUEST_ID = 64


class VonageCallbacks:
    """Checks and stores Vonage's callbacks; one per process."""

    def __init__(self, secret: str | None, api_key: str | None, clock: Callable[[], float]) -> None:
        self._secret = secret
        self._api_key = api_key
        self._clock = clock

    async def receive(self, uow: UnitOfWork, authorization: str | None, body: bytes) -> None:
        """Check the callback's signature and store what it reports on its attempt."""
        self._check_signature(authorization, body)
        report = _report(_json_object(body), self._clock())
        if report is None:
            return
        stored = await VonageReports(uow).store(report, datetime.fromtimestamp(self._clock(), UTC))
        logger.info(
            "Vonage callback %s: converted=%s price=%s%s",
            "stored" if stored else "for a request this service has no attempt of",
            report.converted,
            report.price_micros,
            f" {report.currency}" if report.currency else "",
        )

    def _check_signature(self, authorization: str | None, body: bytes) -> None:
        if not self._secret:
            logger.error("Vonage callback refused: VONAGE_SIGNATURE_SECRET is not set")
            raise CallbacksNotConfigured()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise InvalidSignature()
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256"],
                options={"verify_aud": False, "verify_iat": False},
            )
        except JWTError as exc:
            logger.warning("Vonage callback refused: bad signature (%s)", type(exc).__name__)
            raise InvalidSignature() from exc
        expected = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(str(claims.get("payload_hash", "")), expected):
            logger.warning("Vonage callback refused: payload_hash is not the body's")
            raise InvalidSignature()
        key = claims.get("api_key")
        if self._api_key and key is not None and key != self._api_key:
            logger.warning("Vonage callback refused: signed for another account")
            raise InvalidSignature()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise BadRequest() from exc
    if not isinstance(document, dict):
        raise BadRequest()
    return document


def _report(document: dict[str, Any], now: float) -> VonageReport | None:
    """What the callback says, or None when it says nothing the service stores."""
    request_id = document.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
        raise FieldErrors({"request_id": ["This field is required."]})
    status = document.get("status")
    converted = CONVERTED.get(status) if isinstance(status, str) else None
    price_micros = currency = None
    if document.get("type") == "summary" and document.get("price") is not None:
        try:
            price = Decimal(str(document["price"]))
        except InvalidOperation as exc:
            raise FieldErrors({"price": ["A valid number is required."]}) from exc
        if price.is_finite() and price >= 0:
            price_micros = int((price * MICROS).to_integral_value())
            currency = VONAGE_CURRENCY
    if converted is None and price_micros is None:
        return None
    return VonageReport(request_id, converted, price_micros, currency, _moment(document, now))


def _moment(document: dict[str, Any], now: float) -> datetime:
    """When Vonage says it happened (`finalized_at`, `triggered_at`), else now."""
    for name in ("finalized_at", "triggered_at", "submitted_at"):
        value = document.get(name)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
    return datetime.fromtimestamp(now, UTC)
