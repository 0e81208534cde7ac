"""Bodies of the login endpoints: send a code, log in with it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.config import Channel
from app.schemas.common import ChannelInput, CodeInput, PhoneInput, RequestBody
from app.schemas.sessions import TokenPairOut
from app.schemas.users import UserOut


class SendVerificationRequest(RequestBody):
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
    channel: Channel = Field(examples=["sms"])


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
