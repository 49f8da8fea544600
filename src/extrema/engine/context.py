"""What a strategy acts through: `strategy.context`, set by the engine at registration.

Call it from the strategy's hooks (the engine thread). Subscriptions may also be made before the
engine starts."""
from __future__ import annotations

import logging
from decimal import Decimal

from extrema._core.clock import time_us
from extrema._core.records import RecordKind
from extrema.execution.client import CancelRequest, OrderRequest, ReplaceRequest

_KINDS = {"trades": RecordKind.TRADE, "quotes": RecordKind.QUOTE, "book": RecordKind.BOOK_DELTA,
          "candles": RecordKind.CANDLE,
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


class Context:
    def __init__(self, engine, strategy, index):
        self._engine = engine
        self._strategy = strategy
        self.index = index
        self._order_markets = {}          # client order id -> the market it was sent to
        self.log = logging.getLogger(f"extrema.strategy.{strategy.name}")

    # ---- market data ----------------------------------------------------------------------------

    def instrument(self, name, market=None):
        """An instrument of the engine's registry, by normalised name (and market if several have it)."""
        return self._engine.find_instrument(name, market)

    def subscribe(self, instrument, *kinds):
        """Receive events of `kinds` for an instrument (name or Instrument): "trades", "quotes", "book",
        "candles" (the venue's own bars, e.g. Binance klines), "orders" / "fills" (of orders placed
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
        return time_us()

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

    def submit(self, instrument, side, quantity, price=None, *, order_type=None, time_in_force="GTC",
               reduce_only=False, post_only=False):
        """Send a new order through the engine's execution client; returns its client order id (an int:
        order updates and fills of this order carry it, see extrema.execution.orders)."""
        inst = self._engine.find_instrument(instrument)
        order = OrderRequest(
            client_order_id=self._engine.next_client_order_id(self.index), strategy=self._strategy.name,
            instrument=inst.name, side=side, quantity=Decimal(str(quantity)),
            price=None if price is None else Decimal(str(price)),
            order_type=order_type or ("market" if price is None else "limit"),
            time_in_force=time_in_force, reduce_only=reduce_only, post_only=post_only)
        self._engine.execution_client(inst.market).submit(order)
        self._order_markets[order.client_order_id] = inst.market
        return order.client_order_id

    def _client_for(self, client_order_id):
        # Orders of an earlier run (reconciled after a restart) go to the default client.
        return self._engine.execution_client(self._order_markets.get(client_order_id))

    def cancel(self, client_order_id):
        self._client_for(client_order_id).cancel(CancelRequest(client_order_id, self._strategy.name))

    def replace(self, client_order_id, *, price=None, quantity=None):
        self._client_for(client_order_id).replace(ReplaceRequest(
            client_order_id, self._strategy.name,
            None if price is None else Decimal(str(price)),
            None if quantity is None else Decimal(str(quantity))))

    # ---- the engine ------------------------------------------------------------------------------

    def stop_engine(self, reason="requested by a strategy"):
        self._engine.stop(reason=reason, wait=False)
