"""The `delivery_attempts` table: what a provider reports of each code it sent.

A verification can have several attempts (a resend within a code's lifetime goes
out under the same Twilio verification), so they live beside the verification
row rather than on it. `sync_watermarks` remembers how far each sync has read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class DeliveryAttempt(Base):
    """One attempt to deliver a code, as its provider reported it at the last sync.

    `price_micros` is the provider's charge in millionths of `price_currency`
    (integers keep sums exact on both databases); `None` until the provider
    knows it. `delivery_status` is the message's status (`delivered`,
    `undelivered`, `failed`, …); `converted` whether the code was used.
    """

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        UniqueConstraint("provider", "attempt_sid"),
        Index("ix_delivery_attempts_verification_id", "verification_id"),
        Index("ix_delivery_attempts_verification_sid", "verification_sid"),
        Index("ix_delivery_attempts_market_attempted_at", "market", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    attempt_sid: Mapped[str] = mapped_column(String(64))
    verification_sid: Mapped[str] = mapped_column(String(64))
    # The matching `verifications` row, when it is still there (None once purged
    # or for an attempt this service did not start).
    verification_id: Mapped[int | None] = mapped_column(Integer, default=None)
    market: Mapped[str | None] = mapped_column(String(8), default=None)
    channel: Mapped[str] = mapped_column(String(16))
    delivery_status: Mapped[str | None] = mapped_column(String(24), default=None)
    delivery_error_code: Mapped[str | None] = mapped_column(String(16), default=None)
    converted: Mapped[bool | None] = mapped_column(Boolean, default=None)
    price_micros: Mapped[int | None] = mapped_column(BigInteger, default=None)
    price_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    provider_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SyncWatermark(Base):
    """How far a sync has read a provider's reports: the newest creation time seen."""

    __tablename__ = "sync_watermarks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    watermark_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
