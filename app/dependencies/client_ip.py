"""The client's address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.core.client_ip import Network, client_ip


async def get_client_ip(request: Request) -> str | None:
    """The socket peer, or what a trusted proxy says the client is."""
    trusted: tuple[Network, ...] = request.app.state.trusted_proxies
    peer = request.client.host if request.client else None
    # A proxy may add its own header line rather than append to the client's.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
    return client_ip(peer, forwarded, trusted)


ClientIP = Annotated[str | None, Depends(get_client_ip)]
