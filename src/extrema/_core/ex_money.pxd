from libc.stdint cimport int64_t

# ex_i128 is GCC's __int128. Cython is told it is an integer type (declared as long long) so that
# + - * / % and comparisons compile to plain C operators on the real 128-bit type; conversions to and
# from Python ints go through Cython's size-generic byte-array path, so they are exact as well.
cdef extern from "ex_money.h" nogil:
    ctypedef long long ex_i128
    const ex_i128 EX_I128_MAX
    ex_i128 ex_mul64(int64_t a, int64_t b) noexcept
    ex_i128 ex_i128_abs(ex_i128 x) noexcept
    int ex_i128_sign(ex_i128 x) noexcept
    ex_i128 ex_pow10_i128(int e) noexcept
    ex_i128 ex_scale10(ex_i128 x, int e) noexcept
    ex_i128 ex_muldiv_trunc(ex_i128 c, int64_t f, int64_t q) noexcept
    double ex_i128_to_f64(ex_i128 x, int p) noexcept
