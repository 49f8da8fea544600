from libc.stdint cimport int64_t, uint64_t

cdef extern from "ex_fixed.h" nogil:
    const int EX_MAX_PRECISION
    const double ex_pow10_f64[19]
    const uint64_t ex_pow10_u64[20]
    double ex_raw_to_f64(int64_t raw, int precision) noexcept

    # The one exact decimal parser (fixedpoint.parse_fixed wraps it; decoders inline it).
    ctypedef enum ex_fixed_status:
        EX_FIXED_OK
        EX_FIXED_EMPTY
        EX_FIXED_MALFORMED
        EX_FIXED_TOO_PRECISE
        EX_FIXED_OVERFLOW
        EX_FIXED_NOT_FINITE
        EX_FIXED_NEGATIVE
        EX_FIXED_BAD_PRECISION
    ex_fixed_status ex_parse_fixed(const char *s, Py_ssize_t n, int precision, bint allow_negative,
                                   int64_t *out) noexcept
