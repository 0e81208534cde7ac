"""What the request bodies share: the base that refuses text that cannot be encoded,
and the input types of phone numbers, text and channels."""

from __future__ import annotations

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
