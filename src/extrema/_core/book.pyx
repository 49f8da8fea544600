"""Exact L2 order book keyed by integer ticks.

Shape (see benches/README.md for the measurements behind it): per side, a dense ladder of
`ladder_ticks` slots around the touch, with a two-level occupancy bitmap so the next best level is
found with two bit scans, plus a sorted overflow array for levels further away. When the touch moves
outside the ladder the window is re-centred on it, so a price that wanders from 20,000 to 120,000 at a
0.01 tick costs memory proportional to the number of live levels, never to the price range, and updates
near the touch stay O(1).

Integrity policy
----------------
* Sizes are exact raw integers. A negative size, a price off the tick grid or an unknown side is
  rejected with ValueError (or counted in stats['rejected'] by apply_records(strict=False)).
* Deleting an absent level is a no-op: Binance documents it as normal for diff streams.
* Update ids: an update whose id is lower than last_update_id is stale and dropped (stats['stale']);
  id 0 means the venue gave none. Venue-specific chain rules (Binance U/u/pu, OKX seqId...) belong to
  the adapters, which emit a BOOK_RESET when the chain breaks.
* A crossed book (best bid >= best ask) is checked when a venue message ends (last=True, FLAG_LAST).
  Policy `crossed=`: "flag" keeps the book and sets is_crossed; "raise" also raises CrossedBookError;
  "prune" deletes the opposite levels that the most recently set level crosses.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint32_t, INT64_MAX
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memmove, memcpy, memset
from libc.math cimport NAN, isnan

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport (
    Record, KIND_BOOK_DELTA, KIND_BOOK_RESET, FLAG_ASK, FLAG_SNAPSHOT, FLAG_LAST)
from extrema._core.ex_bits cimport ex_highest_bit, ex_lowest_bit, ex_mask_upto
from extrema._core.ex_fixed cimport ex_pow10_f64, ex_raw_to_f64, EX_MAX_PRECISION
from extrema._core.fixedpoint cimport value_to_raw, format_fixed
from extrema._core.records cimport as_record_array, record_data

import enum

cnp.import_array()

cdef enum:
    BID = 0
    ASK = 1
    MIN_LADDER = 64
    MAX_LADDER = 4096      # one 64-bit summary word over 64 bitmap words


class BookSide(enum.IntEnum):
    """A side of the book."""
    BID = 0
    ASK = 1


class Side(enum.IntEnum):
    """The side of an order or of a trade's aggressor. A BUY consumes asks."""
    BUY = 0
    SELL = 1


class CrossedBookError(ValueError):
    """The book's best bid is at or above its best ask after a complete venue message."""


BOOK_LEVEL_DTYPE = np.dtype([
    ("side", "i1"), ("price_raw", "<i8"), ("size_raw", "<i8"), ("price", "<f8"), ("size", "<f8")])

_POLICIES = {"flag": CROSSED_FLAG, "raise": CROSSED_RAISE, "prune": CROSSED_PRUNE}
_POLICY_NAMES = {v: k for k, v in _POLICIES.items()}


# ---------------------------------------------------------------------------------------------------
# One side: ladder + overflow. Pure C, no GIL, no exceptions.
# ---------------------------------------------------------------------------------------------------

cdef int side_init(BookSide_ *s, int n) noexcept nogil:
    memset(s, 0, sizeof(BookSide_))
    s.qty = <int64_t *>calloc(n, sizeof(int64_t))
    s.words = <uint64_t *>calloc(n // 64, sizeof(uint64_t))
    if s.qty == NULL or s.words == NULL:
        return -1
    return 0


cdef void side_free(BookSide_ *s) noexcept nogil:
    free(s.qty)
    free(s.words)
    free(s.ov_key)
    free(s.ov_qty)
    s.qty = NULL
    s.words = NULL
    s.ov_key = NULL
    s.ov_qty = NULL


cdef inline void ladder_mark(BookSide_ *s, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t w = i >> 6
    s.words[w] |= (<uint64_t>1) << (i & 63)
    s.summary |= (<uint64_t>1) << w


cdef inline void ladder_unmark(BookSide_ *s, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t w = i >> 6
    s.words[w] &= ~((<uint64_t>1) << (i & 63))
    if s.words[w] == 0:
        s.summary &= ~((<uint64_t>1) << w)


cdef inline Py_ssize_t ladder_highest_at_or_below(const BookSide_ *s, Py_ssize_t i) noexcept nogil:
    """Index of the highest occupied ladder slot <= i, or -1."""
    cdef Py_ssize_t w
    cdef uint64_t bits, sm
    if i < 0:
        return -1
    w = i >> 6
    bits = s.words[w] & ex_mask_upto(<int>(i & 63))
    if bits:
        return (w << 6) + ex_highest_bit(bits)
    if w == 0:
        return -1
    sm = s.summary & ex_mask_upto(<int>(w - 1))
    if sm == 0:
        return -1
    w = ex_highest_bit(sm)
    return (w << 6) + ex_highest_bit(s.words[w])


cdef Py_ssize_t ov_find(const BookSide_ *s, int64_t key) noexcept nogil:
    """First overflow index whose key >= key (lower bound)."""
    cdef Py_ssize_t lo = 0, hi = s.ov_n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if s.ov_key[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef int ov_reserve(BookSide_ *s, Py_ssize_t need) noexcept nogil:
    cdef Py_ssize_t cap
    cdef int64_t *k
    cdef int64_t *q
    if need <= s.ov_cap:
        return 0
    cap = s.ov_cap * 2 if s.ov_cap else 64
    while cap < need:
        cap *= 2
    k = <int64_t *>realloc(s.ov_key, cap * sizeof(int64_t))
    if k == NULL:
        return -1
    s.ov_key = k
    q = <int64_t *>realloc(s.ov_qty, cap * sizeof(int64_t))
    if q == NULL:
        return -1
    s.ov_qty = q
    s.ov_cap = cap
    return 0


cdef int ov_set(BookSide_ *s, int64_t key, int64_t qty) noexcept nogil:
    cdef Py_ssize_t i = ov_find(s, key)
    if i < s.ov_n and s.ov_key[i] == key:
        s.ov_qty[i] = qty
        return 0
    if ov_reserve(s, s.ov_n + 1) != 0:
        return -1
    memmove(&s.ov_key[i + 1], &s.ov_key[i], (s.ov_n - i) * sizeof(int64_t))
    memmove(&s.ov_qty[i + 1], &s.ov_qty[i], (s.ov_n - i) * sizeof(int64_t))
    s.ov_key[i] = key
    s.ov_qty[i] = qty
    s.ov_n += 1
    s.count += 1
    return 0


cdef void ov_delete(BookSide_ *s, int64_t key) noexcept nogil:
    cdef Py_ssize_t i = ov_find(s, key)
    if i >= s.ov_n or s.ov_key[i] != key:
        return
    memmove(&s.ov_key[i], &s.ov_key[i + 1], (s.ov_n - i - 1) * sizeof(int64_t))
    memmove(&s.ov_qty[i], &s.ov_qty[i + 1], (s.ov_n - i - 1) * sizeof(int64_t))
    s.ov_n -= 1
    s.count -= 1


cdef int side_recenter(BookSide_ *s, int n, int64_t new_base) noexcept nogil:
    """Move the ladder window to start at new_base; the caller guarantees the highest key fits in it.

    Every ladder level is appended to the overflow (they are all above the overflow's keys, so it stays
    sorted), then the overflow's suffix that falls inside the new window moves into the ladder.
    O(live levels); happens only when the touch leaves the window.
    """
    cdef Py_ssize_t w, i, j
    cdef uint64_t bits
    cdef int64_t key
    if ov_reserve(s, s.ov_n + s.ladder_count) != 0:
        return -1
    while s.summary:
        w = ex_lowest_bit(s.summary)
        bits = s.words[w]
        while bits:
            i = (w << 6) + ex_lowest_bit(bits)
            bits &= bits - 1
            s.ov_key[s.ov_n] = s.base + i
            s.ov_qty[s.ov_n] = s.qty[i]
            s.ov_n += 1
            s.qty[i] = 0
        s.words[w] = 0
        s.summary &= ~((<uint64_t>1) << w)
    s.ladder_count = 0
    s.base = new_base
    j = ov_find(s, new_base)
    for i in range(j, s.ov_n):
        key = s.ov_key[i] - new_base          # < n by the caller's guarantee
        s.qty[key] = s.ov_qty[i]
        ladder_mark(s, key)
    s.ladder_count = s.ov_n - j
    s.ov_n = j
    s.recenters += 1
    return 0


cdef int side_set(BookSide_ *s, int n, int64_t key, int64_t qty) noexcept nogil:
    """Set the level `key` to qty > 0."""
    cdef Py_ssize_t i
    if s.count == 0:
        s.base = key - (n >> 1)
    elif key >= s.base + n:
        # A new best beyond the window: centre the window on it.
        if side_recenter(s, n, key - (n >> 1)) != 0:
            return -1
    if key >= s.base:
        i = key - s.base
        if s.qty[i] == 0:
            ladder_mark(s, i)
            s.ladder_count += 1
            s.count += 1
        s.qty[i] = qty
        if key > s.best or s.count == 1:
            s.best = key
        return 0
    # Far from the touch (and never the best, which is always in the ladder).
    return ov_set(s, key, qty)


cdef int side_delete(BookSide_ *s, int n, int64_t key) noexcept nogil:
    cdef Py_ssize_t i
    if s.count == 0 or key >= s.base + n:
        return 0
    if key < s.base:
        ov_delete(s, key)
        return 0
    i = key - s.base
    if s.qty[i] == 0:
        return 0
    s.qty[i] = 0
    ladder_unmark(s, i)
    s.ladder_count -= 1
    s.count -= 1
    if key == s.best:
        if s.ladder_count > 0:
            s.best = s.base + ladder_highest_at_or_below(s, i - 1)
        elif s.ov_n > 0:
            # The ladder ran dry: bring the next levels in so the best stays O(1).
            s.best = s.ov_key[s.ov_n - 1]
            if side_recenter(s, n, s.best - (n >> 1)) != 0:
                return -1
    return 0


cdef inline int64_t side_qty(const BookSide_ *s, int n, int64_t key) noexcept nogil:
    cdef Py_ssize_t i
    if s.count == 0 or key >= s.base + n:
        return 0
    if key >= s.base:
        return s.qty[key - s.base]
    i = ov_find(s, key)
    if i < s.ov_n and s.ov_key[i] == key:
        return s.ov_qty[i]
    return 0


cdef void side_clear(BookSide_ *s) noexcept nogil:
    cdef Py_ssize_t w, i
    cdef uint64_t bits
    while s.summary:
        w = ex_lowest_bit(s.summary)
        bits = s.words[w]
        while bits:
            i = (w << 6) + ex_lowest_bit(bits)
            bits &= bits - 1
            s.qty[i] = 0
        s.words[w] = 0
        s.summary &= ~((<uint64_t>1) << w)
    s.ov_n = 0
    s.count = 0
    s.ladder_count = 0


cdef int side_copy(BookSide_ *dst, const BookSide_ *src, int n) noexcept nogil:
    memcpy(dst.qty, src.qty, n * sizeof(int64_t))
    memcpy(dst.words, src.words, (n // 64) * sizeof(uint64_t))
    dst.summary = src.summary
    dst.base = src.base
    dst.best = src.best
    dst.count = src.count
    dst.ladder_count = src.ladder_count
    dst.recenters = src.recenters
    dst.ov_n = 0
    if ov_reserve(dst, src.ov_n) != 0:
        return -1
    if src.ov_n:
        memcpy(dst.ov_key, src.ov_key, src.ov_n * sizeof(int64_t))
        memcpy(dst.ov_qty, src.ov_qty, src.ov_n * sizeof(int64_t))
    dst.ov_n = src.ov_n
    return 0


# Walking a side best-first: the ladder from the best downwards, then the overflow from its top.
cdef struct SideCursor:
    Py_ssize_t ladder_i     # next ladder slot to look at (<= this), -1 when the ladder is done
    Py_ssize_t ov_i         # next overflow index (descending), -1 when done
    int64_t key
    int64_t qty


cdef inline void cursor_start(const BookSide_ *s, SideCursor *c) noexcept nogil:
    c.ladder_i = (s.best - s.base) if s.ladder_count > 0 else -1
    c.ov_i = s.ov_n - 1


cdef inline bint cursor_next(const BookSide_ *s, SideCursor *c) noexcept nogil:
    cdef Py_ssize_t i
    if c.ladder_i >= 0:
        i = ladder_highest_at_or_below(s, c.ladder_i)
        if i >= 0:
            c.key = s.base + i
            c.qty = s.qty[i]
            c.ladder_i = i - 1
            return True
        c.ladder_i = -1
    if c.ov_i >= 0:
        c.key = s.ov_key[c.ov_i]
        c.qty = s.ov_qty[c.ov_i]
        c.ov_i -= 1
        return True
    return False


# ---------------------------------------------------------------------------------------------------
# The book
# ---------------------------------------------------------------------------------------------------

cdef inline int _side_arg(object side) except -1:
    cdef int s = side
    if s != BID and s != ASK:
        raise ValueError(f"side must be BookSide.BID (0) or BookSide.ASK (1), got {side!r}")
    return s


@cython.final
cdef class OrderBook:
    """Exact L2 order book. Prices and sizes are int64 raw values at the given precisions.

    OrderBook(price_precision, size_precision, *, tick=1, instrument_id=0, ladder_ticks=4096, crossed="flag")

    tick: the tick size in raw price units (a price must be a multiple of it). ladder_ticks: the dense
    window around the touch (power of two, 64..4096). crossed: "flag", "raise" or "prune" (module doc).
    Floats appear only at the user boundary (best_bid, vwap, ...); *_raw reads return exact ints.
    """

    def __cinit__(self, int price_precision, int size_precision, *, int64_t tick=1,
                  uint32_t instrument_id=0, int ladder_ticks=4096, str crossed="flag"):
        if not 0 <= price_precision <= EX_MAX_PRECISION or not 0 <= size_precision <= EX_MAX_PRECISION:
            raise ValueError(f"precisions must be between 0 and {EX_MAX_PRECISION}, "
                             f"got price {price_precision}, size {size_precision}")
        if tick <= 0:
            raise ValueError(f"tick must be a positive number of raw price units, got {tick}")
        if ladder_ticks < MIN_LADDER or ladder_ticks > MAX_LADDER or (ladder_ticks & (ladder_ticks - 1)):
            raise ValueError(f"ladder_ticks must be a power of two between {MIN_LADDER} and {MAX_LADDER}, "
                             f"got {ladder_ticks}")
        if crossed not in _POLICIES:
            raise ValueError(f"crossed must be one of {sorted(_POLICIES)}, got {crossed!r}")
        self.price_precision = price_precision
        self.size_precision = size_precision
        self.tick = tick
        self.instrument_id = instrument_id
        self.ladder_ticks = ladder_ticks
        self._policy = _POLICIES[crossed]
        self._last_set_side = -1
        if side_init(&self._sides[BID], ladder_ticks) != 0 or side_init(&self._sides[ASK], ladder_ticks) != 0:
            raise MemoryError("cannot allocate the order book ladder")

    def __dealloc__(self):
        side_free(&self._sides[BID])
        side_free(&self._sides[ASK])

    @classmethod
    def for_instrument(cls, instrument, **options):
        """A book for an extrema.Instrument: its precisions, tick and id."""
        return cls(instrument.price_precision, instrument.size_precision, tick=instrument.tick_raw,
                   instrument_id=instrument.id, **options)

    # ---- compiled write path ----------------------------------------------------------------------

    cdef BookStatus set_level(self, int side, int64_t price, int64_t qty) noexcept nogil:
        """Set (qty > 0) or delete (qty == 0) one level. Does not check crossing (see end_message)."""
        cdef int64_t key
        cdef int rc
        cdef BookStatus st = self.check_level(side, price, qty)
        if st != BOOK_OK:
            return st
        key = price if self.tick == 1 else price // self.tick
        if side == ASK:
            key = -key
        if qty == 0:
            rc = side_delete(&self._sides[side], self.ladder_ticks, key)
        else:
            rc = side_set(&self._sides[side], self.ladder_ticks, key, qty)
            self._last_set_side = side
        return BOOK_NO_MEMORY if rc != 0 else BOOK_OK

    cdef BookStatus check_level(self, int side, int64_t price, int64_t qty) noexcept nogil:
        """Would set_level accept this level? Checked before anything changes, so a rejected level
        (or record) leaves the book, its update id and its snapshot state exactly as they were."""
        if qty < 0:
            return BOOK_NEGATIVE_SIZE
        if side != BID and side != ASK:
            return BOOK_BAD_SIDE
        if self.tick != 1 and price % self.tick != 0:
            return BOOK_OFF_TICK
        return BOOK_OK

    cdef BookStatus end_message(self) noexcept nogil:
        """A venue message is complete: check crossing under the configured policy."""
        cdef BookSide_ *bids = &self._sides[BID]
        cdef BookSide_ *asks = &self._sides[ASK]
        cdef int keep
        cdef int64_t limit
        cdef BookStatus st = BOOK_OK
        self._in_snapshot = False
        if bids.count == 0 or asks.count == 0 or bids.best < -asks.best:
            self.is_crossed = False
            self._last_set_side = -1
            return BOOK_OK
        self._n_crossed += 1
        if self._policy == CROSSED_PRUNE:
            keep = ASK if self._last_set_side == ASK else BID
            if keep == BID:
                limit = bids.best                 # delete asks with tick <= best bid tick
                while asks.count and -asks.best <= limit:
                    if side_delete(asks, self.ladder_ticks, asks.best) != 0:
                        return BOOK_NO_MEMORY
            else:
                limit = -asks.best                # delete bids with tick >= best ask tick
                while bids.count and bids.best >= limit:
                    if side_delete(bids, self.ladder_ticks, bids.best) != 0:
                        return BOOK_NO_MEMORY
            self.is_crossed = False
        else:
            self.is_crossed = True
            if self._policy == CROSSED_RAISE:
                st = BOOK_CROSSED
        self._last_set_side = -1
        return st

    cdef void clear_levels(self) noexcept nogil:
        side_clear(&self._sides[BID])
        side_clear(&self._sides[ASK])
        self.last_update_id = 0
        self.is_crossed = False
        self._in_snapshot = False
        self._last_set_side = -1

    cdef BookStatus apply_record(self, const Record *rec) noexcept nogil:
        """Apply one record of this book's instrument: BOOK_DELTA or BOOK_RESET; anything else is skipped."""
        cdef BookStatus st
        cdef int side
        if rec.instrument_id != self.instrument_id:
            return BOOK_SKIPPED
        if rec.kind == KIND_BOOK_DELTA:
            side = ASK if rec.flags & FLAG_ASK else BID
            if rec.flags & FLAG_SNAPSHOT:
                st = self.check_level(side, rec.price, rec.quantity)
                if st != BOOK_OK:
                    if rec.flags & FLAG_LAST:
                        self._in_snapshot = False    # its message is over: the next snapshot starts afresh
                    return st
                if not self._in_snapshot:
                    self.clear_levels()
                    self._in_snapshot = True
                    self.last_update_id = rec.sequence
            else:
                self._in_snapshot = False
                if rec.sequence != 0 and rec.sequence < self.last_update_id:
                    self._n_stale += 1
                    return BOOK_STALE
            st = self.set_level(side, rec.price, rec.quantity)
            if st != BOOK_OK:
                if rec.flags & FLAG_LAST:
                    self._in_snapshot = False
                return st
            if rec.sequence != 0 and not (rec.flags & FLAG_SNAPSHOT):
                self.last_update_id = rec.sequence
            if rec.flags & FLAG_LAST:
                return self.end_message()
            return BOOK_OK
        if rec.kind == KIND_BOOK_RESET:
            self.clear_levels()
            return BOOK_OK
        return BOOK_SKIPPED

    # ---- compiled reads ---------------------------------------------------------------------------

    cdef bint has_best(self, int side) noexcept nogil:
        return self._sides[side].count > 0

    cdef int64_t best_price_raw(self, int side) noexcept nogil:
        cdef int64_t key = self._sides[side].best
        return (key if side == BID else -key) * self.tick

    cdef int64_t best_qty_raw(self, int side) noexcept nogil:
        cdef const BookSide_ *s = &self._sides[side]
        if s.count == 0:
            return 0
        return s.qty[s.best - s.base]

    cdef int64_t qty_at_raw(self, int side, int64_t price) noexcept nogil:
        cdef int64_t key
        if price % self.tick != 0:
            return 0
        key = price // self.tick
        return side_qty(&self._sides[side], self.ladder_ticks, key if side == BID else -key)

    # ---- Python write API -------------------------------------------------------------------------

    cdef int _raise_status(self, BookStatus st, int side, int64_t price, int64_t qty, str where) except -1:
        if st == BOOK_NEGATIVE_SIZE:
            raise ValueError(f"{where}: negative size {qty} (raw) at price {price} (raw)")
        if st == BOOK_OFF_TICK:
            raise ValueError(f"{where}: price {price} (raw) is not a multiple of the tick {self.tick}")
        if st == BOOK_BAD_SIDE:
            raise ValueError(f"{where}: side must be 0 (bid) or 1 (ask), got {side}")
        if st == BOOK_NO_MEMORY:
            raise MemoryError(f"{where}: out of memory growing the book")
        if st == BOOK_CROSSED:
            raise CrossedBookError(
                f"{where}: book crossed: best bid {self.best_bid_raw} >= best ask {self.best_ask_raw} (raw)")
        return 0

    def apply_delta(self, side, int64_t price_raw, int64_t size_raw, int64_t update_id=0, bint last=True):
        """Set one level from raw ints (size 0 deletes). Returns False when dropped as stale."""
        cdef int s = _side_arg(side)
        cdef BookStatus st
        if update_id != 0:
            if update_id < self.last_update_id:
                self._n_stale += 1
                return False
        st = self.set_level(s, price_raw, size_raw)
        if st != BOOK_OK:
            self._raise_status(st, s, price_raw, size_raw, "apply_delta")
        if update_id != 0:
            self.last_update_id = update_id
        if last:
            st = self.end_message()
            if st != BOOK_OK:
                self._raise_status(st, s, price_raw, size_raw, "apply_delta")
        return True

    def update(self, side, price, size):
        """Set one level from user values (str / Decimal exact, int whole units, float exact at the precision)."""
        cdef int s = _side_arg(side)
        cdef int64_t p = value_to_raw(price, self.price_precision, True)
        cdef int64_t q = value_to_raw(size, self.size_precision, False)
        cdef BookStatus st = self.set_level(s, p, q)
        if st == BOOK_OK:
            st = self.end_message()
        if st != BOOK_OK:
            self._raise_status(st, s, p, q, "update")

    def apply_snapshot(self, bids, asks, int64_t update_id=0):
        """Replace the whole book. bids / asks: iterables of (price, size) user values, or int64 arrays
        of shape (k, 2) holding raw values. All or nothing: every level is checked before the book
        changes, so an invalid snapshot raises ValueError and leaves the book as it was."""
        cdef list sides = [self._raw_levels(BID, bids), self._raw_levels(ASK, asks)]
        cdef int side
        cdef BookStatus st
        cdef Py_ssize_t i
        for side in range(2):
            for i, (p, q) in enumerate(sides[side]):
                st = self.check_level(side, p, q)
                if st != BOOK_OK:
                    self._raise_status(st, side, p, q, f"apply_snapshot {('bid', 'ask')[side]} level {i}")
        self.clear_levels()
        for side in range(2):
            for p, q in sides[side]:
                if self.set_level(side, p, q) != BOOK_OK:
                    self.clear_levels()
                    raise MemoryError("apply_snapshot: out of memory growing the book")
        self.last_update_id = update_id
        st = self.end_message()
        if st != BOOK_OK:
            self._raise_status(st, BID, 0, 0, "apply_snapshot")

    cdef list _raw_levels(self, int side, levels):
        """Snapshot levels as a list of raw (price, size) pairs; user values are converted exactly."""
        if isinstance(levels, np.ndarray) and levels.dtype == np.int64:
            if levels.ndim != 2 or levels.shape[1] != 2:
                raise ValueError(f"raw snapshot levels must have shape (k, 2), got {levels.shape}")
            return [(int(p), int(q)) for p, q in levels]
        out = []
        for i, level in enumerate(levels):
            price, size = level
            try:
                out.append((value_to_raw(price, self.price_precision, True),
                            value_to_raw(size, self.size_precision, False)))
            except (ValueError, TypeError) as e:
                raise type(e)(f"apply_snapshot {('bid', 'ask')[side]} level {i}: {e}") from None
        return out

    def apply_records(self, records, bint strict=True):
        """Apply an array of RECORD_DTYPE records without the GIL; returns how many were applied.

        Only BOOK_DELTA and BOOK_RESET records of this book's instrument_id are applied; others are
        skipped. strict=True: an invalid record raises ValueError naming its index (the records before it
        stay applied). strict=False: invalid records are skipped and counted in stats['rejected'].
        """
        cdef cnp.ndarray arr = as_record_array(records, "apply_records")
        cdef const Record *recs = record_data(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0)
        cdef Py_ssize_t i = 0, applied = 0
        cdef BookStatus st = BOOK_OK
        with nogil:
            while i < n:
                st = self.apply_record(&recs[i])
                if st == BOOK_OK:
                    applied += 1
                elif st == BOOK_STALE or st == BOOK_SKIPPED:
                    pass
                elif st == BOOK_CROSSED:
                    applied += 1
                    break
                elif strict or st == BOOK_NO_MEMORY:
                    break
                else:
                    self._n_rejected += 1
                i += 1
        if i < n:      # stopped early: a crossed book under "raise", an invalid record under strict, or no memory
            self._raise_status(st, recs[i].flags & FLAG_ASK, recs[i].price, recs[i].quantity,
                               f"apply_records record {i}")
        return applied

    def clear(self):
        """Remove every level; last_update_id back to 0."""
        self.clear_levels()

    # ---- Python reads -----------------------------------------------------------------------------

    cdef double _px(self, int64_t raw) noexcept nogil:
        return ex_raw_to_f64(raw, self.price_precision)

    cdef double _sz(self, int64_t raw) noexcept nogil:
        return ex_raw_to_f64(raw, self.size_precision)

    @property
    def best_bid(self):
        """Best bid price (float), NaN when there are no bids."""
        return self._px(self.best_price_raw(BID)) if self._sides[BID].count else NAN

    @property
    def best_ask(self):
        """Best ask price (float), NaN when there are no asks."""
        return self._px(self.best_price_raw(ASK)) if self._sides[ASK].count else NAN

    @property
    def best_bid_raw(self):
        """Best bid price as a raw int, None when there are no bids."""
        return self.best_price_raw(BID) if self._sides[BID].count else None

    @property
    def best_ask_raw(self):
        """Best ask price as a raw int, None when there are no asks."""
        return self.best_price_raw(ASK) if self._sides[ASK].count else None

    @property
    def best_bid_size(self):
        """Size at the best bid (float), 0.0 when there are no bids."""
        return self._sz(self.best_qty_raw(BID))

    @property
    def best_ask_size(self):
        """Size at the best ask (float), 0.0 when there are no asks."""
        return self._sz(self.best_qty_raw(ASK))

    def bbo(self):
        """(bid price, bid size, ask price, ask size) as floats; NaN prices for an empty side."""
        return (self.best_bid, self._sz(self.best_qty_raw(BID)),
                self.best_ask, self._sz(self.best_qty_raw(ASK)))

    @property
    def spread(self):
        """Best ask - best bid (float), NaN if a side is empty."""
        if not (self._sides[BID].count and self._sides[ASK].count):
            return NAN
        return self._px(self.best_price_raw(ASK) - self.best_price_raw(BID))

    @property
    def mid(self):
        """(best bid + best ask) / 2 (float), NaN if a side is empty."""
        if not (self._sides[BID].count and self._sides[ASK].count):
            return NAN
        return (self._px(self.best_price_raw(BID)) + self._px(self.best_price_raw(ASK))) * 0.5

    @property
    def microprice(self):
        """Size-weighted mid: (bid * ask_size + ask * bid_size) / (bid_size + ask_size); NaN if a side is empty."""
        cdef double b, a, bq, aq
        if not (self._sides[BID].count and self._sides[ASK].count):
            return NAN
        b = self._px(self.best_price_raw(BID))
        a = self._px(self.best_price_raw(ASK))
        bq = <double>self.best_qty_raw(BID)
        aq = <double>self.best_qty_raw(ASK)
        return (b * aq + a * bq) / (bq + aq)

    @property
    def bid_count(self):
        """Number of bid levels."""
        return self._sides[BID].count

    @property
    def ask_count(self):
        """Number of ask levels."""
        return self._sides[ASK].count

    @property
    def stats(self):
        """Counters: stale updates dropped, invalid records rejected, crossed checks, ladder re-centrings."""
        return {"stale": self._n_stale, "rejected": self._n_rejected, "crossed": self._n_crossed,
                "recenters": self._sides[BID].recenters + self._sides[ASK].recenters}

    @property
    def nbytes(self):
        """Memory held by the levels: both ladders, their bitmaps and the overflow arrays' capacity."""
        cdef Py_ssize_t total = 0
        cdef int side
        for side in range(2):
            total += self.ladder_ticks * sizeof(int64_t) + (self.ladder_ticks // 64) * sizeof(uint64_t)
            total += self._sides[side].ov_cap * 2 * sizeof(int64_t)
        return total

    @property
    def crossed_policy(self):
        return _POLICY_NAMES[self._policy]

    cdef int64_t _depth_raw(self, int side, Py_ssize_t levels) noexcept nogil:
        cdef SideCursor c
        cdef int64_t total = 0
        cdef Py_ssize_t k = 0
        cursor_start(&self._sides[side], &c)
        while k < levels and cursor_next(&self._sides[side], &c):
            total += c.qty
            k += 1
        return total

    def size_at(self, side, price):
        """Size at a price (user value) on a side (float), 0.0 when there is no level."""
        cdef int s = _side_arg(side)
        return self._sz(self.qty_at_raw(s, value_to_raw(price, self.price_precision, True)))

    def size_at_raw(self, side, int64_t price_raw):
        """Size at a raw price on a side (raw int), 0 when there is no level."""
        return self.qty_at_raw(_side_arg(side), price_raw)

    def depth(self, side, levels=None):
        """Cumulative size (float) of the best `levels` levels of a side (all levels if None)."""
        cdef int s = _side_arg(side)
        cdef Py_ssize_t n = self._sides[s].count if levels is None else levels
        if n < 0:
            raise ValueError(f"levels must be >= 0, got {levels}")
        return self._sz(self._depth_raw(s, n))

    def imbalance(self, Py_ssize_t levels=1):
        """(bid size - ask size) / (bid size + ask size) over the best `levels` levels per side; NaN if empty."""
        cdef double b, a
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        b = <double>self._depth_raw(BID, levels)
        a = <double>self._depth_raw(ASK, levels)
        if b + a == 0:
            return NAN
        return (b - a) / (b + a)

    cdef double _vwap(self, int order_side, int64_t qty, double *touch) noexcept nogil:
        """Average price (float) to fill qty raw as an order of order_side; NaN if the book is too thin."""
        cdef int side = ASK if order_side == 0 else BID
        cdef const BookSide_ *s = &self._sides[side]
        cdef SideCursor c
        cdef int64_t remaining = qty, take
        cdef double notional = 0.0
        cdef bint first = True
        if qty <= 0 or s.count == 0:
            return NAN
        cursor_start(s, &c)
        while remaining > 0 and cursor_next(s, &c):
            take = c.qty if c.qty < remaining else remaining
            notional += <double>((c.key if side == BID else -c.key) * self.tick) * <double>take
            if first:
                touch[0] = self._px((c.key if side == BID else -c.key) * self.tick)
                first = False
            remaining -= take
        if remaining > 0:
            return NAN
        return notional / <double>qty / ex_pow10_f64[self.price_precision]

    def vwap(self, side, size):
        """Average price to fill `size` (user value) as an order of `side` (Side.BUY consumes asks).
        NaN when the book cannot fill it or size is 0."""
        cdef double touch = NAN
        cdef int s = _side_arg(side)
        return self._vwap(s, value_to_raw(size, self.size_precision, False), &touch)

    def slippage(self, side, size):
        """Price distance (>= 0) between the fill VWAP of `size` and the touch it starts from. NaN when
        the book cannot fill it or size is 0."""
        cdef double touch = NAN
        cdef int s = _side_arg(side)
        cdef double v = self._vwap(s, value_to_raw(size, self.size_precision, False), &touch)
        if isnan(v):
            return NAN
        # Never negative: a fill inside the touch level has none, even when the float notional rounds.
        v = v - touch if s == 0 else touch - v
        return v if v > 0.0 else 0.0

    def levels(self, side, n=None, bint raw=False):
        """The best `n` levels of a side (all if None) as an array (k, 2) of [price, size], best first:
        float64, or int64 raw values with raw=True."""
        cdef int s = _side_arg(side)
        cdef Py_ssize_t k = self._sides[s].count if n is None or n > self._sides[s].count else n
        cdef cnp.npy_intp dims[2]
        cdef cnp.ndarray out
        if k < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        dims[0] = k
        dims[1] = 2
        out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_INT64 if raw else cnp.NPY_FLOAT64, 0)
        if raw:
            self._fill_levels_raw(s, <int64_t *>cnp.PyArray_DATA(out), k)
        else:
            self._fill_levels(s, <double *>cnp.PyArray_DATA(out), k, 2, 0)
        return out

    cdef void _fill_levels_raw(self, int side, int64_t *out, Py_ssize_t k) noexcept nogil:
        cdef SideCursor c
        cdef Py_ssize_t i = 0
        cursor_start(&self._sides[side], &c)
        while i < k and cursor_next(&self._sides[side], &c):
            out[2 * i] = (c.key if side == BID else -c.key) * self.tick
            out[2 * i + 1] = c.qty
            i += 1

    cdef void _fill_levels(self, int side, double *out, Py_ssize_t k, Py_ssize_t stride,
                           Py_ssize_t col) noexcept nogil:
        """Rows 0..k-1 of a C-contiguous float64 array with `stride` columns: [price, size] of the best k
        levels at columns col, col + 1, NaN where the side has fewer levels."""
        cdef SideCursor c
        cdef Py_ssize_t i = 0
        cursor_start(&self._sides[side], &c)
        while i < k and cursor_next(&self._sides[side], &c):
            out[i * stride + col] = self._px((c.key if side == BID else -c.key) * self.tick)
            out[i * stride + col + 1] = self._sz(c.qty)
            i += 1
        while i < k:
            out[i * stride + col] = NAN
            out[i * stride + col + 1] = NAN
            i += 1

    def top(self, Py_ssize_t n, out=None):
        """The best n levels as a float64 array (n, 4): [bid price, bid size, ask price, ask size],
        NaN-padded. Pass `out` (a C-contiguous float64 (n, 4) array) to fill it without allocating."""
        cdef cnp.npy_intp dims[2]
        cdef cnp.ndarray arr
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if out is None:
            dims[0] = n
            dims[1] = 4
            arr = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT64, 0)
        else:
            if not isinstance(out, np.ndarray):
                raise ValueError(f"out must be a writeable C-contiguous float64 array of shape ({n}, 4)")
            arr = out
            if (cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT64 or cnp.PyArray_NDIM(arr) != 2
                    or cnp.PyArray_DIM(arr, 0) != n or cnp.PyArray_DIM(arr, 1) != 4
                    or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISWRITEABLE(arr)):
                raise ValueError(f"out must be a writeable C-contiguous float64 array of shape ({n}, 4)")
        self._fill_levels(BID, <double *>cnp.PyArray_DATA(arr), n, 4, 0)
        self._fill_levels(ASK, <double *>cnp.PyArray_DATA(arr), n, 4, 2)
        return arr

    def to_numpy(self):
        """Every level as a structured array (BOOK_LEVEL_DTYPE): bids best->worst, then asks best->worst."""
        cdef Py_ssize_t nb = self._sides[BID].count, na = self._sides[ASK].count
        out = np.empty(nb + na, dtype=BOOK_LEVEL_DTYPE)
        bids = self.levels(BID, raw=True)
        asks = self.levels(ASK, raw=True)
        out["side"][:nb] = BID
        out["side"][nb:] = ASK
        out["price_raw"][:nb] = bids[:, 0]
        out["price_raw"][nb:] = asks[:, 0]
        out["size_raw"][:nb] = bids[:, 1]
        out["size_raw"][nb:] = asks[:, 1]
        out["price"] = out["price_raw"] / ex_pow10_f64[self.price_precision]
        out["size"] = out["size_raw"] / ex_pow10_f64[self.size_precision]
        return out

    # ---- copies, pickling, comparison, repr -------------------------------------------------------

    cdef dict _options(self):
        return {"tick": self.tick, "instrument_id": self.instrument_id,
                "ladder_ticks": self.ladder_ticks, "crossed": _POLICY_NAMES[self._policy]}

    def copy(self):
        """An independent copy (levels, update id, flags and counters)."""
        cdef OrderBook other = OrderBook(self.price_precision, self.size_precision, **self._options())
        if (side_copy(&other._sides[BID], &self._sides[BID], self.ladder_ticks) != 0
                or side_copy(&other._sides[ASK], &self._sides[ASK], self.ladder_ticks) != 0):
            raise MemoryError("cannot copy the order book")
        other.last_update_id = self.last_update_id
        other.is_crossed = self.is_crossed
        other._in_snapshot = self._in_snapshot
        other._last_set_side = self._last_set_side
        other._n_stale = self._n_stale
        other._n_rejected = self._n_rejected
        other._n_crossed = self._n_crossed
        return other

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        state = (self.levels(BID, raw=True), self.levels(ASK, raw=True), self.last_update_id,
                 self.is_crossed, self._in_snapshot, self._last_set_side,
                 self._n_stale, self._n_rejected, self._n_crossed)
        return (_rebuild_book, (self.price_precision, self.size_precision, self._options(), state))

    def __eq__(self, other):
        if not isinstance(other, OrderBook):
            return NotImplemented
        cdef OrderBook o = other
        return (self.price_precision == o.price_precision and self.size_precision == o.size_precision
                and self.tick == o.tick and self.instrument_id == o.instrument_id
                and np.array_equal(self.levels(BID, raw=True), o.levels(BID, raw=True))
                and np.array_equal(self.levels(ASK, raw=True), o.levels(ASK, raw=True)))

    __hash__ = None

    def __len__(self):
        return self._sides[BID].count + self._sides[ASK].count

    def __repr__(self):
        cdef str bid = "-", ask = "-"
        if self._sides[BID].count:
            bid = (f"{_fmt(self.best_price_raw(BID), self.price_precision)} x "
                   f"{_fmt(self.best_qty_raw(BID), self.size_precision)}")
        if self._sides[ASK].count:
            ask = (f"{_fmt(self.best_price_raw(ASK), self.price_precision)} x "
                   f"{_fmt(self.best_qty_raw(ASK), self.size_precision)}")
        crossed = " CROSSED" if self.is_crossed else ""
        return (f"<OrderBook instrument_id={self.instrument_id} bids={self._sides[BID].count} "
                f"asks={self._sides[ASK].count} [{bid} | {ask}] update_id={self.last_update_id}{crossed}>")


cdef str _fmt(int64_t raw, int precision):
    cdef char buf[48]
    cdef Py_ssize_t n = format_fixed(raw, precision, buf)
    return buf[:n].decode("ascii")


def _rebuild_book(int price_precision, int size_precision, dict options, tuple state):
    cdef OrderBook book = OrderBook(price_precision, size_precision, **options)
    bids, asks, update_id, crossed, in_snapshot, last_set, stale, rejected, n_crossed = state
    cdef cnp.int64_t[:, :] lv
    cdef Py_ssize_t i
    cdef int side
    for side, lv in ((BID, bids), (ASK, asks)):
        for i in range(lv.shape[0]):
            if book.set_level(side, lv[i, 0], lv[i, 1]) != BOOK_OK:
                raise ValueError(f"corrupt pickled order book level {i}")
    book.last_update_id = update_id
    book.is_crossed = crossed
    book._in_snapshot = in_snapshot
    book._last_set_side = last_set
    book._n_stale = stale
    book._n_rejected = rejected
    book._n_crossed = n_crossed
    return book
