"""The worker's consumer fetch wait comes from the settings, not Faust's fixed 1500 ms."""

from __future__ import annotations

import asyncio

import faust

from streams import compat


def test_worker_consumer_uses_the_configured_fetch_wait():
    async def created_wait(fetch_max_wait_ms: int | None) -> int:
        compat.install(fetch_max_wait_ms)
        app = faust.App("compat-test", broker="kafka://127.0.0.1:1", store="memory://")
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # not started
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    try:
        assert asyncio.run(created_wait(7)) == 7
        assert asyncio.run(created_wait(None)) == 1500  # Faust's own value when not configured
    finally:
        compat.install(None)
