# cython: language_level=3
"""A strategy written in Cython: its hooks are called through the vtable, with no Python call.

Build it against the installed extrema (the .pxd files ship in the wheel):

    cython -3 -I $(python -c "import extrema, pathlib; print(pathlib.Path(extrema.__file__).parent.parent)") \
        examples/cython_strategy.pyx
    (then compile the .c with the include dirs of Python and extrema/_core; tests/unit/test_cimport.py
    shows the whole recipe)

It keeps a running VWAP of the trades it sees and tracks the top of the book, all on raw integers.
"""
from libc.stdint cimport int64_t
cimport extrema
from extrema cimport Strategy, TradeView, BookView, Record, OrderBook


cdef class VwapTracker(Strategy):
    cdef public int64_t trades
    cdef public double notional
    cdef public double volume
    cdef public int64_t best_bid_raw
    cdef public int64_t books

    cpdef on_trade(self, TradeView trade):
        cdef const Record *r = trade.record_ptr()
        self.trades += 1
        self.notional += <double>r.price * <double>r.quantity
        self.volume += <double>r.quantity

    cpdef on_book(self, BookView view):
        cdef OrderBook book = view.book
        self.books += 1
        if book.has_best(0):
            self.best_bid_raw = book.best_price_raw(0)

    @property
    def vwap_raw(self):
        return self.notional / self.volume if self.volume else float("nan")
