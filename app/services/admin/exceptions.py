"""What the admin domain refuses, in its own words."""

from __future__ import annotations

from app.core.errors import AppError, FieldErrors, Forbidden

MSG_NOT_ADMIN = "You do not have permission to perform this action."
MSG_USER_NOT_FOUND = "User not found."
MSG_INVALID_CURSOR = "Invalid cursor."
MSG_OWN_ADMIN_ROLE = "You cannot remove the admin role from your own account."
MSG_OWN_ACCOUNT = "You cannot disable or delete your own account here."


class NotAdmin(Forbidden):
    """A valid token whose user lacks the `admin` role."""

    default_message = MSG_NOT_ADMIN


class UserNotFound(AppError):
    """No user with that id or number."""

    status_code = 404
    default_message = MSG_USER_NOT_FOUND
    outcome = "not_found"


class InvalidCursor(FieldErrors):
    """A cursor this service did not hand out (or of another list)."""

    def __init__(self) -> None:
        super().__init__({"cursor": [MSG_INVALID_CURSOR]})


class InvalidRoles(FieldErrors):
    """Role names that cannot be stored."""

    def __init__(self, message: str) -> None:
        super().__init__({"roles": [message]})


class SelfLockout(AppError):
    """An admin action that would lock the acting admin out."""

    status_code = 409
    outcome = "conflict"
