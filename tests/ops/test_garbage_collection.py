"""The collector while the service serves: start-up frozen, young objects collected
less often, and the interpreter as it was once the service stops."""

from __future__ import annotations

import gc

from app.core.garbage_collection import YOUNG_GENERATION_THRESHOLD
from app.main import create_app
from tests.conftest import SettingsFactory, running


async def test_serving_freezes_start_up_and_raises_the_young_threshold(
    make_settings: SettingsFactory,
) -> None:
    before = gc.get_threshold()
    assert before[0] != YOUNG_GENERATION_THRESHOLD
    app = create_app(make_settings())

    async with running(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *before[1:])
        # Modules, settings, the engine and the clients are out of every collection.
        assert gc.get_freeze_count() > 10_000

    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
