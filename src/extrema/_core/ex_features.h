/* Batch helpers of the feature kernels (features.pyx): the loops without a recurrence, written so
 * that they vectorise on any x86-64 (SSE2 is baseline) and, where the CPU has it, with AVX2 -- chosen
 * at run time, so the wheel stays portable. Every operation here is correctly rounded per element
 * (sub, mul, add, fabs, max, sqrt; never a fused multiply-add: no "fma" target is enabled, so the
 * compiler cannot contract), so a vector lane computes exactly the bits the scalar step function
 * computes: batch == streaming holds bit for bit whichever variant runs. */
#ifndef EX_FEATURES_H
#define EX_FEATURES_H

#include <stdint.h>
#include <string.h>
#include <Python.h>     /* Py_ssize_t */

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define EX_X86 1
#include <immintrin.h>
#define EX_AVX2 __attribute__((target("avx2")))
#else
#define EX_X86 0
#endif

/* 1 if the CPU runs AVX2 (evaluated once). */
static inline int ex_have_avx2(void) {
#if EX_X86
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return have;
#else
    return 0;
#endif
}

static inline uint64_t ex_bits(double x) { uint64_t u; memcpy(&u, &x, sizeof u); return u; }

/* ---- square-root maps (STDDEV, BBANDS) --------------------------------------------------------- */
/* libm's sqrt() carries errno handling (a compare and a call for negative input) that stops the
 * compiler vectorising; the variances here are never negative, and the sqrt instruction is correctly
 * rounded, so the values are those of the scalar sqrt. */

static inline double ex_sqrt1(double v) {
#if EX_X86
    return _mm_cvtsd_f64(_mm_sqrt_sd(_mm_setzero_pd(), _mm_set_sd(v)));
#else
    return __builtin_sqrt(v);
#endif
}

#if EX_X86
EX_AVX2 static void ex_stddev_map_avx2(double *a, Py_ssize_t n, double nbdev) {
    Py_ssize_t i = 0;
    if (nbdev != 1.0) {
        __m256d k = _mm256_set1_pd(nbdev);
        for (; i + 4 <= n; i += 4)
            _mm256_storeu_pd(a + i, _mm256_mul_pd(_mm256_sqrt_pd(_mm256_loadu_pd(a + i)), k));
        for (; i < n; i++) a[i] = ex_sqrt1(a[i]) * nbdev;
    } else {
        for (; i + 4 <= n; i += 4)
            _mm256_storeu_pd(a + i, _mm256_sqrt_pd(_mm256_loadu_pd(a + i)));
        for (; i < n; i++) a[i] = ex_sqrt1(a[i]);
    }
}
#endif

static void ex_stddev_map(double *a, Py_ssize_t n, double nbdev) {
    Py_ssize_t i = 0;
#if EX_X86
    if (ex_have_avx2()) { ex_stddev_map_avx2(a, n, nbdev); return; }
    if (nbdev != 1.0) {
        __m128d k = _mm_set1_pd(nbdev);
        for (; i + 2 <= n; i += 2) _mm_storeu_pd(a + i, _mm_mul_pd(_mm_sqrt_pd(_mm_loadu_pd(a + i)), k));
    } else {
        for (; i + 2 <= n; i += 2) _mm_storeu_pd(a + i, _mm_sqrt_pd(_mm_loadu_pd(a + i)));
    }
#endif
    if (nbdev != 1.0) { for (; i < n; i++) a[i] = ex_sqrt1(a[i]) * nbdev; }
    else { for (; i < n; i++) a[i] = ex_sqrt1(a[i]); }
}

/* BBANDS: `lower` holds the variances on entry and the lower band on exit (bbands_step's arithmetic:
 * sd = var != 0 ? sqrt(var) : +0 -- a mask, lane by lane -- then middle +- sd * nbdev; with equal
 * factors bbands_step forms the product once, which is the same value). */
#if EX_X86
EX_AVX2 static void ex_bbands_map_avx2(double *upper, const double *middle, double *lower, Py_ssize_t n,
                                       double up, double dn) {
    Py_ssize_t i = 0;
    __m256d ku = _mm256_set1_pd(up), kd = _mm256_set1_pd(dn);
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(lower + i);
        __m256d sd = _mm256_andnot_pd(_mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_EQ_OQ), _mm256_sqrt_pd(v));
        __m256d m = _mm256_loadu_pd(middle + i);
        _mm256_storeu_pd(upper + i, _mm256_add_pd(m, _mm256_mul_pd(sd, ku)));
        _mm256_storeu_pd(lower + i, _mm256_sub_pd(m, _mm256_mul_pd(sd, kd)));
    }
    for (; i < n; i++) {
        double sd = lower[i] != 0.0 ? ex_sqrt1(lower[i]) : 0.0;
        upper[i] = middle[i] + sd * up;
        lower[i] = middle[i] - sd * dn;
    }
}
#endif

static void ex_bbands_map(double *upper, const double *middle, double *lower, Py_ssize_t n,
                          double up, double dn) {
    Py_ssize_t i = 0;
#if EX_X86
    if (ex_have_avx2()) { ex_bbands_map_avx2(upper, middle, lower, n, up, dn); return; }
    {
        __m128d ku = _mm_set1_pd(up), kd = _mm_set1_pd(dn);
        for (; i + 2 <= n; i += 2) {
            __m128d v = _mm_loadu_pd(lower + i);
            __m128d sd = _mm_andnot_pd(_mm_cmpeq_pd(v, _mm_setzero_pd()), _mm_sqrt_pd(v));
            __m128d m = _mm_loadu_pd(middle + i);
            _mm_storeu_pd(upper + i, _mm_add_pd(m, _mm_mul_pd(sd, ku)));
            _mm_storeu_pd(lower + i, _mm_sub_pd(m, _mm_mul_pd(sd, kd)));
        }
    }
#endif
    for (; i < n; i++) {
        double sd = lower[i] != 0.0 ? ex_sqrt1(lower[i]) : 0.0;
        upper[i] = middle[i] + sd * up;
        lower[i] = middle[i] - sd * dn;
    }
}

/* ---- true range (TRANGE, ATR) ------------------------------------------------------------------ */
/* out[i - 1] = TA-Lib's true range of bar i against the close of bar i - 1, for i in [1, n); returns
 * nonzero if any of hi[1..n), lo[1..n), cl[1..n) is not finite (x - x is +0 for a finite x, NaN
 * otherwise; the OR of the bit patterns is 0 exactly when all are +0). The max is written as
 * `v > g ? v : g`, TA-Lib's comparison, which is maxsd / maxpd: the same value lane by lane. */
#define EX_TRANGE_BODY(I)                                                        \
    do {                                                                         \
        double h_ = hi[I], l_ = lo[I], pc_ = cl[(I) - 1], c_ = cl[I];            \
        double g_ = h_ - l_, v_;                                                 \
        v_ = __builtin_fabs(pc_ - h_); g_ = v_ > g_ ? v_ : g_;                   \
        v_ = __builtin_fabs(pc_ - l_); g_ = v_ > g_ ? v_ : g_;                   \
        out[(I) - 1] = g_;                                                             \
        bad |= ex_bits(h_ - h_) | ex_bits(l_ - l_) | ex_bits(c_ - c_);           \
    } while (0)

#if EX_X86
EX_AVX2 static int ex_trange_run_avx2(const double *hi, const double *lo, const double *cl, double *out,
                                      Py_ssize_t n) {
    uint64_t bad = 0;
    Py_ssize_t i;
    for (i = 1; i < n; i++) EX_TRANGE_BODY(i);
    return bad != 0;
}
#endif

static int ex_trange_run(const double *hi, const double *lo, const double *cl, double *out, Py_ssize_t n) {
    uint64_t bad = 0;
    Py_ssize_t i;
#if EX_X86
    if (ex_have_avx2()) return ex_trange_run_avx2(hi, lo, cl, out, n);
#endif
    for (i = 1; i < n; i++) EX_TRANGE_BODY(i);
    return bad != 0;
}

#endif /* EX_FEATURES_H */
