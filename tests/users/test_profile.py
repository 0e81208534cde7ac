"""PATCH /users/me: name and full name, trimmed and limited; read-only fields refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import ME, bearer, login, me, user_row

# Twilio starts a verification for any number and approves any code.
pytestmark = pytest.mark.usefixtures("twilio_approves")

BLANK = {"name": ["This field may not be blank."]}
READ_ONLY = ["This field cannot be changed."]


async def patch(client: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    return await client.patch(ME, json=body, headers=bearer(token))


async def test_name_and_full_name_are_trimmed_and_saved(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)

    updated = await patch(
        client, body["access_token"], {"full_name": "  Aida Bekova ", "name": "\taida \n"}
    )

    assert updated.status_code == 200, updated.text
    expected = {**body["user"], "full_name": "Aida Bekova", "name": "aida"}
    assert updated.json() == expected
    assert (await me(client, body["access_token"])).json() == expected
    row = await user_row(db_engine, body["user"]["id"])
    assert (row["name"], row["full_name"]) == ("aida", "Aida Bekova")


async def test_one_field_at_a_time(client: httpx.AsyncClient) -> None:
    body = await login(client)

    first = await patch(client, body["access_token"], {"full_name": "Aida Bekova"})
    second = await patch(client, body["access_token"], {"name": "aida"})

    assert first.json() == {**body["user"], "full_name": "Aida Bekova"}
    assert second.json() == {**body["user"], "full_name": "Aida Bekova", "name": "aida"}


async def test_full_name_may_be_cleared(client: httpx.AsyncClient) -> None:
    body = await login(client)
    await patch(client, body["access_token"], {"full_name": "Aida"})

    cleared = await patch(client, body["access_token"], {"full_name": "   "})

    assert cleared.status_code == 200
    assert cleared.json()["full_name"] == ""


async def test_unicode_names_are_kept(client: httpx.AsyncClient) -> None:
    body = await login(client)

    updated = await patch(
        client, body["access_token"], {"full_name": "Айгерим Бекова", "name": "Айгерим"}
    )

    assert updated.status_code == 200
    assert (updated.json()["full_name"], updated.json()["name"]) == ("Айгерим Бекова", "Айгерим")


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
async def test_blank_name_is_refused(client: httpx.AsyncClient, name: str) -> None:
    body = await login(client)

    refused = await patch(client, body["access_token"], {"name": name})

    assert refused.status_code == 400
    assert refused.json() == BLANK
    assert (await me(client, body["access_token"])).json() == body["user"]


async def test_length_limits(client: httpx.AsyncClient) -> None:
    body = await login(client)
    token = body["access_token"]

    long_name = await patch(client, token, {"name": "n" * 151})
    long_full_name = await patch(client, token, {"full_name": "f" * 256})

    assert long_name.status_code == 400
    assert long_name.json() == {"name": ["Ensure this field has no more than 150 characters."]}
    assert long_full_name.status_code == 400
    assert long_full_name.json() == {
        "full_name": ["Ensure this field has no more than 255 characters."]
    }
    assert (await me(client, token)).json() == body["user"]

    at_limit = await patch(client, token, {"name": "n" * 150, "full_name": "f" * 255})
    assert at_limit.status_code == 200
    assert at_limit.json()["name"] == "n" * 150
    assert at_limit.json()["full_name"] == "f" * 255
    # Trimming happens before the limit is checked.
    padded = await patch(client, token, {"name": " " + "m" * 150 + " "})
    assert padded.status_code == 200
    assert padded.json()["name"] == "m" * 150


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "ai\x00da"),
        ("name", "ai\nda"),
        ("full_name", "Aida\x1bBekova"),
        ("full_name", "Aida\x7f"),
    ],
)
async def test_control_characters_are_refused(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    body = await login(client)

    refused = await patch(client, body["access_token"], {field: value})

    assert refused.status_code == 400
    assert list(refused.json()) == [field]
    assert refused.json()[field]
    assert all(isinstance(message, str) and message for message in refused.json()[field])
    assert (await me(client, body["access_token"])).json() == body["user"]


@pytest.mark.parametrize(
    ("field", "value"), [("name", "ai\x9bda"), ("full_name", "Aida\x85Bekova")]
)
async def test_c1_control_characters_are_refused(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    body = await login(client)

    refused = await patch(client, body["access_token"], {field: value})

    assert refused.status_code == 400
    assert list(refused.json()) == [field]
    assert (await me(client, body["access_token"])).json() == body["user"]


async def test_a_name_must_be_text(client: httpx.AsyncClient) -> None:
    body = await login(client)

    refused = await patch(client, body["access_token"], {"name": 12345})

    assert refused.status_code == 400
    assert refused.json() == {"name": ["Not a valid string."]}


async def test_the_whole_user_sent_back_is_refused_field_by_field(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)
    before = await user_row(db_engine, body["user"]["id"])

    refused = await patch(client, body["access_token"], {**body["user"], "full_name": "Aida"})

    assert refused.status_code == 400
    assert refused.json() == {
        "id": READ_ONLY,
        "phone": READ_ONLY,
        "is_active": READ_ONLY,
        "is_verified": READ_ONLY,
    }
    assert await user_row(db_engine, body["user"]["id"]) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("phone", "+996555999999"), ("is_active", False), ("is_verified", False)],
)
async def test_read_only_fields_cannot_change(
    client: httpx.AsyncClient, db_engine: AsyncEngine, field: str, value: Any
) -> None:
    body = await login(client)
    before = await user_row(db_engine, body["user"]["id"])

    refused = await patch(client, body["access_token"], {"full_name": "Aida", field: value})

    assert refused.status_code == 400
    assert refused.json() == {field: READ_ONLY}
    assert (await me(client, body["access_token"])).json() == body["user"]
    after = await user_row(db_engine, body["user"]["id"])
    assert {k: after[k] for k in ("phone", "name", "full_name", "is_active", "is_verified")} == {
        k: before[k] for k in ("phone", "name", "full_name", "is_active", "is_verified")
    }


async def test_several_read_only_changes_are_all_reported(client: httpx.AsyncClient) -> None:
    body = await login(client)

    refused = await patch(
        client, body["access_token"], {"phone": "+996555999999", "is_verified": False}
    )

    assert refused.status_code == 400
    assert refused.json() == {"phone": READ_ONLY, "is_verified": READ_ONLY}


async def test_patch_needs_a_token(client: httpx.AsyncClient) -> None:
    refused = await client.patch(ME, json={"name": "x"})

    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"


async def test_patch_body_must_be_an_object(client: httpx.AsyncClient) -> None:
    body = await login(client)

    refused = await patch(client, body["access_token"], ["name"])

    assert refused.status_code == 400
    assert refused.json() == {"detail": "Request body must be a JSON object."}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"foo": 1}, {"foo": ["Unknown field."]}, id="unknown"),
        pytest.param(
            {"full_name": "Aida", "nickname": "ai", "avatar": None},
            {"nickname": ["Unknown field."], "avatar": ["Unknown field."]},
            id="unknown-beside-a-good-change",
        ),
        pytest.param({"id": "99"}, {"id": READ_ONLY}, id="id"),
        pytest.param({"id": 99}, {"id": READ_ONLY}, id="numeric-id"),
        pytest.param({"is_active": False}, {"is_active": READ_ONLY}, id="is_active"),
        pytest.param(
            {"full_name": None}, {"full_name": ["This field may not be null."]}, id="null"
        ),
        pytest.param({"name": None}, {"name": ["This field may not be null."]}, id="null-name"),
        pytest.param(
            {"is_verified": None}, {"is_verified": ["This field may not be null."]}, id="null-ro"
        ),
        pytest.param(
            {"name": "", "full_name": None, "foo": 1},
            {
                "name": ["This field may not be blank."],
                "full_name": ["This field may not be null."],
                "foo": ["Unknown field."],
            },
            id="all-at-once",
        ),
        pytest.param(
            {"id": "99", "foo": 1, "full_name": None, "is_active": False},
            {
                "id": READ_ONLY,
                "foo": ["Unknown field."],
                "full_name": ["This field may not be null."],
                "is_active": READ_ONLY,
            },
            id="read-only-beside-invalid",
        ),
        pytest.param(
            {"phone": "+996555999999", "name": ""},
            {"phone": READ_ONLY, "name": ["This field may not be blank."]},
            id="read-only-beside-blank",
        ),
    ],
)
async def test_unknown_read_only_and_null_fields_are_refused(
    client: httpx.AsyncClient, db_engine: AsyncEngine, body: dict[str, Any], expected: Any
) -> None:
    logged_in = await login(client)
    before = await user_row(db_engine, logged_in["user"]["id"])

    refused = await patch(client, logged_in["access_token"], body)

    assert refused.status_code == 400
    assert refused.json() == expected
    assert await user_row(db_engine, logged_in["user"]["id"]) == before
    assert (await me(client, logged_in["access_token"])).json() == logged_in["user"]


@pytest.mark.parametrize("field", ["id", "phone", "is_active", "is_verified"])
async def test_a_read_only_field_is_refused_even_with_its_current_value(
    client: httpx.AsyncClient, db_engine: AsyncEngine, field: str
) -> None:
    body = await login(client)
    before = await user_row(db_engine, body["user"]["id"])

    refused = await patch(
        client, body["access_token"], {field: body["user"][field], "full_name": "Aida"}
    )

    assert refused.status_code == 400
    assert refused.json() == {field: READ_ONLY}
    assert await user_row(db_engine, body["user"]["id"]) == before
