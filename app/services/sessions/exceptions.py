"""What the sessions domain refuses, in its own words (all 401 with
`WWW-Authenticate: Bearer`)."""

from __future__ import annotations

from app.core.errors import NotAuthenticated

MSG_NOT_AUTHENTICATED = "Authentication credentials were not provided."
MSG_INVALID_TOKEN = "Invalid or expired token."  # noqa: S105 (a message, not a secret)
MSG_INVALID_REFRESH = "Invalid or expired refresh token."


class NoCredentials(NotAuthenticated):
    """No bearer token came with the request."""

    default_message = MSG_NOT_AUTHENTICATED


class InvalidToken(NotAuthenticated):
    """A bearer token that is malformed, expired, wrongly signed or of a revoked session."""

    default_message = MSG_INVALID_TOKEN


class InvalidRefreshToken(NotAuthenticated):
    """A refresh token that is unknown, expired, revoked or reused."""

    default_message = MSG_INVALID_REFRESH
