from libc.stdint cimport int64_t, uint64_t, uint32_t, int32_t, uint8_t
from extrema._core.types cimport Record
from extrema._core.ex_money cimport ex_i128

# Order statuses and types: the one vocabulary of types.pxd (extrema.OrderStatus / OrderType), carried in
# ORDER_UPDATE p0 / p1.
from extrema._core.types cimport (
    ORDER_STATUS_INITIALIZED as ST_INITIALIZED, ORDER_STATUS_SUBMITTED as ST_SUBMITTED,
    ORDER_STATUS_ACCEPTED as ST_ACCEPTED, ORDER_STATUS_PARTIALLY_FILLED as ST_PARTIALLY_FILLED,
    ORDER_STATUS_FILLED as ST_FILLED, ORDER_STATUS_CANCELLED as ST_CANCELLED, ORDER_STATUS_REJECTED as ST_REJECTED,
    ORDER_STATUS_EXPIRED as ST_EXPIRED, ORDER_STATUS_PENDING_CANCEL as ST_PENDING_CANCEL,
    ORDER_STATUS_PENDING_REPLACE as ST_PENDING_REPLACE, ORDER_STATUS_UNKNOWN as ST_UNKNOWN,
    N_ORDER_STATUS as N_STATUS,
    ORDER_TYPE_UNKNOWN as OT_UNKNOWN, ORDER_TYPE_MARKET as OT_MARKET, ORDER_TYPE_LIMIT as OT_LIMIT,
    ORDER_TYPE_STOP_MARKET as OT_STOP_MARKET, ORDER_TYPE_STOP_LIMIT as OT_STOP_LIMIT,
    ORDER_TYPE_TAKE_PROFIT_MARKET as OT_TAKE_PROFIT_MARKET, ORDER_TYPE_TAKE_PROFIT_LIMIT as OT_TAKE_PROFIT_LIMIT,
    ORDER_TYPE_LIMIT_MAKER as OT_LIMIT_MAKER, ORDER_TYPE_TRAILING_STOP_MARKET as OT_TRAILING_STOP_MARKET,
    ORDER_TYPE_LIQUIDATION as OT_LIQUIDATION, N_ORDER_TYPES)

# Who an order / position belongs to: strategy index 0..63 (the low 6 bits of the engine's client order
# ids), EXTERNAL for orders this engine did not place, ALL for the venue-wide aggregate.
cdef enum:
    MAX_STRATEGY_OWNERS = 64
    OWNER_EXTERNAL = 64
    OWNER_ALL = 65
    N_OWNERS = 66

# What applying an update, a fill or a local request did (extrema.OrderEventCode).
cdef enum:   # OrderEventCode
    EV_OK = 0              # applied
    EV_DUPLICATE = 1       # the same state / the same venue trade again: ignored
    EV_STALE = 2           # an older state arriving late: ignored
    EV_ILLEGAL = 3         # a transition the state machine forbids: reported, not applied
    EV_UNKNOWN_ORDER = 4   # a fill of an order the table does not hold (applied to positions by the caller)
    EV_OVERFILL = 5        # a fill beyond the order's size: not applied
    EV_INVALID = 6         # malformed input (size <= 0, bad status, side / instrument changed...)
    EV_ADOPTED = 7         # an update of an unknown order: an entry was created from it
    N_EVENT_CODES = 8

cdef enum:
    ORDER_REDUCE_ONLY = 1
    ORDER_POST_ONLY = 2
    FILL_STATUS_MARK = 255   # OrderEvent.to_status of a fill event

cdef struct OrderEntry:
    int64_t client_order_id    # 0 = free slot
    int64_t venue_order_id
    int64_t price              # limit price raw (0 for market orders)
    int64_t stop_price
    int64_t quantity           # current size raw (a confirmed replace changes it)
    int64_t filled             # sum of the accepted fills
    int64_t venue_filled       # largest cumulative filled size the venue reported (updates and fills)
    ex_i128 filled_notional    # sum of price x size of the accepted fills (pp + sp decimals)
    int64_t pending_price      # replace requested, not yet confirmed (PENDING_REPLACE)
    int64_t pending_quantity
    int64_t open_counted       # remaining size as counted in the open-quantity cells
    int64_t ts_created
    int64_t ts_updated         # local time of the last applied change
    int64_t ts_venue           # venue time of the last applied ORDER_UPDATE (stale detection)
    int64_t reason
    int64_t n_fills
    uint32_t instrument_id
    int32_t owner
    uint8_t side               # 0 buy, 1 sell
    uint8_t status
    uint8_t base_status        # the venue-side status underneath PENDING_CANCEL / PENDING_REPLACE
    uint8_t order_type
    uint8_t time_in_force
    uint8_t flags              # ORDER_REDUCE_ONLY | ORDER_POST_ONLY
    uint8_t counted_open       # counted in the open-order counts

cdef struct OrderEvent:
    int64_t client_order_id
    int64_t trade_id
    int64_t quantity
    int64_t ts
    uint32_t instrument_id
    uint8_t code
    uint8_t from_status
    uint8_t to_status          # FILL_STATUS_MARK for a fill
    uint8_t side

# Open (not terminal) orders per (instrument, owner): remaining size per side and their count.
cdef struct OpenCell:
    int64_t buy
    int64_t sell
    int64_t orders


cdef class OrderTable:
    cdef OrderEntry *_orders
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _used            # slots ever handed out (high-water mark)
    cdef int32_t *_free
    cdef Py_ssize_t _n_free
    cdef Py_ssize_t _count
    # coid -> slot: open addressing, linear probing, backward-shift deletion
    cdef int64_t *_ix_keys
    cdef int32_t *_ix_vals
    cdef Py_ssize_t _ix_cap
    # terminal orders, oldest first: evicted beyond keep_terminal
    cdef int32_t *_term
    cdef Py_ssize_t _term_cap
    cdef Py_ssize_t _term_head
    cdef Py_ssize_t _term_n
    cdef readonly Py_ssize_t keep_terminal
    # venue trades already counted: (instrument, trade id, side) with FIFO eviction beyond keep_trades
    cdef uint64_t *_tr_k1
    cdef uint64_t *_tr_k2
    cdef Py_ssize_t _tr_cap
    cdef uint64_t *_tr_fifo
    cdef Py_ssize_t _tr_fifo_head
    cdef Py_ssize_t _tr_n
    cdef readonly Py_ssize_t keep_trades
    # open quantities
    cdef OpenCell *_cells
    cdef uint32_t _cells_n_instruments
    cdef int64_t _open_orders[N_OWNERS]
    # events and counters
    cdef OrderEvent *_events
    cdef Py_ssize_t _ev_cap
    cdef Py_ssize_t _ev_head
    cdef Py_ssize_t _ev_n
    cdef readonly int64_t events_lost
    cdef int64_t _update_codes[N_EVENT_CODES]
    cdef int64_t _fill_codes[N_EVENT_CODES]
    cdef int64_t _request_codes[N_EVENT_CODES]
    cdef readonly int64_t fills_without_trade_id
    cdef readonly int64_t evicted_orders
    cdef readonly int64_t evicted_trades
    cdef public bint raise_on_illegal

    # Compiled API (engine thread). Each returns an OrderEventCode; -1 only on memory exhaustion.
    cdef int register_order(self, int64_t coid, int owner, uint32_t iid, int side, int order_type,
                            int tif, int flags, int64_t price, int64_t stop_price, int64_t qty,
                            int64_t now, bint submitted) except -1
    cdef int mark_submitted(self, int64_t coid, int64_t now) noexcept nogil
    cdef int request_cancel(self, int64_t coid, int64_t now) noexcept nogil
    cdef int request_replace(self, int64_t coid, int64_t price, int64_t qty, int64_t now) noexcept nogil
    cdef int local_reject(self, int64_t coid, int64_t reason, int64_t now) noexcept nogil
    cdef int apply_update(self, const Record *r, int64_t now) except -1
    cdef int apply_fill(self, const Record *r, int64_t now, int *owner) except -1
    cdef OrderEntry *find(self, int64_t coid) noexcept nogil
    cdef inline OpenCell *cell(self, uint32_t iid, int owner) noexcept nogil:
        if iid >= self._cells_n_instruments:
            return NULL
        return &self._cells[<Py_ssize_t>iid * N_OWNERS + owner]
    cdef inline int64_t open_orders_of(self, int owner) noexcept nogil:
        return self._open_orders[owner]
    cdef void write_record(self, const OrderEntry *e, Record *out) noexcept nogil
    cdef Py_ssize_t open_ids(self, int owner, int64_t *out, Py_ssize_t cap) noexcept nogil

    # internals
    cdef int _grow_slots(self) except -1
    cdef int _grow_index(self) except -1
    cdef int _grow_cells(self, uint32_t iid) except -1
    cdef int _ix_insert(self, int64_t coid, int32_t slot) noexcept nogil
    cdef void _ix_delete(self, int64_t coid) noexcept nogil
    cdef OrderEntry *_new_entry(self, int64_t coid) except NULL
    cdef void _became_terminal(self, OrderEntry *e) noexcept nogil
    cdef void _recount(self, OrderEntry *e) noexcept nogil
    cdef bint _trade_seen(self, uint32_t iid, int64_t trade_id, int side) noexcept nogil
    cdef int _remember_trade(self, uint32_t iid, int64_t trade_id, int side) except -1
    cdef void _tr_delete(self, uint64_t k1, uint64_t k2) noexcept nogil
    cdef void _event(self, int code, int64_t coid, uint32_t iid, int from_st, int to_st, int64_t trade_id,
                     int64_t qty, int side, int64_t ts) noexcept nogil
    cdef _check_code(self, int code, str what, int64_t coid)
    cdef _last_event(self)
