"""Binance order entry and the user data stream, as one execution client + source per market.

* `submit` / `cancel` / `replace` are called on the engine thread (inside a strategy's hook) and never
  block. With `order_entry="ws_api"` (the default) the request goes out on Binance's WebSocket API
  (`BinanceWsApi`): signed and written to the socket before `submit` returns, so a strategy's order
  leaves the process inside the hook that decided it; answers come back on the same connection. With
  `order_entry="rest"` the REST call runs as a task on the engine's loop. The client order id the venue sees is the
  engine's int id in its wire form (`ex<tag><id>`, extrema.execution.orders); the decoder parses that
  form back to the int id (BinanceDecoder.own_client_id_prefix), so the venue's reports carry the int id
  and reach the owning strategy without a per-order registration.
* Order updates and fills come from the user data stream - spot: subscribed on the WebSocket API
  connection (`userDataStream.subscribe.signature`; Binance retired spot listen keys in 2026), USD-M and
  spot with REST order entry: the listenKey stream `/ws/<listenKey>`. Binance's
  `executionReport` / `ORDER_TRADE_UPDATE` become ORDER_UPDATE and FILL records, `outboundAccountPosition`
  / `ACCOUNT_UPDATE` BALANCE and POSITION records (compiled decoder). The listen key is kept alive every
  30 minutes (it expires after 60: https://developers.binance.com/docs/binance-spot-api-docs/user-data-stream),
  replaced when Binance says it expired, and the stream reconnects like every other WsSession.
* A request the venue rejects becomes an ORDER_UPDATE with status REJECTED for the strategy (the venue's
  code and message are in `rejections`).
* Transient failures of new orders and cancels, on either order path, go through one RetryPolicy
  (retry.py; the REST client's, or `retry=`): what certainly did not execute (not sent while
  disconnected, 429 / 418, -1008, USD-M 503) is sent again after an exponential back-off with jitter
  (never before Retry-After); what may have executed (timeout after sending, 5xx, -1006 / -1007, the
  connection lost before the answer, no answer within the REST client's request_timeout) is never resent
  before the order has been looked up by its client id: a known order is the outcome; an unknown one is
  sent again (same client id) only once the first request can no longer arrive (recvWindow). A cancel
  whose outcome is unknown is looked up the same way; an order the venue does not know needs no cancel.
  An outcome that stays unknown is left to the next reconciliation (`counters["unresolved"]`).
* After the user stream reconnects, every order still open here is queried, so an update missed while
  disconnected is not lost (the report is fed through the same decoder; updates are idempotent).
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from decimal import Decimal
from typing import Optional

import numpy as np

from extrema._core.binance import BinanceDecoder, BinanceEvent
from extrema._core.clock import time_us
from extrema._core.instruments import Market
from extrema._core.records import OrderStatus, RecordFlag, RecordKind
from extrema.adapters.binance.errors import (FINAL, QUERY, BinanceAPIError, BinanceError, OrderNotFoundError,
                                             OrderStatusUnknown, RetriesExhausted, retry_class)
from extrema.adapters.binance.retry import GONE, KNOWN, RetryPolicy
from extrema.adapters.binance.ws_api import BinanceWsApi
from extrema.adapters.binance.parts import VenuePart
from extrema.adapters.ws import Backoff, WsSession
from extrema.execution.client import CancelRequest, ExecutionClient, OrderRequest, ReplaceRequest
from extrema.execution.orders import owner_of

log = logging.getLogger("extrema.adapters.binance")

_TERMINAL = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
_KEEPALIVE_S = 30 * 60


# extrema's order types -> Binance's (spot / USD-M): https://developers.binance.com/docs/binance-spot-api-docs/
# rest-api/trading-endpoints#new-order-trade and the USD-M "New Order" page.
_BINANCE_TYPES = {
    Market.BINANCE_SPOT: {"market": "MARKET", "limit": "LIMIT", "stop_market": "STOP_LOSS",
                          "stop_limit": "STOP_LOSS_LIMIT", "take_profit_market": "TAKE_PROFIT",
                          "take_profit_limit": "TAKE_PROFIT_LIMIT"},
    Market.BINANCE_USDM: {"market": "MARKET", "limit": "LIMIT", "stop_market": "STOP_MARKET", "stop_limit": "STOP",
                          "take_profit_market": "TAKE_PROFIT_MARKET", "take_profit_limit": "TAKE_PROFIT"},
}


_CONDITIONAL = ("stop_market", "stop_limit", "take_profit_market", "take_profit_limit")


def is_algo_order(market, r: OrderRequest) -> bool:
    """USD-M stop / take-profit orders go through Binance's algo-order API (POST /fapi/v1/algoOrder): since
    2025-12 the order endpoint answers them -4120 (STOP_ORDER_SWITCH_ALGO)."""
    return market == Market.BINANCE_USDM and r.order_type in _CONDITIONAL


def binance_algo_args(r: OrderRequest, client_order_id: str):
    """(Binance order type, keyword arguments of BinanceRest.new_algo_order) for a USD-M conditional order."""
    limit_like = r.order_type in ("stop_limit", "take_profit_limit")
    return _BINANCE_TYPES[Market.BINANCE_USDM][r.order_type], dict(
        client_algo_id=client_order_id, quantity=r.quantity, price=r.price if limit_like else None,
        trigger_price=r.stop_price, time_in_force=r.time_in_force if limit_like else None,
        reduce_only=True if r.reduce_only else None)


def binance_order_args(market, r: OrderRequest, client_order_id: str):
    """(Binance order type, keyword arguments of new_order / place_order) for a request. Raises
    ValueError for what the market cannot take (GTD on spot) - before anything is sent. USD-M
    conditional orders take binance_algo_args instead (is_algo_order)."""
    order_type = _BINANCE_TYPES[market][r.order_type]
    limit_like = r.order_type in ("limit", "stop_limit", "take_profit_limit")
    tif = r.time_in_force if limit_like and not r.post_only else None
    extra = None
    if r.time_in_force == "GTD":
        if market != Market.BINANCE_USDM:
            raise ValueError("Binance spot has no GTD orders")
        extra = {"goodTillDate": r.expire_time_us // 1000}
    reduce_only = (True if r.reduce_only else None) if market == Market.BINANCE_USDM else None
    if r.reduce_only and market != Market.BINANCE_USDM:
        raise ValueError("reduce-only orders exist on USD-M, not on spot")
    return order_type, dict(client_order_id=client_order_id, quantity=r.quantity, price=r.price, time_in_force=tif,
                            post_only=r.post_only, reduce_only=reduce_only, stop_price=r.stop_price,
                            response_type="ACK", extra=extra)


def _on_grid(value, precision):
    """`value` as text when `precision` decimals hold it exactly, else "0"."""
    if value is None or value.as_tuple().exponent < -precision and value != value.quantize(
            Decimal(1).scaleb(-precision)):
        return "0"
    return format(value, "f")


_SIDE_TEXT = ("buy", "sell")
_RAW_TYPES = {2: "limit", 1: "market"}          # extrema.OrderType numbers the compiled path sends
_RAW_TIFS = {0: "GTC", 1: "GTC", 2: "IOC", 3: "FOK"}

# WebSocket API method -> the operation a retry runner carries out for it (_on_answer).
_OPERATION = {"order.place": "new", "order.cancel": "cancel", "algoOrder.place": "new", "algoOrder.cancel": "cancel"}


class _Order:
    """An order this client sent. Orders from the compiled path (submit_raw) keep their raw numbers and
    build the OrderRequest (Decimals) only when something asks for it (a rejection report, a replace), and
    their wire text (`<prefix><id>`, which the compiled encoder wrote itself) only when a cancel, a query or
    a log line needs it: pass text=None and the engine's id prefix."""
    __slots__ = ("_request", "instrument", "_text", "_prefix", "client_order_id", "status", "_price", "_quantity",
                 "_raw", "venue_id", "sent_ms", "algo", "algo_id", "busy")

    def __init__(self, request, instrument, text, raw=None, prefix="", sent_ms=None):
        self._request = request
        self.instrument = instrument
        self._text = text
        self._prefix = prefix
        self.client_order_id = request.client_order_id if request is not None else raw[0]
        self.status = OrderStatus.SUBMITTED
        self.venue_id = 0               # Binance's orderId (for an algo order: its triggered order's), once known
        self.algo_id = 0                # an algo order's algoId, once an answer names it
        self.sent_ms = time_us() // 1000 if sent_ms is None else sent_ms   # the request's timestamp when known
        self.algo = False               # a USD-M conditional order, kept by Binance's algo service
        self.busy = set()               # operations ("new", "cancel") a retry runner is carrying out
        self._raw = raw
        self._price = self._quantity = None
        if request is not None:
            self._price = request.price
            self._quantity = request.quantity

    @property
    def text(self) -> str:
        """The client order id as the venue knows it."""
        if self._text is None:
            self._text = f"{self._prefix}{self.client_order_id}"
        return self._text

    @property
    def request(self) -> OrderRequest:
        if self._request is None:
            coid, strategy, side, order_type, tif, price_raw, qty_raw = self._raw
            inst = self.instrument
            self._request = OrderRequest(
                coid, strategy, inst.name, _SIDE_TEXT[side], Decimal(qty_raw).scaleb(-inst.size_precision),
                Decimal(price_raw).scaleb(-inst.price_precision) if price_raw else None, _RAW_TYPES[order_type],
                _RAW_TIFS[tif])
            self._price = self._request.price
            self._quantity = self._request.quantity
        return self._request

    # The order's current price / quantity (a replace changes them), as Decimals.
    @property
    def price(self):
        if self._request is None:
            self.request                   # noqa: B018 - builds the Decimals once
        return self._price

    @price.setter
    def price(self, value):
        if self._request is None:
            self.request                   # noqa: B018
        self._price = value

    @property
    def quantity(self):
        if self._request is None:
            self.request                   # noqa: B018
        return self._quantity

    @quantity.setter
    def quantity(self, value):
        if self._request is None:
            self.request                   # noqa: B018
        self._quantity = value


class _OrdersByText:
    """This client's orders (live or recently finished) by their wire text, without a per-order text index:
    every order's text is the engine's `ex<tag><id>` (ClientOrderIds), parsed back to the int id. A text
    this engine did not issue finds nothing."""
    __slots__ = ("_client",)

    def __init__(self, client):
        self._client = client

    def get(self, text, default=None):
        c = self._client
        coid = c.order_ids.parse(text) if c.order_ids is not None and text.__class__ is str else None
        if coid is None:
            return default
        o = c._orders.get(coid)
        if o is None:
            o = c._finished.get(coid)
        return o if o is not None else default


class BinanceExecution(VenuePart, ExecutionClient):
    """Orders of one Binance market (REST) and its user data stream (a source). See the module doc.

    rest     a BinanceRest of the market, with credentials
    ws_url   the market-stream base the user stream lives on (wss://stream.binance.com:9443,
             wss://fstream.binance.com, or the simulator's ws_url)
    """

    def __init__(self, market, rest, ws_url: str, *, ws_api_url: Optional[str] = None, order_entry: str = "ws_api",
                 registry=None, stale_after: float = 120.0, backoff: Optional[Backoff] = None,
                 retry: Optional[RetryPolicy] = None):
        self.market = Market(market)
        if order_entry not in ("ws_api", "rest"):
            raise ValueError(f"order_entry must be 'ws_api' or 'rest', got {order_entry!r}")
        if order_entry == "ws_api" and ws_api_url is None:
            raise ValueError("order_entry='ws_api' needs ws_api_url")
        if rest.credentials is None:
            raise ValueError("order entry needs API credentials on the REST client")
        self.order_entry = order_entry
        spot = self.market == Market.BINANCE_SPOT
        # WebSocket API and REST share the IP's request weight and the account's order counts: one budget.
        self.ws_api = (BinanceWsApi(self.market, ws_api_url, rest.credentials, on_response=self._on_answer,
                                    on_event_frame=self._on_ws_api_event if spot else None, user_data=spot,
                                    on_ready=self._on_ws_api_ready, server_clock=rest.clock,
                                    rate_limiter=rest.rate_limiter, recv_window_ms=rest.recv_window_ms,
                                    request_timeout=rest.request_timeout)
                       if order_entry == "ws_api" else None)
        # Where user data arrives: the WebSocket API connection (spot) or a listenKey stream.
        self.user_data_on_ws_api = self.ws_api is not None and spot
        self.rest = rest
        self.ws_url = ws_url.rstrip("/")
        self.registry = registry
        self.stale_after = stale_after      # user streams are quiet: Binance pings keep them alive
        self._backoff = backoff
        self.retry = retry if retry is not None else rest.retry      # one policy for both order paths
        self.order_ids = None
        self.decoder: Optional[BinanceDecoder] = None
        self.session: Optional[WsSession] = None
        self.listen_key: Optional[str] = None
        self._emit = None
        self._loop = None
        self._order_table: dict[int, _Order] = {}   # read through _orders (books the fast path's orders first)
        self._unbooked: list = []                 # orders the order sink wrote, their records not made yet
        self._by_text = _OrdersByText(self)   # answers and venue listings name orders by text
        self._finished: "OrderedDict[int, _Order]" = OrderedDict()
        self.keep_finished = 10_000
        self._tasks: set[asyncio.Task] = set()
        self._pending: list[np.ndarray] = []     # records made before the stream ran
        self.rejections: dict[int, tuple[int, str]] = {}
        self._core = None                         # the engine's ExecutionCore (bind_engine)
        self.reconcile_events = []                # the latest 1000 differences reconciliation reported
        self._last_trade: dict[int, int] = {}    # instrument id -> highest venue trade id seen in a FILL
        self.counters = {"submitted": 0, "rejected": 0, "cancels": 0, "replaces": 0, "unknown_outcomes": 0,
                         "listen_keys": 0, "reconciled": 0, "request_errors": 0, "fills_recovered": 0,
                         "duplicate_fills_dropped": 0, "unresolved": 0}

    # ---- wiring ------------------------------------------------------------------------------------

    def bind_engine(self, engine):
        if self.registry is None:
            self.registry = engine.registry
        self.order_ids = engine.order_ids
        self._core = engine.execution_core
        self._share_id_prefix()

    def _share_id_prefix(self):
        # The decoder parses our `ex<tag><id>` texts back to ids in C and the compiled encoder writes them:
        # no per-order text or map insert (foreign ids still take the decoder's map).
        if self.order_ids is None:
            return
        if self.decoder is not None:
            self.decoder.own_client_id_prefix = self.order_ids.prefix
        if self.ws_api is not None:
            self.ws_api.set_client_id_prefix(self.order_ids.prefix)

    def _codec(self):
        if self.decoder is None:
            if self.registry is None:
                raise RuntimeError("BinanceExecution needs a registry (pass registry= or add it to an engine)")
            self.decoder = BinanceDecoder(self.registry, self.market)
            self._share_id_prefix()
        return self.decoder

    def _spawn(self, coro):
        task = self._loop_of().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _publish(self, records):
        if records is None or not len(records):
            return
        self._track(records)
        if self._emit is None:
            self._pending.append(records)
        else:
            self._emit(records)

    # ---- ExecutionClient (engine thread) -----------------------------------------------------------

    def submit(self, order: OrderRequest) -> None:
        inst = self.registry.get(self.market, order.instrument)
        o = self._track_new(order, inst)
        o.algo = is_algo_order(self.market, order)
        self.counters["submitted"] += 1
        if self.ws_api is None or o.algo:
            # Conditional orders wait for their trigger, so sending them inside the hook buys nothing: they
            # go from a task, on the WebSocket API (algoOrder.place, USD-M) or REST (POST algoOrder).
            self._run(o, "new", self._place(o))
            return
        try:
            order_type, args = self._order_args(o)
            self.ws_api.place_order(inst.venue_symbol, order.side.upper(), order_type, **args)
        except ValueError as exc:
            # Refused before sending: rejected, published after the hook returns, never inside it.
            self._loop_of().call_soon(self._reject, o, 0, str(exc))
        except BinanceError as exc:
            if retry_class(exc) == FINAL:
                self._loop_of().call_soon(self._reject, o, exc.code or 0, str(exc))
            else:       # not sent (disconnected, rate limited): again after a back-off
                self._run(o, "new", self._place(o, exc))

    @property
    def compiled_orders(self) -> bool:
        """submit_raw sends through the compiled order writer (WebSocket API order entry, HMAC key)."""
        return self.ws_api is not None and self.ws_api.compiled_orders

    @property
    def _orders(self) -> dict:
        """The live orders by client order id. Orders the fast path sent (order_sink) get their record
        here, on first look after the hook that sent them, not inside it."""
        if self._unbooked:
            self._book()
        return self._order_table

    def _book(self):
        table, prefix, unbooked = self._order_table, self.order_ids.prefix, self._unbooked
        for raw, inst, ts_ms in unbooked:
            o = _Order(None, inst, None, raw, prefix, ts_ms)
            table[raw[0]] = o
        self.counters["submitted"] += len(unbooked)
        unbooked.clear()

    def _refused_raw(self, entry, exc):
        """An order of the fast path that was not sent (the order sink's on_refused), under submit()'s rule:
        refused before sending (ValueError) or finally by the venue - rejected once the hook returns; not sent for a
        reason that passes (disconnected, rate limited) - sent again under the retry policy, whose _place
        builds the request from the raw numbers and resends it on the Python path under the same client id."""
        self._unbooked.append(entry)
        o = self._orders[entry[0][0]]
        if isinstance(exc, BinanceError) and retry_class(exc) != FINAL:
            self._run(o, "new", self._place(o, exc))
        else:
            self._loop_of().call_soon(self._reject, o, getattr(exc, "code", 0) or 0, str(exc))

    def stats(self):
        if self._unbooked:
            self._book()                   # counts the fast path's orders in "submitted"
        return super().stats()

    def order_sink(self):
        """The compiled writer the engine's Context.submit fast path hands plain orders to (the same effect as
        submit_raw): the WebSocket API's WsApiOrderSink with this client's deferred order book bound, so no
        Python frame of this client sits between the strategy and the socket. None without the compiled
        writer (Context then calls submit_raw)."""
        if not self.compiled_orders or self.order_ids is None:
            return None
        if self.decoder is None:
            self._codec()                  # created with the id prefix, before the first report can arrive
        self._share_id_prefix()
        return self.ws_api.order_sink.bind(self._unbooked, self._refused_raw)

    def warm(self) -> None:
        """The engine's busy-poll warm-up: the compiled order writer goes through an order without sending it
        (WsApiOrderSink.warm)."""
        sink = self.ws_api.order_sink if self.ws_api is not None else None
        if sink is not None:
            sink.warm()

    def submit_raw(self, client_order_id: int, strategy: str, inst, side: int, order_type: int, time_in_force: int,
                   quantity_raw: int, price_raw: int) -> None:
        """submit() for a plain order given as raw numbers (the engine's Context.submit fast path): LIMIT
        (order_type 2, time_in_force 1 GTC / 2 IOC / 3 FOK) or MARKET (1, price_raw 0, time_in_force 0),
        side 0 buy / 1 sell, at the instrument's precisions. No OrderRequest, no Decimal: the order goes
        to the compiled writer (order_sink). Without it the same as submit()."""
        sink = self.order_sink() if order_type in _RAW_TYPES else None
        if sink is None:
            self.submit(_Order(None, inst, "", (client_order_id, strategy, side, order_type, time_in_force, price_raw,
                                                quantity_raw)).request)
            return
        # The wire text is written by the compiled encoder from the int id (ws_api knows the engine's prefix)
        # and read back by the decoder's parse: nothing to format or register here; the order's record is
        # made when something looks at the orders (_orders). A send that fails goes to _refused_raw, which
        # applies submit()'s rule (rejected when final, else again under the retry policy).
        sink.submit_raw(client_order_id, strategy, inst, side, order_type, time_in_force if order_type == 2 else 0,
                        quantity_raw, price_raw)

    def cancel(self, request: CancelRequest) -> None:
        self.counters["cancels"] += 1
        o = self._orders.get(request.client_order_id)
        if o is None:
            log.info("cancel of unknown or finished order %s ignored", request.client_order_id)
            return
        if self.ws_api is None or o.algo:
            self._run(o, "cancel", self._cancel(o))
            return
        try:
            self.ws_api.cancel_order(o.instrument.venue_symbol, client_order_id=o.text)
        except BinanceError as exc:
            if retry_class(exc) == FINAL:
                self.counters["request_errors"] += 1
                log.info("cancel of %s not sent: %s", o.text, exc)
            else:       # not sent (disconnected, rate limited): again after a back-off
                self._run(o, "cancel", self._cancel(o, exc))
        except ValueError as exc:
            self.counters["request_errors"] += 1
            log.info("cancel of %s not sent: %s", o.text, exc)

    def replace(self, request: ReplaceRequest) -> None:
        self.counters["replaces"] += 1
        o = self._orders.get(request.client_order_id)
        if o is None:
            log.warning("replace of unknown or finished order %s ignored", request.client_order_id)
            return
        price = request.price if request.price is not None else o.price
        quantity = request.quantity if request.quantity is not None else o.quantity
        new = None
        if self.market == Market.BINANCE_SPOT:
            # Spot cancel-replace places a new order, which needs a new client id; it belongs to the same
            # strategy (same owner bits), so its updates reach the same on_order.
            new_id = self.order_ids.next(owner_of(o.request.client_order_id))
            new = self._track_new(OrderRequest(new_id, o.request.strategy, o.request.instrument, o.request.side,
                                               quantity, price, "limit", o.request.time_in_force), o.instrument)
        if self.ws_api is None:
            self._spawn(self._replace(o, new, price, quantity))
            return
        try:
            self.ws_api.replace_order(o.instrument.venue_symbol, orig_client_order_id=o.text,
                                      side=o.request.side.upper(), quantity=quantity, price=price,
                                      new_client_order_id=new.text if new is not None else None)
            if new is None:
                o.price, o.quantity = price, quantity
        except (BinanceError, ValueError) as exc:
            self.counters["request_errors"] += 1
            log.info("replace of %s not sent: %s", o.text, exc)

    def _track_new(self, order: OrderRequest, inst) -> "_Order":
        text = self.order_ids.text(order.client_order_id)    # also checks the id is one of ours
        self._codec()                      # parses our ids back: no registration
        o = _Order(order, inst, text)
        self._orders[order.client_order_id] = o
        return o

    def _order_args(self, o: "_Order"):
        """(order type, keyword arguments) of a new order, shared by both order paths."""
        return binance_order_args(self.market, o.request, o.text)

    def _loop_of(self):
        return self._loop or asyncio.get_running_loop()

    def _on_answer(self, resp):
        """WebSocket API answers: success needs nothing (the user stream reports the order's state). A
        failed first send of a new order or a cancel continues under the retry policy (which rejects
        what the venue refused); answers to a retry runner's own sends are its to read."""
        if resp.ok:
            return
        o = self._by_text.get(resp.client_order_id) if resp.client_order_id else None
        if o is None:
            log.warning("WebSocket API %s failed: %s", resp.method, resp.error)
            return
        op = _OPERATION.get(resp.method)
        if op is not None and op in o.busy:
            return
        if retry_class(resp.error) == QUERY:
            self.counters["unknown_outcomes"] += 1
        if op == "new":
            self._run(o, "new", self._place(o, resp.error))
        elif op == "cancel":
            self._run(o, "cancel", self._cancel(o, resp.error))
        else:
            self.counters["request_errors"] += 1
            log.info("%s of %s refused: %s", resp.method, o.text, resp.error)

    def _on_ws_api_event(self, payload, ts_local):
        """Spot user data on the WebSocket API connection: the same decoder as the stream (it reads the
        `{"subscriptionId", "event"}` frame as sent)."""
        self._handle_user_records(self._codec().decode(payload, ts_local))

    def _on_ws_api_ready(self, client):
        if self.user_data_on_ws_api:          # the user stream is this connection: (re)connected now
            self._spawn(self._reconcile())

    # ---- requests (engine loop) --------------------------------------------------------------------

    def _run(self, o: _Order, op: str, coro):
        """Carry out `op` of `o` as a task under the retry policy; while it runs, the WebSocket API answers
        to its sends are left to it (_on_answer)."""
        o.busy.add(op)
        task = self._spawn(coro)
        task.add_done_callback(lambda _t: o.busy.discard(op))

    async def _ws_api_answer(self, rid: int):
        """The result of a WebSocket API request, or its error raised (the retry runner's `send`)."""
        resp = await self.ws_api.response(rid)
        if resp.error is not None:
            raise resp.error
        return resp.result

    def _counted(self, send):
        async def run():
            try:
                return await send()
            except BinanceError as exc:
                if retry_class(exc) == QUERY:
                    self.counters["unknown_outcomes"] += 1
                raise
        return run

    async def _place(self, o: _Order, error: Optional[BaseException] = None):
        """Place `o` under the retry policy: the first send here (REST, algo orders), or the rest of it after
        the first WebSocket API send failed with `error`. See the module doc."""
        try:
            order_type, args = (binance_algo_args(o.request, o.text) if o.algo else self._order_args(o))
        except ValueError as exc:
            self._reject(o, 0, str(exc))
            return
        symbol, side = o.instrument.venue_symbol, o.request.side.upper()
        if o.algo and self.ws_api is not None:
            send = lambda: self._ws_api_answer(self.ws_api.place_algo_order(symbol, side, order_type, **args))  # noqa: E731
        elif o.algo:
            send = lambda: self.rest.new_algo_order(symbol, side, order_type, **args)      # noqa: E731
        elif self.ws_api is None:
            send = lambda: self.rest.new_order(symbol, side, order_type, **args)           # noqa: E731
        else:
            send = lambda: self._ws_api_answer(self.ws_api.place_order(symbol, side, order_type, **args))  # noqa: E731
        try:
            how, data = await self.retry.place(self._counted(send), lambda: self._query(o), now_ms=self.rest.now_ms,
                                               recv_window_ms=self.rest.recv_window_ms, error=error)
        except RetriesExhausted as exc:        # nothing executed: the strategy hears REJECTED
            self._reject(o, exc.code or 0, f"not sent: {exc}")
        except OrderStatusUnknown as exc:
            self.counters["unresolved"] += 1
            log.error("order %s: outcome still unknown (%s); the next reconciliation settles it", o.text, exc)
        except BinanceAPIError as exc:
            self._reject(o, exc.code, exc.msg)
        except (BinanceError, ValueError) as exc:
            self._reject(o, getattr(exc, "code", 0) or 0, str(exc))
        else:
            if o.algo:
                self._learn_ids(o, data)
            if how == KNOWN:
                self._publish_known(o, data)

    @staticmethod
    def _learn_ids(o: _Order, data):
        """An algo order's two ids from a venue answer (New / Query Algo Order, openAlgoOrders): its algoId,
        and - once triggered - the order it placed in the matching engine (actualOrderId), which its trades
        carry. The stream's ALGO_UPDATE names the algo id until then (the decoder's aux1): never taken for
        the order id."""
        if not isinstance(data, dict):
            return
        if data.get("algoId"):
            o.algo_id = int(data["algoId"])
        actual = data.get("actualOrderId") if "clientAlgoId" in data else data.get("orderId")
        if actual:
            o.venue_id = int(actual)
        elif o.venue_id == o.algo_id:
            o.venue_id = 0

    def _publish_known(self, o: _Order, data: dict):
        """The venue's state of `o` learnt by a lookup, published unless the stream already said so."""
        if o.status in _TERMINAL:
            return
        records = self._state_records(o, data)
        heads = np.flatnonzero(records["kind"] == RecordKind.ORDER_UPDATE)
        if len(heads) and int(records[heads[0] + 1]["ts_exchange"]) == o.status:
            return
        self._publish(records)

    async def _query(self, o: _Order) -> dict:
        """The venue's view of one of our orders (GET order), or of a conditional one: GET algoOrder, and
        once it has triggered, the order it placed in the matching engine (GET order by actualOrderId) -
        that one knows what was filled."""
        symbol = o.instrument.venue_symbol
        if not o.algo:
            return await self.rest.query_order(symbol, client_order_id=o.text)
        data = await self.rest.query_algo_order(client_algo_id=o.text)
        actual = data.get("actualOrderId")
        if actual:
            self._learn_ids(o, data)
            return await self.rest.query_order(symbol, order_id=int(actual))
        return data

    def _state_records(self, o: _Order, data: dict):
        return self._algo_report_records(data) if "clientAlgoId" in data else self._report_records(data)

    def _algo_report_records(self, a: dict):
        """A REST algo order (New / Query Algo Order, openAlgoOrders) as the ALGO_UPDATE the stream would
        send, through the same compiled decoder."""
        ts = a.get("updateTime") or a.get("createTime") or time_us() // 1000
        actual = a.get("actualOrderId") or ""
        return self._decode_json({"e": "ALGO_UPDATE", "T": ts, "E": ts, "o": {
            "caid": a["clientAlgoId"], "aid": a["algoId"], "at": a.get("algoType", "CONDITIONAL"),
            "o": a.get("orderType") or a.get("type"), "s": a["symbol"], "S": a["side"],
            "f": a.get("timeInForce") or "GTC", "q": a["quantity"], "X": a["algoStatus"], "ai": actual,
            "ap": a.get("actualPrice") or "0", "tp": a.get("triggerPrice") or "0", "p": a.get("price") or "0"}})

    async def _cancel(self, o: _Order, error: Optional[BaseException] = None):
        """Cancel `o` under the retry policy (first send here, or the rest after a failed WebSocket API
        send). An order the venue does not know or no longer has open needs nothing more: its final state
        is (or will be) on the user stream."""
        symbol = o.instrument.venue_symbol
        if o.algo and self.ws_api is not None:
            send = lambda: self._ws_api_answer(self.ws_api.cancel_algo_order(client_algo_id=o.text))  # noqa: E731
        elif o.algo:
            send = lambda: self.rest.cancel_algo_order(client_algo_id=o.text)                  # noqa: E731
        elif self.ws_api is None:
            send = lambda: self.rest.cancel_order(symbol, client_order_id=o.text)              # noqa: E731
        else:
            send = lambda: self._ws_api_answer(self.ws_api.cancel_order(symbol, client_order_id=o.text))  # noqa: E731
        try:
            how, data = await self.retry.cancel(self._counted(send), lambda: self._query(o), error=error)
        except OrderStatusUnknown as exc:
            self.counters["unresolved"] += 1
            log.error("cancel of %s: outcome still unknown (%s)", o.text, exc)
        except BinanceError as exc:
            self.counters["request_errors"] += 1
            log.info("cancel of %s refused: %s", o.text, exc)
        else:
            if how == KNOWN:
                self._publish_known(o, data)
            elif how == GONE:
                log.info("cancel of %s: the venue has no such open order", o.text)

    async def _replace(self, o: _Order, new: Optional[_Order], price, quantity):
        try:
            await self.rest.cancel_replace(o.instrument.venue_symbol, orig_client_order_id=o.text,
                                           side=o.request.side.upper(), quantity=quantity, price=price,
                                           new_client_order_id=new.text if new is not None else None)
            if new is None:                 # USD-M modified the order in place
                o.price, o.quantity = price, quantity
        except BinanceError as exc:
            self.counters["request_errors"] += 1
            log.info("replace of %s refused: %s", o.text, exc)

    def _reject(self, o: _Order, code: int, message: str):
        self.counters["rejected"] += 1
        self.rejections[o.request.client_order_id] = (code, message)
        log.info("order %s rejected by %s: %s %s", o.text, self.market.name, code, message)
        r = o.request
        now_ms = time_us() // 1000
        # The request's own numbers may be what the venue refused (off the tick / lot grid): the report
        # carries them only when the instrument's precision can hold them.
        self._publish(self._execution_report(
            o.instrument.venue_symbol, o.text, r.side.upper(), _BINANCE_TYPES[self.market][r.order_type],
            r.time_in_force, _on_grid(r.quantity, o.instrument.size_precision),
            _on_grid(r.price, o.instrument.price_precision), "0", "REJECTED", -1, "0", "0", now_ms,
            exec_type="REJECTED"))

    def _report_records(self, order: dict):
        """A REST order object (query / open orders) as the executionReport the stream would send."""
        ts = order.get("updateTime", order.get("time", time_us() // 1000))
        return self._execution_report(
            order["symbol"], order["clientOrderId"], order["side"], order["type"], order.get("timeInForce", "GTC"),
            order["origQty"], order["price"], order.get("stopPrice", "0"), order["status"], order["orderId"],
            order["executedQty"], order.get("cummulativeQuoteQty", order.get("cumQuote", "0")), ts)

    def _execution_report(self, symbol, client_id, side, order_type, tif, quantity, price, stop_price, status,
                          venue_id, filled, filled_quote, ts_ms, exec_type="NEW"):
        """ORDER_UPDATE records for an order state this client learnt outside the stream (a rejection, a
        REST answer): the executionReport the stream would have sent, through the same compiled decoder -
        one encoder for the record layout. No trade fields: a FILL only ever comes from the venue."""
        report = {"e": "executionReport", "E": ts_ms, "T": ts_ms, "s": symbol, "c": client_id, "S": side,
                  "o": order_type, "f": tif, "q": quantity, "p": price, "P": stop_price, "x": exec_type,
                  "X": status, "r": "NONE", "i": venue_id, "l": "0", "z": filled, "L": "0", "n": "0", "N": None,
                  "t": -1, "m": False, "Z": filled_quote}
        return self._decode_json(report)

    def _decode_json(self, obj):
        # One encoder for ORDER_UPDATE records: the compiled decoder the stream uses, fed the report the
        # venue would have sent (the decoder reads executionReport on either market).
        return self._codec().decode(json.dumps(obj).encode(), time_us())

    # ---- user data stream (source) -----------------------------------------------------------------

    async def run(self, emit, subscriptions):
        self._codec()
        self._loop = asyncio.get_running_loop()
        self._emit = emit
        for records in self._pending:
            emit(records)
        self._pending.clear()
        if self.ws_api is not None:
            api_task = self._spawn(self.ws_api.run())
            if self.user_data_on_ws_api:
                try:
                    await api_task
                finally:
                    self.ws_api.stop()
                return
        else:
            api_task = None
        self.listen_key = await self._new_listen_key()
        self.session = WsSession(lambda: f"{self.ws_url}/ws/{self.listen_key}", self._on_message,
                                 on_connect=self._on_connect, name=f"binance-{self.market.name.lower()}-user",
                                 stale_after=self.stale_after, backoff=self._backoff)
        keepalive = self._spawn(self._keepalive())
        try:
            await self.session.run()
        finally:
            keepalive.cancel()
            if api_task is not None:
                self.ws_api.stop()
            for task in list(self._tasks):
                task.cancel()

    async def _new_listen_key(self):
        key = await self.rest.create_listen_key()
        self.counters["listen_keys"] += 1
        return key

    async def _keepalive(self):
        while True:
            await asyncio.sleep(_KEEPALIVE_S)
            try:
                await self.rest.keepalive_listen_key(self.listen_key)
            except BinanceError as exc:
                log.warning("listen key keep-alive failed (%s); getting a new one", exc)
                await self._replace_listen_key()

    async def _replace_listen_key(self):
        self.listen_key = await self._new_listen_key()
        self.session.reconnect("new listen key")

    async def _on_connect(self, session):
        self._spawn(self._reconcile())

    async def _reconcile(self):
        """At start and after every reconnect, in this order:
        1. read the venue's open orders (USD-M: also its open algo orders, GET openAlgoOrders - a
           conditional order waiting for its trigger is open though openOrders does not list it), USD-M
           positions and balances, and the final state of every order held live here that the venue no
           longer lists (GET order by origClientOrderId, GET algoOrder by clientAlgoId);
        2. fetch the trades of the symbols with such orders since the last fill this client saw
           (GET myTrades / userTrades, `_recover_fills`) and publish the ones the engine has not counted
           as FILL records - through the engine like live ones, so the order table, the portfolio and the
           owning strategy see each trade exactly once (the order table dedups by instrument, trade id
           and side; `_drop_known_fills` keeps a counted one from reaching the strategy again);
        3. merge open orders, positions and balances with extrema.reconcile (differences kept in
           `reconcile_events`), now that the missed fills are in the portfolio;
        4. publish the final states read in 1 as ORDER_UPDATE records."""
        from extrema.execution.reconciliation import VenueSnapshot, reconcile
        usdm = self.market == Market.BINANCE_USDM
        # Orders the strategies send while these reads are on their way cannot be in them (at start-up the
        # first orders often are): the snapshot's time keeps them from being reported missing.
        taken_us = time_us()
        try:
            open_orders = await self.rest.open_orders()
            open_algo = await self.rest.open_algo_orders() if usdm else []
            positions = await self.rest.positions() if usdm else []
            balances = await self.rest.balances()
        except BinanceError as exc:
            log.warning("%s reconciliation: the venue's state could not be read (%s)", self.market.name, exc)
            return
        listed = {order["clientOrderId"] for order in open_orders}
        # A triggered algo order works in the matching engine under its client id: openOrders has it.
        open_algo = [a for a in open_algo if a["clientAlgoId"] not in listed]
        listed |= {a["clientAlgoId"] for a in open_algo}
        live = [o for o in self._orders.values() if o.status not in _TERMINAL]
        finals = []
        for o in live:
            if o.text in listed:
                continue
            try:
                finals.append((o, await self._query(o)))
            except OrderNotFoundError:
                continue            # never reached the venue: its rejection is (or will be) published
            except BinanceError as exc:
                log.warning("reconciliation query of %s failed: %s", o.text, exc)
        for order in list(open_orders) + [data for o, data in finals if "clientAlgoId" not in data]:
            o = self._by_text.get(order["clientOrderId"])
            if o is not None and order.get("orderId"):
                o.venue_id = int(order["orderId"])
        for a in open_algo + [data for o, data in finals if "clientAlgoId" in data]:
            o = self._by_text.get(a["clientAlgoId"])
            if o is not None:
                self._learn_ids(o, a)
        await self._recover_fills(live)
        heads = []
        for order in open_orders:
            self._adopt_id(order["clientOrderId"])
            heads.append(self._report_records(order))
        for a in open_algo:
            self._adopt_id(a["clientAlgoId"])
            heads.append(self._algo_report_records(a))
        snapshot = VenueSnapshot(self.market,
                                 open_orders=np.concatenate(heads) if heads else self._no_records(),
                                 positions=self._venue_positions(positions),
                                 balances={asset: b.total for asset, b in balances.items()}, taken_us=taken_us)
        if self._core is not None:
            events = reconcile(self._core, snapshot)
            self.reconcile_events.extend(events)
            del self.reconcile_events[:-1000]
            for e in events:
                if e.kind != "SUMMARY":
                    log.info("%s reconciliation: %s %s", self.market.name, e.kind, e.message)
        self.counters["reconciled"] += 1
        for o, data in finals:
            self._publish(self._state_records(o, data))

    def _adopt_id(self, text: str):
        """A client order id of ours from a past run (the venue lists it open): known to the decoder."""
        ours = self.order_ids.parse(text) if self.order_ids is not None else None
        if ours is not None and self._codec().client_order_id(text) is None:
            self._codec().register_client_order_id(text, ours)

    async def _recover_fills(self, live):
        """Fetch the trades of `live` orders' symbols made since the last fill seen (fromId = last trade id
        + 1, else from the earliest send time), keep those of these orders, and publish them as FILL
        records (see _reconcile). Pages through the venue's 1000-trade limit."""
        by_venue_id = {o.venue_id: o for o in live if o.venue_id}
        symbols: dict[str, list] = {}
        for o in live:
            symbols.setdefault(o.instrument.venue_symbol, []).append(o)
        for symbol, orders in symbols.items():
            iid = orders[0].instrument.id
            last = self._last_trade.get(iid)
            query = {"from_id": last + 1} if last is not None else {"start_time": min(o.sent_ms for o in orders) - 1000}
            while True:
                try:
                    trades = await self.rest.my_trades(symbol, limit=1000, **query)
                except BinanceError as exc:
                    log.warning("%s: trades of %s could not be read (%s); missed fills may be absent",
                                self.market.name, symbol, exc)
                    break
                batch = [self._trade_records(t, by_venue_id[t["orderId"]]) for t in trades
                         if t.get("orderId") in by_venue_id]
                if batch:
                    records = self._drop_known_fills(np.concatenate(batch))
                    self.counters["fills_recovered"] += int(np.count_nonzero(records["kind"] == RecordKind.FILL))
                    self._publish(records)
                if len(trades) < 1000:
                    break
                query = {"from_id": max(int(t["id"]) for t in trades) + 1}

    def _trade_records(self, trade: dict, o: "_Order"):
        """One REST trade (myTrades / userTrades row) of order `o` as its FILL record (head + continuation):
        the stream report the venue would have sent for it, through the same compiled decoder; the
        decoder's ORDER_UPDATE half is dropped (a trade row says nothing about the order's status)."""
        sym, ts = trade["symbol"], int(trade["time"])
        if self.market == Market.BINANCE_SPOT:
            side, maker = ("BUY" if trade["isBuyer"] else "SELL"), bool(trade["isMaker"])
            report = {"e": "executionReport", "E": ts, "T": ts, "s": sym, "c": o.text, "S": side, "o": "LIMIT",
                      "f": "GTC", "q": trade["qty"], "p": "0", "P": "0", "x": "TRADE", "X": "PARTIALLY_FILLED",
                      "r": "NONE", "i": trade["orderId"], "l": trade["qty"], "z": trade["qty"],
                      "L": trade["price"], "n": trade["commission"], "N": trade["commissionAsset"],
                      "t": trade["id"], "m": maker, "Z": trade["quoteQty"]}
        else:
            report = {"e": "ORDER_TRADE_UPDATE", "E": ts, "T": ts, "o": {
                "s": sym, "c": o.text, "S": trade["side"], "o": "LIMIT", "f": "GTC", "q": trade["qty"], "p": "0",
                "ap": trade["price"], "sp": "0", "x": "TRADE", "X": "PARTIALLY_FILLED", "i": trade["orderId"],
                "l": trade["qty"], "z": trade["qty"], "L": trade["price"], "N": trade["commissionAsset"],
                "n": trade["commission"], "T": ts, "t": trade["id"], "m": bool(trade["maker"]),
                "rp": trade.get("realizedPnl", "0")}}
        records = self._decode_json(report)
        if len(records) != 4 or records[2]["kind"] != RecordKind.FILL:
            # the decoder dropped it (counted in its stats, logged there with the reason)
            log.warning("%s: trade %s of %s could not be decoded; skipped", self.market.name, trade.get("id"), o.text)
            return self._no_records()
        return records[2:4]

    def _drop_known_fills(self, records):
        """`records` without the FILLs (head and continuation) the engine's order table has already
        counted: a trade recovered over REST and then reported by the stream (or the other way round)
        reaches the strategy once."""
        if self._core is None or not len(records):
            return records
        kinds = records["kind"]
        heads = np.flatnonzero(kinds == RecordKind.FILL)
        if not len(heads):
            return records
        knows = self._core.orders.knows_trade
        drop = [i for i in heads.tolist()
                if records[i]["sequence"] and knows(int(records[i]["instrument_id"]), int(records[i]["sequence"]),
                                                    1 if int(records[i]["flags"]) & RecordFlag.ASK else 0)]
        if not drop:
            return records
        self.counters["duplicate_fills_dropped"] += len(drop)
        keep = np.ones(len(records), dtype=bool)
        for i in drop:
            keep[i:i + 2] = False
        return records[keep]

    def _venue_positions(self, positions):
        """USD-M positionRisk entries -> {instrument id: (raw size, raw entry price)} (one-way mode)."""
        out = {}
        for p in positions:
            try:
                inst = self.registry.by_venue_symbol(self.market, p["symbol"])
            except KeyError:
                continue
            size = Decimal(p["positionAmt"]).scaleb(inst.size_precision)
            price = Decimal(p.get("entryPrice", "0")).scaleb(inst.price_precision)
            if size:
                out[inst.id] = (int(size), int(price.to_integral_value()))
        return out or None

    @staticmethod
    def _no_records():
        from extrema._core.records import empty_records
        return empty_records(0)

    def _on_message(self, payload, ts_local):
        records = self.decoder.decode(payload, ts_local)
        event = self.decoder.info["event"]
        if event == BinanceEvent.LISTEN_KEY_EXPIRED:
            self._spawn(self._replace_listen_key())
            return
        if event in (BinanceEvent.SERVER_SHUTDOWN, BinanceEvent.STREAM_TERMINATED):
            self.session.reconnect("the venue ended the stream")
            return
        self._handle_user_records(records)

    def _handle_user_records(self, records):
        records = self._drop_known_fills(records)
        if len(records):
            self._track(records)
            self._emit(records)

    def _track(self, records):
        """Keep each order's latest status (ORDER_UPDATE head: sequence = client order id; its
        continuation's first word = status)."""
        kinds = records["kind"]
        for i in np.flatnonzero(kinds == RecordKind.FILL).tolist():
            iid, trade_id = int(records[i]["instrument_id"]), int(records[i]["sequence"])
            if trade_id > self._last_trade.get(iid, 0):
                self._last_trade[iid] = trade_id
        for i in np.flatnonzero(kinds == RecordKind.ORDER_UPDATE).tolist():
            o = self._orders.get(int(records[i]["sequence"]))
            if o is not None:
                vid = int(records[i]["aux1"])
                if vid > 0 and not (o.algo and vid == o.algo_id):
                    o.venue_id = vid
                o.status = int(records[i + 1]["ts_exchange"])
                if o.status in _TERMINAL:
                    self._finish(o)

    def _finish(self, o):
        """A finished order leaves the live table; the last `keep_finished` stay known (a late duplicate
        report must still reach its owner), older ones are forgotten by the decoder too."""
        self._orders.pop(o.client_order_id, None)
        self._finished[o.client_order_id] = o
        while len(self._finished) > self.keep_finished:
            _, old = self._finished.popitem(last=False)
            # Our ids are parsed, not registered: only one reconciliation registered (a foreign text) is
            # dropped here.
            self.decoder.forget_client_order_id(old.client_order_id)

    @property
    def ready(self):
        """Orders can be sent and their updates will arrive: the order connection is up (and logged on /
        subscribed) and the user data stream is connected."""
        if self.ws_api is not None and not self.ws_api.ready:
            return False
        return self.user_data_on_ws_api or (self.session is not None and self.session.connected)

    @property
    def user_stream_connects(self):
        """How many times the user data connection (WebSocket API or listenKey stream) has connected."""
        session = self.ws_api.session if self.user_data_on_ws_api else self.session
        return session.stats.connects if session is not None else 0

    def open_orders(self):
        """Client order ids of the orders this client has sent that are not finished yet."""
        return [coid for coid, o in self._orders.items() if o.status not in _TERMINAL]
