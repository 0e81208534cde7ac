"""Concurrent submits of one code end in one login: one user, one session, one
`is_new_user: true`; every other submit answers 400.

The same of `LoginRepository.store` itself, both ways, is in test_repository.py.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import (
    CODE,
    INVALID_CODE,
    KG_PHONE,
    LOCKED,
    NO_LIMITS,
    SEND,
    VERIFY,
    session_rows,
    users,
    verifications,
)
from tests.twilio_fixtures import CHECK_PATH, StatefulTwilio, checked, form, mock_start

CONCURRENT = 20
TWILIO_LATENCY_SECONDS = 0.5


def slow_approving_check(twilio: respx.MockRouter) -> respx.Route:
    """Twilio approving every code after a pause, so the requests truly overlap."""

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(TWILIO_LATENCY_SECONDS)
        return checked("approved", KG_PHONE, sid=form(request)["VerificationSid"])

    return twilio.post(CHECK_PATH).mock(side_effect=answer)


async def concurrent_logins(
    client_for: ClientFactory, twilio: respx.MockRouter, count: int
) -> list[httpx.Response]:
    """Send one code, then `count` verify-code calls with it at the same moment."""
    mock_start(twilio)
    slow_approving_check(twilio)
    async with client_for(rate_limit_enabled=False) as client:
        sent = await client.post(SEND, json={"phone": KG_PHONE})
        assert sent.status_code == 200, sent.text
        return await asyncio.gather(
            *(
                client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})
                for _ in range(count)
            )
        )


async def assert_one_new_user(answers: list[httpx.Response], db_engine: AsyncEngine) -> None:
    statuses = Counter(a.status_code for a in answers)
    assert statuses[200] == 1, sorted(statuses.items())
    [winner] = [a.json() for a in answers if a.status_code == 200]
    assert winner["is_new_user"] is True
    # The code is single-use: the others are refused, none is a second new user. Those
    # that found every attempt taken by checks in flight are refused the same way.
    others = {(a.status_code, a.text) for a in answers if a.status_code != 200}
    for status, text in others:
        assert (status, json.loads(text)) == (400, INVALID_CODE), text
    rows = await users(db_engine)
    assert [row.phone for row in rows] == [KG_PHONE]
    assert winner["user"]["id"] == str(rows[0].id)
    assert len(await session_rows(db_engine)) == 1
    [verification] = [row for row in await verifications(db_engine) if row.phone == KG_PHONE]
    assert verification.status == "approved"


async def test_as_many_concurrent_logins_as_attempts_make_one_user(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    answers = await concurrent_logins(client_for, twilio, count=5)

    await assert_one_new_user(answers, db_engine)
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400, 400]


async def test_twenty_concurrent_logins_make_one_user(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    answers = await concurrent_logins(client_for, twilio, count=CONCURRENT)

    await assert_one_new_user(answers, db_engine)


# ---------------------------------------------------------------- Twilio with its memory
# Twilio approves a code once; later checks of it answer 404. The approval's answer is
# the last to come back, so the other submits are answered while it is on its way.

WRONG_CODE = "000000"


async def _submit(client: httpx.AsyncClient, code: str = CODE) -> httpx.Response:
    return await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": code})


@pytest.mark.parametrize("count", [2, 20, 50])
async def test_concurrent_submits_of_the_right_code_log_in_once(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine, count: int
) -> None:
    stateful = StatefulTwilio(twilio, CODE, approval_latency=TWILIO_LATENCY_SECONDS)
    async with client_for(**NO_LIMITS) as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        answers = await asyncio.gather(*(_submit(client) for _ in range(count)))

    await assert_one_new_user(answers, db_engine)
    assert stateful.approvals() == 1


@pytest.mark.parametrize("wrong_before", [0, 3], ids=["fresh-code", "wrong-code-takes-the-last"])
async def test_a_wrong_code_while_the_approval_is_on_its_way_changes_nothing(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine, wrong_before: int
) -> None:
    """The owner's right code is approved; a wrong one (the owner's typo, or a guess)
    arrives before that answer is back, and Twilio answers it 404."""
    stateful = StatefulTwilio(twilio, CODE, approval_latency=TWILIO_LATENCY_SECONDS)
    async with client_for(**NO_LIMITS) as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        for _ in range(wrong_before):
            assert (await _submit(client, WRONG_CODE)).status_code == 400
        right = asyncio.ensure_future(_submit(client))
        await stateful.approved.wait()
        wrong = await _submit(client, WRONG_CODE)
        owner = await right

    assert (wrong.status_code, wrong.json()) == (400, INVALID_CODE)
    await assert_one_new_user([owner, wrong], db_engine)


async def test_a_right_and_a_wrong_code_at_once_log_in_once(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    stateful = StatefulTwilio(twilio, CODE, approval_latency=TWILIO_LATENCY_SECONDS)
    async with client_for(**NO_LIMITS) as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        answers = await asyncio.gather(_submit(client), _submit(client, WRONG_CODE))

    assert answers[0].status_code == 200, answers[0].text
    await assert_one_new_user(answers, db_engine)
    assert stateful.approvals() == 1


async def test_wrong_codes_still_lock_after_the_concurrency_fixes(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    """Five wrong codes at once lock the code (429); the right one then cannot log in."""
    stateful = StatefulTwilio(twilio, CODE)
    async with client_for(**NO_LIMITS) as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        wrong = await asyncio.gather(*(_submit(client, WRONG_CODE) for _ in range(5)))
        right = await _submit(client)

    assert [(a.status_code, a.json()) for a in wrong] == [(400, INVALID_CODE)] * 5
    assert (right.status_code, right.json()) == (429, LOCKED)
    assert stateful.check_route.call_count == 5
    assert await users(db_engine) == []
    [verification] = await verifications(db_engine)
    assert (verification.status, verification.failed_attempts) == ("locked", 5)
