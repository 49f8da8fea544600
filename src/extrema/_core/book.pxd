from libc.stdint cimport int64_t, uint64_t, uint32_t
from extrema._core.types cimport Record

# One side of the book. Keys make both sides look alike: bid key = tick, ask key = -tick, so the
# best level is always the highest key. Levels with key in [base, base + ladder_n) live in the dense
# ladder (O(1) set / delete, best found with two bit scans); levels further from the touch live in the
# sorted overflow arrays (ascending keys, all < base). The best level is always in the ladder.
cdef struct BookSide_:
    int64_t base
    int64_t best              # best key; meaningful when count > 0
    Py_ssize_t count          # levels on this side (ladder + overflow)
    Py_ssize_t ladder_count
    int64_t *qty              # ladder_n sizes, 0 = empty
    uint64_t *words           # occupancy bitmap, one bit per ladder slot
    uint64_t summary          # bit w set iff words[w] != 0 (ladder_n <= 4096 = 64 * 64)
    int64_t *ov_key
    int64_t *ov_qty
    Py_ssize_t ov_n
    Py_ssize_t ov_cap
    int64_t recenters


# Status codes of the nogil write paths; the Python-facing wrappers turn them into exceptions.
cdef enum BookStatus:
    BOOK_OK = 0
    BOOK_STALE = 1
    BOOK_NEGATIVE_SIZE = 2
    BOOK_OFF_TICK = 3
    BOOK_BAD_SIDE = 4
    BOOK_NO_MEMORY = 5
    BOOK_CROSSED = 6
    BOOK_SKIPPED = 7


cdef enum CrossedPolicy:
    CROSSED_FLAG = 0
    CROSSED_RAISE = 1
    CROSSED_PRUNE = 2


cdef class OrderBook:
    cdef BookSide_ _sides[2]          # 0 = bids, 1 = asks
    cdef readonly int price_precision
    cdef readonly int size_precision
    cdef readonly int64_t tick
    cdef readonly uint32_t instrument_id
    cdef readonly int ladder_ticks
    cdef readonly int64_t last_update_id
    cdef readonly bint is_crossed
    cdef CrossedPolicy _policy
    cdef bint _in_snapshot
    cdef int _last_set_side           # side of the latest size > 0 level since the last crossed check, -1 none
    cdef int64_t _n_stale
    cdef int64_t _n_rejected
    cdef int64_t _n_crossed

    # Compiled API (for Cython strategies and the engine). All nogil, no exceptions: they return a BookStatus.
    cdef BookStatus set_level(self, int side, int64_t price, int64_t qty) noexcept nogil
    cdef BookStatus check_level(self, int side, int64_t price, int64_t qty) noexcept nogil
    cdef BookStatus end_message(self) noexcept nogil
    cdef BookStatus apply_record(self, const Record *rec) noexcept nogil
    cdef void clear_levels(self) noexcept nogil
    cdef bint has_best(self, int side) noexcept nogil
    cdef int64_t best_price_raw(self, int side) noexcept nogil   # valid only when has_best(side)
    cdef int64_t best_qty_raw(self, int side) noexcept nogil     # 0 when the side is empty
    cdef int64_t qty_at_raw(self, int side, int64_t price) noexcept nogil

    # Internals shared by the Python-facing methods.
    cdef double _px(self, int64_t raw) noexcept nogil
    cdef double _sz(self, int64_t raw) noexcept nogil
    cdef int _raise_status(self, BookStatus st, int side, int64_t price, int64_t qty, str where) except -1
    cdef int64_t _depth_raw(self, int side, Py_ssize_t levels) noexcept nogil
    cdef double _vwap(self, int order_side, int64_t qty, double *touch) noexcept nogil
    cdef void _fill_levels_raw(self, int side, int64_t *out, Py_ssize_t k) noexcept nogil
    cdef void _fill_levels(self, int side, double *out, Py_ssize_t k, Py_ssize_t stride,
                           Py_ssize_t col) noexcept nogil
    cdef dict _options(self)
    cdef list _raw_levels(self, int side, levels)
