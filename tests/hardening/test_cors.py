"""CORS for browser frontends: exact origins, nothing by default, no credentials with `*`."""

from __future__ import annotations

import httpx

from tests.conftest import ClientFactory
from tests.helpers import ME, SEND

SHOP = "https://shop.example"


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


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    preflight = await client.options(SEND, headers=_preflight(SHOP))
    assert _cors_headers(preflight) == {}
    assert preflight.status_code == 405, preflight.text
    # send-verification's errors carry `"success": false`.
    assert preflight.json() == {"success": False, "detail": "Method Not Allowed"}
    assert preflight.headers["allow"] == "POST"
    actual = await client.get("/healthz", headers={"Origin": SHOP})
    assert _cors_headers(actual) == {}


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
