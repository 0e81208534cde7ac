"""Reading the JWT key material of the settings: private keys and retired public keys.

Here rather than with the signing keys so that the settings can refuse a bad key
when they are read, the same for every command, instead of when the service starts.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

MIN_RSA_BITS = 2048
_PEM_PUBLIC = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def load_private_key(pem: str, algorithm: str) -> PrivateKey:
    """The unencrypted PEM private key `pem`, checked to suit `algorithm` (RS256, ES256)."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("JWT_PRIVATE_KEY is not an unencrypted PEM private key") from exc
    if algorithm == "RS256":
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"JWT_PRIVATE_KEY must be an RSA key of {MIN_RSA_BITS}+ bits "
                "for JWT_ALGORITHM=RS256"
            )
        return key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("JWT_PRIVATE_KEY must be an EC key on curve P-256 for JWT_ALGORITHM=ES256")
    return key


def parse_public_keys(text: str) -> list[PublicKey]:
    """Every PEM public key in `text` (concatenated blocks)."""
    keys: list[PublicKey] = []
    for block in _PEM_PUBLIC.findall(text.replace("\\n", "\n")):
        try:
            key = serialization.load_pem_public_key(block.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError("JWT_PREVIOUS_PUBLIC_KEYS holds a PEM block that is no key") from exc
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise ValueError("JWT_PREVIOUS_PUBLIC_KEYS may hold only RSA and EC keys")
        keys.append(key)
    return keys
