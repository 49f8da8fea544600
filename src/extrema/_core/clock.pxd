from libc.stdint cimport int64_t

# The engine's one clock. cimport these from any module: `from extrema._core.clock cimport now_us`.
cdef int64_t now_us() noexcept nogil
cdef int64_t monotonic_ns() noexcept nogil
cdef int64_t wall_us_at(int64_t mono_ns) noexcept nogil


cdef class ServerClock:
    cdef public double offset_ms
    cdef public double rtt_ms           # round trip of the sample the offset came from (-1: none yet)
    cpdef int64_t now_ms(self)
