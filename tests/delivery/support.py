"""Twilio's Attempts API for the delivery tests: attempts built from the recorded
answer, and a stateful fake of `GET /v2/Attempts` that filters and pages as Twilio does."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SERVICE_SID,
    TWILIO_BASE_URL,
    basic_auth,
    load,
)

ATTEMPTS_PATH = "/v2/Attempts"
# A number of the spec's example: it must never reach a log or the command's output.
EXAMPLE_TO = "+573003003030"


def at(text: str) -> datetime:
    """`2026-11-30T12:00:00Z` as an aware UTC time."""
    return datetime.fromisoformat(text).astimezone(UTC)


def twilio_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def attempt(
    sid: str,
    verification_sid: str,
    created: datetime,
    *,
    message_status: str | None = "delivered",
    conversion_status: str = "converted",
    price: dict[str, Any] | None = None,
    country: str = "KG",
    to: str = "+996555123456",
    updated: datetime | None = None,
    channel: str = "sms",
) -> dict[str, Any]:
    """One attempt as Twilio lists it: the recorded one with these fields."""
    item: dict[str, Any] = copy.deepcopy(load("attempts_list")["attempts"][0])
    item.update(
        sid=sid,
        account_sid=ACCOUNT_SID,
        service_sid=SERVICE_SID,
        verification_sid=verification_sid,
        date_created=twilio_time(created),
        date_updated=twilio_time(updated or created),
        conversion_status=conversion_status,
        channel=channel,
        price=price if price is not None else {"value": "0.1500", "currency": "usd"},
        url=f"{TWILIO_BASE_URL}{ATTEMPTS_PATH}/{sid}",
    )
    item["channel_data"].update(
        verification_sid=verification_sid,
        to=to,
        message_status=message_status,
        error_code=None if message_status == "delivered" else "30008",
        country=country,
    )
    return item


def attempt_sid(n: int) -> str:
    return f"VL{n:032x}"


def verification_sid(n: int) -> str:
    return f"VE{n:032x}"


def page_answer(items: list[dict[str, Any]], next_token: str | None = None) -> httpx.Response:
    """Twilio's 200 for one page; `next_token` makes `meta.next_page_url` point on."""
    body = load("attempts_list", attempts=items)
    meta = body["meta"]
    if next_token is not None:
        meta["next_page_url"] = f"{TWILIO_BASE_URL}{ATTEMPTS_PATH}?" + urlencode(
            {"PageSize": meta["page_size"], "Page": 1, "PageToken": next_token}
        )
    return httpx.Response(200, json=body)


@dataclass
class FakeAttempts:
    """`GET /v2/Attempts` of one account: checks Basic auth and the service, keeps the
    attempts created after `DateCreatedAfter`, newest first, `PageSize` a page, and
    pages with `PageToken` (the offset, opaque to the client)."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def add(self, *items: dict[str, Any]) -> None:
        self.attempts.extend(items)

    def change(self, sid: str, **changes: Any) -> None:
        """Change an attempt as Twilio would later: top-level fields or channel_data's."""
        (item,) = [item for item in self.attempts if item["sid"] == sid]
        for key, value in changes.items():
            if key in ("message_status", "error_code"):
                item["channel_data"][key] = value
            else:
                item[key] = value

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if basic_auth(request) != (ACCOUNT_SID, AUTH_TOKEN):
            return httpx.Response(401, json={"code": 20003, "message": "Authenticate"})
        params = request.url.params
        assert params["VerifyServiceSid"] == SERVICE_SID
        after = at(params["DateCreatedAfter"])
        size = int(params.get("PageSize", "50"))
        offset = int(params.get("PageToken", "0"))
        matching = sorted(
            (item for item in self.attempts if at(item["date_created"]) > after),
            key=lambda item: item["date_created"],
            reverse=True,
        )
        chunk = matching[offset : offset + size]
        more = offset + size < len(matching)
        return page_answer(copy.deepcopy(chunk), str(offset + size) if more else None)

    def params(self) -> list[dict[str, str]]:
        """The query of every request, in order."""
        return [dict(request.url.params) for request in self.requests]
