from libc.stdint cimport uint64_t

cdef extern from "ex_bits.h" nogil:
    int ex_highest_bit(uint64_t x) noexcept
    int ex_lowest_bit(uint64_t x) noexcept
    uint64_t ex_mask_upto(int i) noexcept
