"""The strategy interface: `Strategy` with no-op hooks, and the engine-owned views hooks receive.

Subclass Strategy in Python (the normal case) or in Cython (`cimport extrema`, `cdef class
MyStrategy(Strategy)`, override the `cpdef` hooks). At registration the engine looks once at which
hooks the subclass overrides: a hook nobody overrides is never called; a Python override is called
through its bound method cached then (one vectorcall, no attribute lookup); a Cython override is
called through the vtable with no Python at all.

Views (TradeView, QuoteView, BookView, ...) are owned by the engine and re-pointed at each event, so
delivering an event allocates nothing. A view is valid only during the hook call; reading it later
raises. `view.copy()` returns a detached copy that stays valid.
"""
cimport cython
import types

from libc.stdint cimport int64_t, uint32_t
from libc.math cimport NAN

from extrema._core.types cimport (Record, FLAG_ASK, FLAG_SNAPSHOT, FLAG_AGGRESSOR_UNKNOWN, FLAG_MAKER, CONT_MASK,
                                  CONT_SHIFT)
from libc.string cimport memcpy
from extrema._core.ex_fixed cimport ex_raw_to_f64

HOOK_NAMES = ("on_start", "on_stop", "on_book", "on_trade", "on_quote", "on_book_reset", "on_schedule",
              "on_candle", "on_prediction", "on_order", "on_fill", "on_position", "on_response", "on_mark_price")
assert len(HOOK_NAMES) == N_HOOKS


class ViewExpiredError(RuntimeError):
    """An engine-owned view was read after its hook returned."""


@cython.final
cdef class OwnedRecord:
    """Storage for a copied view's record (a head and up to 15 continuation slots)."""
    cdef Record rec[16]


cdef class RecordView:
    """Common fields of every event view."""

    def __init__(self):
        raise TypeError("views are created by the engine; keep one with view.copy()")

    cdef int _check(self) except -1:
        if self._rec == NULL:
            raise ViewExpiredError(f"this {type(self).__name__} is valid only during the hook call that "
                                   f"received it; keep data with view.copy()")
        return 0

    @property
    def instrument_id(self):
        self._check()
        return self._rec.instrument_id

    @property
    def instrument(self):
        """Normalised instrument name."""
        self._check()
        return self._names[self._rec.instrument_id]

    @property
    def ts_exchange(self):
        """Venue timestamp, µs since the epoch (UTC)."""
        self._check()
        return self._rec.ts_exchange

    @property
    def ts_local(self):
        """Local receive timestamp, µs since the epoch (UTC)."""
        self._check()
        return self._rec.ts_local

    @property
    def sequence(self):
        self._check()
        return self._rec.sequence

    def record(self):
        """The underlying 64-byte record as a numpy scalar of RECORD_DTYPE (a copy)."""
        self._check()
        from extrema._core.records import RECORD_DTYPE
        import numpy as np
        return np.frombuffer((<char *>self._rec)[:sizeof(Record)], dtype=RECORD_DTYPE)[0].copy()

    def copy(self):
        """A detached copy of this view that stays valid after the hook returns."""
        self._check()
        cdef RecordView other = type(self).__new__(type(self))
        cdef OwnedRecord owned = OwnedRecord()
        cdef int slots = 1 + ((self._rec.flags & CONT_MASK) >> CONT_SHIFT)
        memcpy(owned.rec, self._rec, slots * sizeof(Record))
        other._keep = owned
        other._rec = &owned.rec[0]
        other._scales = self._scales
        other._names = self._names
        other._copy_extra(self)
        return other

    cdef _copy_extra(self, RecordView source):
        pass

    cdef double _price(self, int64_t raw):
        return ex_raw_to_f64(raw, self._scales[self._rec.instrument_id].price_precision)

    cdef double _size(self, int64_t raw):
        return ex_raw_to_f64(raw, self._scales[self._rec.instrument_id].size_precision)

    def __repr__(self):
        if self._rec == NULL:
            return f"<{type(self).__name__} (expired)>"
        return f"<{type(self).__name__} {self._describe()}>"

    cdef str _describe(self):
        return f"{self.instrument} seq={self._rec.sequence}"


@cython.final
cdef class TradeView(RecordView):
    """A trade: price, size, aggressor side, trade id."""

    @property
    def price(self):
        self._check()
        return self._price(self._rec.price)

    @property
    def size(self):
        self._check()
        return self._size(self._rec.quantity)

    @property
    def price_raw(self):
        self._check()
        return self._rec.price

    @property
    def size_raw(self):
        self._check()
        return self._rec.quantity

    @property
    def trade_id(self):
        self._check()
        return self._rec.sequence

    @property
    def aggressor(self):
        """Side of the aggressor: 0 buy, 1 sell, None when the venue does not say."""
        self._check()
        if self._rec.flags & FLAG_AGGRESSOR_UNKNOWN:
            return None
        return 1 if self._rec.flags & FLAG_ASK else 0

    cdef str _describe(self):
        side = {0: "buy", 1: "sell", None: "?"}[self.aggressor]
        return f"{self.instrument} {side} {self.size} @ {self.price} id={self._rec.sequence}"


@cython.final
cdef class QuoteView(RecordView):
    """Top of book: best bid and ask with sizes."""

    @property
    def bid_price(self):
        self._check()
        return self._price(self._rec.price)

    @property
    def bid_size(self):
        self._check()
        return self._size(self._rec.quantity)

    @property
    def ask_price(self):
        self._check()
        return self._price(self._rec.aux0)

    @property
    def ask_size(self):
        self._check()
        return self._size(self._rec.aux1)

    @property
    def update_id(self):
        self._check()
        return self._rec.sequence

    cdef str _describe(self):
        return f"{self.instrument} {self.bid_size} @ {self.bid_price} | {self.ask_size} @ {self.ask_price}"


@cython.final
cdef class BookView(RecordView):
    """The engine's order book of an instrument, right after a venue message was applied.

    `book` is the live engine-owned OrderBook: read it during the call, `book.copy()` to keep it."""

    @property
    def book(self):
        self._check()
        return self._book

    @property
    def update_id(self):
        self._check()
        return self._rec.sequence

    @property
    def is_snapshot(self):
        self._check()
        return bool(self._rec.flags & FLAG_SNAPSHOT)

    @property
    def best_bid(self):
        self._check()
        return self._book.best_bid

    @property
    def best_ask(self):
        self._check()
        return self._book.best_ask

    @property
    def mid(self):
        self._check()
        return self._book.mid

    cdef _copy_extra(self, RecordView source):
        self._book = (<BookView>source)._book.copy()

    cdef str _describe(self):
        return f"{self.instrument} {self._book!r}"


@cython.final
cdef class ResetView(RecordView):
    """The instrument's book was void (sequence gap, reconnect...) and has been cleared."""

    @property
    def reason(self):
        """ResetReason code (extrema.ResetReason)."""
        self._check()
        return self._rec.aux0


@cython.final
cdef class TimerView(RecordView):
    """A schedule fired."""

    @property
    def timer_id(self):
        self._check()
        return self._rec.sequence

    @property
    def scheduled_us(self):
        """When it was due, µs since the epoch."""
        self._check()
        return self._rec.aux0

    cdef str _describe(self):
        return f"timer {self._rec.sequence} due {self._rec.aux0}"


@cython.final
cdef class CandleView(RecordView):
    """A closed bar (OHLCV, VWAP, trade count, aggressor volumes) from one of the engine's aggregators."""

    @property
    def open(self):
        self._check()
        return self._price(self._rec.price)

    @property
    def high(self):
        self._check()
        return self._price(self._rec.aux0)

    @property
    def low(self):
        self._check()
        return self._price(self._rec.aux1)

    @property
    def close(self):
        self._check()
        return self._price(self._rec[1].ts_exchange)

    @property
    def vwap(self):
        self._check()
        return self._price(self._rec[1].ts_local)

    @property
    def volume(self):
        self._check()
        return self._size(self._rec.quantity)

    @property
    def buy_volume(self):
        """Volume of trades whose buyer was the aggressor."""
        self._check()
        return self._size(self._rec[1].sequence)

    @property
    def sell_volume(self):
        self._check()
        return self._size(self._rec[1].price)

    @property
    def trade_count(self):
        self._check()
        return self._rec.sequence

    @property
    def open_time(self):
        """Start of the bar, µs since the epoch."""
        self._check()
        return self._rec.ts_exchange

    @property
    def close_time(self):
        """End of the bar (exclusive), µs since the epoch."""
        self._check()
        return self._rec[1].quantity

    @property
    def series_id(self):
        """Which aggregator made it (see `series`)."""
        self._check()
        return self._rec[1].aux1

    @property
    def series(self):
        """The engine's BarAggregator that made this bar (what context.bars returned)."""
        self._check()
        sid = self._rec[1].aux1
        return self._series[sid] if self._series is not None and 0 < sid < len(self._series) else None

    cdef _copy_extra(self, RecordView source):
        self._series = (<CandleView>source)._series

    cdef str _describe(self):
        return (f"{self.instrument} O {self.open} H {self.high} L {self.low} C {self.close} "
                f"V {self.volume} from {self._rec.ts_exchange} series {self._rec[1].aux1}")



# Order statuses, types and times in force as carried in ORDER_UPDATE continuation words p0..p2
# (records.pyx); the names are extrema.execution's enums of the same numbers.
@cython.final
cdef class OrderView(RecordView):
    """An update of one of this strategy's orders (accepted, partly filled, cancelled, rejected...)."""

    @property
    def client_order_id(self):
        """The id `context.submit` returned for this order."""
        self._check()
        return self._rec.sequence

    @property
    def venue_order_id(self):
        self._check()
        return self._rec.aux1

    @property
    def side(self):
        self._check()
        return "sell" if self._rec.flags & FLAG_ASK else "buy"

    @property
    def price(self):
        """Limit price (0.0 for a market order)."""
        self._check()
        return self._price(self._rec.price)

    @property
    def quantity(self):
        """Original size."""
        self._check()
        return self._size(self._rec.quantity)

    @property
    def filled(self):
        """Cumulative filled size."""
        self._check()
        return self._size(self._rec.aux0)

    @property
    def remaining(self):
        self._check()
        return self._size(self._rec[1].aux0)

    @property
    def average_price(self):
        """Average fill price (0.0 before the first fill)."""
        self._check()
        return self._price(self._rec[1].price)

    @property
    def stop_price(self):
        self._check()
        return self._price(self._rec[1].quantity)

    @property
    def status(self):
        """extrema.OrderStatus."""
        self._check()
        return _order_enum("OrderStatus", self._rec[1].ts_exchange)

    @property
    def order_type(self):
        """extrema.OrderType."""
        self._check()
        return _order_enum("OrderType", self._rec[1].ts_local)

    @property
    def time_in_force(self):
        """extrema.TimeInForce."""
        self._check()
        return _order_enum("TimeInForce", self._rec[1].sequence)

    @property
    def reason(self):
        """Why the order was rejected / expired: an extrema.OrderReason from the venue, or the engine's
        own code (REJECT_REASON_BASE + the risk rule; context.rejection(id) has the details); 0 when none."""
        self._check()
        return self._rec[1].aux1 & 0xFFFF

    @property
    def exec_type(self):
        """What happened in this update (extrema.ExecType: NEW, TRADE, CANCELED...), as the venue said."""
        self._check()
        return (self._rec[1].aux1 >> 16) & 0xFFFF

    cdef str _describe(self):
        return (f"{self.instrument} order {self._rec.sequence} {self.side} {self.quantity} @ {self.price} "
                f"{self.status.name} filled {self.filled}")


@cython.final
cdef class FillView(RecordView):
    """A fill (execution) of one of this strategy's orders."""

    @property
    def client_order_id(self):
        self._check()
        return self._rec.aux0

    @property
    def trade_id(self):
        """The venue's trade id."""
        self._check()
        return self._rec.sequence

    @property
    def venue_order_id(self):
        self._check()
        return self._rec[1].ts_exchange

    @property
    def side(self):
        self._check()
        return "sell" if self._rec.flags & FLAG_ASK else "buy"

    @property
    def maker(self):
        """True when the order provided liquidity."""
        self._check()
        return bool(self._rec.flags & FLAG_MAKER)

    @property
    def price(self):
        self._check()
        return self._price(self._rec.price)

    @property
    def quantity(self):
        self._check()
        return self._size(self._rec.quantity)

    @property
    def fee_raw(self):
        """The fee in raw units of its asset (see records.pyx, FILL)."""
        self._check()
        return self._rec.aux1

    @property
    def fee_asset_id(self):
        self._check()
        return self._rec[1].ts_local

    cdef str _describe(self):
        return (f"{self.instrument} fill {self._rec.sequence} of order {self._rec.aux0} {self.side} "
                f"{self.quantity} @ {self.price}{' maker' if self.maker else ''}")


@cython.final
cdef class MarkPriceView(RecordView):
    """A derivatives mark price update (Binance USD-M markPrice): mark, index, estimated settle price,
    funding rate and the next funding time."""

    @property
    def mark_price(self):
        self._check()
        return self._price(self._rec.price)

    @property
    def index_price(self):
        self._check()
        return self._price(self._rec.aux0)

    @property
    def settle_price(self):
        """Estimated settle price (0.0 when the venue sends none)."""
        self._check()
        return self._price(self._rec.quantity)

    @property
    def funding_rate(self):
        """Per funding interval, e.g. 0.0001 (0.0 for contracts without funding)."""
        self._check()
        return ex_raw_to_f64(self._rec.aux1, 8)

    @property
    def next_funding_us(self):
        """When the next funding happens, µs since the epoch."""
        self._check()
        return self._rec.sequence

    cdef str _describe(self):
        return f"{self.instrument} mark {self.mark_price} index {self.index_price} funding {self.funding_rate}"


cdef object _orders_module = None


cdef object _order_enum(str name, int64_t value):
    """The enum member for a raw code (the plain int when a venue sent a code extrema does not know)."""
    global _orders_module
    if _orders_module is None:
        import extrema.execution.orders
        _orders_module = extrema.execution.orders
    try:
        return getattr(_orders_module, name)(value)
    except ValueError:
        return value

cdef class Strategy:
    """Base class of every strategy. Override the hooks you need; the rest cost nothing.

    Strategy(name=None, on_error=None): name defaults to the class name; on_error overrides the
    engine's policy for exceptions raised by this strategy's hooks ("continue", "disable", "stop").
    `self.context` is set by the engine at registration: subscribe, schedule, submit, cancel, ... go
    through it.
    """

    def __init__(self, name=None, *, on_error=None):
        self.name = name if name is not None else type(self).__name__
        if on_error not in (None, "continue", "disable", "stop"):
            raise ValueError(f"on_error must be None, 'continue', 'disable' or 'stop', got {on_error!r}")
        self.on_error = on_error
        self.context = None
        self._bound = [None] * N_HOOKS

    def _bind_hooks(self):
        """Find the overridden hooks (once, at registration) and cache what calling each one needs."""
        cdef int i
        cdef type cls = type(self)
        if self._bound is None:
            raise TypeError(f"{cls.__name__}.__init__ must call Strategy.__init__ (super().__init__())")
        self._python_hooks = 0
        self._cython_hooks = 0
        for i, hook in enumerate(HOOK_NAMES):
            attr = getattr(self, hook)
            set_on_instance = getattr(attr, "__self__", None) is not self     # e.g. self.on_trade = f
            if not set_on_instance and getattr(cls, hook) is getattr(Strategy, hook):
                self._bound[i] = None                                          # not overridden: never called
            elif set_on_instance or _defined_in_python_class(cls, hook):
                self._python_hooks |= 1u << i
                self._bound[i] = attr
            else:
                self._cython_hooks |= 1u << i
                self._bound[i] = None
        return self.overridden_hooks()

    def overridden_hooks(self):
        """{hook name: "python" | "cython"} for every overridden hook, as detected at registration."""
        return {name: ("python" if self._python_hooks & (1u << i) else "cython")
                for i, name in enumerate(HOOK_NAMES)
                if (self._python_hooks | self._cython_hooks) & (1u << i)}

    cpdef on_start(self):
        pass

    cpdef on_stop(self):
        pass

    cpdef on_book(self, BookView book):
        pass

    cpdef on_trade(self, TradeView trade):
        pass

    cpdef on_quote(self, QuoteView quote):
        pass

    cpdef on_book_reset(self, ResetView reset):
        pass

    cpdef on_schedule(self, TimerView timer):
        pass

    cpdef on_candle(self, CandleView candle):
        pass

    cpdef on_prediction(self, object prediction):
        pass

    cpdef on_order(self, OrderView order):
        pass

    cpdef on_fill(self, FillView fill):
        pass

    cpdef on_position(self, object position):
        pass

    cpdef on_response(self, object response):
        pass

    cpdef on_mark_price(self, MarkPriceView mark):
        pass

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def _defined_in_python_class(type cls, str hook):
    """True if the first class in the MRO defining `hook` is a Python class (not a compiled one)."""
    for klass in cls.__mro__:
        if hook in klass.__dict__:
            return bool(klass.__flags__ & (1 << 9))     # Py_TPFLAGS_HEAPTYPE: created by a class statement
    return False
