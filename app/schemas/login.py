"""Bodies of the login endpoints: send a code, log in with it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.config import CaptchaProvider, Channel
from app.core.markets import Market
from app.core.phone import Phone
from app.schemas.common import (
    AppHashInput,
    CaptchaTokenInput,
    ChannelInput,
    CodeInput,
    PhoneInput,
    RequestBody,
)
from app.schemas.sessions import TokenPairOut
from app.schemas.users import UserOut


class CodeDeliveryRequest(RequestBody):
    """Ask for a code to be sent to `phone`: past the bot challenge when the send needs
    one."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "+996555123456"}]})

    phone: PhoneInput
    channel: ChannelInput = Field(
        default=Channel.SMS,
        description="How to deliver the code; each market allows its own channels "
        "(by default KG: sms, whatsapp; US: sms, call).",
    )
    app_hash: AppHashInput = None
    captcha_token: CaptchaTokenInput = None


class SendVerificationRequest(CodeDeliveryRequest):
    """Ask for a login code to be sent to `phone`."""


class SendVerificationResponse(BaseModel):
    """The code is on its way."""

    success: bool = True
    message: str = Field(examples=["Verification code sent to +996555123456"])
    phone: str = Field(description="E.164 form", examples=["+996555123456"])
    market: str = Field(examples=["KG"])
    language: str = Field(examples=["ru"])
    expires_in_minutes: int = Field(examples=[10])
    channel: Channel = Field(examples=["sms"])

    @classmethod
    def sent(cls, phone: Phone, market: Market, channel: str) -> SendVerificationResponse:
        """The answer for a code sent to `phone` of `market` over `channel`."""
        return cls(
            message=f"Verification code sent to {phone.e164}",
            phone=phone.e164,
            market=market.name,
            language=market.settings.language,
            expires_in_minutes=market.settings.code_ttl_minutes,
            channel=Channel(channel),
        )


class VerifyCodeRequest(RequestBody):
    """Check the code that was sent to `phone`."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"phone": "+996555123456", "verification_code": "123456"}]}
    )

    phone: PhoneInput
    verification_code: CodeInput = Field(
        description="The code from the SMS: `VERIFICATION_CODE_LENGTH` ASCII digits (6 "
        "unless the deployment says otherwise); `code` is accepted as an alias.",
        examples=["123456"],
    )

    @model_validator(mode="before")
    @classmethod
    def _code_alias(cls, data: Any) -> Any:
        # `code` is read as `verification_code`, and its errors are reported under that name.
        if isinstance(data, dict) and "code" in data and "verification_code" not in data:
            data = {**data, "verification_code": data["code"]}
            del data["code"]
        return data


class VerifyCodeResponse(TokenPairOut):
    """A logged-in user and their tokens."""

    user: UserOut
    market: str = Field(examples=["KG"])
    is_new_user: bool = Field(description="True only for the login that created the user")


class MarketOut(BaseModel):
    """A market: the numbers it takes and how codes reach them."""

    name: str = Field(examples=["KG"])
    country_code: str = Field(description="Country calling code", examples=["+996"])
    region: str = Field(description="ISO 3166 region of its numbers", examples=["KG"])
    language: str = Field(description="Language of its codes' messages", examples=["ru"])
    channels: list[Channel] = Field(examples=[["sms", "whatsapp"]])
    code_ttl_minutes: int = Field(description="How long a code lives", examples=[10])


class CaptchaOut(BaseModel):
    """The bot challenge a send may need, and the public site key to render it."""

    provider: CaptchaProvider = Field(description="`none`: sends never need a challenge")
    site_key: str | None = Field(
        description="The provider's public site key for the widget; null without one"
    )
    mode: Literal["always", "risk"] | None = Field(
        description="`always`: every send needs a challenge; `risk`: only risky ones "
        "(a send answers 400 on `captcha_token` when it needs one)"
    )
    may_be_required: bool = Field(description="Whether a send may need a challenge at all")


class AuthSettingsResponse(BaseModel):
    """Public configuration for frontends: cacheable, and never a secret."""

    markets: list[MarketOut]
    code_length: int = Field(description="Digits in a code", examples=[6])
    captcha: CaptchaOut
    one_tap_supported: bool = Field(
        description="Whether send-verification takes an Android `app_hash` (sms channel) "
        "so that the app reads the code from the SMS by itself"
    )
