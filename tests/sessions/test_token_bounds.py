"""Access tokens at their bounds: the length cap, and the session id a token must name."""

from __future__ import annotations

from typing import Any

import pytest
from jose import jwt

from app.core.config import Settings
from app.models.user import MAX_USER_ID
from app.services.sessions.tokens import MAX_TOKEN_LENGTH, TokenError, TokenService

# These tests build `Settings` themselves: the process environment stays out.
pytestmark = pytest.mark.usefixtures("clean_settings_env")

SECRET = "unit-test-secret-that-is-long-enough-0123456789"


@pytest.fixture
def service() -> TokenService:
    settings = Settings(_env_file=None, environment="test", jwt_secret_key=SECRET)  # type: ignore[call-arg]
    return TokenService(settings)


def _issued(service: TokenService) -> str:
    return service.issue(
        user_id=42, session_id="session-1", phone="+996555123456", market="KG"
    ).token


def _resigned(token: str, *, header_pad: str = "", **changes: Any) -> str:
    """The token's claims changed by `changes` (None deletes one), signed again with the
    same key and key id; `header_pad` lengthens the header."""
    claims = jwt.get_unverified_claims(token)
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    headers = {"kid": jwt.get_unverified_header(token)["kid"]}
    if header_pad:
        headers["pad"] = header_pad
    return jwt.encode(claims, SECRET, algorithm="HS256", headers=headers)


def _of_length(service: TokenService, length: int) -> str:
    """A validly signed token of exactly `length` characters (unused fields pad it; the
    header's padding reaches the lengths base64 skips in the payload)."""
    token = _issued(service)
    for header_pad in ("", "x", "xx", "xxx"):
        shortest = len(_resigned(token, header_pad=header_pad, pad=""))
        for extra in range(-4, 5):
            size = max(0, (length - shortest) * 3 // 4 + extra)
            padded = _resigned(token, header_pad=header_pad, pad="x" * size)
            if len(padded) == length:
                return padded
    raise AssertionError(f"no token of {length} characters")


def test_a_token_of_exactly_the_cap_verifies(service: TokenService) -> None:
    token = _of_length(service, MAX_TOKEN_LENGTH)

    assert MAX_TOKEN_LENGTH == 4096
    assert service.verify(token).user_id == 42


@pytest.mark.parametrize(
    "length", [MAX_TOKEN_LENGTH + 1, 2 * MAX_TOKEN_LENGTH, 4 * MAX_TOKEN_LENGTH]
)
def test_a_validly_signed_token_over_the_cap_is_refused_unread(
    service: TokenService, length: int
) -> None:
    token = _of_length(service, length)

    with pytest.raises(TokenError, match=r"^token too long$"):
        service.verify(token)


@pytest.mark.parametrize("sid", [pytest.param(None, id="no-sid"), pytest.param("", id="empty-sid")])
def test_a_token_without_a_session_id_is_refused(service: TokenService, sid: str | None) -> None:
    token = _resigned(_issued(service), sid=sid)

    with pytest.raises(TokenError):
        service.verify(token)


def test_a_session_id_of_the_columns_length_is_accepted(service: TokenService) -> None:
    token = _resigned(_issued(service), sid="s" * 32)

    assert service.verify(token).session_id == "s" * 32


def test_the_largest_user_id_and_a_one_character_session_id_are_accepted(
    service: TokenService,
) -> None:
    token = _resigned(_issued(service), sub=str(MAX_USER_ID), sid="s")

    claims = service.verify(token)

    assert (claims.user_id, claims.session_id) == (MAX_USER_ID, "s")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"sub": str(MAX_USER_ID + 1)}, "sub is not a user id", id="sub"),
        pytest.param({"sid": "s" * 33}, "sid is not a session id", id="sid"),
    ],
)
def test_a_refusal_says_which_claim_is_wrong(
    service: TokenService, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(TokenError) as caught:
        service.verify(_resigned(_issued(service), **changes))

    assert str(caught.value) == reason


def test_a_key_id_of_no_known_key_is_refused_as_such(service: TokenService) -> None:
    token = _issued(service)
    forged = jwt.encode(
        jwt.get_unverified_claims(token), SECRET, algorithm="HS256", headers={"kid": "retired"}
    )

    with pytest.raises(TokenError) as caught:
        service.verify(forged)

    assert str(caught.value) == "unknown key id"


def test_a_key_id_that_is_not_text_counts_as_none(service: TokenService) -> None:
    # Like a token without `kid`: the current key is the one that must verify it.
    token = jwt.encode(
        jwt.get_unverified_claims(_issued(service)), SECRET, algorithm="HS256", headers={"kid": 7}
    )

    assert service.verify(token).user_id == 42


def test_claims_the_service_does_not_require_read_as_empty_when_missing(
    service: TokenService,
) -> None:
    token = _resigned(_issued(service), phone=None, market=None, jti=None)

    claims = service.verify(token)

    assert (claims.phone, claims.market, claims.jti) == ("", "", "")


def test_verify_reads_back_every_claim_it_issued(service: TokenService) -> None:
    token = service.issue(
        user_id=42, session_id="session-1", phone="+996555123456", market="KG", jti="j" * 32
    ).token

    claims = service.verify(token)

    assert (claims.user_id, claims.session_id, claims.phone, claims.market, claims.jti) == (
        42,
        "session-1",
        "+996555123456",
        "KG",
        "j" * 32,
    )


def test_a_refusal_by_the_jwt_library_keeps_its_reason(service: TokenService) -> None:
    token = _resigned(_issued(service), iat=1_000_000, exp=1_000_900)

    with pytest.raises(TokenError) as caught:
        service.verify(token)

    assert str(caught.value) == "Signature has expired."


@pytest.mark.parametrize("claim", ["sub", "iss", "aud", "exp", "iat"])
def test_a_token_missing_a_required_claim_is_refused_naming_it(
    service: TokenService, claim: str
) -> None:
    with pytest.raises(TokenError) as caught:
        service.verify(_resigned(_issued(service), **{claim: None}))

    assert str(caught.value) == f'missing required key "{claim}" among claims'
