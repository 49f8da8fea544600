#pragma once
/* Lock-free building blocks for the ring: C11-model atomics on plain 64/32-bit words (GCC/Clang
 * builtins, which compile to plain loads/stores plus compiler barriers on x86-64), and cpu_relax. */
#include <stdint.h>

static inline uint64_t ex_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint64_t ex_load_relaxed_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void ex_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void ex_store_relaxed_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t ex_fetch_add_u64(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline uint32_t ex_load_acquire_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void ex_store_release_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int ex_cas_u32(uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
/* Orders every earlier load before every later load/store (seqlock reader side). */
static inline void ex_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
/* Orders every earlier load/store before every later store (seqlock writer side). */
static inline void ex_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }

static inline void ex_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
