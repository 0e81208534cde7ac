"""GET /api/v1/admin/verifications: support staff see a number's or a user's recent codes
with what the provider reported of their delivery (attempt rows inserted directly, as
the sync stores them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.delivery_attempt import DeliveryAttempt
from app.models.verification import Verification
from tests.helpers import (
    NOT_AUTHENTICATED,
    assert_unauthorized,
    bearer,
    login,
    new_phone,
    verifications,
)

PATH = "/api/v1/admin/verifications"
NOT_ADMIN = {"detail": "You do not have permission to perform this action."}
SYNCED = datetime(2026, 11, 30, 12, 5, tzinfo=UTC)


async def add_attempt(engine: AsyncEngine, verification: Any, **values: Any) -> None:
    """Store an attempt of `verification` as the sync would."""
    row: dict[str, Any] = {
        "provider": "twilio",
        "attempt_sid": "VL" + values.pop("suffix", "a") * 32,
        "verification_sid": verification.provider_sid,
        "verification_id": verification.id,
        "market": verification.market,
        "channel": "sms",
        "attempted_at": verification.created_at,
        "synced_at": SYNCED,
        **values,
    }
    async with engine.begin() as connection:
        await connection.execute(insert(DeliveryAttempt), row)


async def sent_rows(engine: AsyncEngine, phone: str) -> list[Any]:
    return [row for row in await verifications(engine) if row.phone == phone]


async def test_a_logged_in_number_shows_its_code_with_delivery_price_and_conversion(
    client: httpx.AsyncClient, admin: dict[str, Any], db_engine: AsyncEngine
) -> None:
    phone = new_phone()
    await login(client, phone)
    (row,) = await sent_rows(db_engine, phone)
    await add_attempt(
        db_engine,
        row,
        delivery_status="delivered",
        converted=True,
        price_micros=5000,
        price_currency="usd",
    )

    response = await client.get(PATH, params={"phone": phone}, headers=admin["headers"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    (item,) = body["items"]
    assert item == {
        "id": str(row.id),
        "phone": phone,
        "market": row.market,
        "purpose": "login",
        "channel": "sms",
        "provider": "twilio",
        "status": "approved",
        "created_at": item["created_at"],
        "expires_at": item["expires_at"],
        "delivery_status": "delivered",
        "delivery_error_code": None,
        "converted": True,
        "price": "0.0050",
        "price_currency": "USD",
        "synced_at": "2026-11-30T12:05:00Z",
        "attempts": [
            {
                "attempt_sid": "VL" + "a" * 32,
                "channel": "sms",
                "delivery_status": "delivered",
                "delivery_error_code": None,
                "converted": True,
                "price": "0.0050",
                "price_currency": "USD",
                "attempted_at": item["created_at"],
            }
        ],
    }
    assert datetime.fromisoformat(item["expires_at"]) > datetime.fromisoformat(item["created_at"])


async def test_before_any_sync_the_delivery_fields_are_null(
    client: httpx.AsyncClient, admin: dict[str, Any], db_engine: AsyncEngine
) -> None:
    phone = new_phone()
    await client.post("/api/v1/auth/send-verification", json={"phone": phone})

    (item,) = (await client.get(PATH, params={"phone": phone}, headers=admin["headers"])).json()[
        "items"
    ]

    assert item["status"] == "pending"
    assert {key: item[key] for key in ("delivery_status", "converted", "price", "synced_at")} == {
        "delivery_status": None,
        "converted": None,
        "price": None,
        "synced_at": None,
    }
    assert item["attempts"] == []


async def test_the_summary_is_the_newest_attempt_and_the_price_their_sum(
    client: httpx.AsyncClient, admin: dict[str, Any], db_engine: AsyncEngine
) -> None:
    phone = new_phone()
    await login(client, phone)
    (row,) = await sent_rows(db_engine, phone)
    first = row.created_at
    await add_attempt(
        db_engine,
        row,
        suffix="a",
        delivery_status="undelivered",
        delivery_error_code="30003",
        converted=True,
        price_micros=50_000,
        price_currency="USD",
        attempted_at=first,
    )
    await add_attempt(
        db_engine,
        row,
        suffix="b",
        channel="whatsapp",
        delivery_status="read",
        converted=True,
        price_micros=1_234_567,
        price_currency="USD",
        attempted_at=first + timedelta(seconds=40),
    )

    (item,) = (await client.get(PATH, params={"phone": phone}, headers=admin["headers"])).json()[
        "items"
    ]

    assert (item["delivery_status"], item["delivery_error_code"]) == ("read", None)
    assert (item["price"], item["price_currency"]) == ("1.284567", "USD")
    assert [a["attempt_sid"][2:3] for a in item["attempts"]] == ["b", "a"]
    assert item["attempts"][1]["delivery_error_code"] == "30003"
    assert [a["price"] for a in item["attempts"]] == ["1.234567", "0.0500"]


async def test_prices_in_two_currencies_add_up_to_no_price(
    client: httpx.AsyncClient, admin: dict[str, Any], db_engine: AsyncEngine
) -> None:
    phone = new_phone()
    await login(client, phone)
    (row,) = await sent_rows(db_engine, phone)
    await add_attempt(db_engine, row, suffix="a", price_micros=10, price_currency="USD")
    await add_attempt(db_engine, row, suffix="b", price_micros=10, price_currency="EUR")

    (item,) = (await client.get(PATH, params={"phone": phone}, headers=admin["headers"])).json()[
        "items"
    ]

    assert (item["price"], item["price_currency"]) == (None, None)
    assert sorted(a["price_currency"] for a in item["attempts"]) == ["EUR", "USD"]


async def test_an_unconverted_code_and_an_unknown_conversion_differ(
    client: httpx.AsyncClient, admin: dict[str, Any], db_engine: AsyncEngine
) -> None:
    used, unused = new_phone(), new_phone()
    await login(client, used)
    await client.post("/api/v1/auth/send-verification", json={"phone": unused})
    await add_attempt(db_engine, (await sent_rows(db_engine, unused))[0], converted=False)

    unused_item = (
        await client.get(PATH, params={"phone": unused}, headers=admin["headers"])
    ).json()
    used_item = (await client.get(PATH, params={"phone": used}, headers=admin["headers"])).json()

    assert unused_item["items"][0]["converted"] is False
    assert used_item["items"][0]["converted"] is None


async def test_pages_newest_first_with_the_users_cursor_rules(
    client: httpx.AsyncClient, admin: dict[str, Any], db_engine: AsyncEngine
) -> None:
    phone = new_phone()
    for _ in range(3):
        await login(client, phone)
    ids = [str(row.id) for row in await sent_rows(db_engine, phone)]

    first = (
        await client.get(PATH, params={"phone": phone, "limit": 2}, headers=admin["headers"])
    ).json()
    second = (
        await client.get(
            PATH,
            params={"phone": phone, "limit": 2, "cursor": first["next_cursor"]},
            headers=admin["headers"],
        )
    ).json()

    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    assert [item["id"] for item in second["items"]] == ids[::-1][2:]
    assert second["next_cursor"] is None


async def test_without_a_filter_every_code_newest_first(
    client: httpx.AsyncClient, admin: dict[str, Any], db_engine: AsyncEngine
) -> None:
    await login(client)

    body = (await client.get(PATH, headers=admin["headers"])).json()

    ids = [int(item["id"]) for item in body["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == len(await verifications(db_engine))


async def test_a_users_codes_are_those_to_their_number_and_their_number_changes(
    client: httpx.AsyncClient, admin: dict[str, Any], db_engine: AsyncEngine
) -> None:
    phone, other = new_phone(), new_phone()
    body = await login(client, phone)
    await login(client, other)
    change_to = new_phone()
    async with db_engine.begin() as connection:
        await connection.execute(
            insert(Verification),
            {
                "phone": change_to,
                "market": "KG",
                "channel": "sms",
                "provider": "twilio",
                "provider_sid": "VE" + "c" * 32,
                "purpose": "phone_change",
                "user_id": int(body["user"]["id"]),
                "expires_at": datetime.now(UTC) + timedelta(minutes=10),
            },
        )

    found = (
        await client.get(PATH, params={"user_id": body["user"]["id"]}, headers=admin["headers"])
    ).json()

    assert [(item["phone"], item["purpose"]) for item in found["items"]] == [
        (change_to, "phone_change"),
        (phone, "login"),
    ]


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        (
            {"phone": "12345"},
            {"phone": ["Phone number must start with country code (e.g., +996 or +1)"]},
        ),
        ({"phone": "+99612"}, {"phone": ["Enter a valid phone number."]}),
        ({"cursor": "bm90LWEtY3Vyc29y"}, {"cursor": ["Invalid cursor."]}),
        ({"cursor": "dTox"}, {"cursor": ["Invalid cursor."]}),  # a users list's cursor
        ({"user_id": "01"}, {"user_id": ["Enter a valid user id."]}),
        (
            {"user_id": "1", "phone": "+996555123456"},
            {"user_id": ["Give phone or user_id, not both."]},
        ),
    ],
)
async def test_bad_input_answers_400_like_the_users_lookup(
    client: httpx.AsyncClient,
    admin: dict[str, Any],
    params: dict[str, str],
    errors: dict[str, list[str]],
) -> None:
    response = await client.get(PATH, params=params, headers=admin["headers"])

    assert response.status_code == 400
    assert response.json() == errors


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
async def test_a_limit_out_of_bounds_answers_as_the_users_list_does(
    client: httpx.AsyncClient, admin: dict[str, Any], limit: str
) -> None:
    users = await client.get(
        "/api/v1/admin/users", params={"limit": limit}, headers=admin["headers"]
    )
    codes = await client.get(PATH, params={"limit": limit}, headers=admin["headers"])

    assert codes.status_code == users.status_code == 400
    assert codes.json() == users.json()


async def test_admins_only(client: httpx.AsyncClient) -> None:
    user = await login(client)

    assert_unauthorized(await client.get(PATH), NOT_AUTHENTICATED)
    refused = await client.get(PATH, headers=bearer(user["access_token"]))
    assert refused.status_code == 403
    assert refused.json() == NOT_ADMIN
