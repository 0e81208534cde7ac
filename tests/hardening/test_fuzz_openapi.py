"""schemathesis against the app's own /openapi.json, in process over ASGI.

Every operation, with the four checks of issue 6. The app runs the console
provider (no network) and makes the schema's example numbers test numbers, so
generated sends succeed and a stateful run can complete whole logins.

A finding is a contract gap to fix in the app or its schema, never by dropping
a check. (Mark a known one with a plain `xfail` naming the bug, not a strict
one: on a schemathesis-parametrized test an XPASS(strict) makes schemathesis'
pytest plugin raise an INTERNALERROR that stops the whole run.)
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi import stateful as stateful_links
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.main import create_app
from app.models.user import User
from tests.conftest import JWT_SECRET, SettingsFactory
from tests.helpers import ME, SEND, VERIFY

BASE_URL = "http://testserver"
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    # The documented headers (X-Request-ID, Retry-After on 429, WWW-Authenticate on 401)
    # are the ones answered.
    response_headers_conformance,
]
FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
# The phone examples of the schema (`PhoneInput`), as test numbers with this code.
FUZZ_CODE = "123456"
FUZZ_TEST_NUMBERS = f"+996555123456={FUZZ_CODE},+12025550143={FUZZ_CODE},+12025550100={FUZZ_CODE}"


def _app_schema() -> dict[str, Any]:
    """The app's OpenAPI document (settings do not change it; the drift test holds that)."""
    settings_ = Settings(_env_file=None, environment="test", jwt_secret_key=JWT_SECRET)  # type: ignore[call-arg]
    return create_app(settings_).openapi()


# Built at import, as schemathesis parametrizes at collection time; the `served` fixture
# checks that the app serves exactly this document at /openapi.json, and each case goes
# to that app in process. (`schemathesis.pytest.from_fixture` would build the schema in
# a fixture, but its lazy loader fails on pytest 9: it sets `node._nodeid`, gone there.)
schema = schemathesis.openapi.from_dict(_app_schema())


@pytest.fixture
def fuzz_app(make_settings: SettingsFactory, db_engine: AsyncEngine) -> Iterator[FastAPI]:
    """The app with the console provider and test numbers, limits off so input gets through."""
    app = create_app(
        make_settings(
            verify_provider="console",
            test_phone_numbers=FUZZ_TEST_NUMBERS,
            rate_limit_enabled=False,
            log_level="WARNING",
        )
    )
    yield app
    # schemathesis runs the app's lifespan in its own event-loop thread; end it here.
    asgi.shutdown_lifespans()


@pytest.fixture
def served(fuzz_app: FastAPI) -> FastAPI:
    """`fuzz_app`, after checking that its /openapi.json is the document being fuzzed."""
    loaded = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    assert loaded.raw_schema == schema.raw_schema
    return fuzz_app


@pytest.fixture
def access_token(served: FastAPI) -> str:
    """A real access token of a test-number user of `served`."""
    phone = "+12025550100"
    with asgi.get_client(served) as client:
        sent = client.post(SEND, json={"phone": phone})
        assert sent.status_code == 200, sent.text
        verified = client.post(VERIFY, json={"phone": phone, "verification_code": FUZZ_CODE})
        assert verified.status_code == 200, verified.text
        token: str = verified.json()["access_token"]
        return token


def _with_token(case: schemathesis.Case, token: str) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schema.parametrize()
@FUZZ
def test_every_operation(case: schemathesis.Case, served: FastAPI) -> None:
    """No 5xx, only documented statuses, content types and headers, on every operation."""
    case.call_and_validate(checks=CHECKS, app=served, base_url=BASE_URL)


@schema.include(path=ME).parametrize()
@FUZZ
def test_authenticated_operations(
    case: schemathesis.Case, served: FastAPI, access_token: str
) -> None:
    """The user's own routes with a valid token, so generated bodies reach the handlers."""
    _with_token(case, access_token)
    case.call_and_validate(checks=CHECKS, app=served, base_url=BASE_URL)


@pytest.fixture
async def admin_token(access_token: str, db_engine: AsyncEngine) -> str:
    """`access_token`, its user made an admin."""
    async with db_engine.begin() as connection:
        await connection.execute(
            update(User).where(User.phone == "+12025550100").values(roles=["admin"])
        )
    return access_token


@schema.include(path_regex="^/api/v1/admin/").parametrize()
@FUZZ
def test_admin_operations(case: schemathesis.Case, served: FastAPI, admin_token: str) -> None:
    """The admin routes with an admin's token, so generated ids, pages and bodies reach
    the handlers (revoking the admin's own sessions ends in documented 401s)."""
    _with_token(case, admin_token)
    case.call_and_validate(checks=CHECKS, app=served, base_url=BASE_URL)


# ---------------------------------------------------------------------------- stateful
# The app declares OpenAPI links (send → verify → me / refresh / logout); the code of a
# verification is what the person types, so the chain gets the test numbers' code.
def _with_test_code(raw: dict[str, Any]) -> dict[str, Any]:
    linked = copy.deepcopy(raw)
    send = linked["paths"][SEND]["post"]["responses"]["200"]["links"]["VerifyCode"]
    send["requestBody"]["verification_code"] = FUZZ_CODE
    # A verify-code made up from the schema alone gets a code of the wrong form, which is
    # refused before the database is asked: a well-formed one would spend attempts, and
    # the answers of later steps would depend on earlier examples' (Hypothesis stops with
    # FlakyStrategyDefinition). Only the link's verify (its send's number and the test
    # code) logs in.
    verify = linked["components"]["schemas"]["VerifyCodeRequest"]["properties"]
    verify["verification_code"] = {"type": "string", "maxLength": 3}
    # The chains are to reach every step: the send's optional fields that can only turn a
    # send away (an app hash with another channel than sms; a challenge token, which no
    # send of this app needs) are left to the stateless tests.
    body = linked["components"]["schemas"]["SendVerificationRequest"]["properties"]
    for field in ("captcha_token", "app_hash"):
        del body[field]
    return linked


def test_the_login_chain_is_declared_as_links() -> None:
    links = {
        (path, method): set(response["links"])
        for path, operations in schema.raw_schema["paths"].items()
        for method, operation in operations.items()
        for response in operation["responses"].values()
        if "links" in response
    }
    assert links == {
        (SEND, "post"): {"VerifyCode"},
        (VERIFY, "post"): {"ReadMe", "UpdateMe", "Refresh", "Logout"},
        ("/api/v1/auth/refresh", "post"): {"ReadMe", "UpdateMe", "Refresh", "Logout"},
    }


# The login chain: what the send's, verify's and refresh's links lead to.
_LINKED_OPERATIONS = (
    (SEND, "post"),
    (VERIFY, "post"),
    ("/api/v1/auth/refresh", "post"),
    ("/api/v1/auth/logout", "post"),
    (ME, "get"),
    (ME, "patch"),
)


def _run_stateful(
    app: FastAPI, checks: list[CheckFunction], monkeypatch: pytest.MonkeyPatch
) -> Counter[tuple[str, int]]:
    # schemathesis decides with true randomness (outside Hypothesis's data tree) whether a
    # step uses a link's values, so the same choices can give a 200 once and a 400 the next
    # time, and Hypothesis stops with FlakyStrategyDefinition. Always follow the links: the
    # rest of every request is still generated.
    monkeypatch.setattr(stateful_links, "BASE_EXPLORATION_RATE", 0.0)
    monkeypatch.setattr(stateful_links, "DEFAULT_USE_PROBABILITY", 1.0)
    raw = _with_test_code(schema.raw_schema)
    # Only the operations the links chain: the others (the admin API, the number change,
    # deleting the account, the settings) are reached by no link, so as roots of chains
    # they would only take steps from the logins; the stateless tests fuzz them.
    chained = {(path, method) for path, method in _LINKED_OPERATIONS}
    raw["paths"] = {
        path: {
            method: operation
            for method, operation in operations.items()
            if (path, method) in chained or method == "parameters"
        }
        for path, operations in raw["paths"].items()
        if any(p == path for p, _ in chained)
    }
    linked = schemathesis.openapi.from_dict(raw)
    # Valid data only: the chains are to reach every step; the stateless tests fuzz input.
    linked.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])
    seen: Counter[tuple[str, int]] = Counter()

    class Login(linked.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": app, "base_url": BASE_URL}

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            seen[(case.operation.label, response.status_code)] += 1

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(response, checks=checks)

    Login.run(
        settings=settings(
            max_examples=100,
            stateful_step_count=10,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    return seen


def test_stateful_logins(served: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """send → verify (a test number) → me / refresh / logout, chained through links."""
    seen = _run_stateful(served, CHECKS, monkeypatch)
    for label in (f"POST {VERIFY}", "POST /api/v1/auth/refresh", f"GET {ME}"):
        assert seen[(label, 200)] > 0, f"the stateful run never completed {label}: {seen}"
    assert seen[("POST /api/v1/auth/logout", 204)] > 0, seen
