"""Test phone numbers with fixed codes, for app-store review and end-to-end tests.

They never reach Twilio or the SMS budget and skip the resend cooldown;
everything else (per-IP limits, attempt lockout, users, tokens) is as usual.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from app.core.phone import mask_phone
from app.services.verification.exceptions import UnknownTestNumber
from app.services.verification.providers.base import (
    CheckOutcome,
    CheckRequest,
    StartRequest,
    StartResult,
)
from app.services.verification.providers.console import new_sid
from app.services.verification.providers.local_codes import CodeHasher

logger = logging.getLogger(__name__)


class TestNumbers:
    """The configured test numbers, while they are valid."""

    __test__ = False  # not a pytest class

    def __init__(self, codes: dict[str, str], valid_until: date | None) -> None:
        self._codes = dict(codes)
        self._valid_until = valid_until

    def code_for(self, phone: str, today: date | None = None) -> str | None:
        """The fixed code of `phone` if it is a test number today."""
        if not self._codes:
            return None
        today = today or datetime.now(UTC).date()
        if self._valid_until is not None and today > self._valid_until:
            return None
        return self._codes.get(phone)


class TestNumberProvider:
    """Answers like a provider for test numbers, with their fixed codes."""

    __test__ = False
    name = "test"

    def __init__(self, numbers: TestNumbers, hasher: CodeHasher) -> None:
        self._numbers = numbers
        self._hasher = hasher

    async def start(self, request: StartRequest) -> StartResult:
        """Record a verification whose code is the number's fixed code; send nothing."""
        code = self._numbers.code_for(request.phone)
        if code is None:
            raise UnknownTestNumber(f"{mask_phone(request.phone)} is no longer a test number")
        sid = new_sid()
        logger.info("Test number used: %s (no SMS sent)", mask_phone(request.phone))
        return StartResult(sid=sid, code_hash=self._hasher.hash(sid, code))

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Compare with the fixed code in constant time."""
        if self._hasher.matches(request.sid, request.code, request.code_hash):
            return CheckOutcome.APPROVED
        return CheckOutcome.WRONG_CODE
