"""The admin API: who may use it, looking users up and paging through them, disabling,
enabling, revoking sessions and changing roles, each change in the audit trail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import Clocks
from app.models.auth_event import AuthEvent
from app.models.login_session import RefreshToken
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    DISABLED,
    INVALID_REFRESH,
    INVALID_TOKEN,
    NO_LIMITS,
    NOT_AUTHENTICATED,
    assert_unauthorized,
    bearer,
    claims,
    event_rows,
    login,
    me,
    new_phone,
    refresh,
    refresh_rows,
    session_rows,
    set_roles,
    sha256_hex,
    user_row,
)

ADMIN = "/api/v1/admin"
USERS = f"{ADMIN}/users"
EVENTS = f"{ADMIN}/audit-events"
NOT_ADMIN = {"detail": "You do not have permission to perform this action."}
NOT_FOUND = {"detail": "User not found."}
BAD_ROLE = "Role names are 1-32 characters: a lowercase letter, then a-z, 0-9, _, : or -."

# Every operation, with a body where it takes one; `{id}` is another user's id.
OPERATIONS = [
    ("GET", USERS, None),
    ("GET", f"{USERS}/{{id}}", None),
    ("POST", f"{USERS}/{{id}}/disable", {"reason": "fraud"}),
    ("POST", f"{USERS}/{{id}}/enable", None),
    ("POST", f"{USERS}/{{id}}/revoke-sessions", None),
    ("PUT", f"{USERS}/{{id}}/roles", {"roles": ["support"]}),
    ("DELETE", f"{USERS}/{{id}}", None),
    ("GET", EVENTS, None),
]


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


# ------------------------------------------------------------------ who may use it


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS)
async def test_without_a_token_401(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    user = await login(client)

    response = await client.request(method, path.format(id=user["user"]["id"]), json=body)

    assert_unauthorized(response, NOT_AUTHENTICATED)


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS)
async def test_with_a_bad_token_401(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    user = await login(client)
    forged = user["access_token"][:-4] + ("AAAA" if user["access_token"][-4:] != "AAAA" else "BBBB")

    response = await client.request(
        method, path.format(id=user["user"]["id"]), json=body, headers=bearer(forged)
    )

    assert_unauthorized(response, INVALID_TOKEN)


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS)
async def test_a_token_without_the_admin_role_403_and_changes_nothing(
    client: httpx.AsyncClient,
    db_engine: AsyncEngine,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    user = await login(client)
    other = await login(client)
    await set_roles(db_engine, user["user"]["id"], ["support"])
    before = (await user_row(db_engine, other["user"]["id"]), await session_rows(db_engine))

    response = await client.request(
        method,
        path.format(id=other["user"]["id"]),
        json=body,
        headers=bearer(user["access_token"]),
    )

    assert response.status_code == 403
    assert response.json() == NOT_ADMIN
    assert (await user_row(db_engine, other["user"]["id"]), await session_rows(db_engine)) == before
    assert (await me(client, other["access_token"])).status_code == 200


async def test_the_role_counts_as_stored_now_not_as_the_token_says(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    """The admin's token was issued before the role was granted; taking the role away
    shuts the API at once, although the token lives on."""
    assert (await client.get(USERS, headers=admin["headers"])).status_code == 200

    await set_roles(db_engine, admin["user"]["id"], [])

    response = await client.get(USERS, headers=admin["headers"])
    assert response.status_code == 403
    assert response.json() == NOT_ADMIN


# ------------------------------------------------------------------ reading users


async def test_a_user_with_every_field(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    user = await login(client, phone)
    await login(client, phone)  # a second session
    await client.patch(
        "/api/v1/users/me", json={"full_name": "Aida"}, headers=bearer(user["access_token"])
    )
    row = await user_row(db_engine, user["user"]["id"])

    response = await client.get(f"{USERS}/{user['user']['id']}", headers=admin["headers"])

    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if not k.endswith("_at")} == {
        "id": user["user"]["id"],
        "phone": phone,
        "name": phone[4:],
        "full_name": "Aida",
        "market": "KG",
        "roles": [],
        "is_active": True,
        "active_sessions": 2,
        "disabled_reason": None,
    }
    assert _parse(body["created_at"]) == row["created_at"]
    assert _parse(body["last_login_at"]) == row["last_login_at"]
    assert body["disabled_at"] is None


async def test_active_sessions_leave_out_revoked_and_expired_ones(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    first = await login(client, phone)
    await login(client, phone)
    await client.post("/api/v1/auth/logout", headers=bearer(first["access_token"]))

    response = await client.get(f"{USERS}/{first['user']['id']}", headers=admin["headers"])

    assert response.json()["active_sessions"] == 1


async def test_a_session_whose_refresh_token_has_expired_is_not_active(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    lapsed = await login(client, phone)
    await login(client, phone)
    async with db_engine.begin() as connection:
        await connection.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == sha256_hex(lapsed["refresh_token"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    response = await client.get(f"{USERS}/{lapsed['user']['id']}", headers=admin["headers"])

    assert response.json()["active_sessions"] == 1


@pytest.mark.usefixtures("twilio_approves")
async def test_a_session_is_not_active_from_its_refresh_tokens_expiry_instant_on(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    """As a refresh is refused from that instant on (`expires_at <= now`)."""
    async with client_for(clocks=Clocks(wall=clock), **NO_LIMITS) as client:
        user = await login(client)
        [expiry] = [row["expires_at"] for row in await refresh_rows(db_engine)]
        clock.now = expiry.timestamp()
        admin = await login(client)
        await set_roles(db_engine, admin["user"]["id"], ["admin"])

        response = await client.get(
            f"{USERS}/{user['user']['id']}", headers=bearer(admin["access_token"])
        )

    assert response.json()["active_sessions"] == 0


@pytest.mark.parametrize("user_id", ["999999", "abc", "0", "01", "-1", "99999999999", "1.5"])
async def test_an_unknown_or_impossible_id_is_404(
    client: httpx.AsyncClient, admin: dict[str, Any], user_id: str
) -> None:
    response = await client.get(f"{USERS}/{user_id}", headers=admin["headers"])

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "typed",
    ["{e164}", "+996 {a} {b} {c}", "+996-{a}-{b}-{c}", "+996 ({a}) {b}.{c}", "{space}"],
)
async def test_lookup_by_number_in_any_accepted_format(
    client: httpx.AsyncClient, admin: dict[str, Any], typed: str
) -> None:
    phone = new_phone()
    user = await login(client, phone)
    await login(client)  # someone else
    digits = phone[4:]
    text = typed.format(
        e164=phone, a=digits[:3], b=digits[3:6], c=digits[6:], space=" " + phone[1:]
    )

    response = await client.get(USERS, params={"phone": text}, headers=admin["headers"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["id"] for item in body["items"]] == [user["user"]["id"]]
    assert body["items"][0]["phone"] == phone
    assert body["next_cursor"] is None


async def test_an_unencoded_plus_in_the_query_still_finds_the_number(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    """`?phone=+996…` typed into a URL arrives as a space and the number."""
    phone = new_phone()
    user = await login(client, phone)

    response = await client.get(f"{USERS}?phone={phone}", headers=admin["headers"])

    assert [item["id"] for item in response.json()["items"]] == [user["user"]["id"]]


async def test_lookup_of_a_number_nobody_has_is_an_empty_list(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    response = await client.get(USERS, params={"phone": new_phone()}, headers=admin["headers"])

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("996555123456x", "Phone number must start with country code (e.g., +996 or +1)"),
        ("+99655512", "Enter a valid phone number."),
        ("+996 555 12a 456", "Enter a valid phone number."),
    ],
)
async def test_lookup_of_an_invalid_number_is_400(
    client: httpx.AsyncClient, admin: dict[str, Any], typed: str, message: str
) -> None:
    response = await client.get(USERS, params={"phone": typed}, headers=admin["headers"])

    assert response.status_code == 400
    assert response.json() == {"phone": [message]}


async def test_pages_of_users_newest_first(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    made = [(await login(client))["user"]["id"] for _ in range(4)]
    everyone = [*reversed(made), admin["user"]["id"]]
    # The admin logged in first: it is the oldest.
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(USERS, params=params, headers=admin["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == everyone
    assert pages == 3


async def test_a_full_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    await login(client)

    response = await client.get(USERS, params={"limit": 2}, headers=admin["headers"])

    assert len(response.json()["items"]) == 2
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "dTo"}, "cursor"),  # "u:" without an id
        ({"cursor": "ZTo1"}, "cursor"),  # "e:5": a cursor of the audit trail
        ({"cursor": "dTo5OTk5OTk5OTk5OQ"}, "cursor"),  # an id past the table's range
    ],
)
async def test_a_bad_page_is_400(
    client: httpx.AsyncClient, admin: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    response = await client.get(USERS, params=params, headers=admin["headers"])

    assert response.status_code == 400
    assert list(response.json()) == [field]


# ------------------------------------------------------------------ disable and enable


async def test_disable_ends_every_session_at_once_and_refuses_the_next_login(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    first = await login(client, phone)
    second = await login(client, phone)
    user_id = first["user"]["id"]

    response = await client.post(
        f"{USERS}/{user_id}/disable", json={"reason": "fraud report 17"}, headers=admin["headers"]
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["is_active"] is False
    assert body["active_sessions"] == 0
    assert body["disabled_reason"] == "fraud report 17"
    assert body["disabled_at"] is not None
    for pair in (first, second):
        assert_unauthorized(await me(client, pair["access_token"]))
        assert_unauthorized(await refresh(client, pair["refresh_token"]), INVALID_REFRESH)
    sent = await client.post("/api/v1/auth/send-verification", json={"phone": phone})
    assert sent.status_code == 200
    refused = await client.post(
        "/api/v1/auth/verify-code", json={"phone": phone, "verification_code": "480913"}
    )
    assert refused.status_code == 403
    assert refused.json() == DISABLED
    sessions = [s for s in await session_rows(db_engine) if s["user_id"] == int(user_id)]
    assert [s["revoked_reason"] for s in sessions] == ["disabled", "disabled"]
    [event] = [e for e in await event_rows(db_engine) if e["event"] == "user_disabled"]
    assert event["user_id"] == int(user_id)
    assert event["actor_id"] == int(admin["user"]["id"])
    assert event["details"] == {"reason": "fraud report 17", "sessions_revoked": 2}
    assert event["phone_masked"] == phone[:4] + "*****" + phone[-4:]


async def test_enable_lets_the_user_log_in_again_but_old_sessions_stay_revoked(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    before = await login(client, phone)
    user_id = before["user"]["id"]
    await client.post(
        f"{USERS}/{user_id}/disable", json={"reason": "mistake"}, headers=admin["headers"]
    )

    response = await client.post(f"{USERS}/{user_id}/enable", headers=admin["headers"])

    assert response.status_code == 200
    assert response.json()["is_active"] is True
    assert response.json()["disabled_reason"] is None
    assert response.json()["disabled_at"] is None
    after = await login(client, phone)
    assert after["user"]["id"] == user_id
    assert after["is_new_user"] is False
    assert (await me(client, after["access_token"])).status_code == 200
    assert_unauthorized(await me(client, before["access_token"]))
    events = [e for e in await event_rows(db_engine) if e["user_id"] == int(user_id)]
    assert [e["event"] for e in events] == [
        "login",
        "user_disabled",
        "user_enabled",
        "login",
    ]
    assert events[2]["actor_id"] == int(admin["user"]["id"])


async def test_an_admin_cannot_disable_themselves(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    response = await client.post(
        f"{USERS}/{admin['user']['id']}/disable", json={"reason": "x"}, headers=admin["headers"]
    )

    assert response.status_code == 409
    assert response.json() == {"detail": "You cannot disable or delete your own account here."}
    assert (await user_row(db_engine, admin["user"]["id"]))["is_active"] is True
    assert (await client.get(USERS, headers=admin["headers"])).status_code == 200


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"reason": ["This field is required."]}),
        ({"reason": "   "}, {"reason": ["This field may not be blank."]}),
        ({"reason": "x" * 256}, {"reason": ["Ensure this field has no more than 255 characters."]}),
    ],
)
async def test_disable_needs_a_reason_and_changes_nothing_without(
    client: httpx.AsyncClient,
    db_engine: AsyncEngine,
    admin: dict[str, Any],
    body: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    user = await login(client)
    before = await user_row(db_engine, user["user"]["id"])

    response = await client.post(
        f"{USERS}/{user['user']['id']}/disable", json=body, headers=admin["headers"]
    )

    assert response.status_code == 400
    assert response.json() == errors
    assert await user_row(db_engine, user["user"]["id"]) == before
    assert (await me(client, user["access_token"])).status_code == 200


async def test_changes_to_an_unknown_user_are_404(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    events = await event_rows(db_engine)
    for method, path, body in OPERATIONS[2:7]:
        response = await client.request(
            method, path.format(id="987654"), json=body, headers=admin["headers"]
        )
        assert response.status_code == 404, (path, response.text)
        assert response.json() == NOT_FOUND
    assert await event_rows(db_engine) == events


# ------------------------------------------------------------------ revoke sessions


async def test_revoke_sessions_logs_the_user_out_everywhere_but_not_for_good(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    first, second = await login(client, phone), await login(client, phone)
    user_id = first["user"]["id"]

    response = await client.post(f"{USERS}/{user_id}/revoke-sessions", headers=admin["headers"])

    assert response.status_code == 200
    assert response.json()["active_sessions"] == 0
    assert response.json()["is_active"] is True
    for pair in (first, second):
        assert_unauthorized(await me(client, pair["access_token"]))
        assert_unauthorized(await refresh(client, pair["refresh_token"]), INVALID_REFRESH)
    again = await login(client, phone)
    assert (await me(client, again["access_token"])).status_code == 200
    [event] = [e for e in await event_rows(db_engine) if e["event"] == "sessions_revoked"]
    assert (event["user_id"], event["actor_id"], event["details"]) == (
        int(user_id),
        int(admin["user"]["id"]),
        {"sessions_revoked": 2},
    )
    # The admin's own session is untouched.
    assert (await client.get(USERS, headers=admin["headers"])).status_code == 200


async def test_revoke_sessions_counts_and_keeps_the_sessions_already_ended(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    ended, live = await login(client, phone), await login(client, phone)
    await client.post("/api/v1/auth/logout", headers=bearer(ended["access_token"]))
    user_id = ended["user"]["id"]

    response = await client.post(f"{USERS}/{user_id}/revoke-sessions", headers=admin["headers"])

    assert response.status_code == 200
    [event] = [e for e in await event_rows(db_engine) if e["event"] == "sessions_revoked"]
    assert event["details"] == {"sessions_revoked": 1}
    reasons = {row["id"]: row["revoked_reason"] for row in await session_rows(db_engine)}
    assert reasons[claims(ended["access_token"])["sid"]] == "logout"
    assert reasons[claims(live["access_token"])["sid"]] == "admin_revoked"


# ------------------------------------------------------------------ delete


async def test_delete_has_the_effects_of_a_self_delete_and_names_the_admin(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    user = await login(client, phone)
    user_id = user["user"]["id"]

    response = await client.delete(f"{USERS}/{user_id}", headers=admin["headers"])

    assert response.status_code == 204
    assert response.content == b""
    assert_unauthorized(await me(client, user["access_token"]))
    assert_unauthorized(await refresh(client, user["refresh_token"]), INVALID_REFRESH)
    gone = await client.get(f"{USERS}/{user_id}", headers=admin["headers"])
    assert (gone.status_code, gone.json()) == (404, NOT_FOUND)
    assert [s for s in await session_rows(db_engine) if s["user_id"] == int(user_id)] == []
    [event] = [e for e in await event_rows(db_engine) if e["event"] == "user_deleted"]
    assert (event["user_id"], event["actor_id"]) == (int(user_id), int(admin["user"]["id"]))
    assert event["phone_masked"] == phone[:4] + "*****" + phone[-4:]
    again = await login(client, phone)
    assert again["is_new_user"] is True
    assert again["user"]["id"] != user_id
    metrics = (await client.get("/metrics")).text
    assert 'phone_auth_admin_actions_total{action="delete",via="api"} 1.0' in metrics


async def test_an_admin_cannot_delete_themselves_here(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    response = await client.delete(f"{USERS}/{admin['user']['id']}", headers=admin["headers"])

    assert response.status_code == 409
    assert response.json() == {"detail": "You cannot disable or delete your own account here."}
    assert (await client.get(USERS, headers=admin["headers"])).status_code == 200


async def test_two_concurrent_deletes_give_one_204_and_one_404(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    user = await login(client)
    path = f"{USERS}/{user['user']['id']}"

    answers = await asyncio.gather(
        client.delete(path, headers=admin["headers"]), client.delete(path, headers=admin["headers"])
    )

    assert sorted(a.status_code for a in answers) == [204, 404]
    assert len([e for e in await event_rows(db_engine) if e["event"] == "user_deleted"]) == 1


# ------------------------------------------------------------------ roles


async def test_roles_are_set_sorted_once_each_and_reach_the_tokens(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    user = await login(client, phone)
    assert claims(user["access_token"])["roles"] == []
    user_id = user["user"]["id"]

    response = await client.put(
        f"{USERS}/{user_id}/roles",
        json={"roles": ["support", "orders:read", "support"]},
        headers=admin["headers"],
    )

    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["orders:read", "support"]
    assert (await user_row(db_engine, user_id))["roles"] == ["orders:read", "support"]
    # The next refresh and the next login carry them.
    renewed = await refresh(client, user["refresh_token"])
    assert claims(renewed.json()["access_token"])["roles"] == ["orders:read", "support"]
    assert claims((await login(client, phone))["access_token"])["roles"] == [
        "orders:read",
        "support",
    ]
    [event] = [e for e in await event_rows(db_engine) if e["event"] == "roles_changed"]
    assert (event["user_id"], event["actor_id"]) == (int(user_id), int(admin["user"]["id"]))
    assert event["details"] == {"roles": ["orders:read", "support"], "previous_roles": []}


async def test_a_new_admin_can_use_the_api(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    user = await login(client)
    assert (await client.get(USERS, headers=bearer(user["access_token"]))).status_code == 403

    await client.put(
        f"{USERS}/{user['user']['id']}/roles", json={"roles": ["admin"]}, headers=admin["headers"]
    )

    assert (await client.get(USERS, headers=bearer(user["access_token"]))).status_code == 200


@pytest.mark.parametrize(
    ("roles", "errors"),
    [
        (["Admin"], {"roles": [BAD_ROLE]}),
        (["1admin"], {"roles": [BAD_ROLE]}),
        ([""], {"roles": [BAD_ROLE]}),
        (["a" * 33], {"roles": [BAD_ROLE]}),
        (["sup port"], {"roles": [BAD_ROLE]}),
        (["ok", 5], {"roles": [BAD_ROLE]}),
        ([f"role{n}" for n in range(17)], {"roles": ["A user has at most 16 roles."]}),
        (None, {"roles": ["This field is required."]}),
    ],
)
async def test_invalid_roles_are_400_and_change_nothing(
    client: httpx.AsyncClient,
    db_engine: AsyncEngine,
    admin: dict[str, Any],
    roles: list[Any] | None,
    errors: dict[str, list[str]],
) -> None:
    user = await login(client)
    body = {} if roles is None else {"roles": roles}

    response = await client.put(
        f"{USERS}/{user['user']['id']}/roles", json=body, headers=admin["headers"]
    )

    assert response.status_code == 400
    assert response.json() == errors
    assert (await user_row(db_engine, user["user"]["id"]))["roles"] == []


async def test_sixteen_roles_and_32_character_names_are_fine(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    user = await login(client)
    roles = sorted(["r" + "x" * 31, *(f"role{n:02d}" for n in range(15))])

    response = await client.put(
        f"{USERS}/{user['user']['id']}/roles", json={"roles": roles}, headers=admin["headers"]
    )

    assert response.status_code == 200
    assert response.json()["roles"] == roles


async def test_an_admin_cannot_take_admin_from_themselves(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    response = await client.put(
        f"{USERS}/{admin['user']['id']}/roles",
        json={"roles": ["support"]},
        headers=admin["headers"],
    )

    assert response.status_code == 409
    assert response.json() == {"detail": "You cannot remove the admin role from your own account."}
    assert (await user_row(db_engine, admin["user"]["id"]))["roles"] == ["admin"]
    # Other roles next to admin are fine.
    kept = await client.put(
        f"{USERS}/{admin['user']['id']}/roles",
        json={"roles": ["admin", "support"]},
        headers=admin["headers"],
    )
    assert kept.json()["roles"] == ["admin", "support"]


async def test_an_admin_can_take_admin_from_another_admin(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    other = await login(client)
    await set_roles(db_engine, other["user"]["id"], ["admin"])

    response = await client.put(
        f"{USERS}/{other['user']['id']}/roles", json={"roles": []}, headers=admin["headers"]
    )

    assert response.json()["roles"] == []
    assert (await client.get(USERS, headers=bearer(other["access_token"]))).status_code == 403


# ------------------------------------------------------------------ the audit trail


async def test_the_audit_trail_of_a_user_newest_first_with_the_acting_admin(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    phone = new_phone()
    user = await login(client, phone)
    user_id = user["user"]["id"]
    await refresh(client, user["refresh_token"])
    await client.post(f"{USERS}/{user_id}/disable", json={"reason": "r"}, headers=admin["headers"])
    await client.post(f"{USERS}/{user_id}/enable", headers=admin["headers"])

    response = await client.get(EVENTS, params={"user_id": user_id}, headers=admin["headers"])

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    items = body["items"]
    assert [item["type"] for item in items] == ["user_enabled", "user_disabled", "refresh", "login"]
    assert {item["user_id"] for item in items} == {user_id}
    assert [item["actor_id"] for item in items] == [admin["user"]["id"]] * 2 + [None] * 2
    assert {item["phone"] for item in items} == {phone[:4] + "*****" + phone[-4:]}
    assert items[1]["details"] == {"reason": "r", "sessions_revoked": 1}
    assert items[3]["details"] == {}
    assert phone not in response.text
    times = [_parse(item["created_at"]) for item in items]
    assert times == sorted(times, reverse=True)


async def test_the_audit_trail_pages(client: httpx.AsyncClient, admin: dict[str, Any]) -> None:
    user = await login(client)
    token = user["refresh_token"]
    for _ in range(4):
        token = (await refresh(client, token)).json()["refresh_token"]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"user_id": user["user"]["id"], "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        body = (await client.get(EVENTS, params=params, headers=admin["headers"])).json()
        seen += [item["type"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == ["refresh"] * 4 + ["login"]
    everything = (await client.get(EVENTS, headers=admin["headers"])).json()["items"]
    assert {item["user_id"] for item in everything} == {user["user"]["id"], admin["user"]["id"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"user_id": "abc"}, "user_id"),
        ({"user_id": "99999999999"}, "user_id"),
        ({"cursor": "dTo1"}, "cursor"),  # a cursor of the users list
        ({"limit": 500}, "limit"),
    ],
)
async def test_a_bad_audit_query_is_400(
    client: httpx.AsyncClient, admin: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    response = await client.get(EVENTS, params=params, headers=admin["headers"])

    assert response.status_code == 400
    assert list(response.json()) == [field]


# ------------------------------------------------------------------ metrics and logs


async def test_admin_actions_are_counted(client: httpx.AsyncClient, admin: dict[str, Any]) -> None:
    user = await login(client)
    user_id = user["user"]["id"]
    await client.post(f"{USERS}/{user_id}/disable", json={"reason": "r"}, headers=admin["headers"])
    await client.post(f"{USERS}/{user_id}/enable", headers=admin["headers"])
    await client.post(f"{USERS}/{user_id}/enable", headers=admin["headers"])

    metrics = (await client.get("/metrics")).text

    assert 'phone_auth_admin_actions_total{action="disable",via="api"} 1.0' in metrics
    assert 'phone_auth_admin_actions_total{action="enable",via="api"} 2.0' in metrics


async def test_admin_actions_log_ids_never_numbers(
    client: httpx.AsyncClient, admin: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    phone = new_phone()
    user = await login(client, phone)
    caplog.clear()

    await client.get(USERS, params={"phone": phone}, headers=admin["headers"])
    await client.post(
        f"{USERS}/{user['user']['id']}/disable", json={"reason": "r"}, headers=admin["headers"]
    )

    messages = [record.getMessage() for record in caplog.records]
    assert f"Admin action disable on user {user['user']['id']} by admin {admin['user']['id']}" in (
        messages
    )
    assert not [m for m in messages if phone in m or phone[1:] in m]


async def test_a_number_change_shows_both_numbers_masked(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    user = await login(client)
    async with db_engine.begin() as connection:
        await connection.execute(
            insert(AuthEvent).values(
                event="phone_changed",
                user_id=int(user["user"]["id"]),
                phone_masked="+996*****0001",
                new_phone_masked="+996*****0002",
                created_at=datetime.now(UTC),
            )
        )

    response = await client.get(
        EVENTS, params={"user_id": user["user"]["id"], "limit": 1}, headers=admin["headers"]
    )

    [item] = response.json()["items"]
    assert (item["type"], item["phone"], item["new_phone"]) == (
        "phone_changed",
        "+996*****0001",
        "+996*****0002",
    )
