from libc.stdint cimport int64_t, uint64_t

cdef extern from "ex_fixed.h" nogil:
    const int EX_MAX_PRECISION
    const double ex_pow10_f64[19]
    const uint64_t ex_pow10_u64[20]
    double ex_raw_to_f64(int64_t raw, int precision) noexcept
