"""Shared input types and error bodies of the HTTP contract."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    RootModel,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from app.core.config import Channel
from app.services.phone import Phone, PhoneError, parse_phone


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
        return parse_phone(_text(value))
    except PhoneError as exc:
        raise PydanticCustomError("phone", str(exc)) from exc


PhoneInput = Annotated[
    Phone,
    PlainValidator(_phone),
    PlainSerializer(lambda phone: phone.e164, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 32,
            "description": "Phone number with country code; spaces, dashes, dots and "
            "parentheses are allowed. Answers use the E.164 form.",
            "examples": ["+996555123456", "+1 (202) 555-0143"],
        }
    ),
]

TextInput = Annotated[str, BeforeValidator(_text)]


def _channel(value: Any) -> Channel:
    text = _text(value).lower()
    try:
        return Channel(text)
    except ValueError as exc:
        raise PydanticCustomError("choice", f'"{text[:32]}" is not a valid choice.') from exc


ChannelInput = Annotated[Channel, BeforeValidator(_channel)]


class DetailBody(BaseModel):
    """An error with one message."""

    detail: str


class SendErrorBody(BaseModel):
    """An error of the send endpoint."""

    success: bool = False
    detail: str


class RateLimitedBody(BaseModel):
    """Too many requests; `retry_after` seconds to wait (also in `Retry-After`)."""

    success: bool | None = None
    detail: str
    retry_after: int


class BadRequestBody(RootModel[dict[str, list[str]] | DetailBody]):
    """Messages per field, e.g. `{"phone": ["Enter a valid phone number."]}`, or
    `{"detail": ...}` for a body that cannot be read or a wrong code."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"phone": ["Phone number must start with country code (e.g., +996 or +1)"]}
            ]
        }
    )
