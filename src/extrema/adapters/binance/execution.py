"""Binance order entry and the user data stream, as one execution client + source per market.

* `submit` / `cancel` / `replace` are called on the engine thread (inside a strategy's hook). They never
  block: the REST call runs as a task on the engine's loop. The client order id the venue sees is the
  engine's int id in its wire form (`ex<tag><id>`, extrema.execution.orders), registered with the
  decoder so the venue's reports come back carrying the int id and reach the owning strategy.
* Order updates and fills come from the user data stream (listenKey + `/ws/<listenKey>`): Binance's
  `executionReport` / `ORDER_TRADE_UPDATE` become ORDER_UPDATE and FILL records, `outboundAccountPosition`
  / `ACCOUNT_UPDATE` BALANCE and POSITION records (compiled decoder). The listen key is kept alive every
  30 minutes (it expires after 60: https://developers.binance.com/docs/binance-spot-api-docs/user-data-stream),
  replaced when Binance says it expired, and the stream reconnects like every other WsSession.
* A request the venue rejects becomes an ORDER_UPDATE with status REJECTED for the strategy (the venue's
  code and message are in `rejections`). A request whose outcome is unknown (timeout after sending, 5xx)
  is never resent: the order is queried by its client id until the venue says what happened.
* After the user stream reconnects, every order still open here is queried, so an update missed while
  disconnected is not lost (the report is fed through the same decoder; updates are idempotent).
"""
from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Optional

import numpy as np

from extrema._core.binance import BinanceDecoder, BinanceEvent
from extrema._core.clock import time_us
from extrema._core.instruments import Market
from extrema._core.records import OrderStatus
from extrema.adapters.binance.errors import (BinanceAPIError, BinanceError, OrderNotFoundError,
                                             OrderStatusUnknown)
from extrema.adapters.ws import Backoff, WsSession
from extrema.execution.client import CancelRequest, ExecutionClient, OrderRequest, ReplaceRequest

log = logging.getLogger("extrema.adapters.binance")

_TERMINAL = {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED,
             OrderStatus.EXPIRED_IN_MATCH}
_KEEPALIVE_S = 30 * 60


def _on_grid(value, precision):
    """`value` as text when `precision` decimals hold it exactly, else "0"."""
    if value is None or value.as_tuple().exponent < -precision and value != value.quantize(
            Decimal(1).scaleb(-precision)):
        return "0"
    return format(value, "f")


class _Order:
    __slots__ = ("request", "instrument", "text", "status", "price", "quantity")

    def __init__(self, request, instrument, text):
        self.request = request
        self.instrument = instrument
        self.text = text
        self.status = OrderStatus.PENDING_NEW
        self.price = request.price
        self.quantity = request.quantity


class BinanceExecution(ExecutionClient):
    """Orders of one Binance market (REST) and its user data stream (a source). See the module doc.

    rest     a BinanceRest of the market, with credentials
    ws_url   the market-stream base the user stream lives on (wss://stream.binance.com:9443,
             wss://fstream.binance.com, or the simulator's ws_url)
    """

    def __init__(self, market, rest, ws_url: str, *, registry=None, stale_after: float = 120.0,
                 backoff: Optional[Backoff] = None, query_interval: float = 0.5):
        self.market = Market(market)
        self.rest = rest
        self.ws_url = ws_url.rstrip("/")
        self.registry = registry
        self.stale_after = stale_after      # user streams are quiet: Binance pings keep them alive
        self._backoff = backoff
        self.query_interval = query_interval
        self.order_ids = None
        self.decoder: Optional[BinanceDecoder] = None
        self.session: Optional[WsSession] = None
        self.listen_key: Optional[str] = None
        self._emit = None
        self._loop = None
        self._orders: dict[int, _Order] = {}
        self._tasks: set[asyncio.Task] = set()
        self._pending: list[np.ndarray] = []     # records made before the stream ran
        self.rejections: dict[int, tuple[int, str]] = {}
        self.counters = {"submitted": 0, "rejected": 0, "cancels": 0, "replaces": 0, "unknown_outcomes": 0,
                         "listen_keys": 0, "reconciled": 0, "request_errors": 0}

    # ---- wiring ------------------------------------------------------------------------------------

    def bind_engine(self, engine):
        if self.registry is None:
            self.registry = engine.registry
        self.order_ids = engine.order_ids

    def _codec(self):
        if self.decoder is None:
            if self.registry is None:
                raise RuntimeError("BinanceExecution needs a registry (pass registry= or add it to an engine)")
            self.decoder = BinanceDecoder(self.registry, self.market)
        return self.decoder

    def _spawn(self, coro):
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _publish(self, records):
        if records is None or not len(records):
            return
        if self._emit is None:
            self._pending.append(records)
        else:
            self._emit(records)

    # ---- ExecutionClient (engine thread) -----------------------------------------------------------

    def submit(self, order: OrderRequest) -> None:
        inst = self.registry.get(self.market, order.instrument)
        text = self.order_ids.text(order.client_order_id)
        self._codec().register_client_order_id(text, order.client_order_id)
        self._orders[order.client_order_id] = _Order(order, inst, text)
        self.counters["submitted"] += 1
        self._spawn(self._place(self._orders[order.client_order_id]))

    def cancel(self, request: CancelRequest) -> None:
        self.counters["cancels"] += 1
        self._spawn(self._cancel(request.client_order_id))

    def replace(self, request: ReplaceRequest) -> None:
        self.counters["replaces"] += 1
        self._spawn(self._replace(request))

    # ---- requests (engine loop) --------------------------------------------------------------------

    async def _place(self, o: _Order):
        r = o.request
        order_type = "MARKET" if r.order_type == "market" else "LIMIT"
        tif = None if order_type == "MARKET" or r.post_only else r.time_in_force
        try:
            await self.rest.new_order(
                o.instrument.venue_symbol, r.side.upper(), order_type, client_order_id=o.text,
                quantity=r.quantity, price=r.price, time_in_force=tif, post_only=r.post_only,
                reduce_only=(True if r.reduce_only else None) if self.market == Market.BINANCE_USDM else None,
                response_type="ACK")
        except OrderStatusUnknown:
            self.counters["unknown_outcomes"] += 1
            await self._resolve_unknown(o)
        except BinanceAPIError as exc:
            self._reject(o, exc.code, exc.msg)
        except BinanceError as exc:           # could not send at all (connection refused, deadline)
            self._reject(o, 0, str(exc))

    async def _resolve_unknown(self, o: _Order):
        """The order may or may not have reached Binance: ask until it says, never resend."""
        for attempt in range(20):
            try:
                data = await self.rest.query_order(o.instrument.venue_symbol, client_order_id=o.text)
            except OrderNotFoundError:
                # Not there after recvWindow has passed: the request never arrived (Binance rejects a
                # request older than recvWindow, so it cannot arrive later).
                if attempt * self.query_interval * 1000 >= self.rest.recv_window_ms:
                    self._reject(o, -2013, "order never reached the venue")
                    return
            except BinanceError as exc:
                log.warning("query of order %s failed: %s", o.text, exc)
            else:
                self._publish(self._report_records(data))
                return
            await asyncio.sleep(self.query_interval)
        log.error("order %s: outcome still unknown after %d queries", o.text, attempt + 1)

    async def _cancel(self, coid: int):
        o = self._orders.get(coid)
        if o is None:
            log.warning("cancel of unknown order %s ignored", coid)
            return
        try:
            await self.rest.cancel_order(o.instrument.venue_symbol, client_order_id=o.text)
        except BinanceError as exc:
            # Typically -2011: already filled / cancelled; the stream has (or will have) the final state.
            self.counters["request_errors"] += 1
            log.info("cancel of %s refused: %s", o.text, exc)

    async def _replace(self, request: ReplaceRequest):
        o = self._orders.get(request.client_order_id)
        if o is None:
            log.warning("replace of unknown order %s ignored", request.client_order_id)
            return
        price = request.price if request.price is not None else o.price
        quantity = request.quantity if request.quantity is not None else o.quantity
        try:
            if self.market == Market.BINANCE_USDM:
                # USD-M modifies the order in place: same ids, new price / quantity.
                await self.rest.cancel_replace(o.instrument.venue_symbol, orig_client_order_id=o.text,
                                               side=o.request.side.upper(), quantity=quantity, price=price)
                o.price, o.quantity = price, quantity
            else:
                # Spot cancel-replace places a new order, which needs a new client id; it belongs to the
                # same strategy (same owner bits), so its updates reach the same on_order.
                owner = o.request.client_order_id & 63
                new_id = self.order_ids.next(owner)
                new_text = self.order_ids.text(new_id)
                self._codec().register_client_order_id(new_text, new_id)
                new_req = OrderRequest(new_id, o.request.strategy, o.request.instrument, o.request.side,
                                       quantity, price, "limit", o.request.time_in_force)
                self._orders[new_id] = _Order(new_req, o.instrument, new_text)
                await self.rest.cancel_replace(o.instrument.venue_symbol, orig_client_order_id=o.text,
                                               side=o.request.side.upper(), quantity=quantity, price=price,
                                               new_client_order_id=new_text)
        except BinanceError as exc:
            self.counters["request_errors"] += 1
            log.info("replace of %s refused: %s", o.text, exc)

    def _reject(self, o: _Order, code: int, message: str):
        self.counters["rejected"] += 1
        self.rejections[o.request.client_order_id] = (code, message)
        log.info("order %s rejected by %s: %s %s", o.text, self.market.name, code, message)
        r = o.request
        # The request's own numbers may be what the venue refused (off the tick / lot grid): the report
        # carries them only when the instrument's precision can hold them.
        price = _on_grid(r.price, o.instrument.price_precision)
        quantity = _on_grid(r.quantity, o.instrument.size_precision)
        report = {"e": "executionReport", "E": time_us() // 1000, "s": o.instrument.venue_symbol,
                  "c": o.text, "S": r.side.upper(), "o": "MARKET" if r.order_type == "market" else "LIMIT",
                  "f": r.time_in_force, "q": quantity, "p": price, "P": "0",
                  "x": "REJECTED", "X": "REJECTED", "r": "NONE", "i": -1, "l": "0", "z": "0", "L": "0",
                  "n": "0", "N": None, "T": time_us() // 1000, "t": -1, "m": False, "Z": "0"}
        self._publish(self._decode_json(report))

    def _report_records(self, order: dict):
        """A REST order object (query / open orders) as the executionReport the stream would send."""
        report = {"e": "executionReport",
                  "E": order.get("updateTime", order.get("time", time_us() // 1000)), "s": order["symbol"],
                  "c": order["clientOrderId"], "S": order["side"], "o": order["type"],
                  "f": order.get("timeInForce", "GTC"), "q": order["origQty"], "p": order["price"],
                  "P": order.get("stopPrice", "0"), "x": "NEW", "X": order["status"], "r": "NONE",
                  "i": order["orderId"], "l": "0", "z": order["executedQty"], "L": "0", "n": "0", "N": None,
                  "T": order.get("updateTime", order.get("time", 0)), "t": -1, "m": False,
                  "Z": order.get("cummulativeQuoteQty", order.get("cumQuote", "0"))}
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
        if self.rest.credentials is None:
            log.info("%s: no API credentials; the user data stream is off", self.market.name)
            await asyncio.Event().wait()
        self.listen_key = await self._new_listen_key()
        self.session = WsSession(lambda: f"{self.ws_url}/ws/{self.listen_key}", self._on_message,
                                 on_connect=self._on_connect, name=f"binance-{self.market.name.lower()}-user",
                                 stale_after=self.stale_after, backoff=self._backoff)
        keepalive = self._spawn(self._keepalive())
        try:
            await self.session.run()
        finally:
            keepalive.cancel()
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
        if session.stats.connects > 1:
            self._spawn(self._reconcile())

    async def _reconcile(self):
        """Query every order still open here: updates missed while the stream was down are recovered."""
        for coid, o in list(self._orders.items()):
            if o.status in _TERMINAL:
                continue
            try:
                data = await self.rest.query_order(o.instrument.venue_symbol, client_order_id=o.text)
            except BinanceError as exc:
                log.warning("reconciliation query of %s failed: %s", o.text, exc)
                continue
            self.counters["reconciled"] += 1
            self._publish(self._report_records(data))

    def _on_message(self, payload, ts_local):
        records = self.decoder.decode(payload, ts_local)
        event = self.decoder.info["event"]
        if event == BinanceEvent.LISTEN_KEY_EXPIRED:
            self._spawn(self._replace_listen_key())
            return
        if event in (BinanceEvent.SERVER_SHUTDOWN, BinanceEvent.STREAM_TERMINATED):
            self.session.reconnect("the venue ended the stream")
            return
        if len(records):
            self._track(records)
            self._emit(records)

    def _track(self, records):
        heads = records[records["kind"] == 6]       # ORDER_UPDATE heads: keep the latest status
        if not len(heads):
            return
        statuses = records[np.flatnonzero(records["kind"] == 6) + 1]["ts_exchange"]
        for head, status in zip(heads, statuses):
            o = self._orders.get(int(head["sequence"]))
            if o is not None:
                o.status = OrderStatus(int(status))

    def open_orders(self):
        """Client order ids of the orders this client has sent that are not finished yet."""
        return [coid for coid, o in self._orders.items() if o.status not in _TERMINAL]

    def stats(self):
        out = dict(self.counters)
        if self.decoder is not None:
            out["decoder"] = self.decoder.stats()
        if self.session is not None:
            out["connection"] = vars(self.session.stats).copy()
        return out
