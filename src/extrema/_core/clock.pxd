from libc.stdint cimport int64_t

# The engine's one clock. cimport these from any module: `from extrema._core.clock cimport now_us`.
cdef int64_t now_us() noexcept nogil
cdef int64_t monotonic_ns() noexcept nogil
