"""JWT signing keys: the current one, retired public keys, and the JWKS document.

HS256 signs with `JWT_SECRET_KEY` and publishes nothing. RS256 and ES256 sign
with a PEM private key and publish its public half, plus the retired public
keys in `JWT_PREVIOUS_PUBLIC_KEYS`, so that other services can verify tokens
and a key rotation logs nobody out. Every token carries the `kid` of its key
(the RFC 7638 thumbprint of the public key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jose import jwt

from app.core.config import Settings
from app.core.keys import MIN_RSA_BITS, PublicKey, load_private_key, parse_public_keys

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A key tokens may be verified with, and the one algorithm it allows."""

    kid: str
    algorithm: str
    key: str
    jwk: dict[str, str] | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int, length: int | None = None) -> str:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return _b64(value.to_bytes(size, "big"))


def public_jwk(key: PublicKey) -> tuple[str, dict[str, str]]:
    """The algorithm and public JWK of `key`, with its RFC 7638 thumbprint as `kid`."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        members = {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        point = key.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": _int_b64(point.x, 32),
            "y": _int_b64(point.y, 32),
        }
        algorithm = "ES256"
    else:
        raise ValueError("only RSA and EC P-256 keys are supported")
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = _b64(hashlib.sha256(canonical).digest())
    return algorithm, {**members, "kid": kid, "alg": algorithm, "use": "sig"}


def _public_pem(key: PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _generate_private_key(algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    logger.warning(
        "JWT_PRIVATE_KEY is not set: using a random %s key, so tokens and sessions stop "
        "working on restart",
        algorithm,
    )
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    return ec.generate_private_key(ec.SECP256R1())


class KeySet:
    """The key tokens are signed with, and every key they may be verified with."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self._verifying: dict[str, VerifyingKey] = {}
        self._ec_private: ec.EllipticCurvePrivateKey | None = None
        if self.algorithm == "HS256":
            secret = settings.signing_secret
            self.kid = "hs256-" + _b64(hashlib.sha256(b"kid\x00" + secret.encode()).digest())[:16]
            self.signing_key = secret
            self._verifying[self.kid] = VerifyingKey(self.kid, "HS256", secret, None)
        else:
            pem = settings.private_key_pem()
            private = (
                load_private_key(pem, self.algorithm)
                if pem
                else _generate_private_key(self.algorithm)
            )
            if isinstance(private, ec.EllipticCurvePrivateKey):
                self._ec_private = private
            public = private.public_key()
            _, jwk = public_jwk(public)
            self.kid = jwk["kid"]
            self.signing_key = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
            self._verifying[self.kid] = VerifyingKey(
                self.kid, self.algorithm, _public_pem(public), jwk
            )
        for old in parse_public_keys(settings.jwt_previous_public_keys or ""):
            algorithm, jwk = public_jwk(old)
            self._verifying.setdefault(
                jwk["kid"], VerifyingKey(jwk["kid"], algorithm, _public_pem(old), jwk)
            )

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWT of `claims` under the current key; the same claims give the same token.

        HS256 and RS256 signatures are deterministic already; ES256 uses
        deterministic ECDSA (RFC 6979), so a retried refresh gets identical bytes.
        """
        headers = {"kid": self.kid}
        if self.algorithm != "ES256":
            return jwt.encode(claims, self.signing_key, algorithm=self.algorithm, headers=headers)
        header = {"alg": "ES256", "kid": self.kid, "typ": "JWT"}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        assert self._ec_private is not None
        der = self._ec_private.sign(
            signing_input.encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        )
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def verifying_key(self, kid: str | None) -> VerifyingKey | None:
        """The key for a token's `kid`; the current key for a token without one."""
        return self._verifying.get(kid or self.kid)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWKS document (empty for HS256)."""
        return {"keys": [key.jwk for key in self._verifying.values() if key.jwk is not None]}
