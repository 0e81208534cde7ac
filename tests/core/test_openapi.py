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


# ----------------------------------------------------------- for client generators
def _responses(openapi: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (path, method, status, response)
        for path, operations in openapi["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
    ]


def test_every_response_documents_x_request_id(openapi: dict[str, Any]) -> None:
    responses = _responses(openapi)

    assert len(responses) > 40
    for path, method, status, response in responses:
        header = response.get("headers", {}).get("X-Request-ID")
        assert header is not None, (path, method, status)
        assert header["required"] is True
        assert header["schema"] == {"type": "string"}


def test_retry_after_and_www_authenticate_are_documented(openapi: dict[str, Any]) -> None:
    by_status: dict[str, list[dict[str, Any]]] = {}
    for _, _, status, response in _responses(openapi):
        by_status.setdefault(status, []).append(response.get("headers", {}))

    assert by_status["429"]
    assert by_status["503"]
    assert by_status["401"]
    for headers in by_status["429"]:
        assert headers["Retry-After"]["required"] is True
        assert headers["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
    for headers in by_status["503"]:
        assert headers["Retry-After"]["schema"]["type"] == "integer"
    for headers in by_status["401"]:
        assert headers["WWW-Authenticate"]["required"] is True
    for status in set(by_status) - {"429", "503"}:
        assert all("Retry-After" not in headers for headers in by_status[status]), status


def test_verification_code_has_its_pattern_and_length(openapi: dict[str, Any]) -> None:
    code = openapi["components"]["schemas"]["VerifyCodeRequest"]["properties"]["verification_code"]

    # Every VERIFICATION_CODE_LENGTH a deployment may choose (4 to 10 digits).
    assert code["type"] == "string"
    assert code["pattern"] == "^[0-9]{4,10}$"
    assert (code["minLength"], code["maxLength"]) == (4, 10)


def test_send_answer_channel_is_the_enum(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    channel = schemas["SendVerificationResponse"]["properties"]["channel"]

    assert channel["$ref"] == "#/components/schemas/Channel"
    assert schemas["Channel"]["enum"] == ["sms", "whatsapp", "call"]
    request = schemas["SendVerificationRequest"]["properties"]["channel"]
    assert request["$ref"] == "#/components/schemas/Channel"


def test_probes_have_response_schemas(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    readyz = openapi["paths"]["/readyz"]["get"]["responses"]
    healthz = openapi["paths"]["/healthz"]["get"]["responses"]

    for status in ("200", "503"):
        schema = readyz[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ReadinessBody"}
    body = schemas["ReadinessBody"]
    assert body["required"] == ["status", "checks"]
    assert body["properties"]["status"]["enum"] == ["ok", "degraded", "unavailable"]
    assert body["properties"]["checks"]["additionalProperties"] == {"type": "string"}
    assert healthz["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HealthBody"
    }


def test_send_documents_success_false_on_every_detail_error(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    responses = openapi["paths"][SEND]["post"]["responses"]

    for status in ("403", "413", "415", "502", "503"):
        content = responses[status]["content"]["application/json"]
        assert content["example"]["success"] is False, status
        assert content["schema"] == {"$ref": "#/components/schemas/SendErrorBody"}, status
    assert responses["429"]["content"]["application/json"]["example"]["success"] is False
    bad_request = responses["400"]["content"]["application/json"]["schema"]["$ref"]
    options = schemas[bad_request.rsplit("/", 1)[1]]["anyOf"]
    assert {"$ref": "#/components/schemas/SendErrorBody"} in options
    assert {"$ref": "#/components/schemas/InvalidJsonBody"} in options


def test_invalid_json_body_is_documented_with_its_position(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    body = schemas["InvalidJsonBody"]

    assert set(body["required"]) == {"detail", "line", "column"}
    assert body["properties"]["line"]["minimum"] == 1
    assert body["properties"]["column"]["minimum"] == 1
    options = schemas["BadRequestBody"]["anyOf"]
    assert {"$ref": "#/components/schemas/InvalidJsonBody"} in options


def test_user_update_lists_only_what_can_change(openapi: dict[str, Any]) -> None:
    schema = openapi["components"]["schemas"]["UserUpdate"]

    assert set(schema["properties"]) == {"name", "full_name"}
    assert schema["additionalProperties"] is False
    # null is refused, so it is not offered either.
    assert schema["properties"]["name"]["type"] == "string"
    assert schema["properties"]["full_name"]["type"] == "string"
