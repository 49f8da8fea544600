from libc.stdint cimport uint64_t, uint32_t

cdef extern from "ex_atomic.h" nogil:
    uint64_t ex_load_acquire_u64(const uint64_t *p) noexcept
    uint64_t ex_load_relaxed_u64(const uint64_t *p) noexcept
    void ex_store_release_u64(uint64_t *p, uint64_t v) noexcept
    void ex_store_relaxed_u64(uint64_t *p, uint64_t v) noexcept
    uint64_t ex_fetch_add_u64(uint64_t *p, uint64_t v) noexcept
    uint32_t ex_load_acquire_u32(const uint32_t *p) noexcept
    void ex_store_release_u32(uint32_t *p, uint32_t v) noexcept
    bint ex_cas_u32(uint32_t *p, uint32_t expected, uint32_t desired) noexcept
    void ex_fence_acquire() noexcept
    void ex_fence_release() noexcept
    void ex_cpu_relax() noexcept
