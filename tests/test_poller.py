"""hub.driver.Poller: stop() ends the loop even when a poll swallowed the cancellation."""

from __future__ import annotations

import asyncio

from hub.driver import Poller
from hub.testing import RecordingContext


async def test_stop_returns_when_poll_swallowed_the_cancel() -> None:
    # Found by the conformance kit on the PJLink driver: before Python 3.12, asyncio.wait_for
    # loses a cancel that lands as its inner read completes; the poll then returned normally and
    # the Poller went to sleep for its whole interval, so stop() (and the hub's) hung.
    ctx = RecordingContext()
    polling = asyncio.Event()

    async def poll() -> None:
        polling.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # swallowed, as wait_for did

    poller = Poller(ctx, "dev", poll, interval=3600)
    poller.start()
    await polling.wait()
    await asyncio.wait_for(poller.stop(), 2)
    assert not poller.running
    await ctx.close()
