# The dispatcher's declarations, so compiled drivers (the backtest's replay loop, _core/backtest.pyx) can
# route records with dispatch_ptr() and read stop_requested without a Python call per record.
cimport cython
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

from extrema._core.types cimport Record
from extrema._core.book cimport OrderBook
from extrema._core.ring cimport RingConsumer
from extrema._core.strategy cimport (
    RecordView, TradeView, QuoteView, BookView, ResetView, TimerView, CandleView, OrderView, FillView,
    MarkPriceView, InstrumentScale, N_HOOKS)

cdef enum:
    MAX_STRATEGIES = 64        # one bit each in a routing mask; also the owner field of client order ids
    CANDLE_BUFFER = 64         # record slots: 32 candles per aggregator call

cdef struct FeatureBinding:
    PyObject *kernel        # borrowed: Dispatcher._feature_refs owns it
    int input


@cython.final
cdef class Dispatcher:
    cdef list _strategies
    cdef list _hook_refs              # per strategy: the bound hook methods _py_hook points at
    cdef PyObject *_strats[MAX_STRATEGIES]
    cdef PyObject *_py_hook[MAX_STRATEGIES][N_HOOKS]
    cdef uint32_t _py_mask[MAX_STRATEGIES]
    cdef uint32_t _cy_mask[MAX_STRATEGIES]
    cdef int _n_strategies
    cdef uint64_t _disabled
    cdef uint64_t *_routes            # [instrument id * N_KINDS + kind] -> strategy mask
    cdef InstrumentScale *_scales
    cdef PyObject **_books            # instrument id -> OrderBook (borrowed from _book_list) or NULL
    cdef list _book_list
    cdef Py_ssize_t _n_instruments
    cdef list _names
    cdef TradeView _trade
    cdef QuoteView _quote
    cdef BookView _bookv
    cdef ResetView _reset
    cdef TimerView _timer
    cdef object _error_handler
    cdef readonly bint stop_requested
    cdef readonly int64_t delivered
    cdef readonly int64_t unknown_instrument
    cdef readonly int64_t book_errors
    cdef readonly int64_t hook_errors
    cdef readonly int64_t candles
    cdef readonly int64_t rejoined         # multi-slot events the ring wrapped, put back together by pump
    cdef readonly int64_t torn_dropped     # ... whose continuations never came (a lossy consumer overrun)
    cdef Py_ssize_t _n_masks
    cdef dict _book_options
    cdef dict _instruments            # id -> Instrument
    cdef list _feature_refs           # [(instrument id, kind, input, kernel)] in attach order
    cdef FeatureBinding *_features    # the same, grouped by (instrument, kind)
    cdef int32_t *_feature_start      # [instrument id * N_KINDS + kind] -> first binding, or -1
    cdef int32_t *_feature_count
    # Bar series: id -> aggregator (slot 0 unused), the strategies subscribed to each, the kernels fed
    # by each, and per instrument the aggregators its trades go to.
    cdef list _series
    cdef uint64_t *_series_mask
    cdef list _series_feature_refs    # [(series id, input, kernel)]
    cdef FeatureBinding *_series_features
    cdef int32_t *_series_feature_start
    cdef int32_t *_series_feature_count
    cdef PyObject **_aggs             # grouped by instrument
    cdef int32_t *_aggs_start
    cdef int32_t *_aggs_count
    cdef Record _candles[CANDLE_BUFFER]
    cdef CandleView _candle
    cdef OrderView _order
    cdef FillView _fill
    cdef MarkPriceView _mark
    cdef readonly int64_t unowned_orders   # updates / fills with one of our ids but no such strategy


    cdef _grow(self, Py_ssize_t n)
    cdef _rebuild_bars(self)
    cdef int _route_candles(self, Py_ssize_t k) except -1
    cdef int _update_bars(self, uint32_t iid, const Record *r) except -1
    cdef _rebuild_features(self)
    cdef void _update_features(self, Py_ssize_t cell, const Record *r, OrderBook book) noexcept nogil
    cdef _ensure_book(self, uint32_t iid)
    cdef _check_strategy(self, int index)
    cdef int _call(self, int j, int hook, RecordView view, const Record *rec) except -1
    cdef _hook_failed(self, int j, str hook, exc, str event)
    cdef int _fan_out(self, uint64_t mask, int hook, RecordView view, const Record *rec) except -1
    cdef Py_ssize_t dispatch_ptr(self, const Record *recs, Py_ssize_t n) except -1
    cpdef Py_ssize_t pump(self, RingConsumer consumer) except -1
    cdef int _route_order(self, int kind, const Record *r, uint64_t foreign_mask) except -1
