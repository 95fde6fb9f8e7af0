"""Group commit for hot paths: calls that arrive while a batch is in flight go out together in the next one,
so N concurrent callers cost one database round trip instead of N (and wait on no pool queue)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# `apply` answers every item of a batch, in order: its result, or the exception its caller gets.
Apply = Callable[[list[Item]], Awaitable[list[Result | Exception]]]


# Items a batch takes at most: one statement stays bounded when callers pile up (the rest go in the next).
MAX_BATCH = 500


class Batcher(Generic[Item, Result]):
    """One per process and purpose. With one batch in flight, each batch takes everything that queued while
    the last one ran (up to `max_batch`): batches stay large, and items are applied in arrival order."""

    def __init__(self, apply: Apply[Item, Result], *, in_flight: int = 1, max_batch: int = MAX_BATCH) -> None:
        self._apply = apply
        self._max_in_flight = in_flight
        self._max_batch = max_batch
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._in_flight < self._max_in_flight:
            self._start()
        return await future

    async def drained(self) -> None:
        """Return once no batch is in flight (the queue stays as it is)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self) -> None:
        # The batch takes the queue when its task first runs: items arriving until then ride along.
        self._in_flight += 1
        task = asyncio.create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            if batch:
                await self._answer(batch)
        finally:
            self._in_flight -= 1
            if self._queue:
                self._start()

    async def _answer(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._apply([item for item, _ in batch])
        except BaseException as exc:  # the batch as a whole failed: every caller gets the error
            for _, future in batch:
                if not future.done():
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away; what the batch did for it stands
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
