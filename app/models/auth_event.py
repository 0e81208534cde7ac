"""The audit trail of logins, refreshes, detected token reuse, logouts, deletions and
number changes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class AuthEventType(StrEnum):
    """What happened."""

    LOGIN = "login"
    REFRESH = "refresh"
    REUSE_DETECTED = "reuse_detected"
    LOGOUT = "logout"
    USER_DELETED = "user_deleted"
    PHONE_CHANGE_REQUESTED = "phone_change_requested"
    PHONE_CHANGED = "phone_changed"


class AuthEvent(Base):
    """One audited event, written in the same transaction as the change it records."""

    __tablename__ = "auth_events"
    __table_args__ = (Index("ix_auth_events_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    session_id: Mapped[str | None] = mapped_column(String(32), default=None)
    phone_masked: Mapped[str] = mapped_column(String(32), default="")
    # A number change's new number, masked; `phone_masked` is the old one.
    new_phone_masked: Mapped[str | None] = mapped_column(String(32), default=None)
    client_ip: Mapped[str | None] = mapped_column(String(45), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
