from libc.stdint cimport int64_t

from extrema._core.instruments cimport Instrument


cdef class OrderSink:
    cdef object _submit_raw          # OrderSink(submit_raw): a Python client's submit_raw
    # Where Context.submit's fast path hands a plain order (LIMIT GTC / IOC / FOK or MARKET, raw numbers at
    # the instrument's precisions, already through the risk chain). An execution client's compiled writer
    # subclasses it (Binance: binance_orders.WsApiOrderSink); send() raises when the order was not sent.
    cdef int send(self, int64_t coid, str strategy, Instrument inst, int side, int order_type, int tif,
                  int64_t qty_raw, int64_t price_raw) except -1


cdef class OrderIdAllocator:
    cdef object _clock
    cdef public int64_t _start          # seconds since 2024-01-01 of this run's ids
    cdef public int64_t _counter
    cdef int64_t take(self, int owner) except -1      # next(owner) for compiled callers
