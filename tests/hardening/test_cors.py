"""CORS for browser frontends: exact origins; by default a local frontend (localhost, any
port) in development and nothing elsewhere; no credentials with `*`."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ClientFactory
from tests.helpers import ME, SEND

SHOP = "https://shop.example"
LOCAL_FRONTEND = "http://localhost:3000"


def _preflight(origin: str, method: str = "POST", headers: str = "content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


async def test_allowed_origin_preflight_and_request(client_for: ClientFactory) -> None:
    async with client_for(cors_allow_origins=[SHOP]) as client:
        preflight = await client.options(SEND, headers=_preflight(SHOP))
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == SHOP
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "content-type" in preflight.headers["access-control-allow-headers"].lower()

        auth = await client.options(ME, headers=_preflight(SHOP, "GET", "authorization"))
        assert auth.status_code == 200
        assert auth.headers["access-control-allow-origin"] == SHOP

        actual = await client.get("/healthz", headers={"Origin": SHOP})
        assert actual.headers["access-control-allow-origin"] == SHOP
        assert "x-request-id" in actual.headers["access-control-expose-headers"].lower()


async def test_other_origins_are_refused(client_for: ClientFactory) -> None:
    async with client_for(cors_allow_origins=[SHOP]) as client:
        for origin in (
            "https://evil.example",
            "http://shop.example",  # another scheme
            "https://shop.example:8443",  # another port
            "https://shop.example.evil.example",  # prefix match
            "https://evilshop.example",  # suffix match
            "https://SHOP.EXAMPLE.",
            "null",
        ):
            preflight = await client.options(SEND, headers=_preflight(origin))
            assert preflight.status_code == 400, origin
            assert "access-control-allow-origin" not in preflight.headers, origin
            actual = await client.get("/healthz", headers={"Origin": origin})
            assert "access-control-allow-origin" not in actual.headers, origin


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("origin", [SHOP, LOCAL_FRONTEND])
async def test_no_cors_by_default_outside_development(
    client_for: ClientFactory, environment: str, origin: str
) -> None:
    async with client_for(environment=environment) as client:
        preflight = await client.options(SEND, headers=_preflight(origin))
        actual = await client.get("/healthz", headers={"Origin": origin})

    assert _cors_headers(preflight) == {}
    assert preflight.status_code == 405, preflight.text
    # send-verification's errors carry `"success": false`.
    assert preflight.json() == {"success": False, "detail": "Method Not Allowed"}
    assert preflight.headers["allow"] == "POST"
    assert _cors_headers(actual) == {}


@pytest.mark.parametrize(
    "origin",
    [
        LOCAL_FRONTEND,
        "http://127.0.0.1:5173",
        "https://localhost:8443",
        "http://localhost",
        "http://127.0.0.1",
    ],
)
async def test_development_allows_a_local_frontend_on_any_port(
    client_for: ClientFactory, origin: str
) -> None:
    async with client_for(environment="development") as client:
        preflight = await client.options(SEND, headers=_preflight(origin))
        auth = await client.options(ME, headers=_preflight(origin, "GET", "authorization"))
        actual = await client.get("/healthz", headers={"Origin": origin})

    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    assert auth.status_code == 200, auth.text
    assert auth.headers["access-control-allow-origin"] == origin
    assert actual.headers["access-control-allow-origin"] == origin


async def test_development_allows_no_other_origin(client_for: ClientFactory) -> None:
    async with client_for(environment="development") as client:
        for origin in (
            SHOP,
            "http://localhost.evil.example:3000",  # prefix match
            "http://evil-localhost:3000",  # suffix match
            "http://localhost:3000.evil.example",
            "http://127.0.0.1.nip.io:3000",
            "http://127.0.0.2:3000",
            "http://0.0.0.0:3000",
            "ftp://localhost:3000",
            "null",
        ):
            preflight = await client.options(SEND, headers=_preflight(origin))
            assert preflight.status_code == 400, origin
            assert "access-control-allow-origin" not in preflight.headers, origin
            actual = await client.get("/healthz", headers={"Origin": origin})
            assert "access-control-allow-origin" not in actual.headers, origin


async def test_cors_allow_origins_replaces_the_local_default(client_for: ClientFactory) -> None:
    async with client_for(environment="development", cors_allow_origins=[SHOP]) as client:
        local = await client.options(SEND, headers=_preflight(LOCAL_FRONTEND))
        shop = await client.options(SEND, headers=_preflight(SHOP))

    assert local.status_code == 400
    assert "access-control-allow-origin" not in local.headers
    assert shop.status_code == 200
    assert shop.headers["access-control-allow-origin"] == SHOP


async def test_wildcard_never_allows_credentials(client_for: ClientFactory) -> None:
    async with client_for(cors_allow_origins=["*"]) as client:
        preflight = await client.options(
            ME, headers={**_preflight(SHOP, "GET", "authorization"), "Cookie": "a=b"}
        )
        assert preflight.status_code == 200
        assert preflight.headers.get("access-control-allow-credentials") != "true"
        assert preflight.headers["access-control-allow-origin"] == "*"
        actual = await client.get("/healthz", headers={"Origin": SHOP, "Cookie": "a=b"})
        assert actual.headers.get("access-control-allow-credentials") != "true"
        assert actual.headers["access-control-allow-origin"] == "*"
