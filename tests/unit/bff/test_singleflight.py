"""SingleFlight: one task per key for concurrent callers, shielded from their cancellation."""

from __future__ import annotations

import asyncio
import gc

import pytest

from idp.bff.singleflight import SingleFlight


class Work:
    """Counts its starts; each run waits for ``release`` and then returns (or raises) what it is told."""

    def __init__(self, result: object = "done", error: Exception | None = None) -> None:
        self.starts = 0
        self.release = asyncio.Event()
        self.finished = 0
        self.result = result
        self.error = error

    async def __call__(self) -> object:
        self.starts += 1
        await self.release.wait()
        self.finished += 1
        if self.error is not None:
            raise self.error
        return self.result


async def started_and_left(flight: SingleFlight[str, object], work: Work) -> None:
    """A caller that waits for ``work`` under "s1" (starting it if none runs) and is cancelled before it ends
    (the browser went away)."""
    leaving = asyncio.create_task(flight.run("s1", work))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def finish(work: Work) -> None:
    """Let ``work`` end, and the loop run its done-callbacks."""
    work.release.set()
    for _ in range(3):
        await asyncio.sleep(0)


async def test_concurrent_callers_for_one_key_share_one_run() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work()
    callers = [asyncio.create_task(flight.run("s1", work)) for _ in range(5)]
    await asyncio.sleep(0)
    assert "s1" in flight and len(flight) == 1
    work.release.set()
    assert await asyncio.gather(*callers) == ["done"] * 5
    assert work.starts == 1
    assert "s1" not in flight


async def test_other_keys_and_later_calls_run_their_own_work() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work()
    work.release.set()
    assert await asyncio.gather(flight.run("a", work), flight.run("b", work)) == ["done", "done"]
    assert work.starts == 2
    await flight.run("a", work)  # the first run for "a" is over: a new one starts
    assert work.starts == 3


async def test_a_cancelled_caller_does_not_cancel_the_work_the_others_wait_for() -> None:
    seen: list[tuple[str, object]] = []
    flight: SingleFlight[str, object] = SingleFlight(lambda k, v: seen.append((k, v)))
    work = Work()
    staying = asyncio.create_task(flight.run("s1", work))
    await started_and_left(flight, work)
    work.release.set()
    assert await staying == "done"
    assert work.finished == 1
    assert seen == [("s1", "done")]


async def test_work_outlives_every_caller_leaving() -> None:
    seen: list[tuple[str, object]] = []
    flight: SingleFlight[str, object] = SingleFlight(lambda k, v: seen.append((k, v)))
    work = Work()
    await started_and_left(flight, work)
    await finish(work)
    assert work.finished == 1 and seen == [("s1", "done")]
    assert "s1" not in flight


async def test_a_failure_reaches_every_caller_and_is_not_remembered() -> None:
    seen: list[tuple[str, object]] = []
    flight: SingleFlight[str, object] = SingleFlight(lambda k, v: seen.append((k, v)))
    work = Work(error=RuntimeError("idp said no"))
    callers = [asyncio.create_task(flight.run("s1", work)) for _ in range(3)]
    await asyncio.sleep(0)
    work.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(r) for r in results] == ["idp said no"] * 3
    assert seen == [] and "s1" not in flight


async def test_a_failure_nobody_waits_for_is_not_reported_as_never_retrieved() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work(error=RuntimeError("late"))
    reported: list[object] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        await started_and_left(flight, work)
        await finish(work)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert work.finished == 1
    assert reported == []
