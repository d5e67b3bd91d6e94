"""Objects that belong to one event loop: the locks and limiters requests queue on in the loop."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")


def per_loop(make: Callable[[], T]) -> Callable[[], T]:
    """A getter of one `make()` per running event loop, made on first use.

    An asyncio lock or an anyio limiter serves the loop it was first used in; a process may run several loops
    one after the other (each test client runs its own), so each gets its own."""
    made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        found = made.get(loop)
        if found is None:
            # A lock that was waited on refers to its loop, which then stays a key: drop the closed ones.
            for closed in [other for other in made if other.is_closed()]:
                del made[closed]
            found = made[loop] = make()
        return found

    return get


@asynccontextmanager
async def turn(gate: asyncio.Lock | asyncio.Semaphore | None, *, within: float,
               busy: Callable[[], BaseException]) -> AsyncIterator[None]:
    """Hold `gate` (a lock, or one of a semaphore's places) for the block, waiting for it in the event loop (holding
    no worker thread) at most `within` seconds; after that `busy()` is raised and the block does not run. None:
    nothing to wait for."""
    if gate is None:
        yield
        return
    try:
        await asyncio.wait_for(gate.acquire(), within)
    except TimeoutError:
        raise busy() from None
    try:
        yield
    finally:
        gate.release()
