"""/openapi.json documents the answers the endpoints really give: 400, never 422."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import ME, SEND, VERIFY


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        (SEND, {"200", "400", "429", "502", "503"}),
        (VERIFY, {"200", "400", "429", "502", "503"}),
    ],
)
def test_login_endpoints_document_400_not_422(
    openapi: dict[str, Any], path: str, statuses: set[str]
) -> None:
    responses = openapi["paths"][path]["post"]["responses"]

    assert "422" not in responses
    assert statuses <= set(responses)


def test_send_documents_the_field_map_and_its_success(openapi: dict[str, Any]) -> None:
    responses = openapi["paths"][SEND]["post"]["responses"]

    example = responses["400"]["content"]["application/json"]["example"]
    assert example == {"phone": ["Phone number must start with country code (e.g., +996 or +1)"]}
    assert "403" in responses  # a number the provider refuses


def test_me_documents_401_and_403(openapi: dict[str, Any]) -> None:
    responses = openapi["paths"][ME]["get"]["responses"]

    assert {"200", "401", "403"} <= set(responses)
    assert "422" not in responses


def test_no_validation_error_schema_left(openapi: dict[str, Any]) -> None:
    schemas = openapi.get("components", {}).get("schemas", {})

    assert "HTTPValidationError" not in schemas
    assert all(
        "422" not in operation.get("responses", {})
        for path in openapi["paths"].values()
        for operation in path.values()
    )
