"""The audit trail of logins, refreshes, detected token reuse, logouts, deletions,
number changes and admin actions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
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
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    SESSIONS_REVOKED = "sessions_revoked"
    ROLES_CHANGED = "roles_changed"


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
    # The admin who acted (None: the user themselves, or an operator's command line).
    actor_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # What an admin action changed (a reason, roles); never a number unmasked.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
