# cython: boundscheck=False, wraparound=False, cdivision=True
"""The backtest's compiled core: a simulated exchange and the replay loop that drives the engine.

    sim = SimExchange(engine, registry, latency_mode, ...)    # built by extrema.backtest.Backtest
    sim.feed(batch)                                            # RECORD_DTYPE arrays, nondecreasing ts_local
    sim.finish()                                               # end of data: everything still due is delivered

Two clocks, as on a real venue (the hftbacktest model): every market record has an *exchange* time (when
the venue's book changed) and a *local* time (when the strategy saw it, its ts_local). The exchange side
keeps one L2 book per instrument (extrema.OrderBook, fed the replayed records at their exchange time),
the strategy's orders with their queue position, and matches. The local side is the engine: each
record is applied to the order table / portfolio (ExecutionCore.process_ptr) and dispatched
(Dispatcher.dispatch_ptr) as Engine._emit does live, with the replay clock at the record's local time;
the dispatcher reads the records in place (they are published into the engine's ring too when another
consumer reads it, see SimExchange._deliver).

Events are taken in time order, one at a time, so the strategy's actions interleave exactly with the
data: the next exchange event (a market record at its exchange time, or an order / cancel / replace
arriving after the entry latency) goes first when it is due no later than the next local event (a
response - order update and fill records - due after the response latency, a housekeeping event such as
a timer, or the next market record at its local time). Ties: exchange before local; responses before
housekeeping before market records.

The loop is compiled and allocation-free per record: book apply, queue updates of the instrument's
resting orders (only instruments with resting orders pay for it), the ring and the dispatcher. Python is
entered only by strategy hooks, order requests and the housekeeping events (timers, bar clock, risk
clock, equity samples) that the runner schedules.

Matching (documented in extrema/backtest/models.py too):
* a marketable order walks the replayed book at its arrival (one fill per level, taker fee); IOC / market
  remainders expire, FOK expires unless the whole size is there, GTC / GTD remainders rest; post-only
  (GTX or post_only) that would take is rejected (POST_ONLY_WOULD_TAKE);
* a resting order fills (maker fee, at its price) from trades at its price once the queue ahead of it
  is consumed (queue model), fully from a trade through its price, and fully when the replayed book's
  opposite side moves through its price;
* our orders do not change the replayed book (no market impact): each marketable order sees the
  recorded book;
* reduce-only orders are rejected when they cannot reduce the account's position and never flip it
  (the remainder expires when the position is closed), as Binance does;
* rejections the venue would give: unknown instrument, price off the tick grid or size off the lot grid
  or under the minimum notional (PRICE_QTY_LIMITS), post-only that would take, reduce-only that cannot
  reduce; a cancel / replace of an order the venue does not hold live is counted and answered with the
  order's state (a failed replace carries UNKNOWN_ORDER so the order table restores the order).

Conditional orders (stop-market, stop-limit, take-profit market / limit with a stop price) are held by the
venue until their trigger, as Binance does
(https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api, "New Order": STOP /
STOP_MARKET trigger when the price >= stopPrice for a buy and <= stopPrice for a sell, TAKE_PROFIT /
TAKE_PROFIT_MARKET the other way round; spot's STOP_LOSS / TAKE_PROFIT follow the same rule on the last
price). The price is the replayed last trade price (workingType CONTRACT_PRICE, the default) or the mark
price of KIND_MARK_PRICE records (MARK_PRICE), per order. An order whose condition already holds when it
arrives is rejected (Binance -2021 "Order would immediately trigger"; reason OTHER). At the trigger (the
exchange time of the trade / mark record that met the condition) the order becomes the market or limit
order it carries and matches exactly like one arriving then: a market walks the book, a limit takes what
crosses and rests the rest behind the level's size (IOC / FOK / post-only at that moment as for any limit).
Reduce-only is checked at the trigger (a stop-loss may be placed before the position it protects is
filled). Armed orders are triggered oldest first; armed GTD orders expire at the first trigger check
(trade / mark record of their instrument) past their expiry. An armed order cannot be replaced (Binance
modifies LIMIT orders only): the replace is refused with reason OTHER and the order stays as it was.
"""
cimport cython
from libc.stdint cimport int64_t, int32_t, uint32_t, int8_t, uint16_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset, memcpy, memmove
from libc.math cimport pow, log, llround, INFINITY
from cpython.ref cimport PyObject

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport (
    Record, KIND_BOOK_DELTA, KIND_TRADE, KIND_QUOTE, KIND_BOOK_RESET, KIND_ORDER_UPDATE, KIND_FILL,
    KIND_TIMER, KIND_CONTINUATION, KIND_BALANCE, KIND_POSITION, KIND_MARK_PRICE, FLAG_ASK, FLAG_LAST, FLAG_MAKER,
    FLAG_AGGRESSOR_UNKNOWN, CONT_MASK, CONT_SHIFT,
    ORDER_STATUS_ACCEPTED, ORDER_STATUS_PARTIALLY_FILLED, ORDER_STATUS_FILLED, ORDER_STATUS_CANCELLED,
    ORDER_STATUS_REJECTED, ORDER_STATUS_EXPIRED, ORDER_TYPE_MARKET, ORDER_TYPE_LIMIT, ORDER_TYPE_LIMIT_MAKER,
    ORDER_TYPE_STOP_MARKET, ORDER_TYPE_STOP_LIMIT, ORDER_TYPE_TAKE_PROFIT_MARKET, ORDER_TYPE_TAKE_PROFIT_LIMIT,
    TIF_GTC, TIF_IOC, TIF_FOK, TIF_GTX, TIF_GTD,
    EXEC_NEW, EXEC_CANCELED, EXEC_REJECTED, EXEC_TRADE, EXEC_EXPIRED, EXEC_AMENDMENT,
    ORDER_REASON_NONE, ORDER_REASON_OTHER, ORDER_REASON_POST_ONLY_WOULD_TAKE, ORDER_REASON_PRICE_QTY_LIMITS,
    ORDER_REASON_UNKNOWN_ORDER, ORDER_REASON_INSUFFICIENT_LIQUIDITY)
from extrema._core.book cimport OrderBook, BOOK_OK, BookStatus
from extrema._core.portfolio cimport Portfolio
from extrema._core.execution cimport ExecutionCore
from extrema._core.ring cimport Ring, RingConsumer, ex_ring_header, EX_SLOT_ACTIVE
from extrema._core.ex_atomic cimport ex_load_acquire_u32
from extrema._core.dispatch cimport Dispatcher
from extrema._core.records cimport as_record_array, record_data

cnp.import_array()

cdef int64_t NEVER = 0x7FFFFFFFFFFFFFFF

# Queue models (extrema.backtest.models): ConservativeQueue, ProbabilisticQueue with a power or log f.
cdef enum:
    QUEUE_CONSERVATIVE = 0
    QUEUE_PROBABILISTIC = 1
    PROB_POWER = 0
    PROB_LOG = 1

# Latency models: constant (exchange time = ts_local - feed_us) or from the data's two timestamps.
cdef enum:
    LAT_CONSTANT = 0
    LAT_DATA = 1
    # how DataLatency picks order entry / response latency when no fixed figure is given
    LAT_FIXED = 0
    LAT_FEED_LATEST = 1
    LAT_FEED_PERCENTILE = 2

# What arrives at the exchange
cdef enum:
    ARR_NEW = 0
    ARR_CANCEL = 1
    ARR_REPLACE = 2

# Exchange-side state of an order
cdef enum:
    SO_IN_FLIGHT = 0
    SO_LIVE = 1
    SO_DONE = 2

cdef enum:
    SO_REDUCE_ONLY = 1
    SO_POST_ONLY = 2

cdef enum:
    LEVELS_FIRST = 4            # levels a book walk reads first (most marketable orders take one or two)

# What triggers a conditional order (Binance USD-M workingType): the last trade price (CONTRACT_PRICE, the
# default and spot's only choice) or the mark price (MARK_PRICE: KIND_MARK_PRICE records).
cdef enum:
    TRIGGER_LAST = 0
    TRIGGER_MARK = 1


cdef struct SimOrder:
    int64_t coid
    uint32_t iid
    int32_t next                # resting list of the instrument (doubly linked), -1 = end
    int32_t prev
    int8_t side                 # 0 buy, 1 sell
    int8_t order_type
    int8_t tif
    int8_t flags                # SO_REDUCE_ONLY | SO_POST_ONLY
    int8_t state                # SO_*
    int8_t status               # last OrderStatus sent
    int8_t resting
    int8_t reason
    int8_t armed                # a conditional order waiting for its trigger (in the instrument's armed list)
    int8_t trigger_src          # TRIGGER_LAST | TRIGGER_MARK
    int32_t owner
    int64_t price
    int64_t stop_price          # trigger of stop / take-profit orders (raw price), 0 for others
    int64_t quantity
    int64_t filled
    double notional_filled      # sum price x size (raw units), for the average price
    double front                # size ahead of us at our price (raw size units)
    int64_t traded_at_level     # trade volume at our price since the level's last depth update
    int64_t expire_us           # GTD (exchange clock), 0 = none
    int64_t last_arrival        # a later request of this order never overtakes an earlier one
    int64_t venue_id
    int64_t submit_us           # local time the strategy submitted
    int64_t ack_us              # local time the first response reached the strategy (0: none yet)
    int64_t done_us             # local time the terminal response reached the strategy


cdef struct Arrival:
    int32_t kind
    int32_t slot
    int64_t price
    int64_t qty


cdef struct Response:
    int32_t n                   # records used (2 or 4)
    int32_t slot                # the order (ack / done bookkeeping)
    int8_t terminal
    Record recs[4]


# The arrival and response queues: one binary heap of int32 pool slots ordered by (due time, sequence),
# over a pool of payloads (Arrival or Response, `elem` bytes each). A sift moves 4-byte slots and reads
# the 16-byte keys; the payloads (a Response is ~270 bytes) never move once written. Sequences are
# unique, so the order things come out is fully determined by (due, seq): ties in time go by sequence.
cdef struct EventKey:
    int64_t due
    int64_t seq


cdef struct EventQueue:
    char *pool                  # payloads, elem bytes per slot
    EventKey *keys              # per slot
    int32_t *heap               # queued slots, heap-ordered
    int32_t *free_slots         # slots handed back by _eq_pop, reused first
    Py_ssize_t elem
    Py_ssize_t n                # queued
    Py_ssize_t n_free
    Py_ssize_t used             # slots ever handed out (the rest of the pool is untouched)
    Py_ssize_t cap


# A walk over one side of an exchange book from the touch (SimExchange._walk_next).
cdef struct LevelWalk:
    PyObject *book
    int side
    Py_ssize_t k                # next level
    Py_ssize_t got              # levels read into SimExchange._levels so far
    Py_ssize_t total            # levels on the side


cdef struct FillRow:
    int64_t ts                  # local time the fill reached the strategy
    int64_t coid
    int32_t owner
    uint32_t iid
    int8_t side
    int8_t liquidity            # 1 maker, 2 taker
    int64_t price
    int64_t qty
    double fee
    int64_t latency_us
    int32_t slot


# The exchange's books, reached through borrowed pointers (SimExchange._book_list owns them): a typed
# OrderBook local would cost an INCREF / DECREF per record on the replay's hot path.
cdef inline BookStatus _bk_apply(PyObject *b, const Record *r) noexcept nogil:
    return (<OrderBook>b).apply_record(r)


cdef inline bint _bk_has_best(PyObject *b, int side) noexcept nogil:
    return (<OrderBook>b).has_best(side)


cdef inline int64_t _bk_best(PyObject *b, int side) noexcept nogil:
    return (<OrderBook>b).best_price_raw(side)


cdef inline int64_t _bk_qty_at(PyObject *b, int side, int64_t price) noexcept nogil:
    return (<OrderBook>b).qty_at_raw(side, price)


cdef inline void _bk_fill_levels(PyObject *b, int side, int64_t *out, Py_ssize_t k) noexcept nogil:
    (<OrderBook>b)._fill_levels_raw(side, out, k)


cdef inline Py_ssize_t _bk_count(PyObject *b, int side) noexcept nogil:
    return (<OrderBook>b)._sides[side].count


cdef inline void _bk_clear(PyObject *b) noexcept nogil:
    (<OrderBook>b).clear_levels()


cdef inline void _bk_set(PyObject *b, int side, int64_t price, int64_t qty) noexcept nogil:
    (<OrderBook>b).set_level(side, price, qty)


cdef inline bint _is_conditional(int order_type) noexcept nogil:
    return ORDER_TYPE_STOP_MARKET <= order_type <= ORDER_TYPE_TAKE_PROFIT_LIMIT


cdef inline bint _is_market_type(int order_type) noexcept nogil:
    return order_type == ORDER_TYPE_MARKET or order_type == ORDER_TYPE_STOP_MARKET or \
        order_type == ORDER_TYPE_TAKE_PROFIT_MARKET


cdef inline bint _triggers(int order_type, int side, int64_t stop, int64_t px) noexcept nogil:
    """Binance's trigger rule (module doc): a stop buys when the price rises to its stop price and sells when
    it falls to it; a take-profit the other way round."""
    if order_type == ORDER_TYPE_STOP_MARKET or order_type == ORDER_TYPE_STOP_LIMIT:
        return px >= stop if side == 0 else px <= stop
    return px <= stop if side == 0 else px >= stop


cdef int _eq_init(EventQueue *q, Py_ssize_t elem, Py_ssize_t cap) noexcept nogil:
    """An empty queue of payloads of `elem` bytes; -1 when out of memory (the caller raises MemoryError)."""
    q.elem = elem
    q.cap = cap
    q.n = q.n_free = q.used = 0
    q.pool = <char *>malloc(cap * elem)
    q.keys = <EventKey *>malloc(cap * sizeof(EventKey))
    q.heap = <int32_t *>malloc(cap * sizeof(int32_t))
    q.free_slots = <int32_t *>malloc(cap * sizeof(int32_t))
    if q.pool == NULL or q.keys == NULL or q.heap == NULL or q.free_slots == NULL:
        return -1
    return 0


cdef void _eq_free(EventQueue *q) noexcept nogil:
    free(q.pool); free(q.keys); free(q.heap); free(q.free_slots)
    q.pool = NULL
    q.keys = NULL
    q.heap = NULL
    q.free_slots = NULL


cdef inline bint _eq_before(const EventKey *k, int32_t a, int32_t b) noexcept nogil:
    return k[a].due < k[b].due or (k[a].due == k[b].due and k[a].seq < k[b].seq)


cdef void _eq_sift_up(EventQueue *q, Py_ssize_t i) noexcept nogil:
    cdef int32_t x = q.heap[i]
    cdef Py_ssize_t p
    while i > 0:
        p = (i - 1) >> 1
        if not _eq_before(q.keys, x, q.heap[p]):
            break
        q.heap[i] = q.heap[p]
        i = p
    q.heap[i] = x


cdef void _eq_sift_down(EventQueue *q, Py_ssize_t i) noexcept nogil:
    cdef int32_t x = q.heap[i]
    cdef Py_ssize_t c, n = q.n
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _eq_before(q.keys, q.heap[c + 1], q.heap[c]):
            c += 1
        if not _eq_before(q.keys, q.heap[c], x):
            break
        q.heap[i] = q.heap[c]
        i = c
    q.heap[i] = x


cdef inline int _regrow(void **p, size_t nbytes) noexcept nogil:
    """realloc p[0] to nbytes; -1 (p[0] untouched) when out of memory."""
    cdef void *grown = realloc(p[0], nbytes)
    if grown == NULL:
        return -1
    p[0] = grown
    return 0


cdef int _eq_grow(EventQueue *q) noexcept nogil:
    """Double the pool (payload pointers taken before this are invalid after it); -1 when out of memory."""
    cdef Py_ssize_t cap = 2 * q.cap
    if (_regrow(<void **>&q.pool, cap * q.elem) < 0 or _regrow(<void **>&q.keys, cap * sizeof(EventKey)) < 0
            or _regrow(<void **>&q.heap, cap * sizeof(int32_t)) < 0
            or _regrow(<void **>&q.free_slots, cap * sizeof(int32_t)) < 0):
        return -1
    q.cap = cap
    return 0


cdef int32_t _eq_push(EventQueue *q, int64_t due, int64_t seq) noexcept nogil:
    """Queue a slot due at (due, seq); returns it (its payload is the caller's to write), -1 when out of memory."""
    cdef int32_t slot
    if q.n_free > 0:
        q.n_free -= 1
        slot = q.free_slots[q.n_free]
    else:
        if q.used == q.cap and _eq_grow(q) < 0:
            return -1
        slot = <int32_t>q.used
        q.used += 1
    q.keys[slot].due = due
    q.keys[slot].seq = seq
    q.heap[q.n] = slot
    q.n += 1
    _eq_sift_up(q, q.n - 1)
    return slot


cdef inline void *_eq_payload(EventQueue *q, int32_t slot) noexcept nogil:
    return q.pool + slot * q.elem


cdef inline int64_t _eq_top_due(const EventQueue *q) noexcept nogil:
    """Due time of the earliest queued event, NEVER when the queue is empty."""
    return q.keys[q.heap[0]].due if q.n > 0 else NEVER


cdef int32_t _eq_pop(EventQueue *q) noexcept nogil:
    """Take the earliest event off the queue (the queue is not empty). Its slot is free again: copy the
    payload out before the next _eq_push."""
    cdef int32_t slot = q.heap[0]
    q.n -= 1
    if q.n > 0:
        q.heap[0] = q.heap[q.n]
        _eq_sift_down(q, 0)
    q.free_slots[q.n_free] = slot
    q.n_free += 1
    return slot


cdef inline int64_t _kth_smallest(int64_t *a, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Quickselect (in place): the k-th smallest of a[0..n-1]."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j
    cdef int64_t pivot, tmp
    while lo < hi:
        pivot = a[(lo + hi) >> 1]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                tmp = a[i]; a[i] = a[j]; a[j] = tmp
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]
    return a[k]


@cython.final
cdef class SimExchange:
    """See the module doc. Built by extrema.backtest.Backtest; `engine` is an extrema Engine in replay mode."""

    # the engine parts the replay loop drives
    cdef object _engine
    cdef ExecutionCore _core
    cdef Ring _ring
    cdef RingConsumer _consumer
    cdef bint _observed                # another consumer reads engine.ring: replayed records are published
    cdef Dispatcher _disp
    cdef object _house                 # callable(now) -> next housekeeping due time (the runner's)
    cdef readonly int64_t house_due

    # clocks
    cdef readonly int64_t now          # the replay clock: local time of what the strategy sees now
    cdef readonly int64_t exchange_now
    cdef readonly int64_t first_ts
    cdef bint _started
    cdef bint _feeding                 # inside feed(): more data may follow the buffered records

    # latency
    cdef int _lat_mode
    cdef int64_t _feed_us
    cdef int _entry_mode
    cdef int _resp_mode
    cdef int64_t _entry_us
    cdef int64_t _resp_us
    cdef double _lat_scale
    cdef double _percentile
    cdef int64_t *_lat_window
    cdef int64_t *_lat_scratch
    cdef Py_ssize_t _lat_window_n
    cdef Py_ssize_t _lat_window_cap
    cdef Py_ssize_t _lat_window_pos
    cdef int64_t _lat_latest
    cdef int64_t _lat_pct_value
    cdef bint _lat_pct_dirty

    # queue model
    cdef int _queue_kind
    cdef int _prob_fn
    cdef double _prob_n

    # instruments
    cdef Py_ssize_t _n_inst
    cdef list _book_list
    cdef PyObject **_books
    cdef int32_t *_rest_head
    cdef int32_t *_cond_head           # armed conditional orders per instrument, oldest first (doubly linked)
    cdef int32_t *_cond_tail
    cdef int64_t *_last_px             # the exchange side's last trade price per instrument (0: none yet)
    cdef int64_t *_mark_px             # its last mark price (0: none yet)
    cdef char *_has_depth              # L2 records seen: quotes (bookTicker) no longer define the book
    cdef int _trigger_src              # what triggers conditional orders by default (TRIGGER_*)
    cdef int64_t *_tick
    cdef int64_t *_lot
    cdef int64_t *_min_notional
    cdef int64_t *_pow_sp              # 10 ** size precision
    cdef int64_t *_pos                 # the account's net position per instrument (raw size)
    cdef double *_maker
    cdef double *_taker
    cdef double *_fee_scale            # raw price x raw size -> fee asset raw units (times the rate)
    cdef int32_t *_fee_asset
    cdef int64_t *_levels              # scratch for book walks: [price, qty] pairs (see _walk_next)
    cdef Py_ssize_t _levels_cap        # ... room for this many levels

    # orders
    cdef SimOrder *_orders
    cdef Py_ssize_t _n_orders
    cdef Py_ssize_t _cap_orders
    cdef dict _slot_of                 # client order id -> slot
    cdef EventQueue _arr              # Arrival payloads: orders / cancels / replaces on their way to the venue
    cdef EventQueue _resp             # Response payloads: the venue's answers on their way to the strategy
    cdef int64_t _seq
    cdef int64_t _trade_id
    cdef FillRow *_fills
    cdef Py_ssize_t _n_fills
    cdef Py_ssize_t _cap_fills
    cdef list _posted                  # records the engine asked to deliver after the running hook
    cdef Py_ssize_t _n_posted          # len(_posted), tested per delivery without touching the list

    # input: records 0 .. _n - 1 are the tail (what earlier batches left unconsumed, _tail_n records at
    # _tail + _tail_off) followed by the current batch (_recs, kept alive by _buf); see _rec and feed
    cdef object _buf
    cdef const Record *_recs
    cdef Record *_tail
    cdef Py_ssize_t _tail_off
    cdef Py_ssize_t _tail_n
    cdef Py_ssize_t _tail_cap
    cdef Py_ssize_t _tail_missing      # continuation slots of the tail's last record still to come
    cdef Py_ssize_t _n
    cdef Py_ssize_t _x                 # exchange cursor
    cdef Py_ssize_t _y                 # local cursor
    cdef int64_t _last_e

    # counters
    cdef readonly int64_t events             # records delivered to the engine (market data and responses)
    cdef readonly int64_t market_events      # replayed market records delivered
    cdef readonly int64_t dropped_account_records
    cdef readonly int64_t dropped_unknown_instrument
    cdef readonly int64_t clamped_timestamps
    cdef readonly int64_t orders_received
    cdef readonly int64_t rejects
    cdef readonly int64_t cancel_rejects
    cdef readonly int64_t maker_fills
    cdef readonly int64_t taker_fills
    cdef readonly int64_t triggered          # conditional orders whose trigger fired
    cdef readonly bint stopped

    def __cinit__(self):
        self._books = NULL
        self._rest_head = NULL
        self._cond_head = NULL
        self._cond_tail = NULL
        self._last_px = NULL
        self._mark_px = NULL
        self._has_depth = NULL
        self._orders = NULL
        memset(&self._arr, 0, sizeof(EventQueue))
        memset(&self._resp, 0, sizeof(EventQueue))
        self._fills = NULL
        self._levels = NULL
        self._lat_window = NULL
        self._lat_scratch = NULL
        self._tail = NULL

    def __init__(self, engine, *, int latency_mode=0, int64_t feed_us=0, int entry_mode=0, int response_mode=0,
                 int64_t entry_us=0, int64_t response_us=0, double latency_scale=1.0, double percentile=50.0,
                 Py_ssize_t latency_window=4096, int queue_kind=0, int prob_fn=0, double prob_n=2.0,
                 fees=None, house=None, int stop_trigger=0):
        """engine: an extrema Engine (its execution core, ring, dispatcher are driven here). fees: {instrument
        id: (maker rate, taker rate)}. house: callable(now_us) run when house_due is reached; returns the next
        due time (or NEVER). stop_trigger: 0 = conditional orders trigger on the last trade price, 1 = on the
        mark price (KIND_MARK_PRICE records)."""
        cdef Py_ssize_t i
        self._engine = engine
        self._core = engine.execution_core
        self._ring = engine.ring
        self._consumer = engine._consumer
        self._disp = engine.dispatcher
        self._house = house
        self.house_due = NEVER
        if latency_mode not in (LAT_CONSTANT, LAT_DATA):
            raise ValueError(f"latency_mode must be 0 (constant) or 1 (data), got {latency_mode}")
        if feed_us < 0 or entry_us < 0 or response_us < 0:
            raise ValueError("latencies must be >= 0 microseconds")
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in 0..100, got {percentile}")
        if latency_window < 1:
            raise ValueError("latency_window must be >= 1")
        self._lat_mode = latency_mode
        self._feed_us = feed_us
        self._entry_mode = entry_mode
        self._resp_mode = response_mode
        self._entry_us = entry_us
        self._resp_us = response_us
        self._lat_scale = latency_scale
        self._percentile = percentile
        self._lat_window_cap = latency_window
        self._lat_window = <int64_t *>malloc(latency_window * sizeof(int64_t))
        self._lat_scratch = <int64_t *>malloc(latency_window * sizeof(int64_t))
        if self._lat_window == NULL or self._lat_scratch == NULL:
            raise MemoryError()
        if queue_kind not in (QUEUE_CONSERVATIVE, QUEUE_PROBABILISTIC) or prob_fn not in (PROB_POWER, PROB_LOG):
            raise ValueError("unknown queue model")
        self._queue_kind = queue_kind
        if stop_trigger not in (TRIGGER_LAST, TRIGGER_MARK):
            raise ValueError(f"stop_trigger must be 0 (last price) or 1 (mark price), got {stop_trigger}")
        self._trigger_src = stop_trigger
        self._prob_fn = prob_fn
        self._prob_n = prob_n

        registry = engine.registry
        self._n_inst = max([inst.id for inst in registry] + [0]) + 1
        n = self._n_inst
        self._books = <PyObject **>malloc(n * sizeof(PyObject *))
        self._rest_head = <int32_t *>malloc(n * sizeof(int32_t))
        self._cond_head = <int32_t *>malloc(n * sizeof(int32_t))
        self._cond_tail = <int32_t *>malloc(n * sizeof(int32_t))
        self._last_px = <int64_t *>malloc(n * sizeof(int64_t))
        self._mark_px = <int64_t *>malloc(n * sizeof(int64_t))
        self._has_depth = <char *>malloc(n * sizeof(char))
        self._tick = <int64_t *>malloc(n * sizeof(int64_t))
        self._lot = <int64_t *>malloc(n * sizeof(int64_t))
        self._min_notional = <int64_t *>malloc(n * sizeof(int64_t))
        self._pow_sp = <int64_t *>malloc(n * sizeof(int64_t))
        self._pos = <int64_t *>malloc(n * sizeof(int64_t))
        self._maker = <double *>malloc(n * sizeof(double))
        self._taker = <double *>malloc(n * sizeof(double))
        self._fee_scale = <double *>malloc(n * sizeof(double))
        self._fee_asset = <int32_t *>malloc(n * sizeof(int32_t))
        self._levels_cap = 64
        self._levels = <int64_t *>malloc(2 * self._levels_cap * sizeof(int64_t))
        if (self._books == NULL or self._rest_head == NULL or self._tick == NULL or self._lot == NULL
                or self._min_notional == NULL or self._pow_sp == NULL or self._pos == NULL or self._maker == NULL
                or self._taker == NULL or self._fee_scale == NULL or self._fee_asset == NULL or self._levels == NULL
                or self._cond_head == NULL or self._cond_tail == NULL or self._last_px == NULL
                or self._mark_px == NULL or self._has_depth == NULL):
            raise MemoryError()
        self._book_list = [None] * n
        fees = fees or {}
        assets = engine.assets
        for i in range(n):
            self._books[i] = NULL
            self._rest_head[i] = -1
            self._cond_head[i] = -1
            self._cond_tail[i] = -1
            self._last_px[i] = 0
            self._mark_px[i] = 0
            self._has_depth[i] = 0
            self._tick[i] = 1
            self._lot[i] = 1
            self._min_notional[i] = 0
            self._pow_sp[i] = 1
            self._pos[i] = 0
            self._maker[i] = 0.0
            self._taker[i] = 0.0
            self._fee_scale[i] = 0.0
            self._fee_asset[i] = 0
        for inst in registry:
            i = inst.id
            book = OrderBook(inst.price_precision, inst.size_precision, instrument_id=inst.id, tick=inst.tick_raw)
            self._book_list[i] = book
            self._books[i] = <PyObject *>book
            self._tick[i] = inst.tick_raw
            self._lot[i] = inst.lot_raw
            self._min_notional[i] = inst.min_notional_raw
            self._pow_sp[i] = 10 ** inst.size_precision
            maker, taker = fees.get(inst.id, (0.0, 0.0))
            self._maker[i] = maker
            self._taker[i] = taker
            # fee = rate x price x size x multiplier, in the quote asset at its registered precision
            quote = inst.quote
            aid = assets.register(quote) if quote else 0
            self._fee_asset[i] = aid
            prec = assets.precision(aid) if aid else inst.price_precision
            self._fee_scale[i] = (float(inst.multiplier) * 10.0 ** (prec - inst.price_precision - inst.size_precision))
        self._slot_of = {}
        self._posted = []
        self._cap_orders = 1024
        self._orders = <SimOrder *>malloc(self._cap_orders * sizeof(SimOrder))
        self._cap_fills = 1024
        self._fills = <FillRow *>malloc(self._cap_fills * sizeof(FillRow))
        if (self._orders == NULL or self._fills == NULL or _eq_init(&self._arr, sizeof(Arrival), 256) < 0
                or _eq_init(&self._resp, sizeof(Response), 256) < 0):
            raise MemoryError()
        self._buf = None
        self._recs = NULL
        self._n = 0
        self.house_due = NEVER
        self._last_e = -NEVER

    def __dealloc__(self):
        free(self._books); free(self._rest_head); free(self._tick); free(self._lot); free(self._min_notional)
        free(self._pow_sp); free(self._pos); free(self._maker); free(self._taker); free(self._fee_scale)
        free(self._fee_asset); free(self._levels); free(self._orders)
        _eq_free(&self._arr); _eq_free(&self._resp)
        free(self._fills); free(self._lat_window); free(self._lat_scratch)
        free(self._cond_head); free(self._cond_tail); free(self._last_px); free(self._mark_px)
        free(self._has_depth); free(self._tail)

    # ---- the replay clock ---------------------------------------------------------------------------

    def now_us(self):
        """The replay clock (the engine's clock in a backtest): the local time of the event being handled."""
        return self.now

    def set_now(self, int64_t now):
        """Start the replay clock (before the first record: the time on_start sees)."""
        self.now = now
        self.exchange_now = now

    def set_house_due(self, int64_t due):
        self.house_due = due

    def post(self, records):
        """Records to deliver to the engine right after the hook that is running (deliver_order_state)."""
        self._posted.append(np.array(records, copy=True))
        self._n_posted += 1

    def book(self, uint32_t instrument_id):
        """The exchange's replayed book of an instrument (what orders match against)."""
        return self._book_list[instrument_id] if instrument_id < self._n_inst else None

    # ---- latency ------------------------------------------------------------------------------------

    cdef inline int64_t _exchange_time(self, const Record *r) noexcept nogil:
        cdef int64_t e
        if self._lat_mode == LAT_CONSTANT:
            return r.ts_local - self._feed_us
        e = r.ts_exchange
        if e <= 0 or e > r.ts_local:
            return r.ts_local
        return e

    cdef inline void _observe_feed(self, const Record *r) noexcept nogil:
        cdef int64_t lat
        if r.ts_exchange <= 0 or r.ts_exchange > r.ts_local:
            return
        lat = r.ts_local - r.ts_exchange
        self._lat_latest = lat
        if self._entry_mode == LAT_FEED_PERCENTILE or self._resp_mode == LAT_FEED_PERCENTILE:
            self._lat_window[self._lat_window_pos] = lat
            self._lat_window_pos += 1
            if self._lat_window_pos == self._lat_window_cap:
                self._lat_window_pos = 0
            if self._lat_window_n < self._lat_window_cap:
                self._lat_window_n += 1
            self._lat_pct_dirty = True

    cdef int64_t _latency(self, int mode, int64_t fixed) noexcept nogil:
        cdef Py_ssize_t k
        if self._lat_mode == LAT_CONSTANT or mode == LAT_FIXED:
            return fixed
        if mode == LAT_FEED_LATEST:
            return <int64_t>(self._lat_latest * self._lat_scale)
        if self._lat_window_n == 0:
            return <int64_t>(self._lat_latest * self._lat_scale)
        if self._lat_pct_dirty:
            memcpy(self._lat_scratch, self._lat_window, self._lat_window_n * sizeof(int64_t))
            k = <Py_ssize_t>(self._percentile / 100.0 * (self._lat_window_n - 1) + 0.5)
            self._lat_pct_value = _kth_smallest(self._lat_scratch, self._lat_window_n, k)
            self._lat_pct_dirty = False
        return <int64_t>(self._lat_pct_value * self._lat_scale)

    # ---- order requests (engine thread, from the strategy's hooks) --------------------------------

    cdef int _grow_orders(self) except -1:
        cdef SimOrder *p
        if self._n_orders < self._cap_orders:
            return 0
        p = <SimOrder *>realloc(self._orders, 2 * self._cap_orders * sizeof(SimOrder))
        if p == NULL:
            raise MemoryError()
        self._orders = p
        self._cap_orders *= 2
        return 0

    cdef int _push_arrival(self, int kind, int32_t slot, int64_t price, int64_t qty) except -1:
        cdef Arrival *p
        cdef int32_t at
        cdef SimOrder *o = &self._orders[slot]
        cdef int64_t t = self.now + self._latency(self._entry_mode, self._entry_us)
        if t < o.last_arrival:
            t = o.last_arrival          # requests of one order reach the venue in the order they were sent
        o.last_arrival = t
        self._seq += 1
        at = _eq_push(&self._arr, t, self._seq)
        if at < 0:
            raise MemoryError()
        p = <Arrival *>_eq_payload(&self._arr, at)
        p.kind = kind
        p.slot = slot
        p.price = price
        p.qty = qty
        return 0

    def submit_raw(self, int64_t coid, int owner, uint32_t iid, int side, int order_type, int tif, int flags,
                   int64_t price, int64_t qty, int64_t expire_us=0, int64_t stop_price=0, int trigger=-1):
        """A new order from the strategy (raw price / size / stop price); it reaches the exchange after the
        entry latency. trigger: what triggers a conditional order (0 last price, 1 mark price, -1 the
        exchange's stop_trigger)."""
        cdef SimOrder *o
        cdef int32_t slot
        if coid in self._slot_of:
            raise ValueError(f"client order id {coid} was already used")
        self._grow_orders()
        slot = <int32_t>self._n_orders
        self._n_orders += 1
        o = &self._orders[slot]
        memset(o, 0, sizeof(SimOrder))
        o.coid = coid
        o.iid = iid
        o.next = -1
        o.prev = -1
        o.side = side
        o.order_type = order_type
        o.tif = tif
        o.flags = flags
        o.owner = owner
        o.price = price
        o.quantity = qty
        o.stop_price = stop_price
        o.trigger_src = self._trigger_src if trigger < 0 else (TRIGGER_MARK if trigger == TRIGGER_MARK else TRIGGER_LAST)
        o.expire_us = expire_us
        o.submit_us = self.now
        o.venue_id = slot + 1
        o.state = SO_IN_FLIGHT
        o.last_arrival = -NEVER
        self._slot_of[coid] = slot
        self.orders_received += 1
        self._push_arrival(ARR_NEW, slot, price, qty)

    def cancel_raw(self, int64_t coid):
        """A cancel from the strategy; False (counted) when the venue never received that order id."""
        slot = self._slot_of.get(coid)
        if slot is None:
            self.cancel_rejects += 1
            return False
        self._push_arrival(ARR_CANCEL, slot, 0, 0)
        return True

    def replace_raw(self, int64_t coid, int64_t price, int64_t qty):
        """A replace (0 keeps the field); False (counted) when the venue never received that order id."""
        slot = self._slot_of.get(coid)
        if slot is None:
            self.cancel_rejects += 1
            return False
        self._push_arrival(ARR_REPLACE, slot, price, qty)
        return True

    # ---- responses ----------------------------------------------------------------------------------

    cdef Response *_new_response(self, int32_t slot, int64_t *due) except NULL:
        """A response due after the response latency (its time in *due), queued at once: the caller fills
        its records before anything else is queued."""
        cdef Response *p
        cdef int32_t at
        self._seq += 1
        due[0] = self.exchange_now + self._latency(self._resp_mode, self._resp_us)
        at = _eq_push(&self._resp, due[0], self._seq)
        if at < 0:
            raise MemoryError()
        p = <Response *>_eq_payload(&self._resp, at)
        memset(p, 0, sizeof(Response))
        p.slot = slot
        return p

    cdef void _write_update(self, Record *r, SimOrder *o, int status, int exec_type, int reason) noexcept nogil:
        cdef Record *c = r + 1
        cdef int64_t avg = 0
        if o.filled > 0:
            avg = <int64_t>llround(o.notional_filled / <double>o.filled)
        r.kind = KIND_ORDER_UPDATE
        r.flags = (FLAG_ASK if o.side else 0) | (1 << CONT_SHIFT)
        r.instrument_id = o.iid
        r.ts_exchange = self.exchange_now
        r.sequence = o.coid
        r.price = o.price
        r.quantity = o.quantity
        r.aux0 = o.filled
        r.aux1 = o.venue_id
        c.kind = KIND_CONTINUATION
        c.flags = 1
        c.instrument_id = o.iid
        c.ts_exchange = status
        c.ts_local = o.order_type
        c.sequence = o.tif
        c.price = avg
        c.quantity = 0
        c.aux0 = o.quantity - o.filled
        c.aux1 = reason | (exec_type << 16)

    cdef int _send_update(self, int32_t slot, int status, int exec_type, int reason) except -1:
        cdef SimOrder *o = &self._orders[slot]
        cdef int64_t due
        cdef Response *p = self._new_response(slot, &due)
        o.status = status
        self._write_update(&p.recs[0], o, status, exec_type, reason)
        p.n = 2
        p.terminal = status == ORDER_STATUS_FILLED or status == ORDER_STATUS_CANCELLED or \
            status == ORDER_STATUS_REJECTED or status == ORDER_STATUS_EXPIRED
        return 0

    cdef int _fill(self, int32_t slot, int64_t price, int64_t qty, bint maker) except -1:
        """Fill qty of an order at price: the account position, then ORDER_UPDATE + FILL (as Binance sends
        one execution report per trade)."""
        cdef SimOrder *o = &self._orders[slot]
        cdef Response *p
        cdef Record *f
        cdef FillRow *row
        cdef double rate = self._maker[o.iid] if maker else self._taker[o.iid]
        cdef double fee = rate * <double>price * <double>qty * self._fee_scale[o.iid]
        cdef int status
        cdef int64_t due
        cdef FillRow *grown
        if qty <= 0:
            return 0
        o.filled += qty
        o.notional_filled += <double>price * <double>qty
        self._pos[o.iid] += qty if o.side == 0 else -qty
        status = ORDER_STATUS_FILLED if o.filled >= o.quantity else ORDER_STATUS_PARTIALLY_FILLED
        o.status = status
        p = self._new_response(slot, &due)
        self._write_update(&p.recs[0], o, status, EXEC_TRADE, ORDER_REASON_NONE)
        self._trade_id += 1
        f = &p.recs[2]
        f.kind = KIND_FILL
        f.flags = (FLAG_ASK if o.side else 0) | (FLAG_MAKER if maker else 0) | (1 << CONT_SHIFT)
        f.instrument_id = o.iid
        f.ts_exchange = self.exchange_now
        f.sequence = self._trade_id
        f.price = price
        f.quantity = qty
        f.aux0 = o.coid
        f.aux1 = <int64_t>llround(fee)
        f[1].kind = KIND_CONTINUATION
        f[1].flags = 1
        f[1].instrument_id = o.iid
        f[1].ts_exchange = o.venue_id
        f[1].ts_local = self._fee_asset[o.iid]
        f[1].sequence = self._pos[o.iid]
        p.n = 4
        p.terminal = status == ORDER_STATUS_FILLED
        if self._n_fills == self._cap_fills:
            grown = <FillRow *>realloc(self._fills, 2 * self._cap_fills * sizeof(FillRow))
            if grown == NULL:
                raise MemoryError()
            self._fills = grown
            self._cap_fills *= 2
        row = &self._fills[self._n_fills]
        self._n_fills += 1
        row.ts = due
        row.coid = o.coid
        row.owner = o.owner
        row.iid = o.iid
        row.side = o.side
        row.liquidity = 1 if maker else 2
        row.price = price
        row.qty = qty
        row.fee = <double>f.aux1
        row.latency_us = due - o.submit_us
        row.slot = slot
        if maker:
            self.maker_fills += 1
        else:
            self.taker_fills += 1
        if status == ORDER_STATUS_FILLED:
            self._finish(slot)
        return 0

    cdef void _finish(self, int32_t slot) noexcept nogil:
        cdef SimOrder *o = &self._orders[slot]
        o.state = SO_DONE
        if o.resting:
            self._unrest(slot)
        if o.armed:
            self._disarm(slot)

    cdef void _arm(self, int32_t slot) noexcept nogil:
        """Append a conditional order to its instrument's armed list (the list is in arrival order)."""
        cdef SimOrder *o = &self._orders[slot]
        cdef int32_t tail = self._cond_tail[o.iid]
        o.next = -1
        o.prev = tail
        if tail >= 0:
            self._orders[tail].next = slot
        else:
            self._cond_head[o.iid] = slot
        self._cond_tail[o.iid] = slot
        o.armed = 1

    cdef void _disarm(self, int32_t slot) noexcept nogil:
        cdef SimOrder *o = &self._orders[slot]
        if o.prev >= 0:
            self._orders[o.prev].next = o.next
        else:
            self._cond_head[o.iid] = o.next
        if o.next >= 0:
            self._orders[o.next].prev = o.prev
        else:
            self._cond_tail[o.iid] = o.prev
        o.next = -1
        o.prev = -1
        o.armed = 0

    cdef void _rest(self, int32_t slot) noexcept nogil:
        cdef SimOrder *o = &self._orders[slot]
        cdef int32_t head = self._rest_head[o.iid]
        o.prev = -1
        o.next = head
        if head >= 0:
            self._orders[head].prev = slot
        self._rest_head[o.iid] = slot
        o.resting = 1

    cdef void _unrest(self, int32_t slot) noexcept nogil:
        cdef SimOrder *o = &self._orders[slot]
        if o.prev >= 0:
            self._orders[o.prev].next = o.next
        else:
            self._rest_head[o.iid] = o.next
        if o.next >= 0:
            self._orders[o.next].prev = o.prev
        o.next = -1
        o.prev = -1
        o.resting = 0

    # ---- matching -----------------------------------------------------------------------------------

    cdef int64_t _reduce_cap(self, SimOrder *o) noexcept nogil:
        """How much a reduce-only order may still fill: the part of the position on the other side."""
        cdef int64_t pos = self._pos[o.iid]
        if o.side == 0:
            return -pos if pos < 0 else 0
        return pos if pos > 0 else 0

    cdef int _take(self, int32_t slot, int64_t limit, bint is_market, int64_t want, int64_t *taken) except -1:
        """Walk the opposite side of the replayed book up to `limit` (any price for a market order), filling
        up to `want`; taken = filled size."""
        cdef SimOrder *o = &self._orders[slot]
        cdef LevelWalk w
        cdef int64_t px, q, lot = self._lot[o.iid], done = 0
        self._walk_start(&w, o.iid, 1 - o.side)
        while want - done > 0 and self._walk_next(&w, &px, &q):
            if not is_market and ((o.side == 0 and px > limit) or (o.side == 1 and px < limit)):
                break
            if q > want - done:
                q = want - done
            q -= q % lot
            if q <= 0:
                continue
            self._fill(slot, px, q, False)
            done += q
        taken[0] = done
        return 0

    cdef inline void _walk_start(self, LevelWalk *w, uint32_t iid, int side) noexcept nogil:
        w.book = self._books[iid]
        w.side = side
        w.k = 0
        w.got = 0
        w.total = _bk_count(w.book, side)

    cdef bint _walk_next(self, LevelWalk *w, int64_t *px, int64_t *qty) except -1:
        """The next level of a walk from the touch (price, size), False past the side's last level. The
        levels are read from the book a prefix at a time (LEVELS_FIRST, then four times longer each time
        the walk gets to its end), so a walk costs the levels it reaches, not the depth of the book."""
        cdef Py_ssize_t k
        cdef int64_t *grown
        if w.k == w.got:
            if w.got == w.total:
                return False
            k = LEVELS_FIRST if w.got == 0 else 4 * w.got
            if k > w.total:
                k = w.total
            if k > self._levels_cap:
                grown = <int64_t *>realloc(self._levels, 2 * k * sizeof(int64_t))
                if grown == NULL:
                    raise MemoryError()
                self._levels = grown
                self._levels_cap = k
            _bk_fill_levels(w.book, w.side, self._levels, k)
            w.got = k
        px[0] = self._levels[2 * w.k]
        qty[0] = self._levels[2 * w.k + 1]
        w.k += 1
        return True

    cdef int64_t _available(self, SimOrder *o, int64_t limit) except -1:
        """Size on the opposite side at prices within limit (FOK)."""
        cdef LevelWalk w
        cdef int64_t total = 0, px, q
        self._walk_start(&w, o.iid, 1 - o.side)
        while total < o.quantity and self._walk_next(&w, &px, &q):
            if (o.side == 0 and px > limit) or (o.side == 1 and px < limit):
                break
            total += q
        return total

    cdef inline bint _marketable(self, SimOrder *o, int64_t price) noexcept nogil:
        cdef PyObject *book = self._books[o.iid]
        cdef int opp = 1 - o.side
        if not _bk_has_best(book, opp):
            return False
        if o.side == 0:
            return _bk_best(book, 1) <= price
        return _bk_best(book, 0) >= price

    cdef int _reject(self, int32_t slot, int reason) except -1:
        self.rejects += 1
        self._orders[slot].reason = reason
        self._orders[slot].state = SO_DONE
        self._send_update(slot, ORDER_STATUS_REJECTED, EXEC_REJECTED, reason)
        return 0

    cdef int _arrive_new(self, int32_t slot) except -1:
        cdef SimOrder *o = &self._orders[slot]
        cdef PyObject *book
        cdef int64_t ref, trigger_px
        cdef bint is_market = _is_market_type(o.order_type)
        cdef bint conditional = _is_conditional(o.order_type)
        cdef bint post_only = (o.flags & SO_POST_ONLY) or o.tif == TIF_GTX or o.order_type == ORDER_TYPE_LIMIT_MAKER
        if o.iid >= self._n_inst or self._books[o.iid] == NULL:
            return self._reject(slot, ORDER_REASON_OTHER)
        if o.order_type != ORDER_TYPE_MARKET and o.order_type != ORDER_TYPE_LIMIT and \
                o.order_type != ORDER_TYPE_LIMIT_MAKER and not conditional:
            # trailing stops are not simulated (context.stop_order(trail=...) is the engine-side one)
            return self._reject(slot, ORDER_REASON_OTHER)
        book = self._books[o.iid]
        # Binance filters: PRICE_FILTER tickSize, LOT_SIZE stepSize, MIN_NOTIONAL / NOTIONAL
        if o.quantity <= 0 or o.quantity % self._lot[o.iid] != 0:
            return self._reject(slot, ORDER_REASON_PRICE_QTY_LIMITS)
        if not is_market and (o.price <= 0 or o.price % self._tick[o.iid] != 0):
            return self._reject(slot, ORDER_REASON_PRICE_QTY_LIMITS)
        if conditional and (o.stop_price <= 0 or o.stop_price % self._tick[o.iid] != 0):
            return self._reject(slot, ORDER_REASON_PRICE_QTY_LIMITS)
        if self._min_notional[o.iid] > 0:
            ref = o.price
            if is_market and conditional:
                ref = o.stop_price            # what it is expected to trade at
            elif is_market:
                ref = _bk_best(book, 1 - o.side) if _bk_has_best(book, 1 - o.side) else 0
            # price x size / 10**sp >= min notional (both at the price precision)
            if <double>ref * <double>o.quantity < <double>self._min_notional[o.iid] * <double>self._pow_sp[o.iid]:
                return self._reject(slot, ORDER_REASON_PRICE_QTY_LIMITS)
        if conditional:
            # Binance -2021 / -2010: a stop whose condition already holds is refused, not triggered
            trigger_px = self._mark_px[o.iid] if o.trigger_src == TRIGGER_MARK else self._last_px[o.iid]
            if trigger_px > 0 and _triggers(o.order_type, o.side, o.stop_price, trigger_px):
                return self._reject(slot, ORDER_REASON_OTHER)
        else:
            if o.flags & SO_REDUCE_ONLY and self._reduce_cap(o) == 0:
                return self._reject(slot, ORDER_REASON_OTHER)
            if post_only and not is_market and self._marketable(o, o.price):
                return self._reject(slot, ORDER_REASON_POST_ONLY_WOULD_TAKE)
        o.state = SO_LIVE
        self._send_update(slot, ORDER_STATUS_ACCEPTED, EXEC_NEW, ORDER_REASON_NONE)
        if o.expire_us and o.expire_us <= self.exchange_now:
            o.state = SO_DONE
            return self._send_update(slot, ORDER_STATUS_EXPIRED, EXEC_EXPIRED, ORDER_REASON_NONE)
        if conditional:
            self._arm(slot)
            return 0
        if o.tif == TIF_FOK and self._available(o, o.price) < o.quantity:
            o.state = SO_DONE
            return self._send_update(slot, ORDER_STATUS_EXPIRED, EXEC_EXPIRED, ORDER_REASON_INSUFFICIENT_LIQUIDITY)
        return self._match_incoming(slot)

    cdef int _match_incoming(self, int32_t slot) except -1:
        """Take what the order can take now; rest or expire the remainder."""
        cdef SimOrder *o = &self._orders[slot]
        cdef bint is_market = _is_market_type(o.order_type)
        cdef bint nothing_to_reduce
        cdef int64_t taken, want = o.quantity - o.filled
        if o.flags & SO_REDUCE_ONLY:
            if want > self._reduce_cap(o):
                want = self._reduce_cap(o)
        if want > 0 and (is_market or self._marketable(o, o.price)):
            self._take(slot, o.price, is_market, want, &taken)
        if o.state == SO_DONE:
            return 0
        nothing_to_reduce = o.flags & SO_REDUCE_ONLY and self._reduce_cap(o) == 0
        if is_market or o.tif == TIF_IOC or o.tif == TIF_FOK or nothing_to_reduce:
            o.state = SO_DONE
            return self._send_update(slot, ORDER_STATUS_EXPIRED, EXEC_EXPIRED,
                                     ORDER_REASON_INSUFFICIENT_LIQUIDITY if is_market and not nothing_to_reduce
                                     else ORDER_REASON_NONE)
        self._start_queue(o)
        if not o.resting:
            self._rest(slot)
        return 0

    cdef void _start_queue(self, SimOrder *o) noexcept nogil:
        """Both models: you arrive behind everything resting at your price."""
        o.front = <double>_bk_qty_at(self._books[o.iid], o.side, o.price)
        o.traded_at_level = 0

    cdef int _arrive_cancel(self, int32_t slot) except -1:
        cdef SimOrder *o = &self._orders[slot]
        if o.state != SO_LIVE:
            # too late (filled / expired already: its final state is on its way) or never accepted
            self.cancel_rejects += 1
            return 0
        self._finish(slot)             # off the resting or the armed list
        return self._send_update(slot, ORDER_STATUS_CANCELLED, EXEC_CANCELED, ORDER_REASON_NONE)

    cdef int _arrive_replace(self, int32_t slot, int64_t price, int64_t qty) except -1:
        cdef SimOrder *o = &self._orders[slot]
        cdef int64_t new_price = price if price > 0 else o.price
        cdef int64_t new_qty = qty if qty > 0 else o.quantity
        cdef bint keep_queue
        cdef int status
        if o.state != SO_LIVE:
            self.cancel_rejects += 1
            if o.state == SO_DONE and o.status != ORDER_STATUS_REJECTED:
                return 0              # its final state is on its way: that answers the request
            return 0
        status = ORDER_STATUS_PARTIALLY_FILLED if o.filled > 0 else ORDER_STATUS_ACCEPTED
        if o.armed:
            self.rejects += 1
            return self._send_update(slot, status, EXEC_REJECTED, ORDER_REASON_OTHER)
        if (new_qty <= o.filled or new_qty % self._lot[o.iid] != 0 or new_price % self._tick[o.iid] != 0
                or _is_market_type(o.order_type)):
            self.rejects += 1
            # a live status with a reason: the order table restores the order (the replace failed)
            return self._send_update(slot, status, EXEC_REJECTED, ORDER_REASON_PRICE_QTY_LIMITS)
        if ((o.flags & SO_POST_ONLY) or o.tif == TIF_GTX or o.order_type == ORDER_TYPE_LIMIT_MAKER) \
                and self._marketable(o, new_price):
            self.rejects += 1
            return self._send_update(slot, status, EXEC_REJECTED, ORDER_REASON_POST_ONLY_WOULD_TAKE)
        # Priority is kept only by a size decrease at the same price (Binance / most venues).
        keep_queue = new_price == o.price and new_qty <= o.quantity
        o.price = new_price
        o.quantity = new_qty
        self._send_update(slot, status, EXEC_AMENDMENT, ORDER_REASON_NONE)
        if keep_queue:
            return 0
        if o.resting:
            self._unrest(slot)
        return self._match_incoming(slot)

    cdef int _arrive(self, int64_t t, const Arrival *a) except -1:
        if t > self.exchange_now:
            self.exchange_now = t
        if a.kind == ARR_NEW:
            return self._arrive_new(a.slot)
        if a.kind == ARR_CANCEL:
            return self._arrive_cancel(a.slot)
        return self._arrive_replace(a.slot, a.price, a.qty)

    cdef double _prob(self, double front, double back) noexcept nogil:
        """hftbacktest's ProbQueueModel: the probability that a decrease of the level came from behind us,
        f(back) / (f(back) + f(front)) with f(x) = x**n (power) or log(1 + x) (log)."""
        cdef double fb, ff
        if front < 0:
            front = 0
        if back < 0:
            back = 0
        if self._prob_fn == PROB_POWER:
            fb = pow(back, self._prob_n)
            ff = pow(front, self._prob_n)
        else:
            fb = log(1.0 + back)
            ff = log(1.0 + front)
        if fb + ff <= 0:
            return 1.0
        return fb / (fb + ff)

    cdef int _on_depth(self, uint32_t iid, int side, int64_t price, int64_t prev, int64_t new) except -1:
        """The level at `price` on `side` changed from prev to new: move the queues of our orders there."""
        cdef int32_t s = self._rest_head[iid]
        cdef SimOrder *o
        cdef double chg, front, back, p, est
        while s >= 0:
            o = &self._orders[s]
            s = o.next
            if o.side != side or o.price != price:
                continue
            chg = <double>(prev - new)
            # the part of a decrease that trades at our price already explain (their volume moved us)
            if chg > 0 and o.traded_at_level > 0:
                if chg <= o.traded_at_level:
                    chg = 0
                else:
                    chg -= o.traded_at_level
            o.traded_at_level = 0
            if self._queue_kind == QUEUE_PROBABILISTIC and chg > 0:
                front = o.front
                back = <double>prev - front
                p = self._prob(front, back)
                est = front - (1.0 - p) * chg
                if back - p * chg < 0:
                    est += back - p * chg
                o.front = est
            # what is ahead of us can never exceed what rests at the level (both models)
            if o.front > <double>new:
                o.front = <double>new
            if o.front < 0:
                o.front = 0
        return 0

    cdef int _on_trade(self, const Record *r) except -1:
        """A market trade: fills our resting orders at or through its price (see the module doc)."""
        cdef uint32_t iid = r.instrument_id
        cdef int32_t s = self._rest_head[iid], nxt
        cdef SimOrder *o
        cdef bint unknown = (r.flags & FLAG_AGGRESSOR_UNKNOWN) != 0
        cdef bint hits_bids = (r.flags & FLAG_ASK) != 0     # seller aggressor
        cdef int64_t leaves, q, lot = self._lot[iid], cap
        cdef double over
        while s >= 0:
            o = &self._orders[s]
            nxt = o.next
            if o.side == 0 and (hits_bids or unknown) and r.price <= o.price:
                pass
            elif o.side == 1 and (not hits_bids or unknown) and r.price >= o.price:
                pass
            else:
                s = nxt
                continue
            leaves = o.quantity - o.filled
            if o.flags & SO_REDUCE_ONLY:
                cap = self._reduce_cap(o)
                if leaves > cap:
                    leaves = cap
            if r.price != o.price:
                q = leaves                         # the trade went through our price: the level is gone
            else:
                o.traded_at_level += r.quantity
                o.front -= <double>r.quantity
                if o.front >= 0:
                    s = nxt
                    continue
                over = -o.front
                o.front = 0
                q = <int64_t>over
                if q > leaves:
                    q = leaves
            q -= q % lot
            if q > 0:
                self._fill(s, o.price, q, True)
            if o.state != SO_DONE and o.flags & SO_REDUCE_ONLY and self._reduce_cap(o) == 0:
                self._finish(s)
                self._send_update(s, ORDER_STATUS_EXPIRED, EXEC_EXPIRED, ORDER_REASON_NONE)
            s = nxt
        return 0

    cdef int _check_cross(self, uint32_t iid) except -1:
        """The replayed book moved through a resting order's price: it would have traded with us."""
        cdef PyObject *book = self._books[iid]
        cdef int32_t s = self._rest_head[iid], nxt
        cdef SimOrder *o
        cdef int64_t leaves, lot = self._lot[iid], cap
        cdef bint has_bid = _bk_has_best(book, 0), has_ask = _bk_has_best(book, 1)
        cdef int64_t bid = _bk_best(book, 0) if has_bid else 0
        cdef int64_t ask = _bk_best(book, 1) if has_ask else 0
        while s >= 0:
            o = &self._orders[s]
            nxt = o.next
            if (o.side == 0 and has_ask and ask < o.price) or (o.side == 1 and has_bid and bid > o.price):
                leaves = o.quantity - o.filled
                if o.flags & SO_REDUCE_ONLY:
                    cap = self._reduce_cap(o)
                    if leaves > cap:
                        leaves = cap
                leaves -= leaves % lot
                if leaves > 0:
                    self._fill(s, o.price, leaves, True)
                if o.state != SO_DONE:
                    self._finish(s)
                    self._send_update(s, ORDER_STATUS_EXPIRED, EXEC_EXPIRED, ORDER_REASON_NONE)
            elif o.expire_us and o.expire_us <= self.exchange_now:
                self._finish(s)
                self._send_update(s, ORDER_STATUS_EXPIRED, EXEC_EXPIRED, ORDER_REASON_NONE)
            s = nxt
        return 0

    cdef int _exchange_market(self, const Record *r) except -1:
        """Apply one replayed market record on the exchange side."""
        cdef uint32_t iid = r.instrument_id
        cdef int kind = r.kind, side
        cdef PyObject *book
        cdef int64_t prev, new
        if iid >= self._n_inst or self._books[iid] == NULL:
            return 0
        book = self._books[iid]
        if kind == KIND_BOOK_DELTA:
            self._has_depth[iid] = 1
            if self._rest_head[iid] < 0:
                _bk_apply(book, r)
                return 0
            side = 1 if r.flags & FLAG_ASK else 0
            prev = _bk_qty_at(book, side, r.price)
            _bk_apply(book, r)
            new = _bk_qty_at(book, side, r.price)
            if prev != new:
                self._on_depth(iid, side, r.price, prev, new)
            if r.flags & FLAG_LAST:
                self._check_cross(iid)
        elif kind == KIND_TRADE:
            self._last_px[iid] = r.price
            if self._rest_head[iid] >= 0:
                self._on_trade(r)
            if self._cond_head[iid] >= 0:
                self._check_triggers(iid, TRIGGER_LAST, r.price)
        elif kind == KIND_MARK_PRICE:
            if r.price > 0:
                self._mark_px[iid] = r.price
                if self._cond_head[iid] >= 0:
                    self._check_triggers(iid, TRIGGER_MARK, r.price)
        elif kind == KIND_QUOTE:
            # top-of-book data: the book is the quote (one level a side) - unless the data has L2 depth for
            # this instrument too (a capture with depth and bookTicker streams): then the depth is the book
            # and the quote, a partial view of it, is not applied (the engine's book ignores it likewise)
            if self._has_depth[iid]:
                return 0
            if self._rest_head[iid] >= 0:
                self._quote_depth(iid, book, r)
            _bk_clear(book)
            if r.price > 0 and r.quantity > 0:
                _bk_set(book, 0, r.price, r.quantity)
            if r.aux0 > 0 and r.aux1 > 0:
                _bk_set(book, 1, r.aux0, r.aux1)
            if self._rest_head[iid] >= 0:
                self._check_cross(iid)
        elif kind == KIND_BOOK_RESET:
            _bk_apply(book, r)
        return 0

    cdef int _check_triggers(self, uint32_t iid, int src, int64_t px) except -1:
        """A trade (src TRIGGER_LAST) or mark price (TRIGGER_MARK) at px: trigger the armed conditional orders
        of the instrument whose condition it meets, oldest first; expire armed GTD orders past their time."""
        cdef int32_t s = self._cond_head[iid], nxt
        cdef SimOrder *o
        while s >= 0:
            o = &self._orders[s]
            nxt = o.next
            if o.expire_us and o.expire_us <= self.exchange_now:
                self._finish(s)
                self._send_update(s, ORDER_STATUS_EXPIRED, EXEC_EXPIRED, ORDER_REASON_NONE)
            elif o.trigger_src == src and _triggers(o.order_type, o.side, o.stop_price, px):
                self._trigger(s)
            s = nxt
        return 0

    cdef int _trigger(self, int32_t slot) except -1:
        """The order's condition is met: it becomes its market / limit order, arriving now (module doc)."""
        cdef SimOrder *o = &self._orders[slot]
        self._disarm(slot)
        self.triggered += 1
        if not _is_market_type(o.order_type):
            if ((o.flags & SO_POST_ONLY) or o.tif == TIF_GTX) and self._marketable(o, o.price):
                o.state = SO_DONE
                return self._send_update(slot, ORDER_STATUS_EXPIRED, EXEC_EXPIRED, ORDER_REASON_POST_ONLY_WOULD_TAKE)
            if o.tif == TIF_FOK and self._available(o, o.price) < o.quantity:
                o.state = SO_DONE
                return self._send_update(slot, ORDER_STATUS_EXPIRED, EXEC_EXPIRED,
                                         ORDER_REASON_INSUFFICIENT_LIQUIDITY)
        return self._match_incoming(slot)

    cdef int _quote_depth(self, uint32_t iid, PyObject *book, const Record *r) except -1:
        cdef int32_t s = self._rest_head[iid]
        cdef SimOrder *o
        cdef int64_t prev, new
        while s >= 0:
            o = &self._orders[s]
            s = o.next
            prev = _bk_qty_at(book, o.side, o.price)
            if o.side == 0:
                new = r.quantity if r.price == o.price else (prev if r.price < o.price else 0)
            else:
                new = r.aux1 if r.aux0 == o.price else (prev if r.aux0 > o.price else 0)
            if new != prev:
                self._on_depth(iid, o.side, o.price, prev, new)
        return 0

    # ---- the replay loop ----------------------------------------------------------------------------

    cdef inline const Record *_rec(self, Py_ssize_t i) noexcept nogil:
        """Record i of the input (the tail, then the current batch)."""
        if i < self._tail_n:
            return self._tail + self._tail_off + i
        return self._recs + (i - self._tail_n)

    cdef inline int64_t _next_exchange_time(self) noexcept nogil:
        """Time of the next exchange event: a market record (at its exchange time) or an arrival."""
        cdef int64_t e = NEVER, a
        cdef const Record *r
        if self._x < self._n:
            r = self._rec(self._x)
            e = self._exchange_time(r)
            if e < self._last_e:
                e = self._last_e
        a = _eq_top_due(&self._arr)
        return a if a < e else e

    cdef int _exchange_step(self, int64_t until) except -1:
        """Process exchange events due at or before `until`, one at a time (market records first at a tie)."""
        cdef const Record *r
        cdef int64_t e, a
        cdef Arrival arr
        cdef int cont
        while True:
            e = NEVER
            if self._x < self._n:
                r = self._rec(self._x)
                e = self._exchange_time(r)
                if e < self._last_e:
                    e = self._last_e
            a = _eq_top_due(&self._arr)
            if e <= a:
                if e > until or e == NEVER:
                    return 0
                self._last_e = e
                if e > self.exchange_now:
                    self.exchange_now = e
                cont = (r.flags & CONT_MASK) >> CONT_SHIFT
                if r.kind <= KIND_BOOK_RESET or r.kind == KIND_MARK_PRICE:
                    if self._lat_mode == LAT_DATA:
                        self._observe_feed(r)
                    self._exchange_market(r)
                self._x += 1 + cont
            else:
                if a > until or (self._feeding and self._x >= self._n):
                    return 0          # (an unread record of the next batch may be due first)
                arr = (<Arrival *>_eq_payload(&self._arr, _eq_pop(&self._arr)))[0]
                self._arrive(a, &arr)
                return 0          # one event: the caller re-checks what is due locally

    cdef int _deliver(self, const Record *p, Py_ssize_t n) except -1:
        """Engine._emit, compiled: execution core, dispatcher; then what the hooks left to do.

        The dispatcher reads the records where they are (the replayed array, a response's slots): they
        are whole there, while a ring batch ends at the ring's last slot and can cut a multi-slot record
        from its continuation (an ORDER_UPDATE whose status the strategy would read past the batch). The
        ring is written only when something else reads it (_observed: a recorder or a live summary
        attached to engine.ring), and the engine's own consumer is moved past what it published."""
        cdef const Record *batch
        self._core.process_ptr(p, n)
        if self._observed:
            self._ring.publish_ptr(p, n, -1)
            while self._consumer.poll_ptr(4096, &batch) > 0:
                pass
        self._disp.dispatch_ptr(p, n)
        self.events += n
        if self._core._dirty_n:
            self._after_dispatch()
        if self._core.stops._fired_n:
            self._engine._submit_fired_stops()
        if self._disp.stop_requested:
            self.stopped = True
        if self._n_posted:
            self._drain_posted()
        return 0

    cdef bint _ring_observed(self) noexcept nogil:
        """Whether a consumer other than the engine's own dispatcher consumer is attached to the ring."""
        cdef ex_ring_header *h = self._ring._h
        cdef uint32_t i, active = 0
        for i in range(h.meta.max_consumers):
            if ex_load_acquire_u32(&h.consumers[i].state) == EX_SLOT_ACTIVE:
                active += 1
        return active > 1

    cdef int _after_dispatch(self) except -1:
        """ExecutionCore.after_dispatch without the Python call (it runs after every book message of an
        instrument an engine-side book stop watches): check the stops of the books that changed."""
        cdef ExecutionCore core = self._core
        cdef Portfolio pf = core.portfolio
        cdef Py_ssize_t k
        cdef uint32_t iid
        for k in range(core._dirty_n):
            iid = core._dirty[k]
            if iid < pf._n_instruments and pf._specs[iid].book != NULL:
                core.stops.on_book(iid, <OrderBook>pf._specs[iid].book, self.now)
        core._dirty_n = 0
        return 0

    cdef int _drain_posted(self) except -1:
        cdef cnp.ndarray arr
        while self._n_posted and not self.stopped:
            arr = as_record_array(self._posted.pop(0), "post")
            self._n_posted -= 1
            self._deliver(record_data(arr), cnp.PyArray_DIM(arr, 0))
        return 0

    cdef int _deliver_response(self) except -1:
        cdef int64_t t = _eq_top_due(&self._resp)
        cdef Response resp = (<Response *>_eq_payload(&self._resp, _eq_pop(&self._resp)))[0]
        cdef Py_ssize_t i
        cdef SimOrder *o
        if t > self.now:
            self.now = t
        for i in range(resp.n):
            resp.recs[i].ts_local = self.now if resp.recs[i].kind != KIND_CONTINUATION else resp.recs[i].ts_local
        o = &self._orders[resp.slot]
        if o.ack_us == 0:
            o.ack_us = self.now
        if resp.terminal:
            o.done_us = self.now
        self._deliver(resp.recs, resp.n)
        return 0

    cdef int _run_until_local(self, int64_t t) except -1:
        """Everything due before the strategy sees a record at local time t (responses, housekeeping and the
        exchange events that precede them). Returns 1 when it has to wait for the next batch: every buffered
        record is on the exchange side already, and the next one, unread, may be due before anything else.
        (Deciding without it would make the run depend on where the batches end.)"""
        cdef int64_t r, local_next, e
        while not self.stopped:
            if self._feeding and self._x >= self._n:
                return 1
            r = _eq_top_due(&self._resp)
            local_next = r if r < self.house_due else self.house_due
            if t < local_next:
                local_next = t
            e = self._next_exchange_time()
            if e <= local_next and e != NEVER:
                self._exchange_step(local_next)
                continue
            if local_next == t and r > t and self.house_due > t:
                return 0
            if r <= self.house_due:
                self._deliver_response()
            else:
                if self.house_due > self.now:
                    self.now = self.house_due
                self.house_due = self._house(self.now)
        return 0

    cdef int _run_batch(self, bint final) except -1:
        """Deliver the buffered records whose exchange-side lookahead is complete (all of them when final)."""
        cdef const Record *r
        cdef int64_t t
        cdef Py_ssize_t n
        cdef int kind
        while self._y < self._n and not self.stopped:
            if not final and self._x >= self._n:
                return 0             # the exchange side needs the next batch before this record is due
            r = self._rec(self._y)
            n = 1 + ((r.flags & CONT_MASK) >> CONT_SHIFT)
            if self._y + n > self._n:
                return 0             # a multi-slot record split across batches (sources never do that)
            kind = r.kind
            if kind == KIND_ORDER_UPDATE or kind == KIND_FILL or kind == KIND_POSITION or kind == KIND_BALANCE \
                    or kind == KIND_TIMER or kind == KIND_CONTINUATION:
                # account records and timers of the recorded session are not ours to replay
                self.dropped_account_records += 1
                self._y += n
                if self._x < self._y:
                    self._x = self._y
                continue
            if r.instrument_id >= self._n_inst or self._books[r.instrument_id] == NULL:
                self.dropped_unknown_instrument += 1
                self._y += n
                if self._x < self._y:
                    self._x = self._y
                continue
            t = r.ts_local
            if t < self.now:
                self.clamped_timestamps += 1
                t = self.now
            if not self._started:
                self._started = True
                self.first_ts = t
            if self._run_until_local(t) or self.stopped:
                return 0
            self.now = t
            self._deliver(r, n)
            self.market_events += 1
            self._y += n
        return 0

    def feed(self, batch):
        """Replay one batch of records (RECORD_DTYPE, nondecreasing ts_local)."""
        cdef cnp.ndarray arr = as_record_array(batch, "SimExchange.feed")
        cdef const Record *p = record_data(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0), m
        if self.stopped:
            return
        if self._tail_missing:
            # the last batch ended inside a multi-slot record: its continuations join it in the tail
            m = self._tail_missing if self._tail_missing < n else n
            self._append_tail(p, m)
            self._tail_missing -= m
            p += m
            n -= m
        self._buf = arr
        self._recs = p
        self._n = self._tail_n + n
        self._observed = self._ring_observed()      # per batch: a consumer attached now sees the next one
        self._feeding = True
        try:
            self._run_batch(False)
        finally:
            self._feeding = False
            self._keep_tail()

    cdef int _append_tail(self, const Record *p, Py_ssize_t n) except -1:
        """Append n records to the tail buffer (moving the tail to its start, or growing it, when full)."""
        cdef Py_ssize_t need = self._tail_n + n, cap
        cdef Record *grown
        if n <= 0:
            return 0
        if self._tail_off + need > self._tail_cap:
            if self._tail_off:
                memmove(self._tail, self._tail + self._tail_off, self._tail_n * sizeof(Record))
                self._tail_off = 0
            if need > self._tail_cap:
                cap = 2 * self._tail_cap if 2 * self._tail_cap > need else need
                if cap < 256:
                    cap = 256
                grown = <Record *>realloc(self._tail, cap * sizeof(Record))
                if grown == NULL:
                    raise MemoryError()
                self._tail = grown
                self._tail_cap = cap
        memcpy(self._tail + self._tail_off + self._tail_n, p, n * sizeof(Record))
        self._tail_n += n
        return 0

    cdef int _keep_tail(self) except -1:
        """After a batch: keep the records not yet delivered locally (from the local cursor on) in the tail
        buffer (copied: the caller may reuse its array) and let go of the batch. No per-batch array: the
        tail part is dropped from the front in place and only the batch's unconsumed end is copied."""
        cdef Py_ssize_t y = self._y, from_batch, i
        cdef const Record *r
        if self._x < y:
            self._x = y
        if y < self._tail_n:
            self._tail_off += y
            self._tail_n -= y
            from_batch = 0
        else:
            from_batch = y - self._tail_n
            self._tail_off = 0
            self._tail_n = 0
        i = self._tail_n                # the batch's part starts on a record (its head) when it is not empty
        self._append_tail(self._recs + from_batch, self._n - y - self._tail_n)
        self._x -= y
        self._y = 0
        self._n = self._tail_n
        self._recs = NULL
        self._buf = None
        if self._tail_missing == 0:
            # a multi-slot record cut by the batch's end (sources never do that) is completed by the next feed
            while i < self._tail_n:
                r = self._tail + self._tail_off + i
                i += 1 + ((r.flags & CONT_MASK) >> CONT_SHIFT)
            self._tail_missing = i - self._tail_n
        return 0

    def finish(self, int64_t end_us=-1):
        """End of data: deliver what is buffered, then every response and housekeeping event due by
        end_us (default: the last record's local time)."""
        self._observed = self._ring_observed()
        self._run_batch(True)
        if end_us < 0:
            end_us = self.now
        if not self.stopped:
            self._run_until_local(end_us)
        if end_us > self.now:
            self.now = end_us

    def drain(self, int64_t until_us):
        """Deliver what is due up to until_us with no more market data (used after the last record)."""
        self._observed = self._ring_observed()
        if not self.stopped:
            self._run_until_local(until_us)
            if until_us > self.now:
                self.now = until_us

    def flush_posted(self):
        """Deliver what a hook called outside the replay loop (a task's answer) asked to deliver."""
        self._observed = self._ring_observed()
        if self._n_posted:
            self._drain_posted()

    def deliver_records(self, records):
        """Deliver records to the engine now (timer records from the housekeeping)."""
        cdef cnp.ndarray arr = as_record_array(records, "deliver_records")
        self._observed = self._ring_observed()
        self._deliver(record_data(arr), cnp.PyArray_DIM(arr, 0))

    def request_stop(self):
        self.stopped = True

    # ---- results ------------------------------------------------------------------------------------

    @property
    def pending(self):
        return {"arrivals": self._arr.n, "responses": self._resp.n}

    def position_raw(self, uint32_t instrument_id):
        """The account's net position the exchange holds (raw size)."""
        return self._pos[instrument_id] if instrument_id < self._n_inst else 0

    def fills_array(self):
        """[ts, coid, owner, iid, side, liquidity, price_raw, qty_raw, fee_raw, latency_us] per fill."""
        dt = np.dtype([("ts", "i8"), ("client_order_id", "i8"), ("strategy", "i4"), ("instrument_id", "i4"),
                       ("side", "i1"), ("liquidity", "i1"), ("price_raw", "i8"), ("quantity_raw", "i8"),
                       ("fee_raw", "f8"), ("latency_us", "i8")])
        out = np.zeros(self._n_fills, dtype=dt)
        cdef Py_ssize_t i
        cdef FillRow *f
        for i in range(self._n_fills):
            f = &self._fills[i]
            out[i] = (f.ts, f.coid, f.owner, f.iid, 1 if f.side == 0 else -1, f.liquidity, f.price, f.qty, f.fee,
                      f.latency_us)
        return out

    def orders_array(self):
        """One row per order the strategies sent (raw prices / sizes; see ORDER_DTYPE in results.py)."""
        dt = np.dtype([("client_order_id", "i8"), ("strategy", "i4"), ("instrument_id", "i4"), ("side", "i1"),
                       ("order_type", "i1"), ("time_in_force", "i1"), ("price_raw", "i8"), ("quantity_raw", "i8"),
                       ("filled_raw", "i8"), ("status", "i1"), ("reason", "i4"), ("submit_ts", "i8"),
                       ("ack_ts", "i8"), ("done_ts", "i8")])
        out = np.zeros(self._n_orders, dtype=dt)
        cdef Py_ssize_t i
        cdef SimOrder *o
        for i in range(self._n_orders):
            o = &self._orders[i]
            out[i] = (o.coid, o.owner, o.iid, 1 if o.side == 0 else -1, o.order_type, o.tif, o.price, o.quantity,
                      o.filled, o.status, o.reason, o.submit_us, o.ack_us, o.done_us)
        return out

    def stats(self):
        return {"events": self.events, "market_events": self.market_events, "orders": self.orders_received, "rejects": self.rejects,
                "cancel_rejects": self.cancel_rejects, "maker_fills": self.maker_fills,
                "taker_fills": self.taker_fills, "triggered": self.triggered, "dropped_account_records": self.dropped_account_records,
                "dropped_unknown_instrument": self.dropped_unknown_instrument,
                "clamped_timestamps": self.clamped_timestamps}


def engine_record_dtype():
    from extrema._core.records import RECORD_DTYPE
    return RECORD_DTYPE
