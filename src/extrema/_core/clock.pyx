"""Time in extrema: int64 microseconds since the Unix epoch, UTC, for exchange and local timestamps alike.

`now_us()` is a wall clock anchored to the monotonic clock (see ex_clock.h for why): it never steps
backwards when NTP adjusts the system clock. `reanchor()` re-reads the wall clock, for long-running
processes that want to follow a slewed system clock; it is the only moment the clock may jump.
"""
from extrema._core.ex_clock cimport (
    ex_clock_anchor, ex_clock_anchor_now, ex_clock_now_us, ex_monotonic_ns, ex_realtime_us)

cdef ex_clock_anchor _anchor
ex_clock_anchor_now(&_anchor)


cdef int64_t now_us() noexcept nogil:
    return ex_clock_now_us(&_anchor)


cdef int64_t monotonic_ns() noexcept nogil:
    return ex_monotonic_ns()


def time_us():
    """Now, in int64 microseconds since the Unix epoch (UTC), on the engine's monotonic-anchored clock."""
    return ex_clock_now_us(&_anchor)


def monotonic_time_ns():
    """CLOCK_MONOTONIC in nanoseconds: for measuring intervals, not for timestamps."""
    return ex_monotonic_ns()


def reanchor():
    """Re-read the system wall clock as the new anchor. Returns the step applied, in microseconds."""
    cdef int64_t before = ex_clock_now_us(&_anchor)
    ex_clock_anchor_now(&_anchor)
    return ex_clock_now_us(&_anchor) - before


def clock_drift_us():
    """How far the system wall clock has moved from the anchored clock (system minus anchored), in µs."""
    return ex_realtime_us() - ex_clock_now_us(&_anchor)
