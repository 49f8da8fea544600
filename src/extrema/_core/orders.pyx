"""The order table: one state machine for every venue, keyed by client order id, fed by ORDER_UPDATE
and FILL records (records.pyx) and by the engine's own requests (submit, cancel, replace).

States (extrema.OrderStatus): INITIALIZED -> SUBMITTED -> ACCEPTED -> PARTIALLY_FILLED -> FILLED, or
CANCELLED / REJECTED / EXPIRED; PENDING_CANCEL and PENDING_REPLACE sit on top of a live order (the
order's venue-side status is kept underneath as `base_status`). FILLED, CANCELLED, REJECTED and EXPIRED
are terminal.

Every input returns an OrderEventCode. Anything but OK is counted (stats()) and logged in a bounded
event ring (events()); ILLEGAL and INVALID inputs are never applied, DUPLICATE and STALE ones are
ignored. The Python-facing methods raise IllegalTransitionError for ILLEGAL when `raise_on_illegal`
is set (after counting and logging it, still without applying it).

Venue updates (ORDER_UPDATE, `to` = the record's status):
  * an unknown client order id is ADOPTED: an entry is made from the record (orders placed before a
    restart or outside the engine); INITIALIZED is INVALID from a venue;
  * the instrument and the side of an order never change: an update that says otherwise is INVALID;
  * from a terminal status: the same status again is a DUPLICATE, anything else ILLEGAL;
  * to a terminal status: FILLED / CANCELLED / EXPIRED from any live status; REJECTED only while the
    venue has not accepted the order (INITIALIZED / SUBMITTED, or pending with such a base);
  * to a live status, an update whose venue time (ts_exchange) is older than the last applied one is
    STALE (a REST answer overtaken by the user-data stream, a replay);
  * SUBMITTED after INITIALIZED; later it is STALE;
  * PENDING_CANCEL from any live status (a pending replace is dropped); PENDING_REPLACE from a live,
    non-pending status, with the record's price / size as the replacement;
  * ACCEPTED / PARTIALLY_FILLED on a pending order: with a nonzero reason code it reports that the
    cancel / replace failed (the order goes back to its live status); a PENDING_REPLACE order whose
    update carries exactly the requested price and size is replaced (price and size take the new
    values); otherwise the update only advances the base status and the order stays pending;
  * PARTIALLY_FILLED -> ACCEPTED is STALE; a repeat with nothing new is a DUPLICATE; a changed price or
    size on a live order is an amend made at the venue and is applied.
Fills (FILL):
  * a venue trade is counted once: (instrument, trade id, side) already seen -> DUPLICATE (side makes
    the two halves of a self-trade distinct); trade id 0 cannot be checked and is counted as such;
  * a fill of an unknown order is UNKNOWN_ORDER: remembered (never counted twice) and left to the
    caller to apply to positions;
  * a fill must match the order's instrument and side (else INVALID) and fit its size: filled + size
    <= size of the order (or of a pending replacement) else OVERFILL; on a terminal order only up to the
    cumulative size the venue confirmed (a late fill), else OVERFILL (FILLED) or ILLEGAL;
  * an applied fill makes a live order PARTIALLY_FILLED or, once filled >= size, FILLED; on a pending
    order a partial fill moves the base status only.
Engine requests: register (INITIALIZED, or SUBMITTED), submitted, request_cancel (INITIALIZED ->
CANCELLED at once, never sent; live -> PENDING_CANCEL), request_replace (INITIALIZED: changed in place;
live and not pending -> PENDING_REPLACE), local_reject (INITIALIZED / SUBMITTED -> REJECTED: a risk
denial or a send that certainly never reached the venue).

Open quantities: every live order counts max(size, pending size) - filled on its side in the cell of
(instrument, owner) and of (instrument, ALL), and one open order for its owner and for ALL; the risk
checks read them.

Retention: terminal orders are kept (late fills, reconciliation) up to `keep_terminal`, then the oldest
are dropped; trade ids are remembered up to `keep_trades`, then the oldest are forgotten.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint32_t, int32_t, uint8_t
from libc.stdlib cimport calloc, realloc, free, malloc
from libc.string cimport memset

import enum

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport Record, KIND_ORDER_UPDATE, KIND_FILL, KIND_CONTINUATION, FLAG_ASK, CONT_MASK, CONT_SHIFT
from extrema._core.ex_money cimport ex_i128, ex_mul64
from extrema._core.clock cimport now_us
from extrema._core.records cimport as_record_array, record_data
from extrema._core.records import RECORD_DTYPE

cnp.import_array()

cdef extern from *:
    """
    static inline uint64_t ex_mix64(uint64_t x) {
        /* splitmix64 finaliser: client order ids differ in their middle bits only */
        x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27; x *= 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
    }
    static inline uint64_t ex_mix2(uint64_t a, uint64_t b) { return ex_mix64(a ^ (b * 0x9E3779B97F4A7C15ULL)); }
    """
    uint64_t ex_mix64(uint64_t x) noexcept nogil
    uint64_t ex_mix2(uint64_t a, uint64_t b) noexcept nogil

cdef int64_t FOREIGN_BASE = (<int64_t>1) << 62


class OrderEventCode(enum.IntEnum):
    """What applying an order update, a fill or a request did (see the module doc)."""
    OK = EV_OK
    DUPLICATE = EV_DUPLICATE
    STALE = EV_STALE
    ILLEGAL = EV_ILLEGAL
    UNKNOWN_ORDER = EV_UNKNOWN_ORDER
    OVERFILL = EV_OVERFILL
    INVALID = EV_INVALID
    ADOPTED = EV_ADOPTED


class IllegalTransitionError(RuntimeError):
    """An order update / request the state machine forbids (it was counted, logged and not applied)."""

    def __init__(self, message, event=None):
        super().__init__(message)
        self.event = event


ORDER_DTYPE = np.dtype([
    ("client_order_id", "<i8"), ("venue_order_id", "<i8"), ("instrument_id", "<u4"), ("owner", "<i4"),
    ("side", "u1"), ("status", "u1"), ("base_status", "u1"), ("order_type", "u1"), ("time_in_force", "u1"),
    ("flags", "u1"), ("price_raw", "<i8"), ("stop_price_raw", "<i8"), ("quantity_raw", "<i8"),
    ("filled_raw", "<i8"), ("venue_filled_raw", "<i8"), ("remaining_raw", "<i8"), ("avg_price_raw", "<i8"),
    ("pending_price_raw", "<i8"), ("pending_quantity_raw", "<i8"), ("reason", "<i8"), ("fills", "<i8"),
    ("ts_created", "<i8"), ("ts_updated", "<i8")])


cdef inline bint is_terminal(int st) noexcept nogil:
    return st == ST_FILLED or st == ST_CANCELLED or st == ST_REJECTED or st == ST_EXPIRED


cdef inline bint is_pending(int st) noexcept nogil:
    return st == ST_PENDING_CANCEL or st == ST_PENDING_REPLACE


cdef inline int progress(int a, int b) noexcept nogil:
    """The further along of two live venue statuses (INITIALIZED < SUBMITTED < ACCEPTED < PARTIALLY_FILLED)."""
    return a if a > b else b


cdef inline int owner_of_id(int64_t coid) noexcept nogil:
    if 0 < coid < FOREIGN_BASE:
        return <int>(coid & (MAX_STRATEGY_OWNERS - 1))
    return OWNER_EXTERNAL


cdef inline int64_t remaining_of(const OrderEntry *e) noexcept nogil:
    cdef int64_t size
    if is_terminal(e.status):
        return 0
    size = e.quantity
    if e.status == ST_PENDING_REPLACE and e.pending_quantity > size:
        size = e.pending_quantity
    return size - e.filled if size > e.filled else 0


cdef inline Py_ssize_t _pow2_at_least(Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t c = 16
    while c < n:
        c <<= 1
    return c


@cython.final
cdef class OrderTable:
    """Orders by client order id with their exact raw quantities; see the module doc for the rules.

    OrderTable(keep_terminal=100_000, keep_trades=100_000, event_capacity=4096)
    """

    def __cinit__(self, Py_ssize_t keep_terminal=100_000, Py_ssize_t keep_trades=100_000,
                  Py_ssize_t event_capacity=4096):
        if keep_terminal < 1 or keep_trades < 1 or event_capacity < 1:
            raise ValueError("keep_terminal, keep_trades and event_capacity must be >= 1")
        self.keep_terminal = keep_terminal
        self.keep_trades = keep_trades
        self._cap = 0
        self._ix_cap = 64
        self._ix_keys = <int64_t *>calloc(self._ix_cap, sizeof(int64_t))
        self._ix_vals = <int32_t *>calloc(self._ix_cap, sizeof(int32_t))
        self._term_cap = keep_terminal + 1
        self._term = <int32_t *>malloc(self._term_cap * sizeof(int32_t))
        self._tr_cap = 1024
        self._tr_k1 = <uint64_t *>calloc(self._tr_cap, sizeof(uint64_t))
        self._tr_k2 = <uint64_t *>calloc(self._tr_cap, sizeof(uint64_t))
        self._tr_fifo = <uint64_t *>malloc(2 * keep_trades * sizeof(uint64_t))
        self._ev_cap = event_capacity
        self._events = <OrderEvent *>calloc(event_capacity, sizeof(OrderEvent))
        if (self._ix_keys == NULL or self._ix_vals == NULL or self._term == NULL or self._tr_k1 == NULL
                or self._tr_k2 == NULL or self._tr_fifo == NULL or self._events == NULL):
            raise MemoryError()
        self._grow_slots()

    def __dealloc__(self):
        free(self._orders)
        free(self._free)
        free(self._ix_keys)
        free(self._ix_vals)
        free(self._term)
        free(self._tr_k1)
        free(self._tr_k2)
        free(self._tr_fifo)
        free(self._cells)
        free(self._events)

    # ---- storage --------------------------------------------------------------------------------

    cdef int _grow_slots(self) except -1:
        cdef Py_ssize_t new_cap = 256 if self._cap == 0 else self._cap * 2
        cdef OrderEntry *o = <OrderEntry *>realloc(self._orders, new_cap * sizeof(OrderEntry))
        if o == NULL:
            raise MemoryError()
        self._orders = o
        memset(&o[self._cap], 0, (new_cap - self._cap) * sizeof(OrderEntry))
        cdef int32_t *f = <int32_t *>realloc(self._free, new_cap * sizeof(int32_t))
        if f == NULL:
            raise MemoryError()
        self._free = f
        self._cap = new_cap
        return 0

    cdef int _grow_index(self) except -1:
        cdef Py_ssize_t old_cap = self._ix_cap, i
        cdef int64_t *old_keys = self._ix_keys
        cdef int32_t *old_vals = self._ix_vals
        cdef Py_ssize_t new_cap = old_cap * 2
        cdef int64_t *keys = <int64_t *>calloc(new_cap, sizeof(int64_t))
        cdef int32_t *vals = <int32_t *>calloc(new_cap, sizeof(int32_t))
        if keys == NULL or vals == NULL:
            free(keys)
            free(vals)
            raise MemoryError()
        self._ix_keys = keys
        self._ix_vals = vals
        self._ix_cap = new_cap
        for i in range(old_cap):
            if old_keys[i] != 0:
                self._ix_insert(old_keys[i], old_vals[i])
        free(old_keys)
        free(old_vals)
        return 0

    cdef int _grow_cells(self, uint32_t iid) except -1:
        cdef uint32_t n = self._cells_n_instruments
        cdef uint32_t new_n = 16 if n == 0 else n
        while new_n <= iid:
            new_n *= 2
        cdef OpenCell *c = <OpenCell *>realloc(self._cells, <Py_ssize_t>new_n * N_OWNERS * sizeof(OpenCell))
        if c == NULL:
            raise MemoryError()
        memset(&c[<Py_ssize_t>n * N_OWNERS], 0, <Py_ssize_t>(new_n - n) * N_OWNERS * sizeof(OpenCell))
        self._cells = c
        self._cells_n_instruments = new_n
        return 0

    cdef int _ix_insert(self, int64_t coid, int32_t slot) noexcept nogil:
        cdef Py_ssize_t mask = self._ix_cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(ex_mix64(<uint64_t>coid) & <uint64_t>mask)
        while self._ix_keys[i] != 0:
            if self._ix_keys[i] == coid:
                self._ix_vals[i] = slot
                return 0
            i = (i + 1) & mask
        self._ix_keys[i] = coid
        self._ix_vals[i] = slot
        return 1

    cdef OrderEntry *find(self, int64_t coid) noexcept nogil:
        """The entry of a client order id, or NULL. Valid until the next register / adoption."""
        cdef Py_ssize_t mask = self._ix_cap - 1
        cdef Py_ssize_t i
        if coid == 0:
            return NULL
        i = <Py_ssize_t>(ex_mix64(<uint64_t>coid) & <uint64_t>mask)
        while self._ix_keys[i] != 0:
            if self._ix_keys[i] == coid:
                return &self._orders[self._ix_vals[i]]
            i = (i + 1) & mask
        return NULL

    cdef void _ix_delete(self, int64_t coid) noexcept nogil:
        # Linear probing with backward-shift deletion: no tombstones, lookups stay short.
        cdef Py_ssize_t mask = self._ix_cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(ex_mix64(<uint64_t>coid) & <uint64_t>mask)
        cdef Py_ssize_t j, home
        while self._ix_keys[i] != coid:
            if self._ix_keys[i] == 0:
                return
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            if self._ix_keys[j] == 0:
                break
            home = <Py_ssize_t>(ex_mix64(<uint64_t>self._ix_keys[j]) & <uint64_t>mask)
            # keep j where it is if its home lies cyclically in (i, j]
            if (i <= j and i < home <= j) or (i > j and (home > i or home <= j)):
                continue
            self._ix_keys[i] = self._ix_keys[j]
            self._ix_vals[i] = self._ix_vals[j]
            i = j
        self._ix_keys[i] = 0

    cdef OrderEntry *_new_entry(self, int64_t coid) except NULL:
        cdef int32_t slot
        if (self._count + 1) * 2 > self._ix_cap:
            self._grow_index()
        if self._n_free > 0:
            self._n_free -= 1
            slot = self._free[self._n_free]
        else:
            if self._used == self._cap:
                self._grow_slots()
            slot = <int32_t>self._used
            self._used += 1
        memset(&self._orders[slot], 0, sizeof(OrderEntry))
        self._orders[slot].client_order_id = coid
        self._ix_insert(coid, slot)
        self._count += 1
        return &self._orders[slot]

    cdef void _became_terminal(self, OrderEntry *e) noexcept nogil:
        """Queue a newly terminal order for retention; drop the oldest beyond keep_terminal."""
        cdef int32_t slot = <int32_t>(e - self._orders)
        cdef int32_t old
        cdef OrderEntry *o
        self._term[(self._term_head + self._term_n) % self._term_cap] = slot
        self._term_n += 1
        while self._term_n > self.keep_terminal:
            old = self._term[self._term_head]
            self._term_head = (self._term_head + 1) % self._term_cap
            self._term_n -= 1
            o = &self._orders[old]
            self._ix_delete(o.client_order_id)
            o.client_order_id = 0
            self._free[self._n_free] = old
            self._n_free += 1
            self._count -= 1
            self.evicted_orders += 1

    cdef void _recount(self, OrderEntry *e) noexcept nogil:
        """Bring the open-quantity cells and open-order counts in line with the entry's state."""
        cdef int64_t rem = remaining_of(e)
        cdef int64_t delta = rem - e.open_counted
        cdef uint8_t is_open = 0 if is_terminal(e.status) else 1
        cdef int64_t dn = <int64_t>is_open - <int64_t>e.counted_open
        cdef OpenCell *c
        cdef OpenCell *a
        if delta == 0 and dn == 0:
            return
        c = self.cell(e.instrument_id, e.owner)
        a = self.cell(e.instrument_id, OWNER_ALL)
        if e.side == 0:
            c.buy += delta
            a.buy += delta
        else:
            c.sell += delta
            a.sell += delta
        c.orders += dn
        a.orders += dn
        self._open_orders[e.owner] += dn
        self._open_orders[OWNER_ALL] += dn
        e.open_counted = rem
        e.counted_open = is_open

    cdef void _event(self, int code, int64_t coid, uint32_t iid, int from_st, int to_st, int64_t trade_id,
                     int64_t qty, int side, int64_t ts) noexcept nogil:
        cdef OrderEvent *ev
        if self._ev_n == self._ev_cap:
            self._ev_head = (self._ev_head + 1) % self._ev_cap
            self._ev_n -= 1
            self.events_lost += 1
        ev = &self._events[(self._ev_head + self._ev_n) % self._ev_cap]
        self._ev_n += 1
        ev.client_order_id = coid
        ev.trade_id = trade_id
        ev.quantity = qty
        ev.ts = ts
        ev.instrument_id = iid
        ev.code = <uint8_t>code
        ev.from_status = <uint8_t>from_st
        ev.to_status = <uint8_t>to_st
        ev.side = <uint8_t>side

    # ---- trades already counted ------------------------------------------------------------------

    cdef bint _trade_seen(self, uint32_t iid, int64_t trade_id, int side) noexcept nogil:
        cdef uint64_t k1 = <uint64_t>trade_id
        cdef uint64_t k2 = ((<uint64_t>iid) << 1) | <uint64_t>side
        cdef Py_ssize_t mask = self._tr_cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(ex_mix2(k1, k2) & <uint64_t>mask)
        while self._tr_k2[i] != 0:
            if self._tr_k1[i] == k1 and self._tr_k2[i] == k2:
                return True
            i = (i + 1) & mask
        return False

    cdef int _remember_trade(self, uint32_t iid, int64_t trade_id, int side) except -1:
        cdef uint64_t k1 = <uint64_t>trade_id
        cdef uint64_t k2 = ((<uint64_t>iid) << 1) | <uint64_t>side
        cdef Py_ssize_t mask, i, old_cap
        cdef uint64_t *o1
        cdef uint64_t *o2
        cdef uint64_t *n1
        cdef uint64_t *n2
        cdef Py_ssize_t pos
        if self._tr_n == self.keep_trades:
            # forget the oldest remembered trade
            pos = self._tr_fifo_head
            self._tr_delete(self._tr_fifo[2 * pos], self._tr_fifo[2 * pos + 1])
            self._tr_fifo_head = (pos + 1) % self.keep_trades
            self._tr_n -= 1
            self.evicted_trades += 1
        if (self._tr_n + 1) * 2 > self._tr_cap:
            old_cap = self._tr_cap
            o1 = self._tr_k1
            o2 = self._tr_k2
            n1 = <uint64_t *>calloc(old_cap * 2, sizeof(uint64_t))
            n2 = <uint64_t *>calloc(old_cap * 2, sizeof(uint64_t))
            if n1 == NULL or n2 == NULL:
                free(n1)
                free(n2)
                raise MemoryError()
            self._tr_k1 = n1
            self._tr_k2 = n2
            self._tr_cap = old_cap * 2
            mask = self._tr_cap - 1
            for pos in range(old_cap):
                if o2[pos] != 0:
                    i = <Py_ssize_t>(ex_mix2(o1[pos], o2[pos]) & <uint64_t>mask)
                    while n2[i] != 0:
                        i = (i + 1) & mask
                    n1[i] = o1[pos]
                    n2[i] = o2[pos]
            free(o1)
            free(o2)
        mask = self._tr_cap - 1
        i = <Py_ssize_t>(ex_mix2(k1, k2) & <uint64_t>mask)
        while self._tr_k2[i] != 0:
            i = (i + 1) & mask
        self._tr_k1[i] = k1
        self._tr_k2[i] = k2
        pos = (self._tr_fifo_head + self._tr_n) % self.keep_trades
        self._tr_fifo[2 * pos] = k1
        self._tr_fifo[2 * pos + 1] = k2
        self._tr_n += 1
        return 0

    cdef void _tr_delete(self, uint64_t k1, uint64_t k2) noexcept nogil:
        cdef Py_ssize_t mask = self._tr_cap - 1
        cdef Py_ssize_t i = <Py_ssize_t>(ex_mix2(k1, k2) & <uint64_t>mask)
        cdef Py_ssize_t j, home
        while not (self._tr_k1[i] == k1 and self._tr_k2[i] == k2):
            if self._tr_k2[i] == 0:
                return
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            if self._tr_k2[j] == 0:
                break
            home = <Py_ssize_t>(ex_mix2(self._tr_k1[j], self._tr_k2[j]) & <uint64_t>mask)
            if (i <= j and i < home <= j) or (i > j and (home > i or home <= j)):
                continue
            self._tr_k1[i] = self._tr_k1[j]
            self._tr_k2[i] = self._tr_k2[j]
            i = j
        self._tr_k1[i] = 0
        self._tr_k2[i] = 0

    # ---- engine requests -------------------------------------------------------------------------

    cdef int register_order(self, int64_t coid, int owner, uint32_t iid, int side, int order_type,
                            int tif, int flags, int64_t price, int64_t stop_price, int64_t qty,
                            int64_t now, bint submitted) except -1:
        """A new order of the engine: INITIALIZED (or SUBMITTED). INVALID for id 0, an id already held,
        a size <= 0, a bad side / owner / instrument id 0."""
        cdef OrderEntry *e
        if (coid == 0 or qty <= 0 or price < 0 or (side != 0 and side != 1) or iid == 0
                or not 0 <= owner < OWNER_ALL or self.find(coid) != NULL):
            self._request_codes[EV_INVALID] += 1
            self._event(EV_INVALID, coid, iid, ST_INITIALIZED, ST_INITIALIZED, 0, qty, side, now)
            return EV_INVALID
        if iid >= self._cells_n_instruments:
            self._grow_cells(iid)
        e = self._new_entry(coid)
        e.owner = owner
        e.instrument_id = iid
        e.side = <uint8_t>side
        e.order_type = <uint8_t>order_type
        e.time_in_force = <uint8_t>tif
        e.flags = <uint8_t>flags
        e.price = price
        e.stop_price = stop_price
        e.quantity = qty
        e.status = ST_SUBMITTED if submitted else ST_INITIALIZED
        e.base_status = e.status
        e.ts_created = now
        e.ts_updated = now
        self._recount(e)
        self._request_codes[EV_OK] += 1
        return EV_OK

    cdef int mark_submitted(self, int64_t coid, int64_t now) noexcept nogil:
        cdef OrderEntry *e = self.find(coid)
        cdef int code
        if e == NULL:
            code = EV_UNKNOWN_ORDER
        elif e.status == ST_INITIALIZED:
            e.status = ST_SUBMITTED
            e.base_status = ST_SUBMITTED
            e.ts_updated = now
            self._request_codes[EV_OK] += 1
            return EV_OK
        elif e.status == ST_SUBMITTED:
            code = EV_DUPLICATE
        else:
            code = EV_STALE          # the venue already answered (or the order closed) first
        self._request_codes[code] += 1
        self._event(code, coid, e.instrument_id if e != NULL else 0, e.status if e != NULL else 0,
                    ST_SUBMITTED, 0, 0, e.side if e != NULL else 0, now)
        return code

    cdef int request_cancel(self, int64_t coid, int64_t now) noexcept nogil:
        """INITIALIZED -> CANCELLED (never sent: send nothing); live -> PENDING_CANCEL (send the cancel)."""
        cdef OrderEntry *e = self.find(coid)
        cdef int code, st
        if e == NULL:
            self._request_codes[EV_UNKNOWN_ORDER] += 1
            self._event(EV_UNKNOWN_ORDER, coid, 0, 0, ST_PENDING_CANCEL, 0, 0, 0, now)
            return EV_UNKNOWN_ORDER
        st = e.status
        if st == ST_INITIALIZED:
            e.status = ST_CANCELLED
            e.ts_updated = now
            self._recount(e)
            self._became_terminal(e)
            code = EV_OK
        elif st == ST_PENDING_CANCEL:
            code = EV_DUPLICATE
        elif is_terminal(st):
            code = EV_ILLEGAL
        else:
            if st != ST_PENDING_REPLACE:
                e.base_status = <uint8_t>st
            e.pending_price = 0
            e.pending_quantity = 0
            e.status = ST_PENDING_CANCEL
            e.ts_updated = now
            self._recount(e)
            code = EV_OK
        self._request_codes[code] += 1
        if code != EV_OK:
            self._event(code, coid, e.instrument_id, st, ST_PENDING_CANCEL, 0, 0, e.side, now)
        return code

    cdef int request_replace(self, int64_t coid, int64_t price, int64_t qty, int64_t now) noexcept nogil:
        """New price / size (0 keeps the current one). INITIALIZED: changed in place; a live order that
        is not pending -> PENDING_REPLACE. A size at or below the filled size is INVALID."""
        cdef OrderEntry *e = self.find(coid)
        cdef int code, st
        if e == NULL:
            self._request_codes[EV_UNKNOWN_ORDER] += 1
            self._event(EV_UNKNOWN_ORDER, coid, 0, 0, ST_PENDING_REPLACE, 0, qty, 0, now)
            return EV_UNKNOWN_ORDER
        st = e.status
        if price == 0:
            price = e.price
        if qty == 0:
            qty = e.quantity
        if price < 0 or qty <= e.filled:
            code = EV_INVALID
        elif is_terminal(st) or is_pending(st):
            code = EV_ILLEGAL
        elif st == ST_INITIALIZED:
            e.price = price
            e.quantity = qty
            e.ts_updated = now
            self._recount(e)
            code = EV_OK
        else:
            e.base_status = <uint8_t>st
            e.pending_price = price
            e.pending_quantity = qty
            e.status = ST_PENDING_REPLACE
            e.ts_updated = now
            self._recount(e)
            code = EV_OK
        self._request_codes[code] += 1
        if code != EV_OK:
            self._event(code, coid, e.instrument_id, st, ST_PENDING_REPLACE, 0, qty, e.side, now)
        return code

    cdef int local_reject(self, int64_t coid, int64_t reason, int64_t now) noexcept nogil:
        """INITIALIZED / SUBMITTED -> REJECTED with `reason` (risk denial, a send that never left)."""
        cdef OrderEntry *e = self.find(coid)
        cdef int st
        if e == NULL:
            self._request_codes[EV_UNKNOWN_ORDER] += 1
            self._event(EV_UNKNOWN_ORDER, coid, 0, 0, ST_REJECTED, 0, 0, 0, now)
            return EV_UNKNOWN_ORDER
        st = e.status
        if st != ST_INITIALIZED and st != ST_SUBMITTED:
            self._request_codes[EV_ILLEGAL] += 1
            self._event(EV_ILLEGAL, coid, e.instrument_id, st, ST_REJECTED, 0, 0, e.side, now)
            return EV_ILLEGAL
        e.status = ST_REJECTED
        e.reason = reason
        e.ts_updated = now
        self._recount(e)
        self._became_terminal(e)
        self._request_codes[EV_OK] += 1
        return EV_OK

    # ---- venue updates ---------------------------------------------------------------------------

    cdef int apply_update(self, const Record *r, int64_t now) except -1:
        """Apply one ORDER_UPDATE (head r[0], payload r[1]; the caller guarantees r[1] is readable when
        the head announces a continuation). Returns an OrderEventCode."""
        cdef int64_t coid = r.sequence
        cdef int side = 1 if r.flags & FLAG_ASK else 0
        cdef uint32_t iid = r.instrument_id
        cdef int to, cur, code
        cdef int64_t cum = r.aux0, qty = r.quantity, price = r.price
        cdef int64_t reason, stop, ts = r.ts_exchange
        cdef OrderEntry *e
        cdef bint changed
        if (r.flags & CONT_MASK) >> CONT_SHIFT < 1 or r[1].kind != KIND_CONTINUATION:
            self._update_codes[EV_INVALID] += 1
            self._event(EV_INVALID, coid, iid, 0, 0, 0, qty, side, now)
            return EV_INVALID
        to = <int>r[1].ts_exchange
        reason = r[1].aux1
        stop = r[1].quantity
        if (coid == 0 or iid == 0 or r[1].ts_exchange < 0 or r[1].ts_exchange >= ST_UNKNOWN or qty < 0 or cum < 0
                or price < 0 or (qty > 0 and cum > qty) or to == ST_INITIALIZED):
            self._update_codes[EV_INVALID] += 1
            self._event(EV_INVALID, coid, iid, 0, to if 0 <= to < N_STATUS else 0, 0, qty, side, now)
            return EV_INVALID
        e = self.find(coid)
        if e == NULL:
            if iid >= self._cells_n_instruments:
                self._grow_cells(iid)
            e = self._new_entry(coid)
            e.owner = owner_of_id(coid)
            e.instrument_id = iid
            e.side = <uint8_t>side
            e.order_type = <uint8_t>r[1].ts_local
            e.time_in_force = <uint8_t>r[1].sequence
            e.price = price
            e.stop_price = stop
            e.quantity = qty
            e.venue_filled = cum
            e.venue_order_id = r.aux1
            e.status = <uint8_t>to
            e.base_status = ST_ACCEPTED if is_pending(to) else <uint8_t>to
            if to == ST_PENDING_REPLACE:
                e.pending_price = price
                e.pending_quantity = qty
            e.reason = reason
            e.ts_created = now
            e.ts_updated = now
            e.ts_venue = ts
            self._recount(e)
            if is_terminal(to):
                self._became_terminal(e)
            self._update_codes[EV_ADOPTED] += 1
            self._event(EV_ADOPTED, coid, iid, 0, to, 0, qty, side, now)
            return EV_ADOPTED
        cur = e.status
        if e.instrument_id != iid or e.side != side or (0 < qty < e.filled):
            code = EV_INVALID
        elif is_terminal(cur):
            code = EV_DUPLICATE if to == cur else EV_ILLEGAL
        elif is_terminal(to):
            if to == ST_REJECTED and not (cur <= ST_SUBMITTED or (is_pending(cur) and e.base_status <= ST_SUBMITTED)):
                code = EV_ILLEGAL
            else:
                e.status = <uint8_t>to
                e.pending_price = 0
                e.pending_quantity = 0
                code = EV_OK
        elif ts != 0 and e.ts_venue != 0 and ts < e.ts_venue:
            code = EV_STALE
        elif to == ST_SUBMITTED:
            if cur == ST_INITIALIZED:
                e.status = ST_SUBMITTED
                e.base_status = ST_SUBMITTED
                code = EV_OK
            else:
                code = EV_DUPLICATE if cur == ST_SUBMITTED else EV_STALE
        elif to == ST_PENDING_CANCEL:
            if cur == ST_PENDING_CANCEL:
                code = EV_DUPLICATE
            else:
                if cur != ST_PENDING_REPLACE:
                    e.base_status = <uint8_t>cur
                e.pending_price = 0
                e.pending_quantity = 0
                e.status = ST_PENDING_CANCEL
                code = EV_OK
        elif to == ST_PENDING_REPLACE:
            if cur == ST_PENDING_REPLACE:
                code = EV_DUPLICATE
            elif cur == ST_PENDING_CANCEL:
                code = EV_ILLEGAL
            else:
                e.base_status = <uint8_t>cur
                e.pending_price = price
                e.pending_quantity = qty
                e.status = ST_PENDING_REPLACE
                code = EV_OK
        else:
            # to is ACCEPTED or PARTIALLY_FILLED
            if is_pending(cur):
                if reason != 0:
                    # the cancel / replace failed: back to the live status
                    e.status = <uint8_t>progress(progress(e.base_status, to), ST_ACCEPTED)
                    e.base_status = e.status
                    e.pending_price = 0
                    e.pending_quantity = 0
                    code = EV_OK
                elif cur == ST_PENDING_REPLACE and price == e.pending_price and qty == e.pending_quantity:
                    e.price = price
                    e.quantity = qty
                    e.status = <uint8_t>progress(progress(e.base_status, to), ST_ACCEPTED)
                    e.base_status = e.status
                    e.pending_price = 0
                    e.pending_quantity = 0
                    code = EV_OK
                else:
                    changed = progress(e.base_status, to) != e.base_status or cum > e.venue_filled
                    e.base_status = <uint8_t>progress(e.base_status, to)
                    code = EV_OK if changed else EV_DUPLICATE
            elif cur <= ST_SUBMITTED:
                e.status = <uint8_t>to
                e.base_status = <uint8_t>to
                code = EV_OK
            elif cur == ST_ACCEPTED:
                if to == ST_PARTIALLY_FILLED or price != e.price or (qty != 0 and qty != e.quantity):
                    e.status = <uint8_t>to
                    e.base_status = <uint8_t>to
                    code = EV_OK
                else:
                    code = EV_DUPLICATE
            else:
                # cur == PARTIALLY_FILLED
                if to == ST_ACCEPTED:
                    code = EV_STALE
                elif cum > e.venue_filled or price != e.price or (qty != 0 and qty != e.quantity):
                    code = EV_OK
                else:
                    code = EV_DUPLICATE
            if code == EV_OK and not is_pending(e.status):
                # a venue-side amend (or the confirmed replace) carries the order's current price / size
                e.price = price
                if qty != 0:
                    e.quantity = qty
        self._update_codes[code] += 1
        if code != EV_OK:
            self._event(code, coid, iid, cur, to, 0, qty, side, now)
            return code
        if cum > e.venue_filled:
            e.venue_filled = cum
        if r.aux1 != 0:
            e.venue_order_id = r.aux1
        if stop != 0:
            e.stop_price = stop
        if ts > e.ts_venue:
            e.ts_venue = ts
        e.reason = reason
        e.ts_updated = now
        self._recount(e)
        if is_terminal(e.status):
            self._became_terminal(e)
        return EV_OK

    cdef int apply_fill(self, const Record *r, int64_t now, int *owner) except -1:
        """Apply one FILL; `owner` receives the owner the fill belongs to. OK and UNKNOWN_ORDER fills
        change positions (the caller applies them to the portfolio); every other code must not."""
        cdef int64_t trade_id = r.sequence
        cdef int64_t coid = r.aux0
        cdef int side = 1 if r.flags & FLAG_ASK else 0
        cdef uint32_t iid = r.instrument_id
        cdef int64_t qty = r.quantity, price = r.price, limit
        cdef OrderEntry *e
        cdef int code, cur = 0
        owner[0] = owner_of_id(coid)
        if qty <= 0 or iid == 0 or (r.flags & CONT_MASK) >> CONT_SHIFT < 1 or r[1].kind != KIND_CONTINUATION:
            code = EV_INVALID
        elif trade_id != 0 and self._trade_seen(iid, trade_id, side):
            code = EV_DUPLICATE
        else:
            e = self.find(coid)
            if e == NULL:
                code = EV_UNKNOWN_ORDER
            else:
                cur = e.status
                owner[0] = e.owner
                if e.instrument_id != iid or e.side != side:
                    code = EV_INVALID
                elif is_terminal(cur):
                    if e.filled + qty <= e.venue_filled:
                        code = EV_OK          # a late fill the venue already confirmed
                    else:
                        code = EV_OVERFILL if cur == ST_FILLED else EV_ILLEGAL
                else:
                    limit = e.quantity
                    if cur == ST_PENDING_REPLACE and e.pending_quantity > limit:
                        limit = e.pending_quantity
                    code = EV_OK if e.filled + qty <= limit else EV_OVERFILL
                if code == EV_OK:
                    e.filled += qty
                    e.filled_notional += ex_mul64(price, qty)
                    e.n_fills += 1
                    if e.filled > e.venue_filled:
                        e.venue_filled = e.filled
                    if not is_terminal(cur):
                        if e.filled >= e.quantity and not (cur == ST_PENDING_REPLACE and e.filled < e.pending_quantity):
                            e.status = ST_FILLED
                            e.pending_price = 0
                            e.pending_quantity = 0
                        elif is_pending(cur):
                            e.base_status = ST_PARTIALLY_FILLED
                        else:
                            e.status = ST_PARTIALLY_FILLED
                            e.base_status = ST_PARTIALLY_FILLED
                    e.ts_updated = now
                    self._recount(e)
                    if is_terminal(e.status) and not is_terminal(cur):
                        self._became_terminal(e)
            if code == EV_OK or code == EV_UNKNOWN_ORDER:
                if trade_id != 0:
                    self._remember_trade(iid, trade_id, side)
                else:
                    self.fills_without_trade_id += 1
        self._fill_codes[code] += 1
        if code != EV_OK:
            self._event(code, coid, iid, cur, FILL_STATUS_MARK, trade_id, qty, side, now)
        return code

    # ---- reading -------------------------------------------------------------------------------------

    cdef void write_record(self, const OrderEntry *e, Record *out) noexcept nogil:
        """The entry's current state as an ORDER_UPDATE (out[0] head, out[1] continuation)."""
        memset(out, 0, 2 * sizeof(Record))
        out[0].kind = KIND_ORDER_UPDATE
        out[0].flags = (FLAG_ASK if e.side else 0) | (1 << CONT_SHIFT)
        out[0].instrument_id = e.instrument_id
        out[0].ts_exchange = e.ts_venue
        out[0].ts_local = e.ts_updated
        out[0].sequence = e.client_order_id
        out[0].price = e.price
        out[0].quantity = e.quantity
        out[0].aux0 = e.filled
        out[0].aux1 = e.venue_order_id
        out[1].kind = KIND_CONTINUATION
        out[1].flags = 1
        out[1].instrument_id = e.instrument_id
        out[1].ts_exchange = e.status
        out[1].ts_local = e.order_type
        out[1].sequence = e.time_in_force
        out[1].price = <int64_t>(e.filled_notional / e.filled) if e.filled > 0 else 0
        out[1].quantity = e.stop_price
        out[1].aux0 = e.quantity - e.filled if e.quantity > e.filled and not is_terminal(e.status) else 0
        out[1].aux1 = e.reason

    cdef Py_ssize_t open_ids(self, int owner, int64_t *out, Py_ssize_t cap) noexcept nogil:
        """Client order ids of live orders of `owner` (ALL: every owner) into out; returns how many
        there are (may exceed cap: then only cap were written)."""
        cdef Py_ssize_t i, n = 0
        cdef OrderEntry *e
        for i in range(self._used):
            e = &self._orders[i]
            if e.client_order_id == 0 or is_terminal(e.status):
                continue
            if owner != OWNER_ALL and e.owner != owner:
                continue
            if n < cap:
                out[n] = e.client_order_id
            n += 1
        return n

    # ---- Python API ------------------------------------------------------------------------------

    cdef _check_code(self, int code, str what, int64_t coid):
        if code == EV_ILLEGAL and self.raise_on_illegal:
            raise IllegalTransitionError(f"order {coid}: {what} is not allowed from its current state "
                                         f"(counted and logged, not applied)", self._last_event())
        return OrderEventCode(code)

    cdef _last_event(self):
        if self._ev_n == 0:
            return None
        return _event_dict(&self._events[(self._ev_head + self._ev_n - 1) % self._ev_cap])

    def register(self, int64_t client_order_id, uint32_t instrument_id, side, int64_t quantity_raw,
                 int64_t price_raw=0, *, int order_type=OT_LIMIT, int time_in_force=1, int64_t stop_price_raw=0,
                 bint reduce_only=False, bint post_only=False, owner=None, bint submitted=False, ts=None):
        """Add an order of the engine (INITIALIZED, or SUBMITTED with submitted=True). side: 0 / "buy",
        1 / "sell". owner defaults to the strategy index in the client order id. Raises ValueError
        for an invalid order or an id already held."""
        cdef int s = _side(side)
        cdef int own = owner_of_id(client_order_id) if owner is None else owner
        cdef int flags = (ORDER_REDUCE_ONLY if reduce_only else 0) | (ORDER_POST_ONLY if post_only else 0)
        cdef int code = self.register_order(client_order_id, own, instrument_id, s, order_type, time_in_force,
                                            flags, price_raw, stop_price_raw, quantity_raw,
                                            now_us() if ts is None else ts, submitted)
        if code != EV_OK:
            if client_order_id != 0 and self.find(client_order_id) != NULL:
                raise ValueError(f"order {client_order_id} is already in the table")
            raise ValueError(f"invalid order {client_order_id}: quantity {quantity_raw}, price {price_raw}, "
                             f"side {side!r}, instrument {instrument_id}, owner {own}")
        return OrderEventCode.OK

    def submitted(self, int64_t client_order_id, ts=None):
        return self._check_code(self.mark_submitted(client_order_id, now_us() if ts is None else ts),
                                "SUBMITTED", client_order_id)

    def cancel(self, int64_t client_order_id, ts=None):
        """Record a cancel request. Returns OK (then status() is PENDING_CANCEL: send it, or CANCELLED:
        the order was never sent), DUPLICATE (already pending), ILLEGAL (closed), UNKNOWN_ORDER."""
        return self._check_code(self.request_cancel(client_order_id, now_us() if ts is None else ts),
                                "a cancel request", client_order_id)

    def replace(self, int64_t client_order_id, int64_t price_raw=0, int64_t quantity_raw=0, ts=None):
        """Record a replace request (0 keeps a field)."""
        return self._check_code(self.request_replace(client_order_id, price_raw, quantity_raw,
                                                     now_us() if ts is None else ts),
                                "a replace request", client_order_id)

    def reject(self, int64_t client_order_id, int64_t reason=0, ts=None):
        """Reject an order that never reached the venue (INITIALIZED / SUBMITTED -> REJECTED)."""
        return self._check_code(self.local_reject(client_order_id, reason, now_us() if ts is None else ts),
                                "a local rejection", client_order_id)

    def apply(self, records, ts=None):
        """Apply ORDER_UPDATE and FILL records (other kinds are skipped); returns the code of each
        update / fill, in order. A fill's owner is the one applied to positions (see apply_fill)."""
        cdef cnp.ndarray arr = as_record_array(records, "OrderTable.apply")
        cdef const Record *recs = record_data(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0), i = 0
        cdef int64_t now = now_us() if ts is None else ts
        cdef int code, owner
        cdef list out = []
        while i < n:
            if recs[i].kind == KIND_ORDER_UPDATE or recs[i].kind == KIND_FILL:
                if i + 1 >= n or (recs[i].flags & CONT_MASK) >> CONT_SHIFT < 1:
                    raise ValueError(f"record {i}: an ORDER_UPDATE / FILL needs its continuation slot")
                if recs[i].kind == KIND_ORDER_UPDATE:
                    code = self.apply_update(&recs[i], now)
                    out.append(self._check_code(code, f"status {recs[i + 1].ts_exchange}", recs[i].sequence))
                else:
                    code = self.apply_fill(&recs[i], now, &owner)
                    out.append(self._check_code(code, "a fill", recs[i].aux0))
                i += 1 + ((recs[i].flags & CONT_MASK) >> CONT_SHIFT)
            else:
                i += 1
        return out

    def get(self, int64_t client_order_id):
        """The order as a dict of raw values, or None."""
        cdef OrderEntry *e = self.find(client_order_id)
        if e == NULL:
            return None
        return _entry_dict(e)

    def status(self, int64_t client_order_id):
        """extrema.OrderStatus of an order, or None if the table does not hold it."""
        cdef OrderEntry *e = self.find(client_order_id)
        if e == NULL:
            return None
        from extrema.execution.orders import OrderStatus
        return OrderStatus(e.status)

    def record(self, int64_t client_order_id):
        """The order's current state as a 2-slot ORDER_UPDATE record array (what a strategy's on_order
        reads), or None."""
        cdef OrderEntry *e = self.find(client_order_id)
        cdef cnp.ndarray out
        if e == NULL:
            return None
        out = np.zeros(2, dtype=RECORD_DTYPE)
        self.write_record(e, <Record *>cnp.PyArray_DATA(out))
        return out

    def open_orders(self, owner=None, instrument_id=None):
        """Client order ids of live orders (of one owner / instrument), oldest slot first."""
        cdef Py_ssize_t i
        cdef OrderEntry *e
        cdef list out = []
        for i in range(self._used):
            e = &self._orders[i]
            if e.client_order_id == 0 or is_terminal(e.status):
                continue
            if owner is not None and e.owner != owner:
                continue
            if instrument_id is not None and e.instrument_id != instrument_id:
                continue
            out.append(e.client_order_id)
        return out

    def open_quantity(self, int owner, uint32_t instrument_id):
        """(buy, sell) remaining raw size of the live orders of owner (0..63, 64 external, 65 all)."""
        if not 0 <= owner < N_OWNERS:
            raise ValueError(f"owner must be 0..{N_OWNERS - 1}, got {owner}")
        cdef OpenCell *c = self.cell(instrument_id, owner)
        if c == NULL:
            return (0, 0)
        return (c.buy, c.sell)

    def open_count(self, int owner=OWNER_ALL):
        """Live orders of owner (0..63, 64 external, 65 all)."""
        if not 0 <= owner < N_OWNERS:
            raise ValueError(f"owner must be 0..{N_OWNERS - 1}, got {owner}")
        return self._open_orders[owner]

    def knows_trade(self, uint32_t instrument_id, int64_t trade_id, side):
        """Whether a venue trade (instrument, trade id, side) was already counted."""
        return self._trade_seen(instrument_id, trade_id, _side(side))

    def to_numpy(self):
        """Every order held, as an ORDER_DTYPE array (slot order)."""
        cdef Py_ssize_t i, k = 0
        cdef OrderEntry *e
        out = np.zeros(self._count, dtype=ORDER_DTYPE)
        for i in range(self._used):
            e = &self._orders[i]
            if e.client_order_id == 0:
                continue
            out[k] = (e.client_order_id, e.venue_order_id, e.instrument_id, e.owner, e.side, e.status,
                      e.base_status, e.order_type, e.time_in_force, e.flags, e.price, e.stop_price, e.quantity,
                      e.filled, e.venue_filled, remaining_of(e),
                      <int64_t>(e.filled_notional / e.filled) if e.filled > 0 else 0,
                      e.pending_price, e.pending_quantity, e.reason, e.n_fills, e.ts_created, e.ts_updated)
            k += 1
        return out

    def events(self, bint clear=True):
        """The logged events (everything but OK), oldest first, as dicts; clear=True empties the log."""
        cdef Py_ssize_t i
        cdef list out = [_event_dict(&self._events[(self._ev_head + i) % self._ev_cap]) for i in range(self._ev_n)]
        if clear:
            self._ev_head = 0
            self._ev_n = 0
        return out

    def stats(self):
        names = [c.name.lower() for c in OrderEventCode]
        return {"orders": self._count, "open": self._open_orders[OWNER_ALL],
                "updates": {names[i]: self._update_codes[i] for i in range(N_EVENT_CODES) if self._update_codes[i]},
                "fills": {names[i]: self._fill_codes[i] for i in range(N_EVENT_CODES) if self._fill_codes[i]},
                "requests": {names[i]: self._request_codes[i] for i in range(N_EVENT_CODES) if self._request_codes[i]},
                "fills_without_trade_id": self.fills_without_trade_id, "trades_remembered": self._tr_n,
                "evicted_orders": self.evicted_orders, "evicted_trades": self.evicted_trades,
                "events_lost": self.events_lost}

    def __len__(self):
        return self._count

    def __contains__(self, client_order_id):
        return isinstance(client_order_id, int) and self.find(client_order_id) != NULL

    def __repr__(self):
        return f"<OrderTable {self._count} orders, {self._open_orders[OWNER_ALL]} open>"


cdef int _side(object side) except -1:
    if side == 0 or side == "buy":
        return 0
    if side == 1 or side == "sell":
        return 1
    raise ValueError(f"side must be 0 / 'buy' or 1 / 'sell', got {side!r}")


cdef dict _entry_dict(const OrderEntry *e):
    from extrema.execution.orders import OrderStatus
    return {"client_order_id": e.client_order_id, "venue_order_id": e.venue_order_id,
            "instrument_id": e.instrument_id, "owner": e.owner, "side": "sell" if e.side else "buy",
            "status": OrderStatus(e.status), "base_status": OrderStatus(e.base_status),
            "order_type": e.order_type, "time_in_force": e.time_in_force, "flags": e.flags,
            "price_raw": e.price, "stop_price_raw": e.stop_price, "quantity_raw": e.quantity,
            "filled_raw": e.filled, "venue_filled_raw": e.venue_filled, "remaining_raw": remaining_of(e),
            "filled_notional_raw": <object>e.filled_notional,
            "avg_price_raw": <int64_t>(e.filled_notional / e.filled) if e.filled > 0 else 0,
            "pending_price_raw": e.pending_price, "pending_quantity_raw": e.pending_quantity,
            "reason": e.reason, "fills": e.n_fills, "ts_created": e.ts_created, "ts_updated": e.ts_updated,
            "ts_venue": e.ts_venue}


cdef dict _event_dict(const OrderEvent *ev):
    from extrema.execution.orders import OrderStatus
    return {"code": OrderEventCode(ev.code), "client_order_id": ev.client_order_id,
            "instrument_id": ev.instrument_id,
            "from_status": OrderStatus(ev.from_status),
            "to_status": "FILL" if ev.to_status == FILL_STATUS_MARK else OrderStatus(ev.to_status),
            "trade_id": ev.trade_id, "quantity_raw": ev.quantity, "side": "sell" if ev.side else "buy",
            "ts": ev.ts}
