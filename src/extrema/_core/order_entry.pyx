"""The strategy's order call, compiled: Context.submit's common case from the hook to the venue writer.

    class Context(ContextCore): ...            # extrema.engine.context: everything else a strategy calls

Why (issue 5, tick-to-order): in Python, submit cost ~5 µs of the ~23 µs from a frame to the order's bytes
(argument checks, the Decimal-free raw conversion, the risk chain call with keywords, the client lookup)
and the client's send path another ~3-4 µs. Here a plain order - LIMIT GTC / IOC / FOK or MARKET, no
reduce-only / post-only / stop / expiry - goes from the call to the execution client's compiled writer
(an OrderSink) in C: the quantity and price become raw int64 at the instrument's precisions
(fixedpoint.value_to_raw, exactly or not at all), the order gets the engine's id, the compiled risk chain
checks and registers it, and the sink writes it. Anything else - another order type, a number off the
instrument's grid, a client without a compiled writer - takes the general path (Context._submit_general:
OrderRequest, Decimal), which raises the general path's errors. Both give the venue the same order
(tests/backtest/test_runner.py and tests/unit/test_context_submit.py compare them).
"""
cimport cython
from libc.stdint cimport int64_t

from extrema._core.instruments cimport Instrument
from extrema._core.execution cimport ExecutionCore
from extrema._core.fixedpoint cimport value_to_raw
from extrema._core.clock cimport now_us

from extrema._core.clock import time_us as _time_us

SEND_FAILED_REASON = 3000      # ORDER_UPDATE reason of an order the execution client refused to send
# The client order id's fields (extrema.execution.orders documents the layout).
DEF OWNER_BITS = 6
DEF COUNTER_END = 1 << 26
DEF EPOCH_S = 1_704_067_200       # 2024-01-01T00:00:00Z
# extrema.OrderType / TimeInForce numbers (types.pxd) of the orders the fast path takes.
DEF OT_MARKET = 1
DEF OT_LIMIT = 2


cdef class OrderSink:
    """An execution client's writer for the fast path (see order_entry.pxd). OrderSink(submit_raw) wraps a
    Python callable with ExecutionClient.submit_raw's arguments (client order id, strategy name, instrument,
    side 0 / 1, order type 1 MARKET / 2 LIMIT, time in force 1-3 or 0 for MARKET, quantity raw, price raw);
    compiled writers subclass it and override send()."""

    def __init__(self, submit_raw=None):
        if submit_raw is None and type(self) is OrderSink:
            raise TypeError("OrderSink(submit_raw): give the client's submit_raw, or subclass and override send")
        self._submit_raw = submit_raw

    cdef int send(self, int64_t coid, str strategy, Instrument inst, int side, int order_type, int tif,
                  int64_t qty_raw, int64_t price_raw) except -1:
        self._submit_raw(coid, strategy, inst, side, order_type, tif, qty_raw, price_raw)
        return 0

    def submit_raw(self, int64_t client_order_id, str strategy, Instrument inst not None, int side, int order_type,
                   int time_in_force, int64_t quantity_raw, int64_t price_raw):
        """send() from Python: ExecutionClient.submit_raw's arguments."""
        self.send(client_order_id, strategy, inst, side, order_type, time_in_force, quantity_raw, price_raw)


cdef class OrderIdAllocator:
    """The compiled part of extrema.execution.orders.ClientOrderIds: next(), inside every order's
    tick-to-order time (in Python ~0.3 µs). Not thread-safe, on purpose (see ClientOrderIds)."""

    def __init__(self, clock):
        self.restart(clock)

    def restart(self, clock):
        """Take ids from `clock` (seconds since the epoch) from now on: a backtest issues them on its data
        clock, so a run gives the same ids whenever it runs. Only before the first id."""
        if self._counter:
            raise RuntimeError("client order ids were issued already: restarting could issue one twice")
        start = max(1, int(clock()) - EPOCH_S)
        if start >= (1 << 30):
            raise OverflowError("client order id start field exhausted (year 2058)")
        self._clock = clock
        self._start = start

    def next(self, int owner):
        """A new id for an order of strategy `owner` (its index in the engine)."""
        return self.take(owner)

    cdef int64_t take(self, int owner) except -1:
        cdef int64_t counter
        if not 0 <= owner < (1 << OWNER_BITS):
            raise ValueError(f"strategy index must be in 0..{(1 << OWNER_BITS) - 1}, got {owner}")
        counter = self._counter + 1
        if counter >= COUNTER_END:
            # 67 M orders in one run: move to a fresh start second (never an earlier one).
            self._start = max(self._start + 1, <int64_t>int(self._clock()) - EPOCH_S)
            counter = 1
            if self._start >= (1 << 30):
                raise OverflowError("client order id start field exhausted (year 2058)")
        self._counter = counter
        return (self._start << 32) | (counter << OWNER_BITS) | owner


cdef inline int _plain_tif(object tif):
    # Times in force of the fast path -> extrema.TimeInForce numbers; 0: not one of them
    if tif == "GTC":
        return 1
    if tif == "IOC":
        return 2
    if tif == "FOK":
        return 3
    return 0


cdef class ContextCore:
    """The compiled base of extrema.engine.context.Context (see the module doc): its submit()."""

    cdef public object _engine
    cdef public object _strategy
    cdef public int index
    cdef ExecutionCore _core
    cdef OrderIdAllocator _ids
    cdef readonly dict order_sinks      # market -> the OrderSink the fast path writes to, or None
    cdef object _last_market            # the market of the last order and its sink
    cdef OrderSink _last_sink
    cdef Instrument _last_inst          # the last plain order's instrument, quantity and price (warm())
    cdef object _last_quantity, _last_price

    def __init__(self, engine, strategy, int index):
        self._engine = engine
        self._strategy = strategy
        self.index = index
        # Set in Engine.__init__, before any Context, and never replaced.
        self._core = engine.execution_core
        self._ids = engine.order_ids
        self.order_sinks = {}

    def submit(self, instrument, side, quantity, price=None, *, order_type=None, time_in_force="GTC",
               reduce_only=False, post_only=False, stop_price=None, expire_time_us=None):
        """Send a new order through the engine's pre-trade risk checks to its execution client; returns its
        client order id (an int: order updates and fills of this order carry it, see
        extrema.execution.orders). An order the checks refuse is not sent: it arrives in on_order as
        REJECTED with reason REJECT_REASON_BASE + rule, and context.rejection(id) says why.
        order_type: "limit" (the default with a price), "market" (without), "stop_market", "stop_limit",
        "take_profit_market", "take_profit_limit" (these with stop_price); time_in_force GTC, IOC, FOK,
        GTX (post-only) or GTD (with expire_time_us)."""
        cdef Instrument inst
        cdef int tif
        if type(instrument) is Instrument:
            inst = <Instrument>instrument
        else:
            inst = self._engine.find_instrument(instrument)
        if (order_type is None and not reduce_only and not post_only and stop_price is None
                and expire_time_us is None):
            tif = _plain_tif(time_in_force)
            if tif:
                coid = self._submit_plain(inst, side, quantity, price, tif)
                if coid is not None:
                    return coid
        return self._submit_general(inst, side, quantity, price, order_type, time_in_force, reduce_only,
                                    post_only, stop_price, expire_time_us)

    cdef object _submit_plain(self, Instrument inst, side, quantity, price, int tif):
        """The fast path; None when the order must take the general one (nothing done then)."""
        cdef int s, order_type
        cdef int64_t qty_raw, price_raw = 0, coid, now
        cdef OrderSink sink
        if side == "buy":
            s = 0
        elif side == "sell":
            s = 1
        else:
            return None
        sink = self._sink(inst.market)
        if sink is None:
            return None
        try:
            qty_raw = value_to_raw(quantity, inst.size_precision, False)
            if price is not None:
                price_raw = value_to_raw(price, inst.price_precision, False)
        except (ValueError, TypeError):
            return None
        if qty_raw <= 0 or (price is not None and price_raw <= 0):
            return None
        coid = self._ids.take(self.index)
        order_type = OT_LIMIT if price is not None else OT_MARKET
        clock = self._engine.clock
        now = now_us() if clock is _time_us else clock()
        rejection = self._core.submit_order(coid, self.index, inst.id, s, order_type, tif, 0, price_raw, 0,
                                            qty_raw, now)
        if rejection is not None:
            return self._refused(coid, inst, rejection)
        try:
            sink.send(coid, self._strategy.name, inst, s, order_type, tif if order_type == OT_LIMIT else 0,
                      qty_raw, price_raw)
        except BaseException:
            # the client refused it before anything was sent: the order never existed at the venue
            self._engine.orders.reject(coid, SEND_FAILED_REASON)
            raise
        self._last_inst = inst
        self._last_quantity = quantity
        self._last_price = price
        return coid

    def warm(self):
        """Convert the last plain order's quantity and price again and look its order sink up, changing
        nothing: the engine's busy-poll warm-up between events (extrema.engine.warm says why)."""
        cdef Instrument inst = self._last_inst
        if inst is None:
            return
        self._sink(inst.market)
        value_to_raw(self._last_quantity, inst.size_precision, False)
        if self._last_price is not None:
            value_to_raw(self._last_price, inst.price_precision, False)

    cdef OrderSink _sink(self, market):
        if market is self._last_market:        # the common case: one venue (an enum's hash is a Python call)
            return self._last_sink
        sink = self.order_sinks.get(market, False)
        if sink is False:
            client = self._engine.execution_client(market)
            sink = None
            if getattr(client, "compiled_orders", False):
                # The client's own compiled writer when it has one, else its submit_raw.
                make = getattr(client, "order_sink", None)
                sink = make() if make is not None else None
                if sink is None:
                    sink = OrderSink(client.submit_raw)
            self.order_sinks[market] = sink
        self._last_market = market
        self._last_sink = sink
        return sink
