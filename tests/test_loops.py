"""app.core.loops.per_loop: one object per event loop, and closed loops are not kept alive."""

from __future__ import annotations

import asyncio
import gc
import weakref

from app.core.loops import per_loop


def test_each_loop_gets_its_own_and_a_closed_loop_is_let_go() -> None:
    locks = per_loop(asyncio.Lock)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def contend() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        lock = locks()
        assert locks() is lock  # the same one within a loop
        async with lock:  # a second task waits on it: the lock now refers to its loop
            waiter = asyncio.ensure_future(lock.acquire())
            await asyncio.sleep(0)
        await waiter
        lock.release()

    for _ in range(3):  # a lock shared between loops would raise "bound to a different event loop" here
        asyncio.run(contend())
    gc.collect()
    assert [ref() is None for ref in loops[:-1]] == [True, True]  # only the last closed loop may still be held
