from libc.stdint cimport int64_t, uint32_t
from extrema._core.types cimport Record

# Notional (price * size) is accumulated exactly in 128 bits: price and size are positive int64 raw
# values, so one product is < 2**126 and a bar's sum is < 2**126 as long as its int64 volume does not
# overflow (sum(p * q) <= max(p) * sum(q)), which update_c checks. GCC and Clang provide the type.
cdef extern from *:
    """
    typedef unsigned __int128 ex_u128;
    """
    # Declared to Cython as a 64-bit integer so it generates plain C arithmetic; the C compiler sees the
    # real 128-bit type. Values never cross to Python directly: bars.pyx splits them into 64-bit halves.
    ctypedef unsigned long long ex_u128


cdef enum BarKind:
    BAR_TIME = 0          # epoch-aligned intervals of interval_us
    BAR_TICK = 1          # every `threshold` accepted trades
    BAR_VOLUME = 2        # when the bar's raw volume reaches `threshold`
    BAR_NOTIONAL = 3      # when the bar's raw notional (price_raw * size_raw) reaches `threshold`


cdef enum EmptyPolicy:
    EMPTY_SKIP = 0        # an interval without trades produces no bar
    EMPTY_FILL = 1        # ... a flat bar at the previous close, volume 0


# Return codes of the compiled API (>= 0 is the number of record slots written).
cdef enum:
    CANDLE_SLOTS = 2            # one candle = head + 1 continuation (records.pyx)
    BARS_OUT_TOO_SMALL = -1     # out_cap < CANDLE_SLOTS (or no room to drain): nothing was done
    BARS_PENDING = -2           # flat bars of an earlier call wait in drain_c: nothing was done


# The bar being built. Prices and sizes are raw int64 at the instrument's precisions.
cdef struct BarState:
    int64_t open_time       # time bars: interval start; other kinds: first trade's ts_exchange
    int64_t close_time      # exclusive: time bars the interval end, other kinds last trade's ts + 1
    int64_t open
    int64_t high
    int64_t low
    int64_t close
    int64_t volume
    int64_t buy_volume      # seller was not the aggressor (FLAG_ASK clear, aggressor known)
    int64_t sell_volume     # FLAG_ASK set, aggressor known
    int64_t trade_count
    ex_u128 notional        # sum(price_raw * size_raw), exact, at price + size precision


cdef class BarAggregator:
    cdef readonly uint32_t instrument_id
    cdef readonly int price_precision
    cdef readonly int size_precision
    cdef BarKind _kind
    cdef EmptyPolicy _empty
    cdef int64_t _interval_us           # time bars
    cdef int64_t _threshold             # tick bars: trades; volume bars: raw size
    cdef ex_u128 _notional_threshold    # notional bars: raw at price + size precision
    cdef object _size_arg               # the normalised `size` the aggregator was built with

    cdef public uint32_t series_id      # written into each candle (p6): which series produced it; the
                                        # engine numbers its aggregators from 1, 0 outside an engine
    cdef BarState _bar
    cdef bint _has_bar
    cdef int64_t _next_start            # time bars: trades before it fall in an interval already closed
    cdef int64_t _last_ts               # ts_exchange of the latest accepted trade
    cdef int64_t _last_close            # close of the latest emitted bar (the price of flat bars)
    cdef bint _has_last_close
    cdef int64_t _fill_next             # pending flat bars: interval starts [_fill_next, _fill_end)
    cdef int64_t _fill_end
    cdef int64_t _fill_ts_local         # ts_local of the event that produced them

    cdef int64_t _n_trades
    cdef int64_t _n_bars
    cdef int64_t _n_flat
    cdef int64_t _n_ignored
    cdef int64_t _n_bad_price
    cdef int64_t _n_bad_size
    cdef int64_t _n_bad_time
    cdef int64_t _n_out_of_order
    cdef int64_t _n_late
    cdef int64_t _n_overflow

    # Compiled API (the engine's): no GIL, no exceptions. Each returns the number of record slots
    # written into `out` (CANDLE_SLOTS per bar, head + continuation), or BARS_OUT_TOO_SMALL /
    # BARS_PENDING without changing anything. After any call that wrote slots, call drain_c until it
    # returns 0: a gap with empty="fill" can produce more flat bars than out_cap holds. The loop:
    #
    #     k = agg.update_c(&trade, buf, cap)        # or on_time_c(now_us, ...) / flush_c(now_us, ...)
    #     while k > 0:
    #         route(buf, k)                          # publish / dispatch the candles
    #         k = agg.drain_c(buf, cap)
    #
    # One thread owns an aggregator (the engine thread); nothing here is synchronised.
    cdef Py_ssize_t update_c(self, const Record *trade, Record *out, Py_ssize_t out_cap) noexcept nogil
    cdef Py_ssize_t on_time_c(self, int64_t now_us, Record *out, Py_ssize_t out_cap) noexcept nogil
    cdef Py_ssize_t flush_c(self, int64_t now_us, Record *out, Py_ssize_t out_cap) noexcept nogil
    cdef Py_ssize_t drain_c(self, Record *out, Py_ssize_t out_cap) noexcept nogil
    cdef bint has_pending_c(self) noexcept nogil

    # Internals.
    cdef Py_ssize_t _close_bar(self, int64_t ts_local, Record *out) noexcept nogil
    cdef Py_ssize_t _write_flat(self, Record *out, Py_ssize_t out_cap) noexcept nogil
    cdef void _write_candle(self, Record *out, const BarState *b, int64_t ts_local) noexcept nogil
    cdef object _run(self, const Record *trades, Py_ssize_t n, int64_t now_us, int op)
