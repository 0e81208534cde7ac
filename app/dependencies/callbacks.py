"""The providers' callbacks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.services.delivery.callbacks import VonageCallbacks


async def get_vonage_callbacks(request: Request) -> VonageCallbacks:
    """Vonage's callback handler, one per process."""
    callbacks: VonageCallbacks = request.app.state.vonage_callbacks
    return callbacks


VonageCallbacksDep = Annotated[VonageCallbacks, Depends(get_vonage_callbacks)]
