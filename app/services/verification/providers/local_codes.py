"""Codes checked by the service itself (console provider, test numbers).

Only an HMAC of a code is stored, keyed from the JWT secret and bound to the
verification sid, and it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac


class CodeHasher:
    """HMACs of codes under a key derived from the service secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"phone-auth local code\x00" + secret.encode()).digest()

    def hash(self, sid: str, code: str) -> str:
        """The HMAC of `code` for the verification `sid`."""
        return hmac.new(self._key, f"{sid}:{code}".encode(), hashlib.sha256).hexdigest()

    def matches(self, sid: str, code: str, code_hash: str | None) -> bool:
        """Whether `code` is the one hashed into `code_hash`, in constant time."""
        if code_hash is None:
            return False
        return hmac.compare_digest(self.hash(sid, code), code_hash)
