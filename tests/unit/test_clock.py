"""The monotonic-anchored wall clock: int64 microseconds UTC."""
import time

import extrema


def test_time_us_is_wall_time_in_microseconds():
    before = time.time_ns() // 1000
    now = extrema.time_us()
    after = time.time_ns() // 1000
    assert isinstance(now, int)
    # Anchored at import: it may differ from the system clock only by what NTP slewed since then.
    assert before - 1_000_000 <= now <= after + 1_000_000
    assert abs(extrema.clock_drift_us()) < 1_000_000


def test_time_us_never_goes_backwards():
    last = extrema.time_us()
    for _ in range(100_000):
        now = extrema.time_us()
        assert now >= last
        last = now


def test_reanchor_returns_the_step():
    step = extrema.reanchor()
    assert isinstance(step, int) and abs(step) < 1_000_000
    assert extrema.monotonic_time_ns() > 0
