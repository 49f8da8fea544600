#pragma once
/* Exact money arithmetic for orders, risk and P&L.
 *
 * A price (raw at price precision pp) times a size (raw at size precision sp) is exact at pp + sp
 * decimals, but does not fit int64 (BTC at 100000.00 x 1000.00000000 BTC is 1e7 x 1e11). Products,
 * cost bases and realised P&L are therefore kept in a signed 128-bit integer (GCC / Clang __int128,
 * +-1.7e38), which holds any sum of int64 x int64 products a trading engine meets. Division always
 * truncates toward zero (C semantics); tests/models mirror that with sign * (|a| // b). */
#include <stdint.h>

typedef __int128 ex_i128;

#define EX_I128_MAX ((ex_i128)(((unsigned __int128)1 << 127) - 1))

static inline ex_i128 ex_mul64(int64_t a, int64_t b) { return (ex_i128)a * (ex_i128)b; }

static inline ex_i128 ex_i128_abs(ex_i128 x) { return x < 0 ? -x : x; }

static inline int ex_i128_sign(ex_i128 x) { return (x > 0) - (x < 0); }

/* 10**e as an exact 128-bit integer, e in 0..38 (a table: money conversions run on every fill). */
#define EX_P10(x) ((ex_i128)(x))
#define EX_P10_19 ((ex_i128)10000000000000000000ULL)
static const ex_i128 ex_pow10_table[39] = {
    EX_P10(1ULL), EX_P10(10ULL), EX_P10(100ULL), EX_P10(1000ULL), EX_P10(10000ULL), EX_P10(100000ULL),
    EX_P10(1000000ULL), EX_P10(10000000ULL), EX_P10(100000000ULL), EX_P10(1000000000ULL),
    EX_P10(10000000000ULL), EX_P10(100000000000ULL), EX_P10(1000000000000ULL), EX_P10(10000000000000ULL),
    EX_P10(100000000000000ULL), EX_P10(1000000000000000ULL), EX_P10(10000000000000000ULL),
    EX_P10(100000000000000000ULL), EX_P10(1000000000000000000ULL), EX_P10_19,
    EX_P10_19 * 10, EX_P10_19 * 100, EX_P10_19 * 1000, EX_P10_19 * 10000, EX_P10_19 * 100000,
    EX_P10_19 * 1000000, EX_P10_19 * 10000000, EX_P10_19 * 100000000, EX_P10_19 * 1000000000,
    EX_P10_19 * 10000000000ULL, EX_P10_19 * 100000000000ULL, EX_P10_19 * 1000000000000ULL,
    EX_P10_19 * 10000000000000ULL, EX_P10_19 * 100000000000000ULL, EX_P10_19 * 1000000000000000ULL,
    EX_P10_19 * 10000000000000000ULL, EX_P10_19 * 100000000000000000ULL, EX_P10_19 * 1000000000000000000ULL,
    EX_P10_19 * EX_P10_19};

static inline ex_i128 ex_pow10_i128(int e) { return ex_pow10_table[e]; }

/* x * 10**e for e >= 0, x / 10**-e truncated toward zero for e < 0 (e in -38..38). */
static inline ex_i128 ex_scale10(ex_i128 x, int e) {
    if (e >= 0) return x * ex_pow10_i128(e);
    if (e < -38) return 0;
    return x / ex_pow10_i128(-e);
}

/* trunc(c * f / q) for q > 0, f >= 0, without forming c * f (which can exceed 128 bits when c is a
 * large cost basis): c = k*q + r with |r| < q, so c*f/q = k*f + r*f/q and both terms have c's sign. */
static inline ex_i128 ex_muldiv_trunc(ex_i128 c, int64_t f, int64_t q) {
    ex_i128 k = c / q;
    ex_i128 r = c % q;
    return k * f + (r * f) / q;
}

/* Nearest double of x / 10**p (p in 0..38); exact enough for the user boundary (floats only there). */
static inline double ex_i128_to_f64(ex_i128 x, int p) {
    static const double pow10[39] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32,
        1e33, 1e34, 1e35, 1e36, 1e37, 1e38};
    if (p <= 0) return (double)x;
    if (p > 38) p = 38;
    return (double)x / pow10[p];
}
