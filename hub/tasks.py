"""Background tasks one owner started: kept so they can be cancelled together, each failure reported."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

OnError = Callable[[asyncio.Task[Any], BaseException], None]


def logged(log: logging.Logger, what: str) -> OnError:
    """Report a failed task as an error on `log` with its traceback."""
    def report(task: asyncio.Task[Any], exc: BaseException) -> None:
        log.error("%s %s failed: %r", what, task.get_name(), exc, exc_info=exc)
    return report


class Tasks:
    """A set of running tasks; a task that ends with an exception goes to `on_error` (never lost)."""

    def __init__(self, on_error: OnError) -> None:
        self.on_error = on_error
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.on_error(task, exc)

    def __len__(self) -> int:
        return len(self._running)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._running))

    async def wait(self) -> None:
        """Until every task started so far (and any they start) has ended."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def cancel(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
