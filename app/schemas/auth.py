"""Bodies of the login endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from app.core.config import Channel
from app.schemas.common import ChannelInput, PhoneInput, TextInput
from app.schemas.users import UserOut
from app.services.sessions import TokenPair


class SendVerificationRequest(BaseModel):
    """Ask for a code to be sent to `phone`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "+996555123456"}]})

    phone: PhoneInput
    channel: ChannelInput = Field(
        default=Channel.SMS,
        description="How to deliver the code; each market allows its own channels "
        "(by default KG: sms, whatsapp; US: sms, call).",
    )


class SendVerificationResponse(BaseModel):
    """The code is on its way."""

    success: bool = True
    message: str = Field(examples=["Verification code sent to +996555123456"])
    phone: str = Field(description="E.164 form", examples=["+996555123456"])
    market: str = Field(examples=["KG"])
    language: str = Field(examples=["ru"])
    expires_in_minutes: int = Field(examples=[10])
    channel: str = Field(examples=["sms"])


class VerifyCodeRequest(BaseModel):
    """Check the code that was sent to `phone`."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"phone": "+996555123456", "verification_code": "123456"}]}
    )

    phone: PhoneInput
    verification_code: TextInput = Field(
        validation_alias=AliasChoices("verification_code", "code"),
        description="The code from the SMS; `code` is accepted as an alias.",
    )


class TokenPairOut(BaseModel):
    """An access token and the refresh token that renews it."""

    access_token: str = Field(description="JWT for `Authorization: Bearer`")
    token_type: str = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires", examples=[900])
    refresh_token: str = Field(description="Opaque; exchange it at /api/v1/auth/refresh")
    refresh_expires_in: int = Field(
        description="Seconds until the refresh token expires", examples=[2592000]
    )


def token_fields(pair: TokenPair) -> dict[str, Any]:
    """The fields of a token pair and its user, for the responses that carry them."""
    return {
        "access_token": pair.access.token,
        "expires_in": pair.access.expires_in,
        "refresh_token": pair.refresh_token,
        "refresh_expires_in": pair.refresh_expires_in,
        "user": UserOut.model_validate(pair.user),
    }


class VerifyCodeResponse(TokenPairOut):
    """A logged-in user and their tokens."""

    user: UserOut
    market: str = Field(examples=["KG"])
    is_new_user: bool = Field(description="True only for the login that created the user")


class RefreshRequest(BaseModel):
    """A refresh token to exchange."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "…"}]})

    refresh_token: TextInput = Field(max_length=256)


class RefreshResponse(TokenPairOut):
    """A new pair; the refresh token presented no longer works."""

    user: UserOut


class LogoutRequest(BaseModel):
    """Which sessions to end: this one (`local`, the default) or all of the user's."""

    scope: Literal["local", "global"] = "local"
