"""Objects that belong to one event loop: the locks and limiters requests queue on in the loop."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
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


class Abandoned(Exception):
    """Raised by `turn` when its `gone` awaitable ends first: the client left while waiting for the turn."""


@asynccontextmanager
async def turn(gate: asyncio.Lock | asyncio.Semaphore | None, *, within: float,
               busy: Callable[[], BaseException],
               gone: Callable[[], Awaitable[object]] | None = None) -> AsyncIterator[None]:
    """Hold `gate` (a lock, or one of a semaphore's places) for the block, waiting for it in the event loop (holding
    no worker thread) at most `within` seconds; after that `busy()` is raised and the block does not run. None:
    nothing to wait for. `gone()`: ends when the waiter is no longer wanted (its client left); the wait then stops
    with `Abandoned`, taking nothing."""
    if gate is None:
        yield
        return
    if gone is None:
        try:
            await asyncio.wait_for(gate.acquire(), within)
        except TimeoutError:
            raise busy() from None
    else:
        await _acquire_unless(gate, within, busy, gone)
    try:
        yield
    finally:
        gate.release()


async def _acquire_unless(gate: asyncio.Lock | asyncio.Semaphore, within: float,
                          busy: Callable[[], BaseException], gone: Callable[[], Awaitable[object]]) -> None:
    """Acquire `gate` unless `gone()` ends first or `within` seconds pass. Nothing in the way out awaits, so a
    cancellation arriving at any point cannot leave a place taken with nobody holding it."""
    acquiring = asyncio.ensure_future(gate.acquire())
    left = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({acquiring, left}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        left.cancel()
        _give_up(gate, acquiring)
        raise
    held = acquiring.done() and not acquiring.cancelled()
    ended = left.done() and not left.cancelled()
    left.cancel()
    if held and not ended:
        return
    _give_up(gate, acquiring)
    if ended:
        failure = left.exception()
        if failure is not None:
            raise failure  # reading the request failed (a body too large, say): that, not a client gone
        raise Abandoned
    raise busy()


def _give_up(gate: asyncio.Lock | asyncio.Semaphore, acquiring: asyncio.Future[object]) -> None:
    """Give back the place `acquiring` got or is about to get."""
    if acquiring.done():
        if not acquiring.cancelled():
            gate.release()
        return
    acquiring.cancel()  # a waiter woken as it is cancelled hands its place on (asyncio.Semaphore, Lock)

    def release_if_got(done: asyncio.Future[object]) -> None:  # should the acquisition complete all the same
        if not done.cancelled() and done.exception() is None:
            gate.release()

    acquiring.add_done_callback(release_if_got)
