"""The `console` provider for local development: the code goes to the log.

Refused in production by the settings. Only an HMAC of the code is stored. Its
line is the one log line with a whole phone number: it stands for the text
message, so a developer must be able to tell which number (and which request)
each code is for.
"""

from __future__ import annotations

import logging
import secrets

from app.core.request_context import request_id_var
from app.services.verification.providers.base import (
    CheckOutcome,
    CheckRequest,
    StartRequest,
    StartResult,
)
from app.services.verification.providers.local_codes import CodeHasher

logger = logging.getLogger(__name__)


def new_sid() -> str:
    """A verification sid shaped like Twilio's."""
    return f"VE{secrets.token_hex(16)}"


class ConsoleVerifyProvider:
    """Generates codes locally and prints them at WARNING instead of sending them."""

    name = "console"

    def __init__(self, hasher: CodeHasher, code_length: int) -> None:
        self._hasher = hasher
        self._code_length = code_length

    async def start(self, request: StartRequest) -> StartResult:
        """Make a code, log it, and keep only its HMAC."""
        sid = new_sid()
        code = "".join(secrets.choice("0123456789") for _ in range(self._code_length))
        logger.warning(
            "Console provider (development only): code %s for %s via %s, request %s",
            code,
            request.phone,
            request.channel,
            request_id_var.get() or "-",
        )
        return StartResult(sid=sid, code_hash=self._hasher.hash(sid, code))

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Compare the code with the stored HMAC in constant time."""
        if request.code_hash is None:
            return CheckOutcome.NOT_FOUND
        if self._hasher.matches(request.sid, request.code, request.code_hash):
            return CheckOutcome.APPROVED
        return CheckOutcome.WRONG_CODE
