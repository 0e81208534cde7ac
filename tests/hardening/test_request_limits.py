"""Oversized bodies, wrong content types and hostile Authorization headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core.request_limits import MAX_BODY_BYTES, MSG_MEDIA_TYPE, MSG_TOO_LARGE
from tests.conftest import ClientFactory
from tests.helpers import (
    BAD_BODY,
    INVALID_JSON,
    KG_PHONE,
    LOGOUT,
    ME,
    REFRESH,
    SEND,
    US_PHONE,
    VERIFY,
    as_answered,
    bearer,
    login,
)
from tests.twilio_fixtures import form, mock_check, mock_start

BODY_ROUTES = [("POST", SEND), ("POST", VERIFY), ("POST", REFRESH), ("POST", LOGOUT), ("PATCH", ME)]


def _json_of_size(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    head = b'{"phone": "+996555123456", "pad": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def _chunks(body: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_body_over_16_kib_with_content_length_is_413(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = _json_of_size(MAX_BODY_BYTES + 1)
    answer = await client.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.json() == as_answered(path, {"detail": MSG_TOO_LARGE})


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_body_over_16_kib_streamed_without_content_length_is_413(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = _json_of_size(MAX_BODY_BYTES * 4)
    request = client.build_request(
        method, path, content=_chunks(body), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    answer = await client.send(request)
    assert answer.status_code == 413
    assert answer.json() == as_answered(path, {"detail": MSG_TOO_LARGE})


async def test_body_of_exactly_16_kib_is_read(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        SEND,
        content=_json_of_size(MAX_BODY_BYTES),
        headers={"Content-Type": "application/json"},
    )
    # Read and validated: the padding field is ignored, the phone is not a test of size.
    assert answer.status_code != 413


async def test_lying_content_length_is_413(client: httpx.AsyncClient) -> None:
    request = client.build_request("POST", SEND, content=b'{"phone": "+996555123456"}')
    request.headers["Content-Type"] = "application/json"
    request.headers["Content-Length"] = "not-a-number"
    answer = await client.send(request)
    assert answer.status_code == 413
    assert "detail" in answer.json()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "text/json",
    ],
)
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, method: str, path: str, content_type: str
) -> None:
    answer = await client.request(
        method, path, content=b'{"phone": "+996555123456"}', headers={"Content-Type": content_type}
    )
    assert answer.status_code == 415
    assert answer.json() == as_answered(path, {"detail": MSG_MEDIA_TYPE})


async def test_json_with_charset_and_vendor_json_are_accepted(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    phones = {"application/json; charset=utf-8": KG_PHONE, "application/vnd.api+json": US_PHONE}
    for content_type, phone in phones.items():
        answer = await client.post(
            SEND,
            content=json.dumps({"phone": phone}).encode(),
            headers={"Content-Type": content_type},
        )
        assert answer.status_code == 200, (content_type, answer.text)
        assert answer.json()["phone"] == phone
    assert [form(call.request)["To"] for call in start.calls] == list(phones.values())


@pytest.mark.parametrize("body", [b"[]", b"", b"null", b'"x"'])
async def test_body_that_is_not_a_json_object_is_400_with_detail(
    client: httpx.AsyncClient, body: bytes
) -> None:
    for path in (SEND, VERIFY, REFRESH):
        answer = await client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400
        assert answer.json() == as_answered(path, BAD_BODY)


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_body_that_is_not_utf8_is_400_with_the_contract_detail(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    answer = await client.request(
        method,
        path,
        content=b'{"phone": "\xff"}',
        headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
    )
    # JSON is UTF-8 (RFC 8259): a byte that is not is where the body stops being JSON.
    assert answer.status_code == 400
    assert answer.json() == as_answered(path, {"detail": INVALID_JSON, "line": 1, "column": 12})


# ------------------------------------------------------------------ Authorization
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    pad = lambda part: part + "=" * (-len(part) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
    )


def _forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    signing_input = (
        _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    ).encode()
    signature = b"" if key is None else hmac.new(key, signing_input, hashlib.sha256).digest()
    return signing_input.decode() + "." + _b64(signature)


async def _assert_401(client: httpx.AsyncClient, headers: Any) -> None:
    answer = await client.get(ME, headers=headers)
    assert answer.status_code == 401, answer.text
    assert "detail" in answer.json()
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_hostile_authorization_headers_are_401(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check(twilio)
    token = (await login(client, KG_PHONE))["access_token"]
    assert (await client.get(ME, headers=bearer(token))).status_code == 200

    header, claims = _unverified(token)
    for headers in (
        {"Authorization": "Bearer " + "A" * 8192},  # huge
        {"Authorization": f"Bearer {token}x{'A' * 8000}"},  # a valid token, then 8 KB
        {"Authorization": f"Bearer {token} {token}"},  # two tokens
        {"Authorization": f"Bearer {token},Bearer {token}"},
        {"Authorization": f"Bearer {token}, {token}"},
        {"Authorization": f"Bearer  {token} x"},
        {"Authorization": "Bearer " + _forge({**header, "alg": "none"}, claims, None)},
        {"Authorization": "Bearer " + _forge({"alg": "none", "typ": "JWT"}, claims, None)},
        {"Authorization": "Bearer " + _forge({**header, "alg": "HS512"}, claims, b"x" * 64)},
        {"Authorization": f"Basic {token}"},
        {"Authorization": token},
    ):
        await _assert_401(client, headers)


async def test_two_authorization_headers_are_401(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check(twilio)
    token = (await login(client, KG_PHONE))["access_token"]
    await _assert_401(client, [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer x")])


@pytest.fixture(scope="module")
def rsa_pem() -> tuple[str, bytes]:
    """A fresh RSA private key (PEM) and its public key (PEM), as JWKS would give it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


async def test_hs256_signed_with_the_public_key_is_401_in_an_rs256_app(
    client_for: ClientFactory, twilio: respx.MockRouter, rsa_pem: tuple[str, bytes]
) -> None:
    private, public = rsa_pem
    mock_start(twilio)
    mock_check(twilio)
    async with client_for(jwt_algorithm="RS256", jwt_private_key=private) as client:
        token = (await login(client, KG_PHONE))["access_token"]
        assert (await client.get(ME, headers=bearer(token))).status_code == 200
        header, claims = _unverified(token)
        assert header["alg"] == "RS256"
        jwks = (await client.get("/.well-known/jwks.json")).json()
        assert header["kid"] in {key["kid"] for key in jwks["keys"]}
        der = serialization.load_pem_public_key(public).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for key in (public, public.strip(), der):
            forged = _forge({**header, "alg": "HS256"}, claims, key)
            await _assert_401(client, bearer(forged))
        await _assert_401(client, bearer(_forge({**header, "alg": "none"}, claims, None)))
