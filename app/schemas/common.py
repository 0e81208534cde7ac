"""What the request bodies share: the base that refuses text that cannot be encoded,
and the input types of phone numbers, text and channels."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.core.config import Channel
from app.core.input_rules import code_format_error, current_input_rules
from app.core.phone import MAX_RAW_LENGTH, Phone, PhoneError, parse_phone
from app.core.text import MSG_INVALID_TEXT, encodable


class RequestBody(BaseModel):
    """A request body: a field holding text that cannot be encoded is refused before
    any other check of that field, with one message."""

    @field_validator("*", mode="before")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        if isinstance(value, str) and not encodable(value):
            raise PydanticCustomError("invalid_text", MSG_INVALID_TEXT)
        return value


def _text(value: Any) -> str:
    """Accept what the old backend's CharField accepted: strings and numbers."""
    if value is None:
        raise PydanticCustomError("null", "This field may not be null.")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PydanticCustomError("string_type", "Not a valid string.")
    text = str(value).strip()
    if not text:
        raise PydanticCustomError("blank", "This field may not be blank.")
    return text


def _phone(value: Any) -> Phone:
    if isinstance(value, Phone):
        return value
    try:
        phone = parse_phone(_text(value))
    except PhoneError as exc:
        raise PydanticCustomError("phone", str(exc)) from exc
    rules = current_input_rules()
    refusal = rules.markets.refusal(phone) if rules is not None else None
    if refusal is not None:
        raise PydanticCustomError("phone", refusal)
    return phone


PhoneInput = Annotated[
    Phone,
    PlainValidator(_phone),
    PlainSerializer(lambda phone: phone.e164, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_RAW_LENGTH,
            "description": "Phone number with country code; spaces, dashes, dots and "
            "parentheses are allowed, and invisible formatting characters (bidi marks, "
            "non-breaking spaces) and fullwidth digits are ignored. Answers use the E.164 "
            "form.",
            "examples": ["+996555123456", "+1 (202) 555-0143"],
        }
    ),
]

TextInput = Annotated[str, BeforeValidator(_text)]


def _code(value: Any) -> str:
    code = _text(value)
    rules = current_input_rules()
    refusal = code_format_error(code, rules.code_length) if rules is not None else None
    if refusal is not None:
        raise PydanticCustomError("code", refusal)
    return code


# The length is the deployment's VERIFICATION_CODE_LENGTH (4 to 10, 6 by default).
CodeInput = Annotated[
    str,
    BeforeValidator(_code),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{4,10}$", "minLength": 4, "maxLength": 10}),
]


def _channel(value: Any) -> Channel:
    text = _text(value).lower()
    try:
        return Channel(text)
    except ValueError as exc:
        raise PydanticCustomError("choice", f'"{text[:32]}" is not a valid choice.') from exc


ChannelInput = Annotated[Channel, BeforeValidator(_channel)]


# Providers' tokens are printable ASCII (Turnstile's at most 2048 characters): the
# bound keeps a send's body well under the 16 KiB body limit.
CAPTCHA_TOKEN_MAX_LENGTH = 4096
MSG_CHALLENGE_NOT_PASSED = "The challenge was not passed. Please try again."
_TOKEN = re.compile(r"[!-~]+")
MSG_INVALID_APP_HASH = "Enter a valid app hash: 11 characters of A-Z, a-z, 0-9, + and /."
_APP_HASH = re.compile(r"[A-Za-z0-9+/]{11}")


def _captcha_token(value: Any) -> str | None:
    """A challenge token; blank counts as none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Not a valid string.")
    token = value.strip()
    if len(token) > CAPTCHA_TOKEN_MAX_LENGTH:
        raise PydanticCustomError(
            "token_too_long",
            f"Ensure this field has no more than {CAPTCHA_TOKEN_MAX_LENGTH} characters.",
        )
    if token and not _TOKEN.fullmatch(token):
        raise PydanticCustomError("captcha_token", MSG_CHALLENGE_NOT_PASSED)
    return token or None


CaptchaTokenInput = Annotated[
    str | None,
    PlainValidator(_captcha_token),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": CAPTCHA_TOKEN_MAX_LENGTH,
            "pattern": "^[!-~]+$",
            "description": "The token of a passed challenge (Turnstile, hCaptcha or "
            "reCAPTCHA, as GET /api/v1/auth/settings names it). Needed only when a send "
            'answered 400 `{"captcha_token": [...]}`.',
        }
    ),
]


def _app_hash(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Not a valid string.")
    if not _APP_HASH.fullmatch(value):
        raise PydanticCustomError("app_hash", MSG_INVALID_APP_HASH)
    return value


AppHashInput = Annotated[
    str | None,
    PlainValidator(_app_hash),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z0-9+/]{11}$",
            "description": "The Android app's 11-character signature hash for the SMS "
            "Retriever: appended to the SMS so that the app reads the code itself. Only "
            "with the `sms` channel.",
            "examples": ["FA+9qCX9VSu"],
        }
    ),
]
