from libc.stdint cimport int64_t, uint32_t, uint64_t
from extrema._core.types cimport Record
from extrema._core.book cimport OrderBook

# Per instrument id: what a view needs to turn raw ints into floats at the user boundary.
cdef struct InstrumentScale:
    int price_precision
    int size_precision

# Hook numbers: bit positions in a strategy's override masks and columns of the dispatcher's tables.
cdef enum HookId:
    HOOK_START = 0
    HOOK_STOP = 1
    HOOK_BOOK = 2
    HOOK_TRADE = 3
    HOOK_QUOTE = 4
    HOOK_BOOK_RESET = 5
    HOOK_SCHEDULE = 6
    HOOK_CANDLE = 7
    HOOK_PREDICTION = 8
    HOOK_ORDER = 9
    HOOK_FILL = 10
    HOOK_POSITION = 11
    HOOK_RESPONSE = 12
    HOOK_MARK_PRICE = 13
    N_HOOKS = 14


# Engine-owned views handed to hooks: one object per kind per engine, re-pointed at each record, so an
# event costs no allocation. Valid only during the hook call (reads afterwards raise); copy() keeps one.
cdef class RecordView:
    cdef const Record *_rec
    cdef const InstrumentScale *_scales
    cdef object _names                     # list: instrument id -> normalised name
    cdef object _keep                      # copies: the OwnedRecord _rec points into
    cdef int _check(self) except -1
    cdef _copy_extra(self, RecordView source)
    cdef double _price(self, int64_t raw)
    cdef double _size(self, int64_t raw)
    cdef str _describe(self)
    # For Cython strategies: the record behind the view (NULL outside the hook call).
    cdef inline const Record *record_ptr(self) noexcept nogil:
        return self._rec

cdef class TradeView(RecordView):
    pass

cdef class QuoteView(RecordView):
    pass

cdef class BookView(RecordView):
    cdef OrderBook _book

cdef class ResetView(RecordView):
    pass

cdef class TimerView(RecordView):
    pass

cdef class CandleView(RecordView):
    cdef object _series                    # list: series id -> BarAggregator (the engine's)

cdef class OrderView(RecordView):
    pass

cdef class MarkPriceView(RecordView):
    pass

cdef class FillView(RecordView):
    pass


cdef class Strategy:
    cdef readonly str name
    cdef public object context
    cdef public object on_error            # None (the engine's policy), "continue", "disable" or "stop"
    cdef uint32_t _python_hooks            # overridden in Python: call the bound method cached at registration
    cdef uint32_t _cython_hooks            # overridden in Cython: call through the vtable, no Python
    cdef list _bound                       # HookId -> cached bound method (Python overrides) or None

    cpdef on_start(self)
    cpdef on_stop(self)
    cpdef on_book(self, BookView book)
    cpdef on_trade(self, TradeView trade)
    cpdef on_quote(self, QuoteView quote)
    cpdef on_book_reset(self, ResetView reset)
    cpdef on_schedule(self, TimerView timer)
    cpdef on_candle(self, CandleView candle)
    cpdef on_prediction(self, object prediction)
    cpdef on_order(self, OrderView order)
    cpdef on_fill(self, FillView fill)
    cpdef on_position(self, object position)
    cpdef on_response(self, object response)
    cpdef on_mark_price(self, MarkPriceView mark)
