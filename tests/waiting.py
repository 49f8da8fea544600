"""Waiting for something a real server or engine thread will do: a bound on a stuck run (it fails with
what was awaited), never a timing assertion."""
import asyncio
import time


def wait_for(predicate, timeout=20.0, what="condition", detail=lambda: ""):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}{detail()}")
        time.sleep(0.01)


async def async_wait_for(predicate, timeout=5.0, what="condition"):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
