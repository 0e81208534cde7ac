"""Error bodies of the HTTP contract, and the one way routes document them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel


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


class InvalidJsonBody(BaseModel):
    """A body that is not valid JSON (`Request body is not valid JSON.`) and where
    parsing stopped: 1-based `line` and `column`. On send-verification with
    `"success": false`."""

    success: bool | None = None
    detail: str
    line: int = Field(ge=1)
    column: int = Field(ge=1)


class BadRequestBody(RootModel[dict[str, list[str]] | InvalidJsonBody | DetailBody]):
    """Messages per field, e.g. `{"phone": ["Enter a valid phone number."]}`, or
    `{"detail": ...}` for a body that cannot be read or a wrong code."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"phone": ["Phone number must start with country code (e.g., +996 or +1)"]}
            ]
        }
    )


def error_response(model: type[BaseModel], description: str, example: Any) -> dict[str, Any]:
    """An error response for a route's `responses`: its body model, what it means, and
    an example body."""
    return {
        "model": model,
        "description": description,
        "content": {"application/json": {"example": example}},
    }


def as_documented(response: dict[str, Any]) -> dict[str, Any]:
    """An `error_response` as it stands in the OpenAPI document, for responses added to
    the document after FastAPI built it."""
    model: type[BaseModel] = response["model"]
    example = response["content"]["application/json"]["example"]
    return {
        "description": response["description"],
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{model.__name__}"},
                "example": example,
            }
        },
    }


class SendBadRequestBody(RootModel[dict[str, list[str]] | InvalidJsonBody | SendErrorBody]):
    """Messages per field, e.g. `{"phone": ["Enter a valid phone number."]}`, or, for a
    body that cannot be read, `{"success": false, "detail": ...}`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"phone": ["Phone number must start with country code (e.g., +996 or +1)"]}
            ]
        }
    )
