#pragma once
/* Wall clock in int64 microseconds since the Unix epoch, anchored to CLOCK_MONOTONIC.
 *
 * Why not read CLOCK_REALTIME each time: NTP can step it backwards, and a receive timestamp that goes
 * back in time breaks latency accounting and replay ordering. We read the wall clock once (the anchor),
 * then advance it with the monotonic clock, which never steps. Both reads go through the vDSO (~20 ns).
 * The anchor lives in one place (extrema._core.clock) so every module stamps on the same time line.
 */
#include <stdint.h>
#include <time.h>

typedef struct ex_clock_anchor {
    int64_t wall_us;   /* CLOCK_REALTIME at anchoring, microseconds */
    int64_t mono_ns;   /* CLOCK_MONOTONIC at anchoring, nanoseconds */
} ex_clock_anchor;

static inline int64_t ex_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t ex_realtime_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static inline void ex_clock_anchor_now(ex_clock_anchor *a) {
    /* Take the wall reading between two monotonic reads and pair it with their midpoint. */
    int64_t m0 = ex_monotonic_ns();
    int64_t w = ex_realtime_us();
    int64_t m1 = ex_monotonic_ns();
    a->wall_us = w;
    a->mono_ns = m0 + (m1 - m0) / 2;
}

static inline int64_t ex_clock_now_us(const ex_clock_anchor *a) {
    return a->wall_us + (ex_monotonic_ns() - a->mono_ns) / 1000;
}
