#pragma once
/* Fixed-point helpers shared by every module that turns raw int64 values into user floats. */
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
