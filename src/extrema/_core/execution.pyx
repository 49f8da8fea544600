"""ExecutionCore: the order table, the portfolio, the pre-trade risk chain and the engine-side stops of
one engine, fed from its record stream. This is what the engine calls; venue-independent.

    core = ExecutionCore(registry)                     # method="average" | "fifo" | "lifo"
    rejection = core.submit(owner, coid, iid, side, qty_raw, price_raw, ...)   # before the client's submit
    core.process(records)                              # every batch, before the dispatcher delivers it
    core.after_dispatch()                              # after it: book-sourced stops see the new books

submit() runs the risk chain; a passing order is registered in the order table as SUBMITTED (so the next
check already counts it) and its instrument is listed in the owner's and the venue's positions; a refused
one is registered and closed as REJECTED with reason REJECT_REASON_BASE + rule, and the RiskRejection is
returned (the engine hands it to the strategy).

process() applies ORDER_UPDATE records to the order table (a venue REJECTED counts toward the
reject-burst breakers), FILL records to the order table and - unless they are duplicates or otherwise
refused - to the portfolio, TRADE / QUOTE records to the portfolio's marks and to the stops.
"""
cimport cython
from libc.stdint cimport int64_t, uint32_t, int32_t, uint8_t
from libc.stdlib cimport malloc, free

cimport numpy as cnp

from extrema._core.types cimport (Record, KIND_ORDER_UPDATE, KIND_FILL, KIND_TRADE, KIND_QUOTE,
                                  KIND_BOOK_DELTA, FLAG_LAST, CONT_MASK, CONT_SHIFT)
from extrema._core.orders cimport (OrderTable, OrderEntry, OWNER_ALL, OWNER_EXTERNAL, ST_REJECTED, EV_OK,
                                   EV_ADOPTED, EV_UNKNOWN_ORDER, OT_LIMIT, OT_MARKET, ORDER_REDUCE_ONLY,
                                   ORDER_POST_ONLY)
from extrema._core.portfolio cimport Portfolio, AssetRegistry
from extrema._core.risk cimport RiskEngine, RiskResult, RULE_PASSED, RULE_INVALID_ORDER, RISK_REJECT_REASON_BASE
from extrema._core.stops cimport StopManager
from extrema._core.book cimport OrderBook
from extrema._core.clock cimport now_us
from extrema._core.records cimport as_record_array, record_data

from extrema._core.risk import RiskRejection

cnp.import_array()


@cython.final
cdef class ExecutionCore:
    """See the module doc. ExecutionCore(registry, method="average", assets=None, keep_terminal=100_000,
    keep_trades=100_000, day_offset_s=0)."""

    def __cinit__(self, registry, method="average", AssetRegistry assets=None, Py_ssize_t keep_terminal=100_000,
                  Py_ssize_t keep_trades=100_000, day_offset_s=0):
        self.registry = registry
        self.orders = OrderTable(keep_terminal, keep_trades)
        self.portfolio = Portfolio(registry, method, assets)
        self.risk = RiskEngine(self.orders, self.portfolio, day_offset_s)
        self.stops = StopManager()
        self._dirty_cap = 64
        self._dirty = <uint32_t *>malloc(self._dirty_cap * sizeof(uint32_t))
        if self._dirty == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self._dirty)

    # ---- orders out --------------------------------------------------------------------------------

    cdef int submit_check(self, int64_t coid, int owner, uint32_t iid, int side, int order_type, int tif,
                          int flags, int64_t price, int64_t stop_price, int64_t qty, int64_t now,
                          RiskResult *out) except -1:
        """The pre-trade chain for a new order, then its registration. Returns the rule (PASSED: send it)."""
        cdef int rule = self.risk.check(owner, iid, side, order_type, flags, price, stop_price, qty, now, out)
        cdef int code
        if rule == RULE_PASSED:
            code = self.orders.register_order(coid, owner, iid, side, order_type, tif, flags, price, stop_price,
                                              qty, now, True)
            if code != EV_OK:
                # an id already held (or invalid): nothing may be sent under it
                out.rule = RULE_INVALID_ORDER
                out.scope = owner
                out.value = <double>coid
                out.limit = 0.0
                return RULE_INVALID_ORDER
            self.portfolio.touch(iid, owner)
            self.portfolio.touch(iid, OWNER_ALL)
            return RULE_PASSED
        if self.orders.register_order(coid, owner, iid, side, order_type, tif, flags, price, stop_price, qty,
                                      now, False) == EV_OK:
            self.orders.local_reject(coid, RISK_REJECT_REASON_BASE + rule, now)
        return rule

    def submit(self, int owner, int64_t client_order_id, uint32_t instrument_id, side, int64_t quantity_raw,
               int64_t price_raw=0, *, int order_type=0, int time_in_force=1, int64_t stop_price_raw=0,
               bint reduce_only=False, bint post_only=False, now=None):
        """Check and register a new order; None if it may be sent, else the RiskRejection. order_type 0
        means LIMIT with a price, MARKET without; time_in_force 1 = GTC (extrema.TimeInForce)."""
        cdef int s = 0 if side == 0 or side == "buy" else (1 if side == 1 or side == "sell" else -1)
        cdef int flags = (ORDER_REDUCE_ONLY if reduce_only else 0) | (ORDER_POST_ONLY if post_only else 0)
        if order_type == 0:
            order_type = OT_LIMIT if price_raw > 0 else OT_MARKET
        return self.submit_order(client_order_id, owner, instrument_id, s, order_type, time_in_force, flags,
                                 price_raw, stop_price_raw, quantity_raw, now_us() if now is None else now)

    cdef object submit_order(self, int64_t coid, int owner, uint32_t iid, int side, int order_type, int tif,
                             int flags, int64_t price, int64_t stop_price, int64_t qty, int64_t now):
        """submit() for compiled callers (the engine's Context.submit): None, or the RiskRejection."""
        cdef RiskResult r
        if self.submit_check(coid, owner, iid, side, order_type, tif, flags, price, stop_price, qty, now,
                             &r) == RULE_PASSED:
            return None
        return RiskRejection(r.rule, r.scope, iid, r.value, r.limit, coid)

    def cancel(self, int64_t client_order_id, now=None):
        """Record a cancel request; True if a cancel must be sent to the venue: the order is live, or the
        table does not know it (an order of an earlier run: the venue may). False when there is nothing to
        send (never sent: closed at once; a cancel already pending; closed)."""
        cdef int code = self.orders.request_cancel(client_order_id, now_us() if now is None else now)
        cdef OrderEntry *e = self.orders.find(client_order_id)
        return code == EV_UNKNOWN_ORDER or (code == EV_OK and e != NULL and e.status == 8)

    def replace(self, int64_t client_order_id, int64_t price_raw=0, int64_t quantity_raw=0, now=None):
        """Record a replace request (0 keeps a field); True if it must be sent to the venue (the order is
        live and not pending, or unknown to the table)."""
        cdef int code = self.orders.request_replace(client_order_id, price_raw, quantity_raw,
                                                    now_us() if now is None else now)
        cdef OrderEntry *e = self.orders.find(client_order_id)
        return code == EV_UNKNOWN_ORDER or (code == EV_OK and e != NULL and e.status == 9)

    def kill(self, strategy=None, reason="", bint include_external=False):
        """The kill switch: block new orders (of one strategy, or all) and return the live orders to cancel;
        each is marked PENDING_CANCEL here, the engine sends the cancels."""
        ids = self.risk.kill(strategy, reason, include_external)
        now = now_us()
        return [i for i in ids if self.orders.request_cancel(i, now) == EV_OK]

    # ---- records in --------------------------------------------------------------------------------

    cdef int apply_record(self, const Record *r, int64_t now) except -1:
        """Apply one ORDER_UPDATE / FILL (head r[0], continuation r[1] readable); its OrderEventCode."""
        cdef int code, owner
        cdef OrderEntry *e
        if r.kind == KIND_ORDER_UPDATE:
            code = self.orders.apply_update(r, now)
            if code == EV_OK or code == EV_ADOPTED:
                e = self.orders.find(r.sequence)
                if e != NULL:
                    if code == EV_ADOPTED:
                        self.portfolio.touch(e.instrument_id, e.owner)
                        self.portfolio.touch(e.instrument_id, OWNER_ALL)
                    if e.status == ST_REJECTED and e.owner < OWNER_EXTERNAL:
                        self.venue_rejects += 1
                        self.risk.on_venue_reject(e.owner, now)
            return code
        code = self.orders.apply_fill(r, now, &owner)
        if code == EV_OK or code == EV_UNKNOWN_ORDER:
            self.portfolio.apply_fill_record(r, owner)
        return code

    cdef Py_ssize_t process_ptr(self, const Record *recs, Py_ssize_t n) except -1:
        """Apply a batch of records (see the module doc); returns how many were looked at."""
        cdef Py_ssize_t i = 0
        cdef const Record *r
        cdef int kind, cont
        while i < n:
            r = &recs[i]
            kind = r.kind
            if kind == KIND_ORDER_UPDATE or kind == KIND_FILL:
                cont = (r.flags & CONT_MASK) >> CONT_SHIFT
                if cont < 1 or i + cont >= n:
                    self.truncated += 1
                    i += 1 + cont
                    continue
                self.apply_record(r, r.ts_local if r.ts_local > 0 else now_us())
                i += 1 + cont
                continue
            if kind == KIND_TRADE:
                if r.instrument_id < self.portfolio._n_instruments:
                    self.portfolio._specs[r.instrument_id].last_trade2 = 2 * r.price
                if self.stops.watching(r.instrument_id):
                    self.stops.on_price(r.instrument_id, 0, 0, r.price, r.ts_local)
            elif kind == KIND_QUOTE:
                if r.instrument_id < self.portfolio._n_instruments:
                    self.portfolio._specs[r.instrument_id].quote_mid2 = (r.price + r.aux0
                                                                          if r.price > 0 and r.aux0 > 0 else 0)
                if self.stops.watching(r.instrument_id):
                    self.stops.on_price(r.instrument_id, r.price, r.aux0, 0, r.ts_local)
            elif kind == KIND_BOOK_DELTA:
                if r.flags & FLAG_LAST and self.stops.watching(r.instrument_id):
                    self._mark_dirty(r.instrument_id)
            i += 1
        self.processed += n
        return n

    def apply(self, records, now=None):
        """Like process(), returning the OrderEventCode of each ORDER_UPDATE / FILL (other kinds are fed
        as process() feeds them). Raises ValueError for a head without its continuation slot."""
        from extrema._core.orders import OrderEventCode
        cdef cnp.ndarray arr = as_record_array(records, "ExecutionCore.apply")
        cdef const Record *recs = record_data(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0), i = 0
        cdef int cont
        cdef int64_t t
        codes = []
        while i < n:
            if recs[i].kind == KIND_ORDER_UPDATE or recs[i].kind == KIND_FILL:
                cont = (recs[i].flags & CONT_MASK) >> CONT_SHIFT
                if cont < 1 or i + cont >= n:
                    raise ValueError(f"record {i}: an ORDER_UPDATE / FILL needs its continuation slot")
                t = recs[i].ts_local if recs[i].ts_local > 0 else (now_us() if now is None else now)
                codes.append(OrderEventCode(self.apply_record(&recs[i], t)))
                i += 1 + cont
            else:
                self.process_ptr(&recs[i], 1)
                i += 1
        return codes

    cdef int _mark_dirty(self, uint32_t iid) except -1:
        cdef Py_ssize_t k
        cdef uint32_t *grown
        for k in range(self._dirty_n):
            if self._dirty[k] == iid:
                return 0
        if self._dirty_n == self._dirty_cap:
            grown = <uint32_t *>malloc(2 * self._dirty_cap * sizeof(uint32_t))
            if grown == NULL:
                raise MemoryError()
            for k in range(self._dirty_n):
                grown[k] = self._dirty[k]
            free(self._dirty)
            self._dirty = grown
            self._dirty_cap *= 2
        self._dirty[self._dirty_n] = iid
        self._dirty_n += 1
        return 0

    def process(self, records):
        """Apply a RECORD_DTYPE array (see the module doc); returns how many records were looked at."""
        cdef cnp.ndarray arr = as_record_array(records, "ExecutionCore.process")
        return self.process_ptr(record_data(arr), cnp.PyArray_DIM(arr, 0))

    def after_dispatch(self, now=None):
        """Check the book-sourced stops of the instruments whose books changed since the last call (the
        dispatcher has applied them by now). Returns how many stops fired."""
        return self.after_dispatch_c(now_us() if now is None else now)

    cdef int after_dispatch_c(self, int64_t t) except -1:
        cdef Py_ssize_t k
        cdef int fired = 0
        cdef uint32_t iid
        for k in range(self._dirty_n):
            iid = self._dirty[k]
            if iid < self.portfolio._n_instruments and self.portfolio._specs[iid].book != NULL:
                fired += self.stops.on_book(iid, <OrderBook>self.portfolio._specs[iid].book, t)
        self._dirty_n = 0
        return fired

    def sync_books(self, dispatcher):
        """Mark positions (and check book-sourced stops) from the dispatcher's live books: call after
        subscriptions change (the dispatcher creates a book when someone subscribes to it)."""
        for inst in self.registry:
            book = dispatcher.book(inst.id)
            if book is not None:
                self.portfolio.set_book(inst.id, book)

    def evaluate(self, now=None):
        """The risk engine's periodic evaluation (drawdown, breaker expiry, day start); its events."""
        return self.risk.evaluate(now)

    def snapshot(self, names=None):
        """Portfolio snapshot plus the order table's and the risk engine's counters."""
        snap = self.portfolio.snapshot(names)
        snap["orders"] = self.orders.stats()
        snap["risk"] = self.risk.state()
        snap["processed"] = self.processed
        snap["venue_rejects"] = self.venue_rejects
        return snap
