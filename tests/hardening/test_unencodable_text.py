"""Text that cannot be encoded (a lone UTF-16 surrogate, which JSON's `\\ud83d` escape
can carry) answers 400 with the field map on every field of every endpoint, and nothing
is written or sent."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from tests.conftest import ClientFactory, SettingsFactory
from tests.helpers import (
    CODE,
    KG_PHONE,
    LOGOUT,
    ME,
    REFRESH,
    SEND,
    US_PHONE,
    VERIFY,
    bearer,
    event_rows,
    login,
    refresh_rows,
    set_roles,
    user_row,
    verifications,
)
from tests.twilio_fixtures import mock_approving

INVALID_TEXT = "Enter a valid value."
CHANGE_SEND = "/api/v1/users/me/phone/send-verification"
CHANGE_VERIFY = "/api/v1/users/me/phone/verify"
# Admin routes, run by the logged-in user made an admin, on their own account.
ADMIN_DISABLE = "/api/v1/admin/users/{user_id}/disable"
ADMIN_ROLES = "/api/v1/admin/users/{user_id}/roles"

# Lone surrogates alone and inside otherwise valid text.
UNENCODABLE = [
    pytest.param("\ud83d", id="high-surrogate"),
    pytest.param("\udc00", id="low-surrogate"),
    pytest.param("ab\ud83dcd", id="surrogate-inside"),
]

# Every field of every request body, with a valid body around it.
FIELDS = [
    pytest.param("POST", SEND, {"phone": KG_PHONE}, "phone", id="send-phone"),
    pytest.param("POST", SEND, {"phone": KG_PHONE}, "channel", id="send-channel"),
    pytest.param("POST", SEND, {"phone": KG_PHONE}, "captcha_token", id="send-captcha_token"),
    pytest.param("POST", SEND, {"phone": KG_PHONE}, "app_hash", id="send-app_hash"),
    pytest.param(
        "POST", VERIFY, {"phone": KG_PHONE, "verification_code": CODE}, "phone", id="verify-phone"
    ),
    pytest.param(
        "POST",
        VERIFY,
        {"phone": KG_PHONE, "verification_code": CODE},
        "verification_code",
        id="verify-verification_code",
    ),
    pytest.param("POST", VERIFY, {"phone": KG_PHONE, "code": CODE}, "code", id="verify-code"),
    pytest.param("POST", REFRESH, {}, "refresh_token", id="refresh-refresh_token"),
    pytest.param("POST", LOGOUT, {}, "scope", id="logout-scope"),
    pytest.param("PATCH", ME, {"full_name": "Aida"}, "name", id="me-name"),
    pytest.param("PATCH", ME, {"name": "aida"}, "full_name", id="me-full_name"),
    pytest.param("PATCH", ME, {"name": "aida"}, "phone", id="me-phone"),
    pytest.param("PATCH", ME, {"name": "aida"}, "is_active", id="me-is_active"),
    pytest.param("PATCH", ME, {"name": "aida"}, "is_verified", id="me-is_verified"),
    pytest.param("PATCH", ME, {"name": "aida"}, "id", id="me-id"),
    pytest.param("POST", CHANGE_SEND, {"phone": US_PHONE}, "phone", id="change-send-phone"),
    pytest.param("POST", CHANGE_SEND, {"phone": US_PHONE}, "channel", id="change-send-channel"),
    pytest.param("POST", CHANGE_SEND, {"phone": US_PHONE}, "app_hash", id="change-send-app_hash"),
    pytest.param(
        "POST", CHANGE_SEND, {"phone": US_PHONE}, "captcha_token", id="change-send-captcha_token"
    ),
    pytest.param(
        "POST",
        CHANGE_VERIFY,
        {"phone": US_PHONE, "verification_code": CODE},
        "phone",
        id="change-verify-phone",
    ),
    pytest.param(
        "POST",
        CHANGE_VERIFY,
        {"phone": US_PHONE, "verification_code": CODE},
        "verification_code",
        id="change-verify-verification_code",
    ),
    pytest.param("POST", ADMIN_DISABLE, {"reason": "fraud"}, "reason", id="admin-disable-reason"),
    pytest.param("PUT", ADMIN_ROLES, {"roles": ["admin"]}, "roles", id="admin-roles-roles"),
]


def _raw(body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Request arguments sending `body` as JSON with surrogates as `\\uXXXX` escapes."""
    return {
        "content": json.dumps(body, ensure_ascii=True).encode("ascii"),
        "headers": {"Content-Type": "application/json", **(headers or {})},
    }


async def _state(engine: AsyncEngine, user_id: str) -> list[Any]:
    return [
        await user_row(engine, user_id),
        await verifications(engine),
        await refresh_rows(engine),
        await event_rows(engine),
    ]


@pytest.mark.parametrize("text", UNENCODABLE)
@pytest.mark.parametrize(("method", "path", "body", "field"), FIELDS)
async def test_unencodable_text_in_any_field_is_a_400_field_error(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
    text: str,
) -> None:
    mock_approving(twilio)
    async with client_for() as client:
        logged_in = await login(client, KG_PHONE)
        if path == REFRESH:
            body = {"refresh_token": logged_in["refresh_token"]}
        if "{user_id}" in path:
            await set_roles(db_engine, logged_in["user"]["id"], ["admin"])
            path = path.format(user_id=logged_in["user"]["id"])
        before = await _state(db_engine, logged_in["user"]["id"])
        twilio_calls = len(twilio.calls)

        response = await client.request(
            method,
            path,
            **_raw({**body, field: text}, bearer(logged_in["access_token"])),
        )

        assert response.status_code == 400, response.text
        # `code` is read, and answered, as `verification_code`.
        reported = "verification_code" if field == "code" else field
        assert response.json() == {reported: [INVALID_TEXT]}
        # Nothing sent, spent, rotated, audited or changed; the session still works.
        assert len(twilio.calls) == twilio_calls
        assert await _state(db_engine, logged_in["user"]["id"]) == before
        assert (await client.get(ME, headers=bearer(logged_in["access_token"]))).status_code == 200


def _refs(schema: dict[str, Any]) -> list[str]:
    """The models a body schema names, also inside `anyOf` (an optional body)."""
    if "$ref" in schema:
        return [schema["$ref"]]
    return [ref for option in schema.get("anyOf", []) for ref in _refs(option)]


def test_every_text_field_of_every_request_body_is_covered(
    make_settings: SettingsFactory,
) -> None:
    """A new field of a request body must join `FIELDS`."""
    document = create_app(make_settings()).openapi()
    schemas = document["components"]["schemas"]
    fields = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for ref in _refs(content.get("application/json", {}).get("schema", {})):
                schema = schemas[ref.rsplit("/", 1)[1]]
                fields |= {(method.upper(), path, name) for name in schema["properties"]}
    covered = {(p.values[0], p.values[1], p.values[3]) for p in FIELDS}

    # `code` is verification_code's alias, and the read-only fields of PATCH /users/me
    # (accepted with their current value), none of which the document lists.
    unlisted = {("POST", VERIFY, "code")} | {
        ("PATCH", ME, name) for name in ("id", "phone", "is_active", "is_verified")
    }
    assert fields == covered - unlisted


async def test_unencodable_channel_is_not_echoed(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    """The old message quoted the channel, which could not be encoded."""
    response = await client.post(SEND, **_raw({"phone": KG_PHONE, "channel": "sms\ud83d"}))

    assert response.status_code == 400
    assert response.json() == {"channel": [INVALID_TEXT]}
    assert "codec" not in response.text
    assert not twilio.calls
