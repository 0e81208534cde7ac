"""JSON log lines with the request's context, and `X-Request-ID` in and out."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.logging import ConsoleFormatter, JsonFormatter
from app.main import create_app
from tests.conftest import ClientFactory, SettingsFactory, running
from tests.helpers import KG_MASKED, KG_PHONE, ME, SEND, VERIFY
from tests.ops.conftest import FAKE_TWILIO_CODE, FakeTwilio, Server, twilio_env

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
BASE_FIELDS = {"time", "level", "logger", "message"}
# Twilio answers the send after this long, so that the send's duration is measurable.
TWILIO_DELAY_SECONDS = 0.2


# ---------------------------------------------------------------- a real server's stderr


@pytest.fixture(scope="module")
def json_server(
    migrated_sqlite: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, FakeTwilio]]:
    """One server with LOG_FORMAT=json against a fake Twilio, for this module."""
    fake = FakeTwilio()
    server = Server(
        {**twilio_env(fake, migrated_sqlite), "LOG_FORMAT": "json"},
        cwd=tmp_path_factory.mktemp("json-server"),
    )
    try:
        server.wait_ready()
        yield server, fake
    finally:
        server.kill()
        fake.close()


def records_of(server: Server, request_id: str) -> list[dict[str, Any]]:
    """The JSON records of one request, once its access line is written."""
    server.wait_for_line(
        lambda line: f'"request_id": "{request_id}"' in line and "app.access" in line
    )
    return [
        record for record in map(json.loads, server.lines) if record.get("request_id") == request_id
    ]


def test_a_login_logs_json_lines_with_the_request_context(
    json_server: tuple[Server, FakeTwilio],
) -> None:
    server, fake = json_server
    ids = {name: f"ops-{name}-{secrets.token_hex(4)}" for name in ("send", "verify", "me")}
    # How long each request took, seen from the client: the server's duration is within it.
    wall_ms: dict[str, float] = {}
    fake.start_delay = TWILIO_DELAY_SECONDS
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        began = time.perf_counter()
        try:
            sent = client.post(
                SEND, json={"phone": KG_PHONE}, headers={"X-Request-ID": ids["send"]}
            )
        finally:
            fake.start_delay = 0.0
        wall_ms["send"] = (time.perf_counter() - began) * 1000
        assert sent.status_code == 200, sent.text
        assert sent.headers["X-Request-ID"] == ids["send"]
        began = time.perf_counter()
        verified = client.post(
            VERIFY,
            json={"phone": KG_PHONE, "verification_code": FAKE_TWILIO_CODE},
            headers={"X-Request-ID": ids["verify"]},
        )
        wall_ms["verify"] = (time.perf_counter() - began) * 1000
        assert verified.status_code == 200, verified.text
        assert verified.headers["X-Request-ID"] == ids["verify"]
        tokens = verified.json()
        me = client.get(
            ME,
            headers={
                "Authorization": f"Bearer {tokens['access_token']}",
                "X-Request-ID": ids["me"],
            },
        )
        assert me.status_code == 200, me.text

    by_id = {name: records_of(server, request_id) for name, request_id in ids.items()}

    # Every line the process wrote is one JSON object with the base fields.
    for line in server.lines:
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert record.keys() >= BASE_FIELDS, line
        if record["logger"].startswith("app.") and record["logger"] != "app.main":
            assert "request_id" in record, line  # written for a request

    for name, route in (("send", SEND), ("verify", VERIFY)):
        records = by_id[name]
        assert len(records) >= 2, records  # the service's line and the access line
        for record in records:
            assert record.keys() >= BASE_FIELDS | {"request_id"}, record
            assert record["phone"] == KG_MASKED, record
        access = [r for r in records if r["logger"] == "app.access"]
        assert len(access) == 1, records
        assert access[0]["route"] == route
        assert access[0]["status"] == 200
        duration = access[0]["duration_ms"]
        assert type(duration) in (int, float), duration
        assert 0 < duration <= wall_ms[name], (duration, wall_ms[name])
        assert access[0]["message"] == f"POST {route} 200"
    assert any(r["message"].startswith("Verification sent") for r in by_id["send"])
    # The send waited for Twilio, and its duration says so: it is milliseconds, not seconds.
    (send_access,) = [r for r in by_id["send"] if r["logger"] == "app.access"]
    assert send_access["duration_ms"] >= TWILIO_DELAY_SECONDS * 1000

    (me_access,) = [r for r in by_id["me"] if r["logger"] == "app.access"]
    assert me_access["route"] == ME
    assert me_access["status"] == 200

    # No line carries the full number, the code or a token.
    output = server.output()
    for secret in (
        KG_PHONE,
        KG_PHONE.lstrip("+"),
        FAKE_TWILIO_CODE,
        tokens["access_token"],
        tokens["refresh_token"],
    ):
        assert secret not in output, secret


def test_errors_are_logged_with_status_and_masked_phone(
    json_server: tuple[Server, FakeTwilio],
) -> None:
    server, _ = json_server
    request_id = f"ops-wrong-{secrets.token_hex(4)}"
    phone = "+996555987654"
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert client.post(SEND, json={"phone": phone}).status_code == 200
        wrong = client.post(
            VERIFY,
            json={"phone": phone, "verification_code": "111111"},
            headers={"X-Request-ID": request_id},
        )
    assert wrong.status_code == 400
    records = records_of(server, request_id)
    (access,) = [r for r in records if r["logger"] == "app.access"]
    assert access["status"] == 400
    assert access["route"] == VERIFY
    assert access["phone"] == "+996*****7654"
    assert any(r["message"].startswith("Wrong code") for r in records)
    assert phone not in server.output()
    assert "111111" not in server.output()


def test_probes_do_not_flood_the_log(json_server: tuple[Server, FakeTwilio]) -> None:
    server, _ = json_server
    request_ids = [f"ops-probe-{secrets.token_hex(4)}" for _ in range(3)]
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for request_id, path in zip(request_ids, ("/healthz", "/readyz", "/metrics"), strict=True):
            assert client.get(path, headers={"X-Request-ID": request_id}).status_code == 200
        marker = f"ops-marker-{secrets.token_hex(4)}"
        client.get("/nope", headers={"X-Request-ID": marker})
    records_of(server, marker)  # written after the probes
    output = server.output()
    assert not any(request_id in output for request_id in request_ids)


# ---------------------------------------------------------------- formats


def _root_formatter() -> logging.Formatter | None:
    handlers = logging.getLogger().handlers
    return next((h.formatter for h in handlers if h.get_name() == "stderr"), None)


def test_production_logs_json_by_default_and_development_console(
    make_settings: SettingsFactory,
) -> None:
    create_app(make_settings(environment="production", jwt_secret_key=secrets.token_urlsafe(48)))
    assert isinstance(_root_formatter(), JsonFormatter)
    create_app(make_settings(environment="development"))
    assert isinstance(_root_formatter(), ConsoleFormatter)
    create_app(make_settings(environment="development", log_format="json"))
    assert isinstance(_root_formatter(), JsonFormatter)
    create_app(make_settings(environment="test"))


def test_json_formatter_writes_one_line_per_record_even_with_newlines() -> None:
    record = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "two\nlines", None, None)
    try:
        raise ValueError("boom\nagain")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "two\nlines"
    assert "ValueError" in entry["exception"]


# ---------------------------------------------------------------- X-Request-ID


async def test_a_request_id_is_generated_on_every_response(client_for: ClientFactory) -> None:
    async with client_for() as client:
        answers = [
            await client.get("/healthz"),
            await client.get("/no/such/page"),
            await client.post(SEND, json={"phone": "12"}),
            await client.post(
                SEND,
                content=b'{"phone": "' + b"1" * 20000 + b'"}',
                headers={"Content-Type": "application/json"},
            ),
            await client.post(SEND, content=b"phone=1", headers={"Content-Type": "text/plain"}),
        ]
    assert [a.status_code for a in answers] == [200, 404, 400, 413, 415]
    ids = [a.headers.get("X-Request-ID") for a in answers]
    for request_id in ids:
        assert request_id is not None
        assert GENERATED_ID.fullmatch(request_id), request_id
    assert len(set(ids)) == len(ids)
    # Only one header, not the client's and ours.
    assert all(len(a.headers.get_list("X-Request-ID")) == 1 for a in answers)


@pytest.mark.parametrize(
    "given", ["abc-123", "7b0c4f1e-1c1d-4a55-9a3c-0d9c3f1a2b3c", "req.1:2_3", "a" * 128]
)
async def test_a_valid_request_id_is_echoed(client_for: ClientFactory, given: str) -> None:
    async with client_for() as client:
        ok = await client.get("/healthz", headers={"X-Request-ID": given})
        missing = await client.get("/missing", headers={"X-Request-ID": given})
    assert ok.headers.get_list("X-Request-ID") == [given]
    assert missing.headers.get_list("X-Request-ID") == [given]


@pytest.mark.parametrize(
    "given",
    [
        "a" * 129,
        "abc\ndef",
        "abc\r\nSet-Cookie: x=1",
        "has space",
        "<script>",
        "caf\u00e9".encode(),
        b"\xff\xfe",
        "",
    ],
)
async def test_an_invalid_request_id_is_replaced(
    client_for: ClientFactory, given: str | bytes
) -> None:
    async with client_for() as client:
        answer = await client.get("/healthz", headers={"X-Request-ID": given})
    (returned,) = answer.headers.get_list("X-Request-ID")
    assert GENERATED_ID.fullmatch(returned), returned
    assert "set-cookie" not in answer.headers


async def test_request_id_reaches_in_process_log_records(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """The JSON handler as the app installs it, writing to a file we read back."""
    app = create_app(make_settings(log_format="json"))
    root = logging.getLogger()
    (stderr,) = [h for h in root.handlers if h.get_name() == "stderr"]
    path = tmp_path / "log.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(stderr.formatter)
    for log_filter in stderr.filters:
        handler.addFilter(log_filter)
    root.addHandler(handler)
    try:
        async with running(app) as client:
            await client.get("/nope", headers={"X-Request-ID": "in-process-1"})
    finally:
        root.removeHandler(handler)
        handler.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    (access,) = [r for r in records if r.get("request_id") == "in-process-1"]
    assert access["logger"] == "app.access"
    assert access["route"] == "unmatched"
    assert access["status"] == 404
    assert "phone" not in access


async def test_generated_request_ids_are_distinct(client: httpx.AsyncClient) -> None:
    answers = [await client.get("/api/v1/users/me") for _ in range(50)]

    ids = {answer.headers["x-request-id"] for answer in answers}
    assert len(ids) == 50
    assert all(GENERATED_ID.fullmatch(request_id) for request_id in ids)
