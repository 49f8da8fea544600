"""What a strategy acts through: `strategy.context`, set by the engine at registration.

Call it from the strategy's hooks (the engine thread). Subscriptions may also be made before the
engine starts."""
from __future__ import annotations

import logging
from decimal import Decimal

from extrema._core.order_entry import SEND_FAILED_REASON, ContextCore
from extrema._core.records import OrderType, RecordKind, TimeInForce
from extrema._core.risk import estimate_fill
from extrema.execution.client import ORDER_TYPES, TIMES_IN_FORCE, CancelRequest, OrderRequest, ReplaceRequest

# Request names -> the numbers of extrema.OrderType / TimeInForce (types.pxd), which the core checks.
_ORDER_TYPES = {name: int(OrderType[name.upper()]) for name in ORDER_TYPES}
_TIME_IN_FORCE = {name: int(TimeInForce[name]) for name in TIMES_IN_FORCE}
_KEEP_REJECTIONS = 1024

_KINDS = {"trades": RecordKind.TRADE, "quotes": RecordKind.QUOTE, "book": RecordKind.BOOK_DELTA,
          "candles": RecordKind.CANDLE, "mark_price": RecordKind.MARK_PRICE,
          # Updates and fills of orders extrema did not place (foreign client ids) on this instrument;
          # a strategy's own orders reach it without subscribing.
          "orders": RecordKind.ORDER_UPDATE, "fills": RecordKind.FILL}


def _kind(k):
    if isinstance(k, str):
        try:
            return _KINDS[k]
        except KeyError:
            raise ValueError(f"unknown event kind {k!r}: use one of {sorted(_KINDS)}") from None
    return RecordKind(k)


class Context(ContextCore):
    def __init__(self, engine, strategy, index):
        super().__init__(engine, strategy, index)
        self._rejections = {}             # client order id -> RiskRejection (the latest _KEEP_REJECTIONS)
        self.log = logging.getLogger(f"extrema.strategy.{strategy.name}")

    # ---- market data ----------------------------------------------------------------------------

    def instrument(self, name, market=None):
        """An instrument of the engine's registry, by normalised name (and market if several have it)."""
        return self._engine.find_instrument(name, market)

    def subscribe(self, instrument, *kinds):
        """Receive events of `kinds` for an instrument (name or Instrument): "trades", "quotes", "book",
        "candles" (the venue's own bars, e.g. Binance klines), "mark_price" (derivatives: mark, index,
        funding), "orders" / "fills" (of orders placed
        outside this engine; a strategy's own orders and fills reach it without subscribing)."""
        if not kinds:
            raise ValueError(f"subscribe needs at least one kind: {', '.join(map(repr, _KINDS))}")
        inst = self._engine.find_instrument(instrument)
        for k in kinds:
            self._engine.dispatcher.subscribe(self.index, inst.id, _kind(k))
        self._engine.subscriptions_changed()

    def unsubscribe(self, instrument, *kinds):
        inst = self._engine.find_instrument(instrument)
        for k in kinds or tuple(_KINDS):
            self._engine.dispatcher.unsubscribe(self.index, inst.id, _kind(k))
        self._engine.subscriptions_changed()

    def attach(self, instrument, kernel, source="trade.price"):
        """Feed a feature kernel from an instrument's events; the engine updates it before any hook
        sees the event, so hooks read fresh values (kernel.value). Sources: see Dispatcher.attach_feature.
        Returns the kernel."""
        inst = self._engine.find_instrument(instrument)
        self._engine.dispatcher.attach_feature(inst.id, kernel, source)
        self._engine.subscriptions_changed()
        return kernel

    def bars(self, instrument, kind="time", size="1m", *, empty="skip", subscribe=True):
        """Aggregate an instrument's trades into bars (kind "time" | "tick" | "volume" | "notional"; size
        "1s".."1d" for time bars, a trade count, or a decimal volume / notional). Closed bars arrive in
        on_candle (time bars also close on the clock, without waiting for the next trade). Returns the
        aggregator; its `series_id` is each candle's `series_id`."""
        from extrema._core.bars import BarAggregator
        inst = self._engine.find_instrument(instrument)
        aggregator = BarAggregator.for_instrument(inst, kind, size, empty=empty)
        series = self._engine.dispatcher.add_bars(aggregator)
        if subscribe:
            self._engine.dispatcher.subscribe_bars(self.index, series)
        self._engine.bars_changed()
        self._engine.subscriptions_changed()
        return aggregator

    def attach_to_bars(self, aggregator, kernel, source="candle.close"):
        """Feed a kernel from a bar series' closed bars ("candle.close", or "candle" for Atr / TrueRange)."""
        self._engine.dispatcher.attach_feature(aggregator.instrument_id, kernel, source, series=aggregator.series_id)
        return kernel

    def book(self, instrument):
        """The engine's live order book of an instrument (someone must have subscribed to 'book')."""
        return self._engine.dispatcher.book(self._engine.find_instrument(instrument).id)

    def now_us(self):
        """Now, in µs since the epoch: the wall clock live, the replay clock (the time of the event being
        handled) in a backtest."""
        return self._engine.clock()

    # ---- time ------------------------------------------------------------------------------------

    def schedule(self, *, every=None, delay=None, at_us=None):
        """Call on_schedule: every `every` seconds, once after `delay` seconds, or once at `at_us`
        (µs since the epoch). Returns the timer id (TimerView.timer_id)."""
        return self._engine.schedule(self.index, every=every, delay=delay, at_us=at_us)

    def cancel_schedule(self, timer_id):
        return self._engine.cancel_schedule(timer_id)

    # ---- tasks (command channels) ------------------------------------------------------------------

    def request(self, task, payload=None):
        """Send payload to a task's thread; the answer arrives in on_response. Returns the request id."""
        return self._engine.request(self.index, task, payload)

    # ---- orders ----------------------------------------------------------------------------------

    # submit(instrument, side, quantity, price=None, *, order_type=None, time_in_force="GTC", reduce_only=False,
    # post_only=False, stop_price=None, expire_time_us=None) is ContextCore's (extrema._core.order_entry):
    # a plain order goes to the execution client's compiled writer from there, anything else comes here.

    def _submit_general(self, inst, side, quantity, price, order_type, time_in_force, reduce_only, post_only,
                        stop_price, expire_time_us):
        order = OrderRequest(
            client_order_id=self._engine.next_client_order_id(self.index), strategy=self._strategy.name,
            instrument=inst.name, side=side, quantity=Decimal(str(quantity)),
            price=None if price is None else Decimal(str(price)),
            order_type=order_type or ("market" if price is None else "limit"),
            time_in_force=time_in_force, reduce_only=reduce_only, post_only=post_only,
            stop_price=None if stop_price is None else Decimal(str(stop_price)), expire_time_us=expire_time_us)
        qty_raw = _raw(order.quantity, inst.size_precision, "quantity", inst.lot_size)
        price_raw = 0 if order.price is None else _raw(order.price, inst.price_precision, "price", inst.tick_size)
        stop_raw = (0 if order.stop_price is None
                    else _raw(order.stop_price, inst.price_precision, "stop price", inst.tick_size))
        rejection = self._engine.execution_core.submit(
            self.index, order.client_order_id, inst.id, side, qty_raw, price_raw,
            order_type=_ORDER_TYPES[order.order_type], time_in_force=_TIME_IN_FORCE[order.time_in_force],
            stop_price_raw=stop_raw, reduce_only=reduce_only, post_only=post_only, now=self._engine.clock())
        if rejection is not None:
            return self._refused(order.client_order_id, inst, rejection)
        try:
            self._engine.execution_client(inst.market).submit(order)
        except Exception:
            # the client refused it before anything was sent: the order never existed at the venue
            self._engine.orders.reject(order.client_order_id, SEND_FAILED_REASON)
            raise
        return order.client_order_id

    def _refused(self, client_order_id, inst, rejection):
        rejection.strategy = self._strategy.name
        rejection.instrument = inst.name
        self._rejections[client_order_id] = rejection
        if len(self._rejections) > _KEEP_REJECTIONS:
            del self._rejections[next(iter(self._rejections))]
        self.log.info("order %d refused by the pre-trade checks: %s", client_order_id, rejection.message)
        self._engine.deliver_order_state(client_order_id)
        return client_order_id

    def cancel(self, client_order_id):
        """Cancel an order. Nothing is sent when there is nothing to cancel at the venue (never sent,
        already closed, a cancel already pending)."""
        if self._engine.execution_core.cancel(client_order_id, now=self._engine.clock()):
            self._engine.execution_client_of(client_order_id).cancel(CancelRequest(client_order_id,
                                                                                  self._strategy.name))

    def replace(self, client_order_id, *, price=None, quantity=None):
        """Change an order's price and / or size (one change at a time: refused while one is pending)."""
        o = self._engine.orders.get(client_order_id)
        inst = self._engine.registry[o["instrument_id"]] if o is not None else None
        price_raw = 0 if price is None or inst is None else _raw(Decimal(str(price)), inst.price_precision, "price",
                                                                 inst.tick_size)
        qty_raw = 0 if quantity is None or inst is None else _raw(Decimal(str(quantity)), inst.size_precision,
                                                                  "quantity", inst.lot_size)
        if self._engine.execution_core.replace(client_order_id, price_raw, qty_raw, now=self._engine.clock()):
            self._engine.execution_client_of(client_order_id).replace(ReplaceRequest(
                client_order_id, self._strategy.name,
                None if price is None else Decimal(str(price)),
                None if quantity is None else Decimal(str(quantity))))

    def rejection(self, client_order_id):
        """Why the pre-trade checks refused an order (a RiskRejection: rule, limit, numbers), or None."""
        return self._rejections.get(client_order_id)

    def order(self, client_order_id):
        """The order table's view of an order (raw values, status...), or None."""
        return self._engine.orders.get(client_order_id)

    def open_orders(self, instrument=None):
        """Client order ids of this strategy's live orders (on one instrument)."""
        iid = None if instrument is None else self._engine.find_instrument(instrument).id
        return self._engine.orders.open_orders(owner=self.index, instrument_id=iid)

    # ---- positions ------------------------------------------------------------------------------------

    def position(self, instrument):
        """This strategy's position on an instrument (dict with exact Decimals: quantity, realized,
        unrealized, fees, net...), or None before its first order there."""
        return self._engine.portfolio.position(self.index, self._engine.find_instrument(instrument).id)

    def positions(self):
        """This strategy's positions as a numpy array (extrema.execution.POSITION_DTYPE)."""
        return self._engine.portfolio.positions(owner=self.index)

    def equity(self):
        """Realised + unrealised P&L - fees of this strategy, in account currency."""
        return self._engine.portfolio.equity(self.index)

    def balance(self, market, asset):
        return self._engine.portfolio.balance(market, asset)

    def estimate_slippage(self, instrument, side, quantity):
        """What a market order of `quantity` would cost on the engine's live book of the instrument now:
        {"fillable", "vwap", "touch", "worst", "slippage", "slippage_bps", "filled_raw"} (needs a "book"
        subscription)."""
        inst = self._engine.find_instrument(instrument)
        book = self._engine.dispatcher.book(inst.id)
        if book is None:
            raise RuntimeError(f"no live book of {inst.name}: subscribe to its 'book' first")
        return estimate_fill(book, side, _raw(Decimal(str(quantity)), inst.size_precision, "quantity", inst.lot_size))

    # ---- engine-side stops ---------------------------------------------------------------------------

    def stop_order(self, instrument, side, quantity, trigger=None, *, kind="loss", limit_price=None, trail=None,
                   trail_bps=None, activation=None, source="last"):
        """A stop kept by the engine (for venues without native ones): when it fires, an order of `side` /
        `quantity` (market, or limit at limit_price) is submitted like context.submit. kind "loss",
        "take_profit" (at `trigger`) or "trailing" (`trail` price distance or `trail_bps`, optional
        `activation`); source "last" (trades) or "bidask" (quotes / the book). Returns the stop id."""
        inst = self._engine.find_instrument(instrument)
        pp = inst.price_precision
        conv = lambda v, what: 0 if v is None else _raw(Decimal(str(v)), pp, what, inst.tick_size)  # noqa: E731
        stop_id = self._engine.next_client_order_id(self.index)
        return self._engine.execution_core.stops.add(
            stop_id, self.index, inst.id, side, _raw(Decimal(str(quantity)), inst.size_precision, "quantity",
                                                     inst.lot_size),
            kind=kind, trigger_raw=conv(trigger, "trigger"), limit_price_raw=conv(limit_price, "limit price"),
            trail_offset_raw=conv(trail, "trail"), trail_bps=int(trail_bps or 0),
            activation_raw=conv(activation, "activation"), source=source)

    def cancel_stop(self, stop_id):
        return self._engine.execution_core.stops.cancel(stop_id)

    def _submit_stop(self, stop):
        inst = self._engine.registry[stop["instrument_id"]]
        qty = Decimal(stop["quantity_raw"]).scaleb(-inst.size_precision)
        price = None if not stop["limit_price_raw"] else Decimal(stop["limit_price_raw"]).scaleb(-inst.price_precision)
        coid = self.submit(inst, stop["side"], qty, price)
        self.log.info("stop %d fired at %s: order %d", stop["stop_id"],
                      Decimal(stop["fired_price_raw"]).scaleb(-inst.price_precision), coid)
        return coid

    # ---- the engine ------------------------------------------------------------------------------

    def kill(self, reason="", *, everything=False):
        """The kill switch: this strategy (or, everything=True, the whole engine) sends no new orders, and
        every live order is cancelled. Lifted with engine.risk.release(...)."""
        self._engine.kill(None if everything else self.index, reason or f"requested by {self._strategy.name}")

    def stop_engine(self, reason="requested by a strategy"):
        self._engine.stop(reason=reason, wait=False)


def _raw(value, precision, what, step):
    """An exact Decimal as a raw int at `precision`; more decimals than the instrument has is an error
    (a tick / lot violation that no venue could accept)."""
    scaled = value.scaleb(precision)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{what} {value} has more decimals than the instrument's {what} step {step}")
    return int(scaled)
