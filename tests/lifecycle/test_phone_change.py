"""Changing the number: a code to the new number (the login's send, bound to the change),
then the change, which moves the user, revokes its other sessions and hands out a fresh
pair; a code serves only its purpose and its user, and a number taken meanwhile is 409."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import Clocks
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    CODE,
    DISABLED,
    INVALID_CODE,
    INVALID_REFRESH,
    KG_MASKED,
    KG_PHONE,
    NO_LIMITS,
    SEND,
    US_PHONE,
    VERIFY,
    Records,
    assert_unauthorized,
    bearer,
    claims,
    disable_user,
    event_rows,
    login,
    me,
    new_phone,
    refresh,
    session_rows,
    user_row,
    users,
    verifications,
)
from tests.interleavings import schedule
from tests.lifecycle.test_delete import RECENT_LOGIN, step_up_challenge
from tests.ops.conftest import parse_metrics, sample
from tests.twilio_fixtures import (
    CHECK_PATH,
    START_PATH,
    checked,
    form,
    mock_approving,
    mock_check,
    mock_check_accepting,
    mock_start,
)

CHANGE_SEND = "/api/v1/users/me/phone/send-verification"
CHANGE_VERIFY = "/api/v1/users/me/phone/verify"
US_MASKED = "+120****0143"
IN_USE = {"phone": ["This phone number is already in use."]}
SAME = {"phone": ["This is already your phone number."]}


async def send_change(
    client: httpx.AsyncClient, token: str, phone: str, **extra: Any
) -> httpx.Response:
    """Ask for a number-change code to `phone`."""
    return await client.post(CHANGE_SEND, json={"phone": phone, **extra}, headers=bearer(token))


async def verify_change(
    client: httpx.AsyncClient, token: str, phone: str, code: str = "480913"
) -> httpx.Response:
    """Change the number with a code."""
    return await client.post(
        CHANGE_VERIFY,
        json={"phone": phone, "verification_code": code},
        headers=bearer(token),
    )


async def change(client: httpx.AsyncClient, token: str, phone: str) -> dict[str, Any]:
    """Both steps, which must succeed; the verify body."""
    sent = await send_change(client, token, phone)
    assert sent.status_code == 200, sent.text
    changed = await verify_change(client, token, phone)
    assert changed.status_code == 200, changed.text
    body: dict[str, Any] = changed.json()
    return body


@pytest.mark.usefixtures("twilio_approves")
async def test_a_change_moves_the_user_and_keeps_only_this_session(
    client: httpx.AsyncClient, db_engine: AsyncEngine, twilio: respx.MockRouter
) -> None:
    other_device = await login(client, KG_PHONE)
    this_device = await login(client, KG_PHONE)
    user_id = this_device["user"]["id"]

    sent = await send_change(client, this_device["access_token"], US_PHONE)

    assert sent.status_code == 200
    assert sent.json() == {
        "success": True,
        "message": f"Verification code sent to {US_PHONE}",
        "phone": US_PHONE,
        "market": "US",
        "language": "en",
        "expires_in_minutes": 10,
        "channel": "sms",
    }
    start = form(twilio.routes[0].calls.last.request)
    assert (start["To"], start["Channel"], start["Locale"]) == (US_PHONE, "sms", "en")

    answer = await verify_change(client, this_device["access_token"], US_PHONE)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["user"] == {**this_device["user"], "phone": US_PHONE}
    assert (body["market"], body["is_new_user"]) == ("US", False)
    assert body["token_type"] == "bearer"
    # A fresh refresh token like a login's: 32 random bytes, 43 base64url characters.
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["refresh_token"]), body["refresh_token"]
    check = form(twilio.routes[1].calls.last.request)
    assert check["Code"] == "480913"
    new_claims = claims(body["access_token"])
    old_claims = claims(this_device["access_token"])
    assert (new_claims["phone"], new_claims["market"]) == (US_PHONE, "US")
    assert new_claims["sub"] == user_id
    assert new_claims["sid"] == old_claims["sid"]
    assert new_claims["auth_time"] == old_claims["auth_time"]
    # The fresh pair works; every token from before the change does not.
    assert (await me(client, body["access_token"])).json()["phone"] == US_PHONE
    for old in (this_device, other_device):
        assert_unauthorized(await me(client, old["access_token"]))
        assert_unauthorized(await refresh(client, old["refresh_token"]), INVALID_REFRESH)
    renewed = await refresh(client, body["refresh_token"])
    assert renewed.status_code == 200
    assert claims(renewed.json()["access_token"])["phone"] == US_PHONE
    row = await user_row(db_engine, user_id)
    assert (row["phone"], row["market"]) == (US_PHONE, "US")
    sessions = {s["id"]: s for s in await session_rows(db_engine)}
    assert sessions[old_claims["sid"]]["revoked_at"] is None
    other = sessions[claims(other_device["access_token"])["sid"]]
    assert other["revoked_reason"] == "phone_changed"
    events = [e for e in await event_rows(db_engine) if e["event"].startswith("phone_change")]
    assert [(e["event"], e["phone_masked"], e["new_phone_masked"]) for e in events] == [
        ("phone_change_requested", KG_MASKED, US_MASKED),
        ("phone_changed", KG_MASKED, US_MASKED),
    ]
    assert all(e["user_id"] == int(user_id) for e in events)


@pytest.mark.usefixtures("twilio_approves")
async def test_the_old_number_then_logs_in_as_a_new_user(client: httpx.AsyncClient) -> None:
    before = await login(client, KG_PHONE)
    await change(client, before["access_token"], US_PHONE)

    old_number = await login(client, KG_PHONE)
    new_number = await login(client, US_PHONE)

    assert old_number["is_new_user"] is True
    assert old_number["user"]["id"] != before["user"]["id"]
    assert new_number["is_new_user"] is False
    assert new_number["user"]["id"] == before["user"]["id"]


@pytest.mark.usefixtures("twilio_approves")
async def test_a_change_within_a_market_keeps_the_market(client: httpx.AsyncClient) -> None:
    body = await login(client, KG_PHONE)
    target = new_phone()

    changed = await change(client, body["access_token"], target)

    assert (changed["user"]["phone"], changed["market"]) == (target, "KG")
    assert claims(changed["access_token"])["market"] == "KG"


async def test_the_own_number_is_400_and_another_accounts_is_409(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check(twilio)
    mine = await login(client, KG_PHONE)
    theirs = await login(client, US_PHONE)
    starts = twilio.routes[0].call_count

    own = await send_change(client, mine["access_token"], "+996 555 123 456")
    taken = await send_change(client, mine["access_token"], US_PHONE)
    taken_at_verify = await verify_change(client, mine["access_token"], US_PHONE)

    assert (own.status_code, own.json()) == (400, SAME)
    assert (taken.status_code, taken.json()) == (409, IN_USE)
    assert (taken_at_verify.status_code, taken_at_verify.json()) == (409, IN_USE)
    assert twilio.routes[0].call_count == starts
    assert (await me(client, theirs["access_token"])).json()["phone"] == US_PHONE


@pytest.mark.usefixtures("twilio_approves")
async def test_a_number_taken_between_send_and_verify_is_409_and_nothing_changes(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    mine = await login(client, KG_PHONE)
    other_device = await login(client, KG_PHONE)
    assert (await send_change(client, mine["access_token"], US_PHONE)).status_code == 200
    # Someone logs in with the number meanwhile: it is theirs now.
    await login(client, US_PHONE)

    answer = await verify_change(client, mine["access_token"], US_PHONE)

    assert (answer.status_code, answer.json()) == (409, IN_USE)
    assert (await me(client, mine["access_token"])).json()["phone"] == KG_PHONE
    assert (await me(client, other_device["access_token"])).status_code == 200
    assert (await refresh(client, other_device["refresh_token"])).status_code == 200
    assert [e["event"] for e in await event_rows(db_engine)].count("phone_changed") == 0


@pytest.mark.usefixtures("twilio_approves")
async def test_a_change_code_never_logs_in(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    mine = await login(client, KG_PHONE)
    assert (await send_change(client, mine["access_token"], US_PHONE)).status_code == 200

    answer = await client.post(VERIFY, json={"phone": US_PHONE, "verification_code": "480913"})

    assert (answer.status_code, answer.json()) == (400, INVALID_CODE)
    assert US_PHONE not in {row.phone for row in await users(db_engine)}
    rows = [row for row in await verifications(db_engine) if row.phone == US_PHONE]
    assert [(row.purpose, row.user_id, row.status) for row in rows] == [
        ("phone_change", int(mine["user"]["id"]), "pending")
    ]
    # The change code still changes the number.
    assert (await verify_change(client, mine["access_token"], US_PHONE)).status_code == 200


@pytest.mark.usefixtures("twilio_approves")
async def test_a_login_code_never_changes_a_number(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    mine = await login(client, KG_PHONE)
    assert (await client.post(SEND, json={"phone": US_PHONE})).status_code == 200

    answer = await verify_change(client, mine["access_token"], US_PHONE)

    assert (answer.status_code, answer.json()) == (400, INVALID_CODE)
    assert (await me(client, mine["access_token"])).json()["phone"] == KG_PHONE
    rows = [row for row in await verifications(db_engine) if row.phone == US_PHONE]
    assert [(row.purpose, row.user_id) for row in rows] == [("login", None)]
    # The login code still logs in.
    answer = await client.post(VERIFY, json={"phone": US_PHONE, "verification_code": "480913"})
    assert answer.status_code == 200


@pytest.mark.usefixtures("twilio_approves")
async def test_one_users_change_code_is_no_other_users(client: httpx.AsyncClient) -> None:
    alice = await login(client, KG_PHONE)
    bob = await login(client)
    target = new_phone()
    assert (await send_change(client, alice["access_token"], target)).status_code == 200

    answer = await verify_change(client, bob["access_token"], target)

    assert (answer.status_code, answer.json()) == (400, INVALID_CODE)
    assert (await me(client, bob["access_token"])).json()["phone"] == bob["user"]["phone"]
    assert (await verify_change(client, alice["access_token"], target)).status_code == 200


async def test_a_wrong_code_answers_as_verify_code_does(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check_accepting(twilio, "480913")
    mine = await login(client, KG_PHONE)
    assert (await send_change(client, mine["access_token"], US_PHONE)).status_code == 200

    wrong = [
        await verify_change(client, mine["access_token"], US_PHONE, code="111111") for _ in range(5)
    ]
    # Every attempt is spent: the right code comes too late.
    locked = await verify_change(client, mine["access_token"], US_PHONE)
    malformed = await verify_change(client, mine["access_token"], US_PHONE, code="12")

    assert all((a.status_code, a.json()) == (400, INVALID_CODE) for a in wrong)
    assert locked.status_code == 429
    assert locked.json() == {
        "detail": "Too many failed attempts. Please request a new code.",
        "retry_after": 60,
    }
    assert malformed.status_code == 400
    assert malformed.json() == {"verification_code": ["Verification code must be 6 digits."]}
    assert (await me(client, mine["access_token"])).json()["phone"] == KG_PHONE


@pytest.mark.parametrize(
    "payload",
    [
        {"phone": "996555000111"},
        {"phone": "+99655"},
        {"phone": "+4915112345678"},
        {"phone": "+12025550199", "channel": "whatsapp"},
        {"phone": "+12025550199", "channel": "fax"},
        {},
        {"phone": 996},
    ],
    ids=[
        "no-plus",
        "short",
        "other-country",
        "channel-of-other-market",
        "no-channel",
        "none",
        "int",
    ],
)
@pytest.mark.usefixtures("twilio_approves")
async def test_bad_input_answers_as_send_verification_does(
    client: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    mine = await login(client, KG_PHONE)

    as_change = await client.post(CHANGE_SEND, json=payload, headers=bearer(mine["access_token"]))
    as_login = await client.post(SEND, json=payload)

    assert as_change.status_code == as_login.status_code == 400
    assert as_change.json() == as_login.json()


@pytest.mark.usefixtures("twilio_approves")
async def test_the_send_limits_are_the_logins(client_for: ClientFactory) -> None:
    async with client_for() as client:
        mine = await login(client, KG_PHONE)
        target = new_phone()
        assert (await send_change(client, mine["access_token"], target)).status_code == 200

        # The number's resend cooldown counts change codes and login codes alike.
        again = await send_change(client, mine["access_token"], target)
        as_login = await client.post(SEND, json={"phone": target})

    assert again.status_code == as_login.status_code == 429
    assert again.json() == as_login.json()
    assert again.json()["success"] is False
    assert again.headers["Retry-After"] == as_login.headers["Retry-After"]


@pytest.mark.usefixtures("twilio_approves")
async def test_an_old_login_must_log_in_again_before_changing(
    client_for: ClientFactory, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock), **NO_LIMITS) as client:
        body = await login(client, KG_PHONE)
        assert (await send_change(client, body["access_token"], US_PHONE)).status_code == 200
        clock.advance(301)

        for answer in (
            await send_change(client, body["access_token"], US_PHONE),
            await verify_change(client, body["access_token"], US_PHONE),
        ):
            assert answer.status_code == 401
            assert answer.json() == RECENT_LOGIN
            assert answer.headers["WWW-Authenticate"] == step_up_challenge(300)
        assert (await me(client, body["access_token"])).json()["phone"] == KG_PHONE


@pytest.mark.usefixtures("twilio_approves")
async def test_a_disabled_user_cannot_change_the_number(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client, KG_PHONE)
    await disable_user(db_engine, KG_PHONE)

    sent = await send_change(client, body["access_token"], US_PHONE)
    verified = await verify_change(client, body["access_token"], US_PHONE)

    assert (sent.status_code, sent.json()) == (403, {"success": False, **DISABLED})
    assert (verified.status_code, verified.json()) == (403, DISABLED)


async def test_upstream_trouble_answers_as_the_login_does(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check(twilio)
    mine = await login(client, KG_PHONE)
    twilio.post(START_PATH).mock(return_value=httpx.Response(500))

    sent = await send_change(client, mine["access_token"], US_PHONE)

    assert sent.status_code == 502
    assert sent.json() == {
        "success": False,
        "detail": "Could not reach the SMS provider. Please try again later.",
    }


@pytest.mark.parametrize("racers", [2, 4])
@pytest.mark.usefixtures("twilio_approves")
async def test_concurrent_changes_to_one_number_make_one_owner(
    client: httpx.AsyncClient, db_engine: AsyncEngine, racers: int
) -> None:
    people = [await login(client) for _ in range(racers)]
    target = new_phone()
    for person in people:
        assert (await send_change(client, person["access_token"], target)).status_code == 200

    answers = await asyncio.gather(
        *(verify_change(client, person["access_token"], target) for person in people)
    )

    statuses = [a.status_code for a in answers]
    assert sorted(statuses) == [200] + [409] * (racers - 1), [a.text for a in answers]
    winner = people[statuses.index(200)]
    owners = [row for row in await users(db_engine) if row.phone == target]
    assert [str(row.id) for row in owners] == [winner["user"]["id"]]
    for person, answer in zip(people, answers, strict=True):
        if person is winner:
            continue
        assert answer.json() == IN_USE
        # A loser keeps its number and its session.
        assert (await me(client, person["access_token"])).json() == person["user"]
        assert (await refresh(client, person["refresh_token"])).status_code == 200
    changed = [e for e in await event_rows(db_engine) if e["event"] == "phone_changed"]
    assert [e["user_id"] for e in changed] == [int(winner["user"]["id"])]


@pytest.mark.usefixtures("twilio_approves")
async def test_two_changes_to_one_number_in_every_interleaving(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    """One change stopped before each of its statements in turn while the other runs (to
    its end, or until it waits on a lock): one owner, a 409 for the other, never a 500,
    and the loser keeps its number and every session."""
    for stop in itertools.count():
        first, second = await login(client), await login(client)
        # Each has a session on another device too, which a change would revoke.
        elsewhere = {
            id(person): await login(client, person["user"]["phone"]) for person in (first, second)
        }
        target = new_phone()
        for person in (first, second):
            assert (await send_change(client, person["access_token"], target)).status_code == 200

        with schedule(("first", stop), ("second", None), ("first", None)) as stage:
            answers = await stage.run(
                first=verify_change(client, first["access_token"], target),
                second=verify_change(client, second["access_token"], target),
            )

        where = f"the second ran before statement {stop} of the first"
        statuses = {name: answer.status_code for name, answer in answers.items()}
        assert sorted(statuses.values()) == [200, 409], (where, [a.text for a in answers.values()])
        winner, loser = (first, second) if statuses["first"] == 200 else (second, first)
        lost = answers["first" if loser is first else "second"]
        assert lost.json() == IN_USE, where
        owners = [str(row.id) for row in await users(db_engine) if row.phone == target]
        assert owners == [winner["user"]["id"]], where
        # Nothing of the loser's changed: its number, its sessions, its audit trail.
        assert (await me(client, loser["access_token"])).json() == loser["user"], where
        assert (await me(client, elsewhere[id(loser)]["access_token"])).status_code == 200, where
        assert_unauthorized(await me(client, elsewhere[id(winner)]["access_token"]))
        assert (await refresh(client, loser["refresh_token"])).status_code == 200, where
        events = await event_rows(db_engine)
        changed = [e["user_id"] for e in events if e["event"] == "phone_changed"]
        assert changed.count(int(loser["user"]["id"])) == 0, where
        assert changed.count(int(winner["user"]["id"])) == 1, where
        if not stage.stopped:
            break


@pytest.mark.usefixtures("twilio_approves")
async def test_a_change_racing_a_login_of_the_number_in_every_interleaving(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    """A change to a number and a first login of that number, one stopped before each of
    its statements in turn: the number has one owner, never a 500. Either the change won
    (and the login logs into the changed account) or the login made a new user (and the
    change is 409 and changes nothing)."""
    seen: set[int] = set()
    for first, second in (("change", "login"), ("login", "change")):
        for stop in itertools.count():
            mine = await login(client)
            target = new_phone()
            sent = await send_change(client, mine["access_token"], target)
            assert sent.status_code == 200
            assert (await client.post(SEND, json={"phone": target})).status_code == 200

            with schedule((first, stop), (second, None), (first, None)) as stage:
                answers = await stage.run(
                    change=verify_change(client, mine["access_token"], target),
                    login=client.post(VERIFY, json={"phone": target, "verification_code": CODE}),
                )

            where = f"the {second} ran before statement {stop} of the {first}"
            changed, logged_in = answers["change"], answers["login"]
            seen.add(changed.status_code)
            assert changed.status_code in {200, 409}, (where, changed.text)
            assert logged_in.status_code == 200, (where, logged_in.text)
            owners = [str(row.id) for row in await users(db_engine) if row.phone == target]
            assert owners == [logged_in.json()["user"]["id"]], where
            if changed.status_code == 200:
                assert owners == [mine["user"]["id"]], where
                assert logged_in.json()["is_new_user"] is False, where
            else:
                assert changed.json() == IN_USE, where
                assert logged_in.json()["is_new_user"] is True, where
                assert (await me(client, mine["access_token"])).json() == mine["user"], where
            if not stage.stopped:
                break
    assert seen == {200, 409}


@pytest.mark.usefixtures("twilio_approves")
async def test_changes_are_counted_and_logged_masked(
    client: httpx.AsyncClient, app_logs: Records
) -> None:
    mine = await login(client, KG_PHONE)
    theirs = await login(client, US_PHONE)
    await change(client, mine["access_token"], new_phone())
    assert (await send_change(client, theirs["access_token"], KG_PHONE)).status_code == 200
    body = await change(client, theirs["access_token"], KG_PHONE)

    metrics = parse_metrics((await client.get("/metrics")).text)

    assert sample(metrics, "phone_auth_phone_changes_total", outcome="changed") == 2.0
    messages = [r.getMessage() for r in app_logs.records]
    assert any("Number changed" in m and f"from={US_MASKED} to={KG_MASKED}" in m for m in messages)
    for secret in (KG_PHONE, US_PHONE, body["access_token"], body["refresh_token"], "480913"):
        assert not any(secret in m for m in messages)


@pytest.mark.usefixtures("twilio_approves")
async def test_a_change_code_can_be_read_by_the_app_with_its_hash(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    user = await login(client, KG_PHONE)

    sent = await send_change(client, user["access_token"], US_PHONE, app_hash="FA+9qCX9VSu")

    assert sent.status_code == 200, sent.text
    assert form(twilio.routes[0].calls.last.request)["AppHash"] == "FA+9qCX9VSu"


async def test_a_change_code_submitted_twice_at_once_changes_the_number_once(
    client: httpx.AsyncClient, twilio: respx.MockRouter, app_logs: Records
) -> None:
    """Twilio approves both checks of one code (a double tap); the first to mark it used
    changes the number, the other is refused as a used code would be."""
    mock_approving(twilio)
    token = (await login(client, KG_PHONE))["access_token"]
    assert (await send_change(client, token, US_PHONE)).status_code == 200
    both_asked = asyncio.Event()
    asked: list[str] = []

    async def approve_once_both_asked(request: httpx.Request) -> httpx.Response:
        asked.append(form(request)["VerificationSid"])
        if len(asked) == 2:
            both_asked.set()
        await both_asked.wait()
        return checked("approved", US_PHONE, sid=asked[-1])

    twilio.post(CHECK_PATH).mock(side_effect=approve_once_both_asked)

    answers = await asyncio.gather(
        verify_change(client, token, US_PHONE), verify_change(client, token, US_PHONE)
    )

    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
    [changed] = [a.json() for a in answers if a.status_code == 200]
    [refused] = [a.json() for a in answers if a.status_code == 400]
    assert refused == INVALID_CODE
    assert (await me(client, changed["access_token"])).json()["phone"] == US_PHONE
    assert f"Verification already used: market=US phone={US_MASKED}" in app_logs.at(logging.INFO)
    metrics = parse_metrics((await client.get("/metrics")).text)
    failed = "phone_auth_verifications_failed_total"
    assert sample(metrics, failed, market="US", channel="sms", outcome="invalid_code") == 1.0
