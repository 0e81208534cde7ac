"""The `verifications` table: one row per code sent."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class VerificationStatus(StrEnum):
    """Where a verification is in its life."""

    PENDING = "pending"
    APPROVED = "approved"
    EXPIRED = "expired"
    LOCKED = "locked"
    FAILED = "failed"


class VerificationPurpose(StrEnum):
    """What a code may be used for: a code is checked only for its own purpose."""

    LOGIN = "login"
    PHONE_CHANGE = "phone_change"


class Verification(Base):
    """A started verification. The code itself lives at Twilio, never here.

    `code_hash` is set only by the console provider (an HMAC, never the code).
    `purpose` and `user_id` bind the code: a login code (no user) logs in, a
    number-change code changes only `user_id`'s number.
    """

    __tablename__ = "verifications"
    __table_args__ = (
        Index("ix_verifications_phone_created_at", "phone", "created_at"),
        Index("ix_verifications_provider_sid", "provider_sid"),
        Index("ix_verifications_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    phone: Mapped[str] = mapped_column(String(16))
    market: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(16))
    provider_sid: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str | None] = mapped_column(String(128), default=None)
    status: Mapped[str] = mapped_column(String(16), default=VerificationStatus.PENDING)
    purpose: Mapped[str] = mapped_column(String(16), default=VerificationPurpose.LOGIN)
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
