"""ORM models; importing this package registers every table on `Base.metadata`."""

from app.models.auth_event import AuthEvent, AuthEventType
from app.models.base import Base
from app.models.session import AuthSession, RefreshToken
from app.models.user import User
from app.models.verification import Verification, VerificationStatus

__all__ = [
    "AuthEvent",
    "AuthEventType",
    "AuthSession",
    "Base",
    "RefreshToken",
    "User",
    "Verification",
    "VerificationStatus",
]
