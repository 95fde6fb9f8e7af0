"""kit.batching: callers that arrive while a batch is in flight share the next one; each gets its own
answer or error, in arrival order, and a caller that goes away does not disturb the others."""

from __future__ import annotations

import asyncio

import pytest

from mana_credits.kit.batching import Batcher


class Doubler:
    """Answers n with 2n, refuses negatives with their own error, fails a whole batch that holds 13."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def apply(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        await self.gate.wait()
        if 13 in items:
            raise RuntimeError("batch failed")
        return [ValueError(n) if n < 0 else 2 * n for n in items]


async def test_callers_arriving_during_a_batch_share_the_next_in_arrival_order() -> None:
    doubler = Doubler()
    batcher: Batcher[int, int] = Batcher(doubler.apply)
    doubler.gate.clear()
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)  # the first batch is sent and waits
    rest = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, -4, 5)]
    await asyncio.sleep(0)
    doubler.gate.set()
    assert await first == 2
    outcomes = await asyncio.gather(*rest, return_exceptions=True)
    assert outcomes[:2] == [4, 6] and outcomes[3] == 10
    assert isinstance(outcomes[2], ValueError)
    assert doubler.batches == [[1], [2, 3, -4, 5]]


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_still_runs() -> None:
    doubler = Doubler()
    batcher: Batcher[int, int] = Batcher(doubler.apply)
    outcomes = await asyncio.gather(*[batcher.submit(n) for n in (1, 13, 2)], return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await batcher.submit(4) == 8


async def test_a_caller_that_goes_away_leaves_the_others_their_answers() -> None:
    doubler = Doubler()
    batcher: Batcher[int, int] = Batcher(doubler.apply)
    doubler.gate.clear()
    leaving = asyncio.create_task(batcher.submit(1))
    staying = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    leaving.cancel()
    doubler.gate.set()
    assert await staying == 4
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_pile_of_callers_goes_out_in_batches_of_bounded_size() -> None:
    doubler = Doubler()
    batcher: Batcher[int, int] = Batcher(doubler.apply, max_batch=4)
    assert await asyncio.gather(*[batcher.submit(n) for n in range(10)]) == [2 * n for n in range(10)]
    assert doubler.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
