#pragma once
/* Bit tricks for the order-book ladder's occupancy bitmaps (GCC/Clang builtins; one instruction each on x86-64). */
#include <stdint.h>

/* Index of the highest set bit; x must be non-zero. */
static inline int ex_highest_bit(uint64_t x) { return 63 - __builtin_clzll(x); }
/* Index of the lowest set bit; x must be non-zero. */
static inline int ex_lowest_bit(uint64_t x) { return __builtin_ctzll(x); }
/* Bits 0..i inclusive set (i in 0..63). */
static inline uint64_t ex_mask_upto(int i) { return (i >= 63) ? ~(uint64_t)0 : (((uint64_t)1 << (i + 1)) - 1); }
