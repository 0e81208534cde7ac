"""Bodies of the session endpoints: token pairs, refresh and logout."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import RequestBody, TextInput
from app.schemas.users import UserOut


class TokenPairOut(BaseModel):
    """An access token and the refresh token that renews it."""

    access_token: str = Field(description="JWT for `Authorization: Bearer`")
    token_type: str = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires", examples=[900])
    refresh_token: str = Field(description="Opaque; exchange it at /api/v1/auth/refresh")
    refresh_expires_in: int = Field(
        description="Seconds until the refresh token expires", examples=[2592000]
    )


class TokenPairFields(Protocol):
    """What the token responses read from a token pair."""

    @property
    def access_token(self) -> str: ...
    @property
    def expires_in(self) -> int: ...
    @property
    def refresh_token(self) -> str: ...
    @property
    def refresh_expires_in(self) -> int: ...
    @property
    def user(self) -> Any: ...


def token_fields(pair: TokenPairFields) -> dict[str, Any]:
    """The fields of a token pair and its user, for the responses that carry them."""
    return {
        "access_token": pair.access_token,
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "refresh_expires_in": pair.refresh_expires_in,
        "user": UserOut.model_validate(pair.user),
    }


class RefreshRequest(RequestBody):
    """A refresh token to exchange."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "…"}]})

    refresh_token: TextInput = Field(max_length=256)


class RefreshResponse(TokenPairOut):
    """A new pair; the refresh token presented no longer works."""

    user: UserOut


class LogoutRequest(RequestBody):
    """Which sessions to end: this one (`local`, the default) or all of the user's."""

    scope: Literal["local", "global"] = "local"
