"""The `console` provider for local development: the code goes to the log.

Refused in production by the settings. Only an HMAC of the code is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from app.services.phone import mask_phone
from app.services.verify_provider import CheckOutcome, CheckRequest, StartRequest, StartResult

logger = logging.getLogger(__name__)


class ConsoleVerifyProvider:
    """Generates codes locally and prints them at WARNING instead of sending them."""

    name = "console"

    def __init__(self, secret: str, code_length: int) -> None:
        self._key = hashlib.sha256(b"phone-auth console code\x00" + secret.encode()).digest()
        self._code_length = code_length

    def _hash(self, sid: str, code: str) -> str:
        return hmac.new(self._key, f"{sid}:{code}".encode(), hashlib.sha256).hexdigest()

    async def start(self, request: StartRequest) -> StartResult:
        """Make a code, log it, and keep only its HMAC."""
        sid = f"VE{secrets.token_hex(16)}"
        code = "".join(secrets.choice("0123456789") for _ in range(self._code_length))
        logger.warning(
            "Console provider (development only): code %s for %s via %s",
            code,
            mask_phone(request.phone),
            request.channel,
        )
        return StartResult(sid=sid, code_hash=self._hash(sid, code))

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Compare the code with the stored HMAC in constant time."""
        if request.code_hash is None:
            return CheckOutcome.NOT_FOUND
        if hmac.compare_digest(self._hash(request.sid, request.code), request.code_hash):
            return CheckOutcome.APPROVED
        return CheckOutcome.WRONG_CODE
