"""The router and dispatcher: records in, strategy hooks out, on the engine thread.

Routing table: for each instrument id and record kind, a 64-bit mask of the strategies that subscribed
(so at most 64 strategies per engine). The engine keeps one OrderBook per instrument that anyone
subscribed to books for, applies every BOOK_DELTA / BOOK_RESET to it, and calls on_book once per venue
message (at the record flagged LAST), when the book is consistent.

Each record is delivered to exactly the strategies whose mask bit is set: a Python override through
its cached bound method, a Cython override through the vtable. A hook that raises is caught here and
handed to the engine's error handler, which logs it with the strategy's name and the event and answers
with the policy: "continue", "disable" (that strategy gets nothing more) or "stop" (the dispatch loop
returns and the engine stops).
"""
cimport cython
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, realloc, free
from libc.string cimport memcpy, memset

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport (
    Record, KIND_BOOK_DELTA, KIND_BOOK_RESET, KIND_TRADE, KIND_QUOTE, KIND_TIMER, KIND_CANDLE,
    KIND_ORDER_UPDATE, KIND_FILL, KIND_MARK_PRICE, KIND_MAX, KIND_CONTINUATION, FLAG_LAST, FLAG_ASK)
from extrema._core.book cimport OrderBook, BookStatus, BOOK_OK, BOOK_STALE
from extrema._core.strategy cimport (
    Strategy, RecordView, TradeView, QuoteView, BookView, ResetView, TimerView, CandleView, OrderView,
    FillView, MarkPriceView, InstrumentScale, HookId, HOOK_BOOK, HOOK_TRADE, HOOK_QUOTE, HOOK_BOOK_RESET,
    HOOK_SCHEDULE, HOOK_CANDLE, HOOK_ORDER, HOOK_FILL, HOOK_MARK_PRICE, N_HOOKS)
from extrema._core.ring cimport RingConsumer, whole_events
from extrema._core.features cimport (
    Kernel, ScalarKernel, Vwap, TradeFlowImbalance, Microprice, BookImbalance, Atr, TrueRange)
from extrema._core.bars cimport BarAggregator, BARS_PENDING, CANDLE_SLOTS
from extrema._core.ex_fixed cimport ex_raw_to_f64
from extrema._core.records cimport as_record_array, record_data
from extrema._core.records import RecordKind
from extrema._core.strategy import HOOK_NAMES

cdef int N_KINDS = KIND_MAX + 1


# Client order ids below this are the engine's own (extrema.execution.orders): low 6 bits = strategy.
cdef int64_t FOREIGN_ORDER_ID_BASE = (<int64_t>1) << 62
ORDER_OWNER_BITS = 6

# What a feature kernel attached to an instrument is fed, and when (see attach_feature).
cdef enum FeatureInput:
    IN_TRADE_PRICE
    IN_TRADE_SIZE
    IN_TRADE_NOTIONAL
    IN_TRADE_VWAP           # Vwap.update_c(price, size)
    IN_TRADE_FLOW           # TradeFlowImbalance.update_c(size, is_buy)
    IN_BOOK_MID
    IN_BOOK_MICROPRICE
    IN_BOOK_SPREAD
    IN_BOOK_BEST_BID
    IN_BOOK_BEST_ASK
    IN_BOOK_IMBALANCE_KERNEL    # BookImbalance.update_book_c(book)
    IN_BOOK_MICROPRICE_KERNEL   # Microprice.update_book_c(book); the last book input
    IN_QUOTE_MID
    IN_QUOTE_BID
    IN_QUOTE_ASK
    IN_QUOTE_MICROPRICE     # Microprice.update_c(bid, bid size, ask, ask size)
    IN_CANDLE_CLOSE         # a bar series' closes
    IN_CANDLE_ATR           # Atr.update_c(high, low, close)
    IN_CANDLE_TRUE_RANGE    # TrueRange.update_c(high, low, close)


# source name -> (record kind, input, the kernel classes it takes)
FEATURE_SOURCES = {
    "trade.price": (RecordKind.TRADE, IN_TRADE_PRICE, (ScalarKernel,)),
    "trade.size": (RecordKind.TRADE, IN_TRADE_SIZE, (ScalarKernel,)),
    "trade.notional": (RecordKind.TRADE, IN_TRADE_NOTIONAL, (ScalarKernel,)),
    "trade": (RecordKind.TRADE, None, (Vwap, TradeFlowImbalance)),
    "book.mid": (RecordKind.BOOK_DELTA, IN_BOOK_MID, (ScalarKernel,)),
    "book.microprice": (RecordKind.BOOK_DELTA, IN_BOOK_MICROPRICE, (ScalarKernel,)),
    "book.spread": (RecordKind.BOOK_DELTA, IN_BOOK_SPREAD, (ScalarKernel,)),
    "book.best_bid": (RecordKind.BOOK_DELTA, IN_BOOK_BEST_BID, (ScalarKernel,)),
    "book.best_ask": (RecordKind.BOOK_DELTA, IN_BOOK_BEST_ASK, (ScalarKernel,)),
    "book": (RecordKind.BOOK_DELTA, None, (Microprice, BookImbalance)),
    "quote.mid": (RecordKind.QUOTE, IN_QUOTE_MID, (ScalarKernel,)),
    "quote.bid": (RecordKind.QUOTE, IN_QUOTE_BID, (ScalarKernel,)),
    "quote.ask": (RecordKind.QUOTE, IN_QUOTE_ASK, (ScalarKernel,)),
    "quote": (RecordKind.QUOTE, IN_QUOTE_MICROPRICE, (Microprice,)),
    "candle.close": (RecordKind.CANDLE, IN_CANDLE_CLOSE, (ScalarKernel,)),
    "candle": (RecordKind.CANDLE, None, (Atr, TrueRange)),
}

# The hook each routable record kind calls.
ROUTED_KINDS = {RecordKind.TRADE: "on_trade", RecordKind.QUOTE: "on_quote",
                RecordKind.BOOK_DELTA: "on_book", RecordKind.BOOK_RESET: "on_book_reset",
                RecordKind.CANDLE: "on_candle", RecordKind.MARK_PRICE: "on_mark_price",
                # by subscription only for orders placed outside the engine (foreign client ids)
                RecordKind.ORDER_UPDATE: "on_order", RecordKind.FILL: "on_fill"}


@cython.final
cdef class Dispatcher:
    """Routes records to strategies. Built by the engine; tests and backtests may drive it directly."""

    def __cinit__(self):
        self._routes = NULL
        self._scales = NULL
        self._books = NULL
        self._features = NULL
        self._feature_start = NULL
        self._feature_count = NULL
        self._series_mask = NULL
        self._series_features = NULL
        self._series_feature_start = NULL
        self._series_feature_count = NULL
        self._aggs = NULL
        self._aggs_start = NULL
        self._aggs_count = NULL

    def __init__(self, registry=None, *, error_handler=None, book_options=None):
        self._strategies = []
        self._hook_refs = []
        self._book_list = []
        self._names = [None]
        self._n_instruments = 0
        self._error_handler = error_handler
        self._book_options = dict(book_options or {})
        self._instruments = {}
        self._feature_refs = []
        self._series = [None]
        self._series_feature_refs = []
        self._candle = CandleView.__new__(CandleView)
        self._candle._series = self._series
        self._trade = TradeView.__new__(TradeView)
        self._quote = QuoteView.__new__(QuoteView)
        self._bookv = BookView.__new__(BookView)
        self._reset = ResetView.__new__(ResetView)
        self._timer = TimerView.__new__(TimerView)
        self._order = OrderView.__new__(OrderView)
        self._fill = FillView.__new__(FillView)
        self._mark = MarkPriceView.__new__(MarkPriceView)
        self._grow(1)
        if registry is not None:
            for instrument in registry:
                self.add_instrument(instrument)

    def __dealloc__(self):
        free(self._routes)
        free(self._scales)
        free(self._books)
        free(self._features)
        free(self._feature_start)
        free(self._feature_count)
        free(self._series_mask)
        free(self._series_features)
        free(self._series_feature_start)
        free(self._series_feature_count)
        free(self._aggs)
        free(self._aggs_start)
        free(self._aggs_count)

    cdef _grow(self, Py_ssize_t n):
        """Make room for instrument ids < n."""
        cdef Py_ssize_t old = self._n_instruments
        cdef uint64_t *routes
        cdef InstrumentScale *scales
        cdef PyObject **books
        if n <= old:
            return
        routes = <uint64_t *>realloc(self._routes, n * N_KINDS * sizeof(uint64_t))
        if routes == NULL:
            raise MemoryError()
        self._routes = routes
        scales = <InstrumentScale *>realloc(self._scales, n * sizeof(InstrumentScale))
        if scales == NULL:
            raise MemoryError()
        self._scales = scales
        books = <PyObject **>realloc(self._books, n * sizeof(PyObject *))
        if books == NULL:
            raise MemoryError()
        self._books = books
        memset(&self._routes[old * N_KINDS], 0, (n - old) * N_KINDS * sizeof(uint64_t))
        memset(&self._scales[old], 0, (n - old) * sizeof(InstrumentScale))
        memset(&self._books[old], 0, (n - old) * sizeof(PyObject *))
        self._book_list.extend([None] * (n - old))
        self._names.extend([None] * (n - len(self._names)))
        self._n_instruments = n
        self._rebuild_features()
        self._rebuild_bars()
        for view in (self._trade, self._quote, self._bookv, self._reset, self._timer, self._candle,
                     self._order, self._fill, self._mark):
            (<RecordView>view)._scales = self._scales
            (<RecordView>view)._names = self._names

    def add_instrument(self, instrument):
        """Make an instrument routable (its id, name and precisions)."""
        cdef uint32_t iid = instrument.id
        if iid == 0:
            raise ValueError(f"{instrument.name} has no id: register it in an InstrumentRegistry first")
        self._grow(iid + 1)
        self._scales[iid].price_precision = instrument.price_precision
        self._scales[iid].size_precision = instrument.size_precision
        self._names[iid] = instrument.name
        self._instruments[iid] = instrument

    def add_strategy(self, Strategy strategy):
        """Register a strategy; returns its index. Detects its overridden hooks now, once."""
        cdef int i = self._n_strategies
        cdef int h
        if i >= MAX_STRATEGIES:
            raise ValueError(f"an engine runs at most {MAX_STRATEGIES} strategies")
        if any(s is strategy for s in self._strategies):
            raise ValueError(f"{strategy!r} is already registered")
        strategy._bind_hooks()
        self._strategies.append(strategy)
        # Own the bound methods: _py_hook holds raw pointers, and the strategy's own list may be
        # rebound later (registered elsewhere), which would free them under us.
        self._hook_refs.append(list(strategy._bound))
        self._strats[i] = <PyObject *>strategy
        self._py_mask[i] = strategy._python_hooks
        self._cy_mask[i] = strategy._cython_hooks
        for h in range(N_HOOKS):
            bound = self._hook_refs[i][h]
            self._py_hook[i][h] = <PyObject *>bound if bound is not None else NULL
        self._n_strategies += 1
        return i

    @property
    def strategies(self):
        return list(self._strategies)

    def attach_feature(self, uint32_t instrument_id, Kernel kernel, str source, int series=0):
        """Feed `kernel` from the instrument's events, before any strategy hook sees them.

        source: "trade.price" | "trade.size" | "trade.notional" | "trade" (Vwap, TradeFlowImbalance) |
        "book.mid" | "book.microprice" | "book.spread" | "book.best_bid" | "book.best_ask" |
        "book" (Microprice, BookImbalance) | "quote.mid" | "quote.bid" | "quote.ask" | "quote" (Microprice) |
        "candle.close" | "candle" (Atr, TrueRange: high, low, close) — candle sources need `series`, the
        bar series (add_bars) whose bars feed the kernel.
        Book sources update once per venue message, when the book is consistent; an empty side skips
        the update rather than feeding NaN.
        """
        if source not in FEATURE_SOURCES:
            raise ValueError(f"unknown feature source {source!r}; sources: {', '.join(FEATURE_SOURCES)}")
        kind, inp, accepts = FEATURE_SOURCES[source]
        if not isinstance(kernel, accepts):
            raise TypeError(f"{type(kernel).__name__} cannot be fed from {source!r} "
                            f"(it takes {', '.join(c.__name__ for c in accepts)})")
        if inp is None:
            # Sources that take several kernel types: the input says which update_c to call, so the
            # hot path never asks a kernel its type.
            if kind == RecordKind.TRADE:
                inp = IN_TRADE_VWAP if isinstance(kernel, Vwap) else IN_TRADE_FLOW
            elif kind == RecordKind.CANDLE:
                inp = IN_CANDLE_ATR if isinstance(kernel, Atr) else IN_CANDLE_TRUE_RANGE
            else:
                inp = IN_BOOK_MICROPRICE_KERNEL if isinstance(kernel, Microprice) else IN_BOOK_IMBALANCE_KERNEL
        if instrument_id == 0 or instrument_id >= self._n_instruments or self._names[instrument_id] is None:
            raise KeyError(f"unknown instrument id {instrument_id}: add it to the engine's registry first")
        if kind == RecordKind.CANDLE:
            if not 0 < series < len(self._series) or (<BarAggregator>self._series[series]).instrument_id != instrument_id:
                raise ValueError(f"{source!r} needs series=, the id of a bar series of instrument {instrument_id} "
                                 f"(from add_bars)")
            self._series_feature_refs.append((series, int(inp), kernel))
            self._rebuild_bars()
            return kernel
        if kind == RecordKind.BOOK_DELTA:
            self._ensure_book(instrument_id)
        self._feature_refs.append((instrument_id, int(kind), int(inp), kernel))
        self._rebuild_features()
        return kernel

    # ---- bars ---------------------------------------------------------------------------------------

    def add_bars(self, BarAggregator aggregator):
        """Feed an aggregator with its instrument's trades; its bars go to the series' subscribers
        (on_candle) and kernels. Returns the series id (written into every candle it makes)."""
        cdef uint32_t iid = aggregator.instrument_id
        if iid == 0 or iid >= self._n_instruments or self._names[iid] is None:
            raise KeyError(f"unknown instrument id {iid}: add it to the engine's registry first")
        if any(a is aggregator for a in self._series):
            raise ValueError("this aggregator is already part of the engine")
        aggregator.series_id = len(self._series)
        self._series.append(aggregator)
        self._rebuild_bars()
        return aggregator.series_id

    def subscribe_bars(self, int index, int series):
        """Deliver the bars of a series to strategy `index` (on_candle)."""
        self._check_strategy(index)
        if not 0 < series < len(self._series):
            raise KeyError(f"no bar series {series}")
        self._series_mask[series] |= (<uint64_t>1) << index

    def series(self, int series):
        return self._series[series] if 0 < series < len(self._series) else None

    cdef _rebuild_bars(self):
        """Lay out the aggregators by instrument and the candle-fed kernels by series."""
        cdef Py_ssize_t n_series = len(self._series), i, pos = 0
        cdef Py_ssize_t n = max(self._n_instruments, 1)
        cdef uint64_t *masks = <uint64_t *>realloc(self._series_mask, n_series * sizeof(uint64_t))
        if masks == NULL:
            raise MemoryError()
        for i in range(self._n_masks, n_series):
            masks[i] = 0
        self._series_mask = masks
        self._n_masks = n_series
        aggs = <PyObject **>realloc(self._aggs, max(n_series, 1) * sizeof(PyObject *))
        start = <int32_t *>realloc(self._aggs_start, n * sizeof(int32_t))
        count = <int32_t *>realloc(self._aggs_count, n * sizeof(int32_t))
        if aggs == NULL or start == NULL or count == NULL:
            raise MemoryError()
        self._aggs, self._aggs_start, self._aggs_count = aggs, start, count
        for i in range(n):
            self._aggs_start[i] = 0
            self._aggs_count[i] = 0
        by_instrument = {}
        for agg in self._series[1:]:
            by_instrument.setdefault((<BarAggregator>agg).instrument_id, []).append(agg)
        for iid, group in by_instrument.items():
            if iid >= n:
                continue
            self._aggs_start[iid] = pos
            self._aggs_count[iid] = len(group)
            for agg in group:
                self._aggs[pos] = <PyObject *>agg
                pos += 1
        feats = <FeatureBinding *>realloc(self._series_features,
                                          max(len(self._series_feature_refs), 1) * sizeof(FeatureBinding))
        fstart = <int32_t *>realloc(self._series_feature_start, n_series * sizeof(int32_t))
        fcount = <int32_t *>realloc(self._series_feature_count, n_series * sizeof(int32_t))
        if feats == NULL or fstart == NULL or fcount == NULL:
            raise MemoryError()
        self._series_features, self._series_feature_start, self._series_feature_count = feats, fstart, fcount
        for i in range(n_series):
            self._series_feature_start[i] = 0
            self._series_feature_count[i] = 0
        pos = 0
        for sid in range(1, n_series):
            bindings = [(inp, k) for s_, inp, k in self._series_feature_refs if s_ == sid]
            self._series_feature_start[sid] = pos
            self._series_feature_count[sid] = len(bindings)
            for inp, kernel in bindings:
                self._series_features[pos].kernel = <PyObject *>kernel
                self._series_features[pos].input = inp
                pos += 1

    cdef int _route_candles(self, Py_ssize_t k) except -1:
        """Deliver the k record slots of candles in _candles: kernels of their series first, then
        on_candle. Returns 1 if a hook asked to stop."""
        cdef Py_ssize_t j
        cdef int32_t f, end
        cdef int64_t sid
        cdef const Record *head
        cdef FeatureBinding *b
        cdef InstrumentScale sc
        cdef double high, low, close
        j = -CANDLE_SLOTS
        while j + CANDLE_SLOTS < k:
            j += CANDLE_SLOTS
            head = &self._candles[j]
            sid = self._candles[j + 1].aux1
            if sid <= 0 or sid >= self._n_masks:
                continue
            self.candles += 1
            sc = self._scales[head.instrument_id]
            end = self._series_feature_start[sid] + self._series_feature_count[sid]
            for f in range(self._series_feature_start[sid], end):
                b = &self._series_features[f]
                close = ex_raw_to_f64(self._candles[j + 1].ts_exchange, sc.price_precision)
                if b.input == IN_CANDLE_CLOSE:
                    (<ScalarKernel>b.kernel).update_c(close)
                else:
                    high = ex_raw_to_f64(head.aux0, sc.price_precision)
                    low = ex_raw_to_f64(head.aux1, sc.price_precision)
                    if b.input == IN_CANDLE_ATR:
                        (<Atr>b.kernel).update_c(high, low, close)
                    else:
                        (<TrueRange>b.kernel).update_c(high, low, close)
            if self._series_mask[sid] and self._fan_out(self._series_mask[sid], HOOK_CANDLE, self._candle, head):
                return 1
        return 0

    cdef int _update_bars(self, uint32_t iid, const Record *r) except -1:
        """Feed a trade to the instrument's aggregators and deliver every bar it closes."""
        cdef int32_t a
        cdef Py_ssize_t k
        cdef BarAggregator agg
        for a in range(self._aggs_start[iid], self._aggs_start[iid] + self._aggs_count[iid]):
            agg = <BarAggregator>self._aggs[a]
            k = agg.update_c(r, self._candles, CANDLE_BUFFER)
            while k > 0:
                if self._route_candles(k):
                    return 1
                k = agg.drain_c(self._candles, CANDLE_BUFFER)
        return 0

    def bars_on_time(self, int64_t now_us, bint flush=False):
        """Close the time bars whose interval ended by now_us (flush=True: every partial bar of every
        series) and deliver them. The engine calls this from its bar clock."""
        cdef BarAggregator agg
        cdef Py_ssize_t k
        for agg in self._series[1:]:
            k = agg.flush_c(now_us, self._candles, CANDLE_BUFFER) if flush else \
                agg.on_time_c(now_us, self._candles, CANDLE_BUFFER)
            while k > 0:
                if self._route_candles(k):
                    return
                k = agg.drain_c(self._candles, CANDLE_BUFFER)

    def time_bar_intervals(self):
        """The interval (µs) of every time-bar series, for the engine's bar clock."""
        return sorted({agg.interval_us for agg in self._series[1:] if agg.interval_us})

    cdef _rebuild_features(self):
        """Lay the bindings out grouped by (instrument, kind), in attach order within a group."""
        cdef Py_ssize_t cells = self._n_instruments * N_KINDS, i, pos = 0
        cdef FeatureBinding *table
        groups = {}
        for iid, kind, inp, kernel in self._feature_refs:
            groups.setdefault(iid * N_KINDS + kind, []).append((inp, kernel))
        table = <FeatureBinding *>realloc(self._features, max(len(self._feature_refs), 1) * sizeof(FeatureBinding))
        if table == NULL:
            raise MemoryError()
        self._features = table
        start = <int32_t *>realloc(self._feature_start, max(cells, 1) * sizeof(int32_t))
        if start == NULL:
            raise MemoryError()
        self._feature_start = start
        count = <int32_t *>realloc(self._feature_count, max(cells, 1) * sizeof(int32_t))
        if count == NULL:
            raise MemoryError()
        self._feature_count = count
        for i in range(cells):
            self._feature_start[i] = -1
            self._feature_count[i] = 0
        for cell, bindings in groups.items():
            self._feature_start[cell] = pos
            self._feature_count[cell] = len(bindings)
            for inp, kernel in bindings:
                self._features[pos].kernel = <PyObject *>kernel
                self._features[pos].input = inp
                pos += 1

    def features(self, uint32_t instrument_id):
        """The kernels attached to an instrument, with their sources' record kinds, in attach order."""
        return [(RecordKind(kind), kernel) for iid, kind, inp, kernel in self._feature_refs if iid == instrument_id]

    cdef void _update_features(self, Py_ssize_t cell, const Record *r, OrderBook book) noexcept nogil:
        """Feed every kernel bound to (instrument, kind) from this record (or the book it just updated)."""
        cdef int32_t i, end = self._feature_start[cell] + self._feature_count[cell]
        cdef FeatureBinding *b
        cdef InstrumentScale sc = self._scales[r.instrument_id]
        cdef double price, size, bid, ask, bq, aq
        cdef bint both
        for i in range(self._feature_start[cell], end):
            b = &self._features[i]
            if b.input <= IN_TRADE_FLOW:
                price = ex_raw_to_f64(r.price, sc.price_precision)
                size = ex_raw_to_f64(r.quantity, sc.size_precision)
                if b.input == IN_TRADE_PRICE:
                    (<ScalarKernel>b.kernel).update_c(price)
                elif b.input == IN_TRADE_SIZE:
                    (<ScalarKernel>b.kernel).update_c(size)
                elif b.input == IN_TRADE_NOTIONAL:
                    (<ScalarKernel>b.kernel).update_c(price * size)
                elif b.input == IN_TRADE_VWAP:
                    (<Vwap>b.kernel).update_c(price, size)
                else:
                    (<TradeFlowImbalance>b.kernel).update_c(size, not (r.flags & FLAG_ASK))
            elif b.input <= IN_BOOK_MICROPRICE_KERNEL:
                if b.input == IN_BOOK_MICROPRICE_KERNEL:
                    (<Microprice>b.kernel).update_book_c(book)
                    continue
                if b.input == IN_BOOK_IMBALANCE_KERNEL:
                    (<BookImbalance>b.kernel).update_book_c(book)
                    continue
                both = book.has_best(0) and book.has_best(1)
                if b.input == IN_BOOK_BEST_BID:
                    if book.has_best(0):
                        (<ScalarKernel>b.kernel).update_c(book._px(book.best_price_raw(0)))
                elif b.input == IN_BOOK_BEST_ASK:
                    if book.has_best(1):
                        (<ScalarKernel>b.kernel).update_c(book._px(book.best_price_raw(1)))
                elif both:
                    bid = book._px(book.best_price_raw(0))
                    ask = book._px(book.best_price_raw(1))
                    if b.input == IN_BOOK_MID:
                        (<ScalarKernel>b.kernel).update_c((bid + ask) * 0.5)
                    elif b.input == IN_BOOK_SPREAD:
                        (<ScalarKernel>b.kernel).update_c(ask - bid)
                    else:
                        bq = <double>book.best_qty_raw(0)
                        aq = <double>book.best_qty_raw(1)
                        (<ScalarKernel>b.kernel).update_c((bid * aq + ask * bq) / (bq + aq))
            else:
                bid = ex_raw_to_f64(r.price, sc.price_precision)
                ask = ex_raw_to_f64(r.aux0, sc.price_precision)
                if b.input == IN_QUOTE_MID:
                    (<ScalarKernel>b.kernel).update_c((bid + ask) * 0.5)
                elif b.input == IN_QUOTE_BID:
                    (<ScalarKernel>b.kernel).update_c(bid)
                elif b.input == IN_QUOTE_ASK:
                    (<ScalarKernel>b.kernel).update_c(ask)
                else:
                    (<Microprice>b.kernel).update_c(bid, ex_raw_to_f64(r.quantity, sc.size_precision),
                                                    ask, ex_raw_to_f64(r.aux1, sc.size_precision))

    def subscribe(self, int index, uint32_t instrument_id, kind):
        """Route records of `kind` (RecordKind) for an instrument to strategy `index`."""
        cdef int k = RecordKind(kind)
        self._check_strategy(index)
        if k not in ROUTED_KINDS:
            raise ValueError(f"{RecordKind(kind).name} records are not routed by subscription "
                             f"(routable: {', '.join(k.name for k in ROUTED_KINDS)})")
        if instrument_id == 0 or instrument_id >= self._n_instruments or self._names[instrument_id] is None:
            raise KeyError(f"unknown instrument id {instrument_id}: add it to the engine's registry first")
        self._routes[instrument_id * N_KINDS + k] |= (<uint64_t>1) << index
        if k == KIND_BOOK_DELTA:
            self._routes[instrument_id * N_KINDS + KIND_BOOK_RESET] |= (<uint64_t>1) << index
            self._ensure_book(instrument_id)

    def unsubscribe(self, int index, uint32_t instrument_id, kind):
        cdef int k = RecordKind(kind)
        self._check_strategy(index)
        if instrument_id < self._n_instruments:
            self._routes[instrument_id * N_KINDS + k] &= ~((<uint64_t>1) << index)
            if k == KIND_BOOK_DELTA:
                self._routes[instrument_id * N_KINDS + KIND_BOOK_RESET] &= ~((<uint64_t>1) << index)

    def subscribers(self, uint32_t instrument_id, kind):
        """Indices of the strategies subscribed to (instrument, kind)."""
        cdef uint64_t mask = 0
        if instrument_id < self._n_instruments:
            mask = self._routes[instrument_id * N_KINDS + <int>RecordKind(kind)]
        return [i for i in range(self._n_strategies) if mask & ((<uint64_t>1) << i)]

    def subscriptions(self):
        """The merged subscriptions: {(instrument id, RecordKind): [strategy indices]} — what sources
        must subscribe to, once each."""
        out = {}
        cdef Py_ssize_t iid
        for iid in range(1, self._n_instruments):
            for kind in ROUTED_KINDS:
                if kind == RecordKind.BOOK_RESET:
                    continue
                subs = self.subscribers(iid, kind)
                if (subs or self._feature_count[iid * N_KINDS + <int>kind]
                        or (kind == RecordKind.TRADE and self._aggs_count[iid])):
                    out[(iid, kind)] = subs
        return out

    cdef _ensure_book(self, uint32_t iid):
        if self._books[iid] != NULL:
            return
        instrument = self._instruments.get(iid)
        scale = self._scales[iid]
        options = dict(self._book_options)
        book = OrderBook(scale.price_precision, scale.size_precision, instrument_id=iid,
                         tick=instrument.tick_raw if instrument is not None else 1, **options)
        self._book_list[iid] = book
        self._books[iid] = <PyObject *>book

    def book(self, uint32_t instrument_id):
        """The engine's order book of an instrument (None if nobody subscribed to its book)."""
        if instrument_id >= self._n_instruments:
            return None
        return self._book_list[instrument_id]

    cdef _check_strategy(self, int index):
        if not 0 <= index < self._n_strategies:
            raise IndexError(f"no strategy with index {index}")

    def disable(self, int index):
        """That strategy receives nothing more."""
        self._check_strategy(index)
        self._disabled |= (<uint64_t>1) << index

    def is_disabled(self, int index):
        return bool(self._disabled & ((<uint64_t>1) << index))

    # ---- delivery -----------------------------------------------------------------------------------

    cdef int _call(self, int j, int hook, RecordView view, const Record *rec) except -1:
        """Call hook `hook` of strategy j with `view` pointed at rec; errors go to the error policy."""
        view._rec = rec
        try:
            if self._py_mask[j] & (1u << hook):
                (<object>self._py_hook[j][hook])(view)
            elif hook == HOOK_TRADE:
                (<Strategy>self._strats[j]).on_trade(<TradeView>view)
            elif hook == HOOK_QUOTE:
                (<Strategy>self._strats[j]).on_quote(<QuoteView>view)
            elif hook == HOOK_BOOK:
                (<Strategy>self._strats[j]).on_book(<BookView>view)
            elif hook == HOOK_BOOK_RESET:
                (<Strategy>self._strats[j]).on_book_reset(<ResetView>view)
            elif hook == HOOK_SCHEDULE:
                (<Strategy>self._strats[j]).on_schedule(<TimerView>view)
            elif hook == HOOK_CANDLE:
                (<Strategy>self._strats[j]).on_candle(<CandleView>view)
            elif hook == HOOK_ORDER:
                (<Strategy>self._strats[j]).on_order(<OrderView>view)
            elif hook == HOOK_FILL:
                (<Strategy>self._strats[j]).on_fill(<FillView>view)
            elif hook == HOOK_MARK_PRICE:
                (<Strategy>self._strats[j]).on_mark_price(<MarkPriceView>view)
            self.delivered += 1
        except Exception as exc:
            self._hook_failed(j, HOOK_NAMES[hook], exc, repr(view))
        finally:
            view._rec = NULL
        return 0

    cdef _hook_failed(self, int j, str hook, exc, str event):
        """Apply the error policy to an exception raised by strategy j's hook."""
        self.hook_errors += 1
        strategy = <Strategy>self._strats[j]
        action = strategy.on_error
        if self._error_handler is not None:
            action = self._error_handler(strategy, hook, exc, event)
        if action == "disable":
            self._disabled |= (<uint64_t>1) << j
        elif action == "stop":
            self.stop_requested = True

    cdef int _fan_out(self, uint64_t mask, int hook, RecordView view, const Record *rec) except -1:
        cdef int j
        cdef uint32_t bit = 1u << hook
        mask &= ~self._disabled
        while mask:
            j = _lowest_bit(mask)
            mask &= mask - 1
            if (self._py_mask[j] | self._cy_mask[j]) & bit:
                self._call(j, hook, view, rec)
                if self.stop_requested:
                    return 1
        return 0

    cdef Py_ssize_t dispatch_ptr(self, const Record *recs, Py_ssize_t n) except -1:
        """Route n records; returns how many were processed (fewer when a hook asked to stop)."""
        cdef Py_ssize_t i
        cdef const Record *r
        cdef uint32_t iid
        cdef int kind
        cdef uint64_t mask
        cdef Py_ssize_t cell
        cdef BookStatus st
        cdef OrderBook book
        for i in range(n):
            r = &recs[i]
            kind = r.kind
            iid = r.instrument_id
            if kind == KIND_TIMER:
                # Timers belong to one strategy: its index travels in aux1.
                if 0 <= r.aux1 < self._n_strategies:
                    if self._fan_out((<uint64_t>1) << r.aux1, HOOK_SCHEDULE, self._timer, r):
                        return i + 1
                continue
            if iid >= self._n_instruments or kind > KIND_MAX:
                self.unknown_instrument += 1
                continue
            cell = iid * N_KINDS + kind
            mask = self._routes[cell]
            if kind == KIND_BOOK_DELTA or kind == KIND_BOOK_RESET:
                if self._books[iid] == NULL:
                    continue
                book = <OrderBook>self._books[iid]
                st = book.apply_record(r)
                if st != BOOK_OK and st != BOOK_STALE:
                    self.book_errors += 1
                if kind == KIND_BOOK_RESET:
                    if mask and self._fan_out(mask, HOOK_BOOK_RESET, self._reset, r):
                        return i + 1
                    continue
                if not (r.flags & FLAG_LAST):
                    continue
                if self._feature_count[cell]:
                    self._update_features(cell, r, book)
                if mask == 0:
                    continue
                self._bookv._book = book
                if self._fan_out(mask, HOOK_BOOK, self._bookv, r):
                    return i + 1
                continue
            if kind == KIND_ORDER_UPDATE or kind == KIND_FILL:
                if self._route_order(kind, r, mask):
                    return i + 1
                continue
            if self._feature_count[cell]:
                self._update_features(cell, r, None)
            if kind == KIND_TRADE and self._aggs_count[iid] and self._update_bars(iid, r):
                return i + 1
            if mask == 0:
                continue
            elif kind == KIND_TRADE:
                if self._fan_out(mask, HOOK_TRADE, self._trade, r):
                    return i + 1
            elif kind == KIND_QUOTE:
                if self._fan_out(mask, HOOK_QUOTE, self._quote, r):
                    return i + 1
            elif kind == KIND_CANDLE:
                # A venue's own bar (e.g. a Binance kline), for the strategies subscribed to "candles".
                if self._fan_out(mask, HOOK_CANDLE, self._candle, r):
                    return i + 1
            elif kind == KIND_MARK_PRICE:
                if self._fan_out(mask, HOOK_MARK_PRICE, self._mark, r):
                    return i + 1
        return n

    cdef int _route_order(self, int kind, const Record *r, uint64_t foreign_mask) except -1:
        """An order update / fill goes to the strategy whose index its client order id carries
        (execution.orders); one with a foreign id to the strategies subscribed to "orders" / "fills"."""
        cdef int64_t coid = r.sequence if kind == KIND_ORDER_UPDATE else r.aux0
        cdef uint64_t mask = foreign_mask
        cdef int owner
        if 0 < coid < FOREIGN_ORDER_ID_BASE:
            owner = <int>(coid & (MAX_STRATEGIES - 1))
            if owner >= self._n_strategies:
                self.unowned_orders += 1
                return 0
            mask = (<uint64_t>1) << owner
        if kind == KIND_ORDER_UPDATE:
            return self._fan_out(mask, HOOK_ORDER, self._order, r)
        return self._fan_out(mask, HOOK_FILL, self._fill, r)

    def dispatch(self, records):
        """Route a RECORD_DTYPE array (on the calling thread). Returns how many records were processed."""
        cdef cnp.ndarray arr = as_record_array(records, "dispatch")
        return self.dispatch_ptr(record_data(arr), cnp.PyArray_DIM(arr, 0))

    cpdef Py_ssize_t pump(self, RingConsumer consumer) except -1:
        """Dispatch every record the consumer has available now; returns how many. Stops early (and
        leaves the rest) if a hook's error policy asked the engine to stop.

        A multi-slot event (an order update, a fill, a candle) can wrap around the end of the ring's slot
        array: its head is the last slot a poll returns and its continuations come back at the start with
        the next poll. Dispatching the head alone would read past the array, so such an event is copied
        whole into a small buffer first. Head and continuations are published together (one reservation),
        so the continuations are there to read at once; a lossy consumer that lost them to an overrun
        counts the head in torn_dropped instead of delivering half an event."""
        cdef const Record *batch
        cdef const Record *more
        cdef Record joined[16]
        cdef Py_ssize_t n, whole, have, need, m, total = 0
        while not self.stop_requested:
            n = consumer.poll_ptr(4096, &batch)
            if n <= 0:
                break
            whole = whole_events(batch, n)
            if whole:
                total += self.dispatch_ptr(batch, whole)
            if whole == n:
                continue
            have = n - whole
            memcpy(joined, batch + whole, have * sizeof(Record))
            need = 1 + (batch[whole].flags >> 12) - have
            while need > 0:
                m = consumer.poll_ptr(need, &more)
                if m <= 0:
                    break
                memcpy(joined + have, more, m * sizeof(Record))
                have += m
                need -= m
            if need:
                self.torn_dropped += 1
                continue
            self.rejoined += 1
            if not self.stop_requested:
                total += self.dispatch_ptr(joined, have)
        return total

    def deliver(self, int index, str hook, obj):
        """Call an object-taking hook (on_response, on_order, ...) of one strategy, under the error policy."""
        if hook not in HOOK_NAMES:
            raise ValueError(f"unknown hook {hook!r}")
        self._check_strategy(index)
        if self._disabled & ((<uint64_t>1) << index):
            return False
        try:
            getattr(<Strategy>self._strats[index], hook)(obj)
        except Exception as exc:
            self._hook_failed(index, hook, exc, repr(obj))
            return False
        return True

    def stats(self):
        return {"delivered": self.delivered, "candles": self.candles, "unknown_instrument": self.unknown_instrument,
                "rejoined": self.rejoined, "torn_dropped": self.torn_dropped,
                "unowned_orders": self.unowned_orders,
                "book_errors": self.book_errors, "hook_errors": self.hook_errors,
                "disabled": [s.name for i, s in enumerate(self._strategies) if self._disabled & ((<uint64_t>1) << i)]}


cdef extern from *:
    """
    static inline int ex_lowest_bit64(unsigned long long x) { return __builtin_ctzll(x); }
    """
    int _lowest_bit "ex_lowest_bit64"(uint64_t x) noexcept nogil
