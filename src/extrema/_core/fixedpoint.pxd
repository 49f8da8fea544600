from libc.stdint cimport int64_t

# Result codes of parse_fixed (0 = success). Decoders on the hot path check the code and only build
# a Python error message (fixed_error) when they have to report one.
cdef enum FixedStatus:
    FIXED_OK = 0
    FIXED_EMPTY = 1
    FIXED_MALFORMED = 2
    FIXED_TOO_PRECISE = 3
    FIXED_OVERFLOW = 4
    FIXED_NOT_FINITE = 5
    FIXED_NEGATIVE = 6
    FIXED_BAD_PRECISION = 7

cdef FixedStatus parse_fixed(const char *s, Py_ssize_t n, int precision, bint allow_negative,
                             int64_t *out) noexcept nogil
cdef Py_ssize_t format_fixed(int64_t raw, int precision, char *buf) noexcept nogil
cdef object fixed_error(object text, int precision, FixedStatus status)
cdef int64_t value_to_raw(object value, int precision, bint allow_negative) except? -1
