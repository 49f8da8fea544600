/* Batch helpers of the feature kernels (features.pyx): the hot loops of the batch functions, written
 * so that they vectorise on any x86-64 (SSE2 is baseline) and, where the CPU has them, use AVX2 and
 * FMA -- chosen at run time, so the wheel stays portable.
 *
 * Bits: every operation here is correctly rounded (sub, mul, div, add, fabs, max, sqrt, and the fused
 * multiply-add fma(a, b, c) = a * b + c rounded once). The build passes -ffp-contract=off, so the
 * compiler never fuses a multiply-add on its own: every fma is an explicit __builtin_fma. Where the
 * CPU has FMA it is the vfmadd instruction; elsewhere it is libm's fma(), which is correctly rounded
 * too (in software if need be). So the same inputs give the same bits whichever variant runs, the
 * streaming step functions (which call libm's fma) give the same bits as these loops, and the
 * plain-Python reference can reproduce them exactly (tests/models/features_reference.py). */
#ifndef EX_FEATURES_H
#define EX_FEATURES_H

#include <stdint.h>
#include <string.h>
#include <Python.h>     /* Py_ssize_t */

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define EX_X86 1
#include <immintrin.h>
#define EX_AVX2_FMA __attribute__((target("avx2,fma")))
#else
#define EX_X86 0
#endif

/* 1 if the CPU runs AVX2 and FMA (evaluated once): the variant compiled with both. ex_force_baseline
 * makes the dispatch take the baseline variants (tests/unit/test_features.py checks that both give
 * the same bits). */
static int ex_fma_state = -1;

static inline int ex_have_fma(void) {
#if EX_X86
    if (ex_fma_state < 0) {
        __builtin_cpu_init();
        ex_fma_state = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    }
    return ex_fma_state;
#else
    return 0;
#endif
}

/* Returns 1 if the AVX2 + FMA variants were in use before the call. */
static inline int ex_force_baseline(int baseline) {
    int was = ex_have_fma();
#if EX_X86
    ex_fma_state = -1;
    if (baseline) ex_fma_state = 0;
    else (void)ex_have_fma();
#else
    (void)baseline;
#endif
    return was;
}

#define EX_INLINE static inline __attribute__((always_inline))

static inline uint64_t ex_bits(double x) { uint64_t u; memcpy(&u, &x, sizeof u); return u; }

/* GCC vector extensions: 4 or 2 doubles, AVX2 registers in the avx2 variants, SSE2 pairs in the
 * baseline ones; comparisons give all-ones / all-zeros lanes, used as masks for selects (GCC turns a
 * scalar select around a division or a max back into a branch, so those are written out this way). */
typedef double ex_v4d __attribute__((vector_size(32)));
typedef int64_t ex_v4i __attribute__((vector_size(32)));
typedef double ex_v2d __attribute__((vector_size(16)));
typedef int64_t ex_v2i __attribute__((vector_size(16)));

/* ---- square roots (STDDEV, BBANDS) ----------------------------------------------------------------- */
/* libm's sqrt() carries errno handling (a compare and a call for negative input) that stops the
 * compiler vectorising; the variances here are never negative, and the sqrt instruction is correctly
 * rounded, so the values are those of the scalar sqrt (ex_svar_map uses the SSE2 pair form). */

static inline double ex_sqrt1(double v) {
#if EX_X86
    return _mm_cvtsd_f64(_mm_sqrt_sd(_mm_setzero_pd(), _mm_set_sd(v)));
#else
    return __builtin_sqrt(v);
#endif
}

/* ---- recurrences (EMA, MACD, RSI, ATR) --------------------------------------------------------- */
/* Each smoothing step is one fused multiply-add on the dependency chain, v = fma(v, b, a * x) with
 * b the decay and a = 1 - b: a * x is off the chain, so a step costs one fma latency (4 cycles on
 * current x86) where TA-Lib's v = (x - v) * k + v costs a subtraction and an fma. The loops run while
 * the inputs are finite and return how many they consumed; the caller carries on with the step
 * function from there. */

static inline int ex_fin(double x) { return __builtin_isfinite(x); }

EX_INLINE Py_ssize_t ex_ema_body(const double *x, double *out, Py_ssize_t n, double *v_io, double a, double b) {
    double v = *v_io;
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        double xi = x[i];
        if (!ex_fin(xi)) break;
        v = __builtin_fma(v, b, a * xi);
        out[i] = v;
    }
    *v_io = v;
    return i;
}

/* MACD: the three EMAs in one pass (fast, slow, then the signal EMA of their difference); the three
 * chains are independent, so a step costs one fma latency, not three. */
EX_INLINE Py_ssize_t ex_macd_body(const double *x, double *line_out, double *sig_out, double *hist_out, Py_ssize_t n,
                                  double *ef_io, double *es_io, double *sig_io, const double *k) {
    double ef = *ef_io, es = *es_io, sig = *sig_io;
    const double af = k[0], bf = k[1], as = k[2], bs = k[3], ag = k[4], bg = k[5];
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        double xi = x[i], line;
        if (!ex_fin(xi)) break;
        ef = __builtin_fma(ef, bf, af * xi);
        es = __builtin_fma(es, bs, as * xi);
        line = ef - es;
        sig = __builtin_fma(sig, bg, ag * line);
        line_out[i] = line;
        sig_out[i] = sig;
        hist_out[i] = line - sig;
    }
    *ef_io = ef;
    *es_io = es;
    *sig_io = sig;
    return i;
}

/* RSI after its seed: Wilder's smoothing of gains and losses, gain = fma(gain, b, a * up). */
EX_INLINE Py_ssize_t ex_rsi_body(const double *x, double *out, Py_ssize_t n, double *prev_io, double *gain_io,
                                 double *loss_io, double *value_io, double a, double b) {
    double prev = *prev_io, gain = *gain_io, loss = *loss_io, value = *value_io;
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        double v = x[i], change, up, total;
        if (!ex_fin(v)) break;
        change = v - prev;
        prev = v;
        up = change > 0.0 ? change : 0.0;
        gain = __builtin_fma(gain, b, a * up);
        loss = __builtin_fma(loss, b, a * (up - change));
        total = gain + loss;
        value = total > 0.0 ? 100.0 * (gain / total) : 0.0;
        out[i] = value;
    }
    *prev_io = prev;
    *gain_io = gain;
    *loss_io = loss;
    *value_io = value;
    return i;
}

/* ATR after its seed, two bars per chain step. Wilder's v' = fma(v, b, a * tr) (TA-Lib's own form,
 * #338: b = (period - 1) / period, a = 1 - b) is applied to the first bar of each pair; the second
 * bar's value comes from the pair's starting value in one step, v'' = fma(v, b2, fma(a * tr1, b, a * tr2))
 * with b2 = b * b, so the chain advances two bars per fma latency. `phase` is 1 between the two bars
 * of a pair (then `anchor` is the value before the pair and `pending` is a * tr1). One fused loop,
 * four true ranges per vector, each four values stored as soon as they are known: a block pass of
 * true ranges into a scratch buffer, then the chain, then a copy out, measured up to 1.8x slower when
 * the arrays' addresses collide modulo 4 KiB (a load waits on an unrelated store with the same low
 * address bits), which numpy's page-aligned allocations make common. */
typedef struct {
    double value, anchor, pending;
    int phase;
} ex_pair_state;


#define EX_ATR_BLOCK 256

EX_INLINE double ex_true_range(double h, double l, double pc) {
    double g = h - l, d;
    d = __builtin_fabs(pc - h); g = d > g ? d : g;
    d = __builtin_fabs(pc - l); g = d > g ? d : g;
    return g;
}

EX_INLINE Py_ssize_t ex_atr_body(const double *hi, const double *lo, const double *cl, double *out, Py_ssize_t n,
                                 ex_pair_state *st, double a, double b, double b2) {
    /* Bar 0 is the previous bar (its close is the previous close); bars 1.. are new. Blocks of
     * EX_ATR_BLOCK bars are all-or-nothing: the first with a non-finite input is undone and left to
     * the caller; returns its first bar (or n). */
    const ex_v4i absmask = {0x7fffffffffffffffLL, 0x7fffffffffffffffLL, 0x7fffffffffffffffLL, 0x7fffffffffffffffLL};
    const ex_v4d va = {a, a, a, a};
    double v = st->value, anchor = st->anchor, pending = st->pending;
    int phase = st->phase;
    Py_ssize_t i = 1, e, j;
    while (i < n) {
        double v0 = v, anchor0 = anchor, pending0 = pending;
        int phase0 = phase;
        ex_v4i bad4 = {0, 0, 0, 0};
        uint64_t bad = 0;
        e = i + EX_ATR_BLOCK < n ? i + EX_ATR_BLOCK : n;
        j = i;
        if (phase && j < e) {
            double g = ex_true_range(hi[j], lo[j], cl[j - 1]);
            bad |= ex_bits(hi[j] - hi[j]) | ex_bits(lo[j] - lo[j]) | ex_bits(cl[j] - cl[j]);
            v = __builtin_fma(anchor, b2, __builtin_fma(pending, b, a * g));
            out[j++] = v;
            phase = 0;
        }
        for (; j + 4 <= e; j += 4) {
            /* four bars' true ranges in one vector (ex_true_range, lane by lane), two pairs of the chain */
            ex_v4d h, l, pc, c, g, d, u, r;
            ex_v4i m;
            double w;
            memcpy(&h, hi + j, sizeof h);
            memcpy(&l, lo + j, sizeof l);
            memcpy(&pc, cl + j - 1, sizeof pc);
            memcpy(&c, cl + j, sizeof c);
            g = h - l;
            d = (ex_v4d)((ex_v4i)(pc - h) & absmask);
            m = d > g;
            g = (ex_v4d)(((ex_v4i)d & m) | ((ex_v4i)g & ~m));
            d = (ex_v4d)((ex_v4i)(pc - l) & absmask);
            m = d > g;
            g = (ex_v4d)(((ex_v4i)d & m) | ((ex_v4i)g & ~m));
            /* a non-finite high or low makes the true range, and so the chain, non-finite for good
               (tested once per block, on v); a NaN close would only drop out of the max: tested */
            bad4 |= (ex_v4i)(c - c);
            u = va * g;
            w = __builtin_fma(u[0], b, u[1]);
            r[0] = __builtin_fma(v, b, u[0]);
            v = __builtin_fma(v, b2, w);
            r[1] = v;
            w = __builtin_fma(u[2], b, u[3]);
            r[2] = __builtin_fma(v, b, u[2]);
            v = __builtin_fma(v, b2, w);
            r[3] = v;
            memcpy(out + j, &r, sizeof r);
        }
        for (; j + 1 < e; j += 2) {
            double u0 = a * ex_true_range(hi[j], lo[j], cl[j - 1]), u1 = a * ex_true_range(hi[j + 1], lo[j + 1], cl[j]);
            double w = __builtin_fma(u0, b, u1);
            bad |= ex_bits(cl[j] - cl[j]) | ex_bits(cl[j + 1] - cl[j + 1]);
            out[j] = __builtin_fma(v, b, u0);
            v = __builtin_fma(v, b2, w);
            out[j + 1] = v;
        }
        if (j < e) {
            double g = ex_true_range(hi[j], lo[j], cl[j - 1]);
            bad |= ex_bits(hi[j] - hi[j]) | ex_bits(lo[j] - lo[j]) | ex_bits(cl[j] - cl[j]);
            anchor = v;
            pending = a * g;
            v = __builtin_fma(v, b, pending);
            out[j] = v;
            phase = 1;
        }
        bad |= (uint64_t)(bad4[0] | bad4[1] | bad4[2] | bad4[3]);
        if (bad || !ex_fin(v)) {
            v = v0;
            anchor = anchor0;
            pending = pending0;
            phase = phase0;
            break;
        }
        i = e;
    }
    st->value = v;
    st->anchor = anchor;
    st->pending = pending;
    st->phase = phase;
    return i;
}

/* TRANGE: out[j] = the true range of bar j against the close of bar j - 1, for j in [1, n) (bar 0 is the
 * previous bar), four bars per vector, stored directly (see ex_atr_body on why not via a scratch
 * buffer), with the finiteness check (the OR of the bits of x - x: 0 exactly when all are finite) per
 * block. Returns the first bar of the first block with a non-finite input (or n). */
EX_INLINE Py_ssize_t ex_trange_blocks_body(const double *hi, const double *lo, const double *cl, double *out,
                                           Py_ssize_t n) {
    const ex_v4i absmask = {0x7fffffffffffffffLL, 0x7fffffffffffffffLL, 0x7fffffffffffffffLL, 0x7fffffffffffffffLL};
    Py_ssize_t i = 1, e, j;
    while (i < n) {
        ex_v4i bad4 = {0, 0, 0, 0};
        uint64_t bad = 0;
        e = i + EX_ATR_BLOCK < n ? i + EX_ATR_BLOCK : n;
        for (j = i; j + 4 <= e; j += 4) {
            ex_v4d h, l, pc, c, g, d;
            ex_v4i m;
            memcpy(&h, hi + j, sizeof h);
            memcpy(&l, lo + j, sizeof l);
            memcpy(&pc, cl + j - 1, sizeof pc);
            memcpy(&c, cl + j, sizeof c);
            g = h - l;
            d = (ex_v4d)((ex_v4i)(pc - h) & absmask);
            m = d > g;
            g = (ex_v4d)(((ex_v4i)d & m) | ((ex_v4i)g & ~m));
            d = (ex_v4d)((ex_v4i)(pc - l) & absmask);
            m = d > g;
            g = (ex_v4d)(((ex_v4i)d & m) | ((ex_v4i)g & ~m));
            memcpy(out + j, &g, sizeof g);
            bad4 |= (ex_v4i)(h - h) | (ex_v4i)(l - l) | (ex_v4i)(c - c);
        }
        for (; j < e; j++) {
            out[j] = ex_true_range(hi[j], lo[j], cl[j - 1]);
            bad |= ex_bits(hi[j] - hi[j]) | ex_bits(lo[j] - lo[j]) | ex_bits(cl[j] - cl[j]);
        }
        bad |= (uint64_t)(bad4[0] | bad4[1] | bad4[2] | bad4[3]);
        if (bad) break;
        i = e;
    }
    return i;
}

/* ---- running sums with a division per output (SMA, WMA) ------------------------------------------ */
/* The running sums advance by one addition per input (sum += x_new - x_old, the difference off the
 * chain; TA-Lib adds then subtracts, two additions on the chain). Four consecutive outputs are
 * gathered in a vector and divided at once, so the divider (one scalar division per output would cap
 * the loop) keeps up, and each output is stored once, as soon as it is known: writing the numerators
 * out and dividing them in place afterwards ran up to 1.5x slower when the input and the output
 * addresses collided modulo 4 KiB. Both run in unchecked blocks of EX_SUM_BLOCK inputs: a non-finite
 * input leaves the sums non-finite for good (NaN and inf absorb + and -), so finite sums at the end of
 * a block prove every input of it finite; a block that fails is undone and left to the caller's
 * checked loop. */
#define EX_SUM_BLOCK 4096

/* SMA over the full windows: out[i] = total_i / p for i in [start, n), total_i = total_{i-1} + (x[i] - x[i - p]),
 * start >= p. Returns the first index not done. */
EX_INLINE Py_ssize_t ex_sma_body(const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p,
                                 double *total_io) {
    double total = *total_io, dp = (double)p;
    const ex_v4d dp4 = {dp, dp, dp, dp};
    Py_ssize_t i = start, e, j;
    while (i < n) {
        double t0 = total;
        e = i + EX_SUM_BLOCK < n ? i + EX_SUM_BLOCK : n;
        for (j = i; j + 4 <= e; j += 4) {
            ex_v4d v;
            total += x[j] - x[j - p];
            v[0] = total;
            total += x[j + 1] - x[j + 1 - p];
            v[1] = total;
            total += x[j + 2] - x[j + 2 - p];
            v[2] = total;
            total += x[j + 3] - x[j + 3 - p];
            v[3] = total;
            v = v / dp4;
            memcpy(out + j, &v, sizeof v);
        }
        for (; j < e; j++) {
            total += x[j] - x[j - p];
            out[j] = total / dp;
        }
        if (!ex_fin(total)) {
            total = t0;
            break;
        }
        i = e;
    }
    *total_io = total;
    return i;
}

/* WMA over the full windows (TA_WMA's sums: psub the plain sum, psum the weighted one, weights 1..p
 * oldest to newest): psub += x[i] - x[i - p]; the output is fma(x[i], p, psum) / divider; then
 * psum += fma(x[i], p, -psub), which slides every weight down by one. (The multiply-adds are fused
 * to spare the adders: five additions per input would keep two FP add pipes busy for 2.5 cycles.)
 * Both sums are rebuilt from the window every 8 * p outputs (TA-Lib's reseed, wma.c #255) -- after
 * checking them, since a rebuild could wash a non-finite input out. x[start - p] must be the value
 * that leaves first (the caller's `trailing`). */
EX_INLINE int ex_wma_step(const double *x, double *out, Py_ssize_t j, Py_ssize_t p, double *psum, double *psub,
                          int64_t *until, int64_t *rebuilds, double divider) {
    /* One output, the rebuild included; returns 0 if the sums were found non-finite at a rebuild. */
    double dp = (double)p;
    Py_ssize_t k;
    *psub += x[j] - x[j - p];
    if (--*until > 0) {
        out[j] = __builtin_fma(x[j], dp, *psum) / divider;
        *psum += __builtin_fma(x[j], dp, -*psub);
        return 1;
    }
    if (!ex_fin(*psum + *psub)) return 0;
    *until = 8 * p;
    *psub = 0.0;
    *psum = 0.0;
    for (k = 0; k < p; k++) {
        *psub += x[j - p + 1 + k];
        *psum += x[j - p + 1 + k] * (double)(k + 1);
    }
    ++*rebuilds;
    out[j] = *psum / divider;
    *psum -= *psub;
    return 1;
}

EX_INLINE Py_ssize_t ex_wma_body(const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p,
                                 double *psum_io, double *psub_io, int64_t *until_io, int64_t *rebuilds_io,
                                 double divider) {
    double psum = *psum_io, psub = *psub_io, dp = (double)p;
    const ex_v4d div4 = {divider, divider, divider, divider};
    int64_t until = *until_io, rebuilds = *rebuilds_io;
    Py_ssize_t i = start, e, j;
    while (i < n) {
        double sum0 = psum, sub0 = psub;
        int64_t until0 = until, rebuilds0 = rebuilds;
        int ok = 1;
        e = i + EX_SUM_BLOCK < n ? i + EX_SUM_BLOCK : n;
        for (j = i; j < e && ok; ) {
            if (until > 4 && j + 4 <= e) {
                /* four plain steps (no rebuild among them) */
                ex_v4d v;
                Py_ssize_t k;
                for (k = 0; k < 4; k++) {
                    psub += x[j + k] - x[j + k - p];
                    v[k] = __builtin_fma(x[j + k], dp, psum);
                    psum += __builtin_fma(x[j + k], dp, -psub);
                }
                until -= 4;
                v = v / div4;
                memcpy(out + j, &v, sizeof v);
                j += 4;
            } else {
                ok = ex_wma_step(x, out, j, p, &psum, &psub, &until, &rebuilds, divider);
                j++;
            }
        }
        if (!ok || !ex_fin(psum)) {
            psum = sum0;
            psub = sub0;
            until = until0;
            rebuilds = rebuilds0;
            break;
        }
        i = e;
    }
    *psum_io = psum;
    *psub_io = psub;
    *until_io = until;
    *rebuilds_io = rebuilds;
    return i;
}

/* The run-time variants: the same body compiled for AVX2 + FMA, and for the baseline (SSE2, libm's
 * fma), picked once per call. */
#if EX_X86
#define EX_VARIANTS(ret, name, params, args)                                                   \
    EX_AVX2_FMA static ret name##_fma params { return name##_body args; }                      \
    static ret name##_base params { return name##_body args; }                                 \
    static ret name params { return ex_have_fma() ? name##_fma args : name##_base args; }
#else
#define EX_VARIANTS(ret, name, params, args)                                                   \
    static ret name params { return name##_body args; }
#endif

EX_VARIANTS(Py_ssize_t, ex_ema, (const double *x, double *out, Py_ssize_t n, double *v_io, double a, double b),
            (x, out, n, v_io, a, b))
EX_VARIANTS(Py_ssize_t, ex_macd, (const double *x, double *line_out, double *sig_out, double *hist_out, Py_ssize_t n,
                                  double *ef_io, double *es_io, double *sig_io, const double *k),
            (x, line_out, sig_out, hist_out, n, ef_io, es_io, sig_io, k))
EX_VARIANTS(Py_ssize_t, ex_rsi, (const double *x, double *out, Py_ssize_t n, double *prev_io, double *gain_io,
                                 double *loss_io, double *value_io, double a, double b),
            (x, out, n, prev_io, gain_io, loss_io, value_io, a, b))
EX_VARIANTS(Py_ssize_t, ex_atr, (const double *hi, const double *lo, const double *cl, double *out, Py_ssize_t n,
                                 ex_pair_state *st, double a, double b, double b2),
            (hi, lo, cl, out, n, st, a, b, b2))
EX_VARIANTS(Py_ssize_t, ex_trange_blocks, (const double *hi, const double *lo, const double *cl, double *out,
                                           Py_ssize_t n),
            (hi, lo, cl, out, n))
EX_VARIANTS(Py_ssize_t, ex_sma, (const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p,
                                 double *total_io),
            (x, out, start, n, p, total_io))
EX_VARIANTS(Py_ssize_t, ex_wma, (const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p,
                                 double *psum_io, double *psub_io, int64_t *until_io, int64_t *rebuilds_io,
                                 double divider),
            (x, out, start, n, p, psum_io, psub_io, until_io, rebuilds_io, divider))

/* ---- ROCP ---------------------------------------------------------------------------------------- */
/* out[i] = (x[i] - x[i - p]) / x[i - p], 0 where x[i - p] is 0 (TA_ROCP), for i in [start, n), start >= p:
 * the division is unconditional (by 1 where the reference is 0, then masked), so it vectorises. Blocks
 * of EX_MAP_BLOCK; returns the start of the first block with a non-finite x[i] (x[i - p] was checked
 * when it was x[i]). */
#define EX_MAP_BLOCK 2048


EX_INLINE Py_ssize_t ex_rocp_body(const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p) {
    /* GCC's vector extensions (AVX2 in the avx2 variant, SSE2 pairs in the baseline one): written out
     * because GCC turns the scalar select back into a branch around the division. */
    const ex_v4d zero = {0.0, 0.0, 0.0, 0.0}, one = {1.0, 1.0, 1.0, 1.0};
    Py_ssize_t i = start, e, j;
    while (i < n) {
        ex_v4i bad4 = {0, 0, 0, 0};
        uint64_t bad = 0;
        e = i + EX_MAP_BLOCK < n ? i + EX_MAP_BLOCK : n;
        for (j = i; j + 4 <= e; j += 4) {
            ex_v4d v, q, r;
            ex_v4i nz;
            memcpy(&v, x + j, sizeof v);
            memcpy(&q, x + j - p, sizeof q);
            nz = q != zero;
            r = (v - q) / (ex_v4d)(((ex_v4i)q & nz) | ((ex_v4i)one & ~nz));
            r = (ex_v4d)((ex_v4i)r & nz);
            memcpy(out + j, &r, sizeof r);
            bad4 |= (ex_v4i)(v - v);
        }
        for (; j < e; j++) {
            double v = x[j], q = x[j - p];
            out[j] = q != 0.0 ? (v - q) / q : 0.0;
            bad |= ex_bits(v - v);
        }
        bad |= (uint64_t)(bad4[0] | bad4[1] | bad4[2] | bad4[3]);
        if (bad) break;
        i = e;
    }
    return i;
}

EX_VARIANTS(Py_ssize_t, ex_rocp, (const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p),
            (x, out, start, n, p))

/* ---- BETA ---------------------------------------------------------------------------------------- */
/* beta_step over arrays (features.pyx) with the divisions taken out of the serial loop: per block, the
 * returns (price - prev) / prev of both series are computed vectorised into a scratch buffer (NaN
 * marks a zero reference price, TA_IS_ZERO: the step then uses -shift, as beta_dev does), the loop
 * reads the entering and the leaving return from it, and the outputs num / den are divided
 * vectorised at the end of the block. Same operations as beta_step, so the same bits. */
#define EX_BETA_BLOCK 256
#define EX_BETA_MAX_PERIOD 1024

typedef struct {
    double shift_x, shift_y, sxx, sxy, syy, sx, sy, leaving_xx, leaving_yy;
    int64_t until, rebuilds;
} ex_beta_state;

EX_INLINE void ex_returns_block(const double *x, double *r, Py_ssize_t n) {
    /* r[j] = (x[j + 1] - x[j]) / x[j], NaN where |x[j]| < 1e-14. Vector extensions, as in ex_rocp_body:
     * GCC turns the scalar select back into a branch around a scalar division. */
    const ex_v4d lo = {-1e-14, -1e-14, -1e-14, -1e-14}, hi = {1e-14, 1e-14, 1e-14, 1e-14};
    const ex_v4d one = {1.0, 1.0, 1.0, 1.0};
    const ex_v4d nan = {__builtin_nan(""), __builtin_nan(""), __builtin_nan(""), __builtin_nan("")};
    Py_ssize_t j;
    for (j = 0; j + 4 <= n; j += 4) {
        ex_v4d prev, next, q;
        ex_v4i zero;
        memcpy(&prev, x + j, sizeof prev);
        memcpy(&next, x + j + 1, sizeof next);
        zero = (prev > lo) & (prev < hi);
        q = (next - prev) / (ex_v4d)(((ex_v4i)one & zero) | ((ex_v4i)prev & ~zero));
        q = (ex_v4d)(((ex_v4i)nan & zero) | ((ex_v4i)q & ~zero));
        memcpy(r + j, &q, sizeof q);
    }
    for (; j < n; j++) {
        double prev = x[j];
        int zero = (prev > -1e-14) & (prev < 1e-14);
        r[j] = zero ? __builtin_nan("") : (x[j + 1] - prev) / prev;
    }
}

static inline double ex_beta_dev(double r, double shift) { return r == r ? r - shift : -shift; }

/* The rebuild of beta_rebuild_array (features.pyx), called back: a function pointer keeps its
 * arithmetic in one place. */
typedef void (*ex_beta_rebuild_fn)(void *owner, const double *x, const double *y, ex_beta_state *st);

/* dev[k] = ex_beta_dev(r[k], shift) for k in [0, n), vectorised (a NaN return marks a zero reference). */
EX_INLINE void ex_beta_devs(const double *r, double *dev, Py_ssize_t n, double shift) {
    const ex_v4d sh = {shift, shift, shift, shift}, neg = -sh;     /* -shift, as ex_beta_dev (not 0 - shift) */
    Py_ssize_t k;
    for (k = 0; k + 4 <= n; k += 4) {
        ex_v4d v, d;
        ex_v4i ok;
        memcpy(&v, r + k, sizeof v);
        ok = v == v;
        d = (ex_v4d)(((ex_v4i)(v - sh) & ok) | ((ex_v4i)neg & ~ok));
        memcpy(dev + k, &d, sizeof d);
    }
    for (; k < n; k++) dev[k] = ex_beta_dev(r[k], shift);
}

EX_INLINE Py_ssize_t ex_beta_body(const double *x, const double *y, double *out, Py_ssize_t start, Py_ssize_t n,
                                  Py_ssize_t p, ex_beta_state *st, ex_beta_rebuild_fn rebuild, void *owner) {
    double rx[EX_BETA_BLOCK + EX_BETA_MAX_PERIOD], ry[EX_BETA_BLOCK + EX_BETA_MAX_PERIOD];
    double ddx[EX_BETA_BLOCK + EX_BETA_MAX_PERIOD], ddy[EX_BETA_BLOCK + EX_BETA_MAX_PERIOD], den[EX_BETA_BLOCK];
    double shift_x = st->shift_x, shift_y = st->shift_y, sxx = st->sxx, sxy = st->sxy, syy = st->syy;
    double sx = st->sx, sy = st->sy, lxx = st->leaving_xx, lyy = st->leaving_yy, nn = (double)p;
    int64_t until = st->until, rebuilds = st->rebuilds;
    Py_ssize_t i = start, e, j;
    while (i < n) {
        uint64_t bad = 0;
        Py_ssize_t base = i - p + 1;           /* rx[k], ddx[k]: the return into bar base + k, its deviation */
        e = i + EX_BETA_BLOCK < n ? i + EX_BETA_BLOCK : n;
        for (j = i; j < e; j++) bad |= ex_bits(x[j] - x[j]) | ex_bits(y[j] - y[j]);
        if (bad) break;
        ex_returns_block(x + base - 1, rx, e - base);
        ex_returns_block(y + base - 1, ry, e - base);
        ex_beta_devs(rx, ddx, e - base, shift_x);
        ex_beta_devs(ry, ddy, e - base, shift_y);
        for (j = i; j < e; j++) {
            double dx = ddx[j - base], dy = ddy[j - base];
            double denom_scale, denom, ex, ey;
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
            sx += dx;
            sy += dy;
            denom_scale = nn * sxx;
            denom = denom_scale - sx * sx;
            until -= 1;
            if ((denom < 0.000001 * denom_scale) | (lxx > 1000.0 * sxx) | (lyy > 1000.0 * syy) | (until <= 0)) {
                rebuild(owner, x + (j - p), y + (j - p), st);
                shift_x = st->shift_x; shift_y = st->shift_y;
                sxx = st->sxx; sxy = st->sxy; syy = st->syy; sx = st->sx; sy = st->sy;
                until = 32 * (int64_t)p;
                rebuilds++;
                denom_scale = nn * sxx;
                denom = denom_scale - sx * sx;
                if (denom < 0.0) denom = 0.0;
                /* the deviations still to be read (the leaving ones from this step on), on the new shift */
                ex_beta_devs(rx + (j - p + 1 - base), ddx + (j - p + 1 - base), e - (j - p + 1), shift_x);
                ex_beta_devs(ry + (j - p + 1 - base), ddy + (j - p + 1 - base), e - (j - p + 1), shift_y);
            }
            ex = ddx[j - p + 1 - base];
            ey = ddy[j - p + 1 - base];
            if (denom > 1e-14 * denom_scale) {
                out[j] = nn * sxy - sx * sy;
                den[j - i] = denom;
            } else {
                out[j] = 0.0;
                den[j - i] = 1.0;
            }
            lxx = ex * ex;
            lyy = ey * ey;
            sxx -= ex * ex;
            sxy -= ex * ey;
            syy -= ey * ey;
            sx -= ex;
            sy -= ey;
        }
        for (j = i; j < e; j++) out[j] = out[j] / den[j - i];
        i = e;
    }
    st->shift_x = shift_x; st->shift_y = shift_y;
    st->sxx = sxx; st->sxy = sxy; st->syy = syy; st->sx = sx; st->sy = sy;
    st->leaving_xx = lxx; st->leaving_yy = lyy;
    st->until = until; st->rebuilds = rebuilds;
    return i;
}

EX_VARIANTS(Py_ssize_t, ex_beta, (const double *x, const double *y, double *out, Py_ssize_t start, Py_ssize_t n,
                                  Py_ssize_t p, ex_beta_state *st, ex_beta_rebuild_fn rebuild, void *owner),
            (x, y, out, start, n, p, st, rebuild, owner))

/* ---- TA-Lib's shifted rolling variance (STDDEV, BBANDS) ------------------------------------------- */
/* var.c's loop, operation for operation (so the bits of TA-Lib and of svar_step in features.pyx),
 * split in two passes per block: the serial pass runs only the running sums -- s1 += d, s2 += d * d,
 * then the leaving value's terms out again: the dependency chains -- and records them; the second
 * pass computes the variances and var.c's staleness tests from the records, vectorised. A block ends
 * where the every-32-windows reseed falls; if a test fires earlier, the outputs up to it stand, the
 * window is reseeded there (as var.c does) and the serial pass restarts after it. BBANDS' middle band
 * (TA_SMA's total += x, output total / p, total -= oldest) runs beside it in the serial pass. */
#ifndef EX_SVAR_BLOCK
#define EX_SVAR_BLOCK 32
#endif

/* Re-anchor on the mean of w[0:p] and rebuild the sums (svar_reseed, on an array); returns the variance,
 * floored to 0 under 1e-12 of its scale. */
static double ex_svar_reseed(const double *w, Py_ssize_t p, double inv, double *shift, double *s1, double *s2) {
    Py_ssize_t j;
    double acc = 0.0, e, m1, var, a1 = 0.0, a2 = 0.0, sh;
    for (j = 0; j < p; j++) acc += w[j];
    sh = acc * inv;
    for (j = 0; j < p; j++) {
        e = w[j] - sh;
        a1 += e;
        a2 += e * e;
    }
    m1 = a1 * inv;
    var = a2 * inv - m1 * m1;
    if (var < 0.000000000001 * (a2 * inv)) var = 0.0;
    *shift = sh;
    *s1 = a1;
    *s2 = a2;
    return var;
}

/* Windows ending at i in [start, n) (start >= p - 1; the sums hold the window without its newest value
 * on entry, as var.c's loop has them): var_out[i] = the variance, mean_out[i] (if not NULL) = the SMA.
 * Stops at the first non-finite x[i]; returns the index reached. (The state is passed as separate
 * scalars: held in a struct, GCC packed it into one vector register, a shuffle per step.) */
/* The outputs of a finished stretch of windows, from their variances (in var_out) and SMAs, while they
 * are in L1: stddev_step's sqrt(var) * nbdev (mode 1), or bbands_step's bands (mode 2: var_out becomes
 * the lower band). The square roots run in the divider, beside the next block's additions. */
#define EX_SVAR_VAR 0
#define EX_SVAR_STDDEV 1
#define EX_SVAR_BBANDS 2

EX_INLINE void ex_svar_map(int mode, double *var, double *mean, double *upper, Py_ssize_t m, double f1, double f2) {
    Py_ssize_t k = 0;
    if (mode == EX_SVAR_STDDEV) {
#if EX_X86
        for (; k + 2 <= m; k += 2) {
            __m128d r = _mm_sqrt_pd(_mm_loadu_pd(var + k));
            _mm_storeu_pd(var + k, f1 != 1.0 ? _mm_mul_pd(r, _mm_set1_pd(f1)) : r);
        }
#endif
        for (; k < m; k++) var[k] = f1 != 1.0 ? ex_sqrt1(var[k]) * f1 : ex_sqrt1(var[k]);
    } else if (mode == EX_SVAR_BBANDS) {
#if EX_X86
        for (; k + 2 <= m; k += 2) {
            __m128d v = _mm_loadu_pd(var + k), md = _mm_loadu_pd(mean + k);
            __m128d sd = _mm_andnot_pd(_mm_cmpeq_pd(v, _mm_setzero_pd()), _mm_sqrt_pd(v));
            _mm_storeu_pd(upper + k, _mm_add_pd(md, _mm_mul_pd(sd, _mm_set1_pd(f1))));
            _mm_storeu_pd(var + k, _mm_sub_pd(md, _mm_mul_pd(sd, _mm_set1_pd(f2))));
        }
#endif
        for (; k < m; k++) {
            double sd = var[k] != 0.0 ? ex_sqrt1(var[k]) : 0.0;
            upper[k] = mean[k] + sd * f1;
            var[k] = mean[k] - sd * f2;
        }
    }
}

EX_INLINE Py_ssize_t ex_svar_body(const double *x, double *var_out, double *mean_out, double *upper, Py_ssize_t start,
                                  Py_ssize_t n, Py_ssize_t p, double *shift_io, double *s1_io, double *s2_io,
                                  double *total_io, int64_t *until_io, int64_t *rebuilds_io, double inv, int mode,
                                  double f1, double f2) {
    double a1[EX_SVAR_BLOCK], a2[EX_SVAR_BLOCK], tm[EX_SVAR_BLOCK];
    double shift = *shift_io, s1 = *s1_io, s2 = *s2_io, total = *total_io, dp = (double)p;
    int64_t until = *until_io, rebuilds = *rebuilds_io;
    Py_ssize_t i = start, e, j, k, m, t;
    while (i < n) {
        uint64_t bad = 0;
        e = i + EX_SVAR_BLOCK < n ? i + EX_SVAR_BLOCK : n;
        if ((int64_t)(e - i) > until) e = i + (Py_ssize_t)until;
        for (j = i; j < e; j++) bad |= ex_bits(x[j] - x[j]);
        if (bad) {
            for (j = i; j < e && ex_fin(x[j]); j++) ;
            e = j;
            if (e == i) break;
        }
        m = e - i;
        /* serial pass: the running sums only */
        for (k = 0; k < m; k++) {
            double v = x[i + k], old = x[i + k - p + 1], d;
            d = v - shift;
            s1 += d;
            s2 += d * d;
            a1[k] = s1;
            a2[k] = s2;
            d = old - shift;
            s1 -= d;
            d *= d;
            s2 -= d;
            if (mean_out) {
                total += v;
                tm[k] = total;
                total -= old;
            }
        }
        /* second pass: the outputs and the staleness tests */
        /* (no early exit, so that it vectorises: the first test that fires is a min-reduction; the
           outputs past it are rewritten after the reseed) */
        t = m;
        for (k = 0; k < m; k++) {
            /* the leaving value's squared deviation and the sum without it, recomputed (the same
               operations as the serial pass: the shift is constant within a block) */
            double d = x[i + k - p + 1] - shift, dd = d * d, b2 = a2[k] - dd;
            double m1 = a1[k] * inv, var = a2[k] * inv - m1 * m1;
            Py_ssize_t cand = ((var < 0.000001 * (b2 * inv)) | (dd > 1000000.0 * b2)) ? k : m;
            var_out[i + k] = var;
            t = cand < t ? cand : t;
        }
        if (mean_out)
            for (k = 0; k < m; k++) mean_out[i + k] = tm[k] / dp;
        if (t == m && (int64_t)m == until) t = m - 1;     /* the periodic reseed, on the block's last window */
        if (t < m) {
            /* a reseed at window i + t: the outputs before it stand; redo from the next one */
            double old = x[i + t - p + 1], d;
            if (mean_out) total = tm[t] - old;
            var_out[i + t] = ex_svar_reseed(x + (i + t - p + 1), p, inv, &shift, &s1, &s2);
            d = old - shift;
            s1 -= d;
            s2 -= d * d;
            until = 32 * (int64_t)p;
            rebuilds++;
            ex_svar_map(mode, var_out + i, mean_out ? mean_out + i : NULL, upper ? upper + i : NULL, t + 1, f1, f2);
            i += t + 1;
        } else {
            until -= m;
            ex_svar_map(mode, var_out + i, mean_out ? mean_out + i : NULL, upper ? upper + i : NULL, m, f1, f2);
            i = e;
        }
    }
    *shift_io = shift;
    *s1_io = s1;
    *s2_io = s2;
    *total_io = total;
    *until_io = until;
    *rebuilds_io = rebuilds;
    return i;
}

EX_VARIANTS(Py_ssize_t, ex_svar, (const double *x, double *var_out, double *mean_out, double *upper, Py_ssize_t start,
                                  Py_ssize_t n, Py_ssize_t p, double *shift_io, double *s1_io, double *s2_io,
                                  double *total_io, int64_t *until_io, int64_t *rebuilds_io, double inv, int mode,
                                  double f1, double f2),
            (x, var_out, mean_out, upper, start, n, p, shift_io, s1_io, s2_io, total_io, until_io, rebuilds_io, inv,
             mode, f1, f2))

/* ---- LinearRegression, short windows --------------------------------------------------------------- */
/* For period <= EX_LINREG_DIRECT_MAX every window's sums are computed afresh, as TA-Lib's LINEARREG does
 * (and as linreg_direct in features.pyx does for the streaming kernel): dy = y - the window's newest
 * value, in order oldest to newest, sy += dy, q += j * dy, syy += dy * dy. No running sums, so no
 * rounding drift and no staleness test; anchored on a window value, the sums err by at most ~p u of
 * the window's range (squared), so the centred sums lose at most ~4 p^2 u relatively -- 1e-13 at
 * p = 32. Four windows per vector (GCC vector extensions: AVX2 in the avx2 variant, SSE2 pairs in the
 * baseline): lane by lane the same operations, so the same bits as the scalar step. Outputs as
 * linreg_output: c = span, half_span, cxx, inv_cxx, inv_n. Windows end at i in [start, n),
 * start >= p - 1; stops at the first non-finite x[i]. */
#define EX_LINREG_DIRECT_MAX 32
#define EX_LINREG_BLOCK 256

EX_INLINE void ex_linreg_out(double ky, double sy, double q, double syy, const double *c, double *slope,
                             double *icpt, double *r2) {
    double cxy = q - c[1] * sy, cyy = syy - sy * sy * c[4], b = cxy * c[3], r;
    r = cyy > 0.0 ? b * cxy / cyy : 0.0;
    *slope = b;
    *r2 = r > 1.0 ? 1.0 : r;
    *icpt = (ky + sy * c[4]) - b * c[1];
}

EX_INLINE Py_ssize_t ex_linreg_direct_body(const double *x, double *slope, double *icpt, double *r2,
                                           Py_ssize_t start, Py_ssize_t n, Py_ssize_t p, const double *c) {
    const ex_v4d zero = {0.0, 0.0, 0.0, 0.0}, one = {1.0, 1.0, 1.0, 1.0};
    const ex_v4d half = {c[1], c[1], c[1], c[1]}, inv_cxx = {c[3], c[3], c[3], c[3]};
    const ex_v4d inv_n = {c[4], c[4], c[4], c[4]};
    Py_ssize_t i = start, e, j, k;
    while (i < n) {
        uint64_t bad = 0;
        e = i + EX_LINREG_BLOCK < n ? i + EX_LINREG_BLOCK : n;
        for (j = i; j < e; j++) bad |= ex_bits(x[j] - x[j]);
        if (bad) {
            for (j = i; j < e && ex_fin(x[j]); j++) ;
            e = j;
            if (e == i) break;
        }
        for (j = i; j + 4 <= e; j += 4) {
            ex_v4d ky, sy = zero, q = zero, syy = zero, cxy, cyy, b, r, cyy_ok, v;
            ex_v4i pos, big;
            memcpy(&ky, x + j, sizeof ky);
            for (k = 0; k < p; k++) {
                ex_v4d dy, jj = {(double)k, (double)k, (double)k, (double)k};
                memcpy(&v, x + j - p + 1 + k, sizeof v);
                dy = v - ky;
                sy += dy;
                q += jj * dy;
                syy += dy * dy;
            }
            cxy = q - half * sy;
            cyy = syy - sy * sy * inv_n;
            b = cxy * inv_cxx;
            pos = cyy > zero;
            cyy_ok = (ex_v4d)(((ex_v4i)cyy & pos) | ((ex_v4i)one & ~pos));
            r = (ex_v4d)((ex_v4i)(b * cxy / cyy_ok) & pos);
            big = r > one;
            r = (ex_v4d)(((ex_v4i)one & big) | ((ex_v4i)r & ~big));
            memcpy(slope + j, &b, sizeof b);
            memcpy(r2 + j, &r, sizeof r);
            v = (ky + sy * inv_n) - b * half;
            memcpy(icpt + j, &v, sizeof v);
        }
        for (; j < e; j++) {
            double ky = x[j], sy = 0.0, q = 0.0, syy = 0.0;
            for (k = 0; k < p; k++) {
                double dy = x[j - p + 1 + k] - ky;
                sy += dy;
                q += (double)k * dy;
                syy += dy * dy;
            }
            ex_linreg_out(ky, sy, q, syy, c, slope + j, icpt + j, r2 + j);
        }
        i = e;
    }
    return i;
}

EX_VARIANTS(Py_ssize_t, ex_linreg_direct, (const double *x, double *slope, double *icpt, double *r2, Py_ssize_t start,
                                           Py_ssize_t n, Py_ssize_t p, const double *c),
            (x, slope, icpt, r2, start, n, p, c))

#endif /* EX_FEATURES_H */
