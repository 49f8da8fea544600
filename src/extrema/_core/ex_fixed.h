#pragma once
/* Fixed-point helpers shared by every module that reads or writes raw int64 values: the exact decimal
 * text parser (ex_parse_fixed, used by fixedpoint.parse_fixed and inlined by the venue decoders) and
 * raw -> float conversion. C and C++ (the simdjson decoders include it). */
#include <stddef.h>
#include <stdint.h>

#define EX_MAX_PRECISION 18

/* 10**i as double is exact for i <= 22, so raw / 10**p is correctly rounded whenever |raw| < 2**53. */
static const double ex_pow10_f64[EX_MAX_PRECISION + 1] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

static const uint64_t ex_pow10_u64[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
    1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
    1000000000000000000ULL, 10000000000000000000ULL};

static inline double ex_raw_to_f64(int64_t raw, int precision) {
    return (double)raw / ex_pow10_f64[precision];
}

/* Result codes of ex_parse_fixed (fixedpoint.pxd re-exports them as FixedStatus / FIXED_*). */
typedef enum ex_fixed_status {
    EX_FIXED_OK = 0,
    EX_FIXED_EMPTY = 1,
    EX_FIXED_MALFORMED = 2,
    EX_FIXED_TOO_PRECISE = 3,
    EX_FIXED_OVERFLOW = 4,
    EX_FIXED_NOT_FINITE = 5,
    EX_FIXED_NEGATIVE = 6,
    EX_FIXED_BAD_PRECISION = 7
} ex_fixed_status;

/* acc = acc * mul + add; returns 1 on overflow. */
static inline int ex_fixed_mul_add(uint64_t *acc, uint64_t mul, uint64_t add) {
    uint64_t t;
    if (__builtin_mul_overflow(*acc, mul, &t)) return 1;
    if (__builtin_add_overflow(t, add, &t)) return 1;
    *acc = t;
    return 0;
}

static inline char ex_fixed_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c; }

/* "nan", "inf", "infinity" in any case (after the sign): what float() and JSON encoders produce. */
static inline int ex_fixed_is_non_finite(const char *s, ptrdiff_t n) {
    static const char infinity[] = "infinity";
    ptrdiff_t i;
    if (n == 3 && ex_fixed_lower(s[0]) == 'n' && ex_fixed_lower(s[1]) == 'a' && ex_fixed_lower(s[2]) == 'n')
        return 1;
    if (n == 3 || n == 8) {
        for (i = 0; i < n; i++)
            if (ex_fixed_lower(s[i]) != infinity[i]) return 0;
        return 1;
    }
    return 0;
}

/* The general path of ex_parse_fixed (signs, exponents, long or odd text); not inlined. */
static __attribute__((noinline)) ex_fixed_status ex_parse_fixed_general(const char *s, ptrdiff_t n, int precision,
                                                                        int allow_negative, int64_t *out) {
    ptrdiff_t i = 0;
    int negative = 0;
    uint64_t acc = 0;          /* significant digits, without trailing zeros */
    int pending_zeros = 0;     /* zeros seen after the last non-zero digit, not yet multiplied in */
    int frac_digits = 0;       /* digits after the '.', zeros included */
    int n_digits = 0;
    int seen_point = 0;
    int exponent = 0;
    int exp_negative = 0;
    int exp_digits = 0;
    int shift;
    char c;
    if (precision < 0 || precision > EX_MAX_PRECISION) return EX_FIXED_BAD_PRECISION;
    if (n <= 0) return EX_FIXED_EMPTY;
    if (s[0] == '-' || s[0] == '+') {
        negative = s[0] == '-';
        i = 1;
    }
    if (ex_fixed_is_non_finite(s + i, n - i)) return EX_FIXED_NOT_FINITE;
    while (i < n) {
        c = s[i];
        if (c >= '0' && c <= '9') {
            n_digits++;
            if (seen_point) frac_digits++;
            if (c == '0') {
                if (acc != 0) pending_zeros++;
            } else {
                if (acc != 0 && pending_zeros) {
                    if (pending_zeros >= 19 || ex_fixed_mul_add(&acc, ex_pow10_u64[pending_zeros], 0))
                        return EX_FIXED_OVERFLOW;
                }
                pending_zeros = 0;
                if (ex_fixed_mul_add(&acc, 10, (uint64_t)(c - '0'))) return EX_FIXED_OVERFLOW;
            }
        } else if (c == '.' && !seen_point) {
            seen_point = 1;
        } else if ((c == 'e' || c == 'E') && n_digits > 0) {
            i++;
            if (i < n && (s[i] == '-' || s[i] == '+')) {
                exp_negative = s[i] == '-';
                i++;
            }
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                if (exponent < 10000) exponent = exponent * 10 + (s[i] - '0');
                exp_digits++;
                i++;
            }
            if (exp_digits == 0 || i != n) return EX_FIXED_MALFORMED;
            break;
        } else {
            return EX_FIXED_MALFORMED;
        }
        i++;
    }
    if (n_digits == 0) return EX_FIXED_MALFORMED;
    if (exp_negative) exponent = -exponent;
    if (acc == 0) {
        *out = 0;
        return EX_FIXED_OK;
    }
    /* value = acc * 10**(pending_zeros - frac_digits + exponent); raw = value * 10**precision */
    shift = pending_zeros - frac_digits + exponent + precision;
    if (shift < 0) return EX_FIXED_TOO_PRECISE;   /* acc has no trailing zeros: a digit would be lost */
    if (shift > 19 || (shift > 0 && ex_fixed_mul_add(&acc, ex_pow10_u64[shift], 0))) return EX_FIXED_OVERFLOW;
    if (acc > (uint64_t)INT64_MAX) return EX_FIXED_OVERFLOW;
    if (negative) {
        if (!allow_negative) return EX_FIXED_NEGATIVE;
        *out = -(int64_t)acc;
    } else {
        *out = (int64_t)acc;
    }
    return EX_FIXED_OK;
}

/* Parse decimal text s[0:n] into *out = value * 10**precision, exactly. Accepted: optional sign,
 * digits with an optional '.', optional exponent; digits past `precision` only when they are zeros
 * (Binance pads every price to 8 decimals whatever the tick). See fixedpoint.pyx for the contract.
 * The common shape is parsed inline; everything else (and every error) goes to the general path. */
static inline ex_fixed_status ex_parse_fixed(const char *s, ptrdiff_t n, int precision, int allow_negative,
                                             int64_t *out) {
    if ((unsigned)precision > EX_MAX_PRECISION) return EX_FIXED_BAD_PRECISION;
    /* Fast path, what venues send: [0-9]+ ( '.' [0-9]+ )? with at most 19 digits, which cannot
     * overflow a uint64 while accumulating. Anything else takes ex_parse_fixed_general, which gives
     * the same answer for these inputs (tests/unit/test_fixedpoint.py checks both against a model). */
    if (n <= 20) {
        const char *p = s, *end = s + n, *int_end;
        uint64_t v = 0;
        unsigned d;
        int frac = 0;
        while (p < end && (d = (unsigned)(*p - '0')) < 10) { v = v * 10 + d; ++p; }
        int_end = p;
        if (p != s && p < end && *p == '.') {
            ++p;
            while (p < end && (d = (unsigned)(*p - '0')) < 10) { v = v * 10 + d; ++p; }
            frac = (int)(p - int_end - 1);
            if (frac == 0) p = s;             /* "5." : general path */
        }
        if (p == end && p != s && (int)(n - (frac > 0)) <= 19) {
            if (v == 0) { *out = 0; return EX_FIXED_OK; }
            while (frac > precision && v % 10 == 0) { v /= 10; frac--; }
            if (frac > precision) return EX_FIXED_TOO_PRECISE;
            if (frac < precision && __builtin_mul_overflow(v, ex_pow10_u64[precision - frac], &v))
                return EX_FIXED_OVERFLOW;
            if (v > (uint64_t)INT64_MAX) return EX_FIXED_OVERFLOW;
            *out = (int64_t)v;
            return EX_FIXED_OK;
        }
    }
    return ex_parse_fixed_general(s, n, precision, allow_negative, out);
}
