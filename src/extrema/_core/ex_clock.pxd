from libc.stdint cimport int64_t

cdef extern from "ex_clock.h" nogil:
    ctypedef struct ex_clock_anchor:
        int64_t wall_us
        int64_t mono_ns
    int64_t ex_monotonic_ns() noexcept
    int64_t ex_realtime_us() noexcept
    void ex_clock_anchor_now(ex_clock_anchor *a) noexcept
    int64_t ex_clock_now_us(const ex_clock_anchor *a) noexcept
