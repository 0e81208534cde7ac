"""Concurrent first logins of one new phone make one user, and one `is_new_user: true`.

The same of `LoginRepository.store` itself, both ways, is in test_repository.py.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import CODE, INVALID_CODE, KG_PHONE, LOCKED, SEND, VERIFY, users
from tests.twilio_fixtures import CHECK_PATH, checked, form, mock_start

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
    # The code is single-use: the others are refused, none is a second new user.
    others = {(a.status_code, a.text) for a in answers if a.status_code != 200}
    for status, text in others:
        assert (status, json.loads(text)) in [(400, INVALID_CODE), (429, LOCKED)], text
    rows = await users(db_engine)
    assert [row.phone for row in rows] == [KG_PHONE]
    assert winner["user"]["id"] == str(rows[0].id)


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
