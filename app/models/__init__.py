"""ORM models; importing this package registers every table on `Base.metadata`."""

from app.models.base import Base
from app.models.user import User
from app.models.verification import Verification, VerificationStatus

__all__ = ["Base", "User", "Verification", "VerificationStatus"]
