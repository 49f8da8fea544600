"""Binance WebSocket API client: order entry whose bytes are written inside the caller.

    api = BinanceWsApi(Market.BINANCE_SPOT, "wss://ws-api.binance.com:443/ws-api/v3", creds,
                       on_response=on_answer, on_event=on_user_event, user_data=True)
    runner = asyncio.ensure_future(api.run())
    await api.wait_ready(10)
    rid = api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="s1-42", quantity="0.001",
                          price="20000")      # the frame is on the socket when this returns
    answer = await api.response(rid)           # or handle it in on_response

Why (issue 5, tick-to-order latency): the REST client (aiohttp) sends a request as a task on a later loop
iteration and costs tens of microseconds of aiohttp + signing. The WebSocket API
(https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/general-api-information, USD-M
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-api-general-info) takes
`{"id", "method", "params"}` text frames on one long-lived connection and answers `{"id", "status",
"result" | "error", "rateLimits"}`. `place_order` / `cancel_order` / `replace_order` (and the other
request methods) check, format, sign and write the frame synchronously - no task, no await before the
bytes are handed to the transport - and return the request id; answers are matched by id and handed to
`on_response(WsApiResponse)`; `await response(rid)` / `await result(rid)` serve callers off the hot path.

The connection is an `extrema.adapters.ws.WsSession` (picows, reconnect with backoff, planned reconnect
before Binance's 24 h connection limit, answers the server's pings - spot every 20 s, USD-M every 3 min -
and pings the server itself when idle so a half-open connection is dropped). A quiet WebSocket API
connection legitimately receives nothing for long stretches, so the session's "stale stream" watchdog is
switched off here; liveness is the ping/pong.

Rules this client keeps:

* Signing (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/request-security):
  SIGNED requests carry `apiKey`, `timestamp` (server clock estimate), `recvWindow` and `signature` over
  all other params sorted by name, `k=v` joined with `&`, values not percent-encoded. HMAC keys are signed
  with precomputed SHA-256 key states (signing.BinanceCredentials.signer, ~1.3 us). Ed25519 signing costs
  ~60-90 us per request here, so with an Ed25519 key the client authenticates the connection once with
  `session.logon` (Binance allows it for Ed25519 keys only) and later requests carry only `timestamp` /
  `recvWindow` - no apiKey, no signature (https://developers.binance.com/docs/binance-spot-api-docs/
  websocket-api/authentication-requests). If Binance revokes the session (an unsolicited -2015 with
  `"id": null`) the client falls back to signing each request.
* A request while the connection is down (or not yet logged on / subscribed) raises
  BinanceConnectionError at once: nothing is queued to go out late. A request the rate-limit budget cannot
  take now raises RateLimitError (IPBannedError during a ban) at once, unsent.
* Rate limits: the documented weight / order count of each method is reserved in a RateLimiter
  (ratelimit.py) before sending, and the `rateLimits` array of every answer corrects the counts (and the
  limits themselves) like the REST headers do. 429 / 418 answers block further requests until
  `error.data.retryAfter`.
* Outcomes: an answer with status 200 has `result`; any other has `error` as the adapter's exception
  (errors.py). A 5xx answer, a connection lost before the answer, or no answer within `request_timeout`
  leaves the outcome unknown: OrderStatusUnknown (order methods) / ExecutionStatusUnknown - query the
  order, never resend blindly (retry.RetryPolicy). An answer that comes after its request timed out is
  counted (`late`) and dropped: its request has been settled by then.
* User data (spot): `userDataStream.subscribe.signature` on this same connection (`user_data=True`
  subscribes at every connect); events arrive as `{"subscriptionId", "event": {...}}` and go to
  `on_event(event, ts_local_us)`. USD-M user data is not served on the WebSocket API connection (use the
  REST listenKey and the stream connection).

One event loop (the engine's); the hot-path methods must be called on that loop's thread.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from extrema._core.binance_orders import WsApiOrderSink
from extrema._core.clock import ServerClock
from extrema._core.instruments import Market

from ..ws import Backoff, WsSession
from . import endpoints as _ep
from .errors import (
    SPOT, USDM, BinanceConnectionError, BinanceError, ExecutionStatusUnknown, IPBannedError,
    InvalidResponseError, OrderStatusUnknown, RateLimitError, error_from_response)
from .ratelimit import RAW_REQUESTS, SPOT_DEFAULT_LIMITS, USDM_DEFAULT_LIMITS, RateLimit, RateLimiter
from .rest import algo_order_params, validate_client_order_id
from .signing import KEY_ED25519, BinanceCredentials, format_param

__all__ = ["BinanceWsApi", "WsApiResponse", "SPOT_WS_API_URL", "USDM_WS_API_URL"]

log = logging.getLogger("extrema.adapters.binance.ws_api")

SPOT_WS_API_URL = "wss://ws-api.binance.com:443/ws-api/v3"
USDM_WS_API_URL = "wss://ws-fapi.binance.com/ws-fapi/v1"

# Request weight / order count per method: the same figures as the REST endpoints they mirror
# (spot web-socket-api.md "Weight" / "Unfilled Order Count"; USD-M Websocket API "Request Weight").
_ENDPOINT_OF = {
    "order.place": "new_order", "order.cancel": "cancel_order", "order.cancelReplace": "cancel_replace",
    "order.modify": "modify_order", "order.status": "query_order", "openOrders.status": "open_orders",
    "algoOrder.place": "new_algo_order", "algoOrder.cancel": "cancel_algo_order",
}
_FIXED_WEIGHT = {"session.logon": 2, "session.status": 2, "session.logout": 2,
                 "userDataStream.subscribe.signature": 2, "userDataStream.unsubscribe": 2,
                 "time": 1, "ping": 1}
# The WebSocket API reports REQUEST_WEIGHT and ORDERS only (web-socket-api.md "Rate limits"); RAW_REQUESTS is
# a REST limiter.
SPOT_WS_API_LIMITS = tuple(lim for lim in SPOT_DEFAULT_LIMITS if lim.kind != RAW_REQUESTS)
RECENT_ANSWERS = 1024
_SPOT_ONLY = ("order.cancelReplace", "openOrders.status", "userDataStream.subscribe.signature",
              "userDataStream.unsubscribe", "time")
_USDM_ONLY = ("order.modify", "algoOrder.place", "algoOrder.cancel")

# Values written into the JSON text without escaping must not contain '"', '\\' or control characters.
_SYMBOL = re.compile(r"[A-Za-z0-9_\-.]{1,40}\Z|[^\"\\\x00-\x1f]{1,40}\Z")
_DECIMAL_TEXT = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?\Z")
_SAFE_TEXT = re.compile(r"[^\"\\\x00-\x1f]*\Z")


class WsApiResponse:
    """One answer (or the loss of one). `status` is Binance's (HTTP-like) status, 0 when the connection
    went down before the answer; `result` the decoded result on success; `error` the adapter exception
    otherwise; `rate_limits` the answer's rateLimits array (None when absent); `sent_ns` the
    time.perf_counter_ns() just before the frame was written; `received_us` the local receive time of the
    answer frame (extrema's wall clock, µs, as WsSession stamps it)."""

    __slots__ = ("request_id", "method", "status", "result", "error", "rate_limits", "client_order_id",
                 "sent_ns", "received_us")

    def __init__(self, request_id, method, status, result, error, rate_limits, client_order_id, sent_ns,
                 received_us):
        self.request_id = request_id
        self.method = method
        self.status = status
        self.result = result
        self.error = error
        self.rate_limits = rate_limits
        self.client_order_id = client_order_id
        self.sent_ns = sent_ns
        self.received_us = received_us

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self):
        what = f"error={self.error!r}" if self.error is not None else f"result={self.result!r:.120}"
        return f"<WsApiResponse id={self.request_id} {self.method} status={self.status} {what}>"


class _Pending:
    __slots__ = ("method", "reservation", "client_order_id", "operation", "symbol", "future", "sent_ns")

    def __init__(self, method, reservation, client_order_id, operation, symbol, sent_ns):
        self.method = method
        self.reservation = reservation
        self.client_order_id = client_order_id
        self.operation = operation
        self.symbol = symbol
        self.future: Optional[asyncio.Future] = None
        self.sent_ns = sent_ns


def _pending_entry(t) -> _Pending:
    """The _Pending of an order the compiled writer sent (order_sink keeps a tuple: building the record is
    deferred to the answer)."""
    res, client_order_id, symbol, sent_ns = t
    return _Pending("order.place", res, client_order_id, "new", symbol, sent_ns)


class BinanceWsApi:
    """Binance WebSocket API client for one market (Market.BINANCE_SPOT or Market.BINANCE_USDM).

    on_response(WsApiResponse)      every answer, and every request whose answer was lost (status 0)
    on_event(event: dict, ts_us)    spot user data events received on this connection
    recv_window_ms                  recvWindow of SIGNED requests
    server_clock                    the server clock estimate (extrema._core.clock.ServerClock: local wall
                                    clock + offset); pass the REST client's `clock` to share its measured
                                    offset (default: this client's own, set by server_time())
    now_ms                          a callable replacing server_clock.now_ms (ms)
    rate_limiter / rate_limits      a RateLimiter to share (e.g. with other connections of the same IP and
                                    account), or the limits for this client's own one
    logon                           authenticate the connection with session.logon (default: True for an
                                    Ed25519 key - the only kind Binance accepts for it)
    user_data                       spot: subscribe the account's user data at every connect
    ready_timeout                   seconds for the logon / subscribe answers at connect
    on_ready(client)                after every (re)connect once requests can be sent (e.g. reconcile)
    on_event_frame(payload, ts_us)  instead of on_event: user data frames as received (a memoryview valid
                                    during the call), for a decoder that reads the wire format itself
    request_timeout                 seconds an answer may take; after that the request is settled as
                                    unknown (OrderStatusUnknown / ExecutionStatusUnknown, status 0)
    session_options                 passed to WsSession (backoff, ping_idle, max_age, ...)
    """

    def __init__(self, market, url: str, credentials: BinanceCredentials, *,
                 on_response: Optional[Callable[[WsApiResponse], None]] = None,
                 on_event: Optional[Callable[[dict, int], None]] = None,
                 recv_window_ms: int = 5000, now_ms: Optional[Callable[[], int]] = None,
                 server_clock: Optional[ServerClock] = None,
                 rate_limiter: Optional[RateLimiter] = None, rate_limits: Optional[List[RateLimit]] = None,
                 logon: Optional[bool] = None, user_data: bool = False, ready_timeout: float = 10.0,
                 on_ready: Optional[Callable[["BinanceWsApi"], None]] = None,
                 on_event_frame: Optional[Callable[[memoryview, int], None]] = None,
                 name: Optional[str] = None, request_timeout: float = 10.0, **session_options):
        self.market = Market(market)
        if self.market == Market.BINANCE_SPOT:
            self._api = SPOT
        elif self.market == Market.BINANCE_USDM:
            self._api = USDM
        else:
            raise ValueError(f"BinanceWsApi handles BINANCE_SPOT and BINANCE_USDM, not {self.market.name}")
        if not isinstance(credentials, BinanceCredentials):
            raise TypeError("credentials must be a BinanceCredentials")
        if not 0 < recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be in (0, 60000] (Binance's maximum), got {recv_window_ms}")
        if logon is None:
            logon = credentials.key_type == KEY_ED25519
        if logon and credentials.key_type != KEY_ED25519:
            raise ValueError("session.logon takes Ed25519 keys only (Binance WebSocket API session "
                             "authentication); use logon=False to sign every request")
        if user_data and self._api != SPOT:
            raise ValueError("user data on the WebSocket API connection is a spot feature; USD-M user data "
                             "comes on a listenKey stream")
        self.url = url
        self.credentials = credentials
        self.on_response = on_response
        self.on_event = on_event
        self.on_ready = on_ready
        self.on_event_frame = on_event_frame
        self.recv_window_ms = int(recv_window_ms)
        self.logon = bool(logon)
        self.user_data = bool(user_data)
        self.ready_timeout = float(ready_timeout)
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be positive, got {request_timeout}")
        self.request_timeout = float(request_timeout)
        self._expired: "OrderedDict[int, str]" = OrderedDict()     # timed-out request ids -> method
        # The server clock estimate: the REST client's (shared offset) or this client's own, set by
        # server_time(); a `now_ms` callable replaces it (tests).
        self.server_clock = server_clock if server_clock is not None else ServerClock()
        self._now_ms = now_ms if now_ms is not None else self.server_clock.now_ms
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter(
            rate_limits if rate_limits is not None else
            (SPOT_WS_API_LIMITS if self._api == SPOT else USDM_DEFAULT_LIMITS), self._now_ms)
        self._endpoints = _ep.endpoint_table(self._api)
        self._sign = credentials.signer()
        # The compiled order.place writer (HMAC keys; None otherwise): place_order_raw, and the engine's
        # Context.submit through BinanceExecution.order_sink.
        self._encoder = credentials.order_encoder(self.recv_window_ms)
        self._place_cost = self._endpoints["new_order"]
        self._api_key = credentials.api_key
        self._api_key_json = json.dumps(credentials.api_key)
        self._recv_window_text = str(self.recv_window_ms)
        self._ids = itertools.count(1)
        self._pending: Dict[int, _Pending] = {}
        self._recent: "OrderedDict[int, WsApiResponse]" = OrderedDict()   # for response() after the fact
        self._ready = False
        self._authenticated = False        # session.logon accepted on the current connection
        self._draining = False             # serverShutdown announced: no new requests, reconnect soon
        self._ready_event = asyncio.Event()
        self.subscription_id: Optional[int] = None
        self.counters = dict(answers=0, errors=0, lost=0, unmatched=0, malformed=0, events=0,
                             session_revoked=0, sent=0, timed_out=0, late=0)
        options = dict(max_age=23.5 * 3600, stale_after=float("inf"), send_rate=1000.0,
                       backoff=Backoff(base=0.25, cap=10.0), ping_idle=10.0, ping_reply_timeout=10.0)
        options.update(session_options)
        self.session = WsSession(url, self._on_message, on_connect=self._on_connect,
                                 on_disconnect=self._on_disconnect,
                                 name=name or f"binance-{self._api}-ws-api", **options)
        # The compiled order.place path (HMAC keys): place_order_raw and the engine's fast path.
        self.order_sink = (WsApiOrderSink(self, self._encoder, (BinanceError, ValueError),
                                          self.server_clock if now_ms is None else None)
                           if self._encoder is not None else None)

    def __repr__(self):
        return (f"<BinanceWsApi {self.market.name} {self.url} credentials={self.credentials!r} "
                f"ready={self._ready} pending={len(self._pending)}>")

    # --- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the connection up (reconnecting) until stop(); returns when stopped."""
        sweeper = asyncio.get_running_loop().create_task(self._expire_pending())
        try:
            await self.session.run()
        finally:
            sweeper.cancel()

    async def _expire_pending(self) -> None:
        """Settle every request unanswered after `request_timeout` as unknown. Requests are kept in send
        order (ids grow), so each pass stops at the first one still in time - nothing on the send path."""
        timeout_ns = int(self.request_timeout * 1e9)
        interval = min(0.25, self.request_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            if not self._pending:
                continue
            now = time.perf_counter_ns()
            expired = []
            for rid, pend in self._pending.items():
                # the order sink's entries are tuples (reservation, client id, symbol, sent_ns)
                if now - (pend[3] if pend.__class__ is tuple else pend.sent_ns) < timeout_ns:
                    break
                expired.append(rid)
            for rid in expired:
                pend = self._pending.pop(rid)
                self.counters["timed_out"] += 1
                self._expired[rid] = "order.place" if pend.__class__ is tuple else pend.method
                if len(self._expired) > RECENT_ANSWERS:
                    self._expired.popitem(last=False)
                self._settle_unanswered(rid, pend, f"no answer within {self.request_timeout:g} s")

    def stop(self) -> None:
        self.session.stop()

    @property
    def ready(self) -> bool:
        """True when requests can be sent: connected, and logged on / subscribed when asked to be."""
        return self._ready

    async def wait_ready(self, timeout: Optional[float] = None) -> None:
        await asyncio.wait_for(self._ready_event.wait(), timeout)

    @property
    def authenticated(self) -> bool:
        """The current connection is logged on (session.logon): requests go out unsigned."""
        return self._authenticated

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def clock_offset_ms(self) -> float:
        return self.server_clock.offset_ms

    def now_ms(self) -> int:
        return self._now_ms()

    async def _on_connect(self, session: WsSession) -> None:
        self._authenticated = False
        self._draining = False
        if self.logon:
            rid = self._send("session.logon", [], signed=True, weight=2, orders=0, require_ready=False)
            resp = await self.response(rid, timeout=self.ready_timeout)
            if resp.error is not None:
                raise resp.error
            self._authenticated = True
        if self.user_data:
            rid = self.subscribe_user_data(require_ready=False)
            resp = await self.response(rid, timeout=self.ready_timeout)
            if resp.error is not None:
                raise resp.error
        self._set_ready(True)
        if self.on_ready is not None:
            self.on_ready(self)

    def _set_ready(self, ready: bool) -> None:
        """Requests may be sent (or not): the flag, the event waiters wait on, and the compiled order sink's
        own copy with this connection's listener (it checks a C flag instead of this object's attributes)."""
        self._ready = ready
        if ready:
            self._ready_event.set()
        else:
            self._ready_event.clear()
        if self.order_sink is not None:
            self.order_sink.connected(self.session.listener if ready else None)

    def _on_disconnect(self, session: WsSession, reason: str) -> None:
        self._set_ready(False)
        self._authenticated = False
        self.subscription_id = None
        lost, self._pending = self._pending, {}
        for rid, pend in lost.items():
            self.counters["lost"] += 1
            self._settle_unanswered(rid, pend, f"connection lost before the answer ({reason})")

    def _settle_unanswered(self, rid: int, pend, why: str) -> None:
        """A request that will get no answer (connection lost, timed out): its outcome is unknown. The one
        settle path for both: `pend` is a _Pending or the tuple the order sink keeps (made a _Pending here, its
        int client order id turned into the wire text the venue knows)."""
        if pend.__class__ is tuple:
            pend = _pending_entry(pend)
        if pend.client_order_id.__class__ is int:      # the order sink keeps the int id
            pend.client_order_id = self._client_id_text(pend.client_order_id)
        self.rate_limiter.settle(pend.reservation, None, reached_server=True)
        what = f"WS-API {pend.method}: {why}; execution status unknown"
        if pend.operation is not None:
            err = OrderStatusUnknown(f"{what} - query client order id {pend.client_order_id!r}, do not resend",
                                     client_order_id=pend.client_order_id, operation=pend.operation,
                                     symbol=pend.symbol, endpoint=f"WS-API {pend.method}")
        else:
            err = ExecutionStatusUnknown(what, endpoint=f"WS-API {pend.method}")
        self._deliver(pend, WsApiResponse(rid, pend.method, 0, None, err, None, pend.client_order_id,
                                          pend.sent_ns, time.time_ns() // 1000))

    # --- the send path ---------------------------------------------------------------------------------

    def _send(self, method: str, items: List[Tuple[str, str, str]], *, signed: bool, weight: int, orders: int,
              client_order_id: Optional[str] = None, operation: Optional[str] = None,
              symbol: Optional[str] = None, require_ready: bool = True) -> int:
        """Send a request given as sorted (name, signed text, JSON text) items - the general path (any
        parameter names); the hot methods build their text directly and call _send_parts."""
        if not signed:
            self._check_sendable(method, require_ready)
            res = self.rate_limiter.try_acquire(weight, orders, endpoint=method)
            rid = next(self._ids)
            params = ",".join([f'"{k}":{j}' for k, _, j in items])
            return self._write(method, f'{{"id":{rid},"method":"{method}","params":{{{params}}}}}', res, rid,
                               client_order_id, operation, symbol)
        items.sort()
        if items and items[0][0] < "apiKey":
            return self._send_sorted(method, items, weight, orders, client_order_id, operation, symbol,
                                     require_ready)
        # Split around the names the client adds (apiKey < [a] < recvWindow < [b] < timestamp < [c]).
        parts = [["", ""], ["", ""], ["", ""]]
        for k, v, j in items:
            part = parts[0] if k < "recvWindow" else parts[1] if k < "timestamp" else parts[2]
            part[0] += f"&{k}={v}"
            part[1] += f',"{k}":{j}'
        (pa, ja), (pb, jb), (pc, jc) = parts
        return self._send_parts(method, pa, ja, pb, jb, pc, jc, weight, orders, client_order_id, operation,
                                symbol, require_ready)

    def _send_sorted(self, method: str, items: List[Tuple[str, str, str]], weight: int, orders: int,
                     client_order_id: Optional[str], operation: Optional[str], symbol: Optional[str],
                     require_ready: bool) -> int:
        """A signed request with parameter names that sort before apiKey (USD-M algoOrder.*: algoId,
        algoType): apiKey, recvWindow and timestamp are sorted in with the rest - the general path."""
        self._check_sendable(method, require_ready)
        res = self.rate_limiter.try_acquire(weight, orders, endpoint=method)
        rid = next(self._ids)
        ts = str(self._now_ms())
        rw = self._recv_window_text
        if self._authenticated:
            full = sorted(items + [("recvWindow", rw, rw), ("timestamp", ts, ts)])
            params = ",".join(f'"{k}":{j}' for k, _, j in full)
        else:
            full = sorted(items + [("apiKey", self._api_key, self._api_key_json), ("recvWindow", rw, rw),
                                   ("timestamp", ts, ts)])
            sig = self._sign("&".join(f"{k}={v}" for k, v, _ in full).encode())
            params = ",".join(f'"{k}":{j}' for k, _, j in full) + f',"signature":"{sig}"'
        return self._write(method, f'{{"id":{rid},"method":"{method}","params":{{{params}}}}}', res, rid,
                           client_order_id, operation, symbol)

    def _check_sendable(self, method: str, require_ready: bool) -> None:
        if require_ready and not self._ready:
            raise BinanceConnectionError(
                f"WS-API {method}: not sent - the connection is "
                f"{'down' if not self.session.connected else 'being set up' if not self._draining else 'closing (server shutdown)'}",
                endpoint=f"WS-API {method}")

    def _send_parts(self, method: str, pay_a: str, js_a: str, pay_b: str, js_b: str, pay_c: str, js_c: str,
                    weight: int, orders: int, client_order_id: Optional[str], operation: Optional[str],
                    symbol: Optional[str], require_ready: bool = True) -> int:
        """The signed-request hot path. The caller's params come as three runs of `&k=v` (signed text)
        and `,"k":json` (JSON text), each run in name order: [a] names between apiKey and recvWindow,
        [b] between recvWindow and timestamp, [c] after timestamp - so the signature payload (all params
        but signature, sorted by name) is assembled by concatenation, without sorting or joining lists.
        Logged on (session.logon): no apiKey, no signature, and the JSON order does not matter."""
        if not self._ready and require_ready:
            self._check_sendable(method, require_ready)
        res = self.rate_limiter.try_acquire(weight, orders, endpoint=method)
        rid = next(self._ids)
        ts = self._now_ms()
        rw = self._recv_window_text
        if self._authenticated:
            params = f'"recvWindow":{rw}{js_a}{js_b},"timestamp":{ts}{js_c}'
        else:
            sig = self._sign(f"apiKey={self._api_key}{pay_a}&recvWindow={rw}{pay_b}&timestamp={ts}{pay_c}".encode())
            params = (f'"apiKey":{self._api_key_json}{js_a},"recvWindow":{rw}{js_b},"timestamp":{ts}{js_c},'
                      f'"signature":"{sig}"')
        return self._write(method, f'{{"id":{rid},"method":"{method}","params":{{{params}}}}}', res, rid,
                           client_order_id, operation, symbol)

    def _write(self, method: str, frame: str, res, rid: int, client_order_id, operation, symbol) -> int:
        sent_ns = time.perf_counter_ns()
        try:
            self.session.send_now(frame.encode())
        except ConnectionError as e:
            self.rate_limiter.settle(res, None, reached_server=False)
            raise BinanceConnectionError(f"WS-API {method}: not sent - {e}", endpoint=f"WS-API {method}") from None
        self._pending[rid] = _Pending(method, res, client_order_id, operation, symbol, sent_ns)
        self.counters["sent"] += 1
        return rid

    def request(self, method: str, params: Optional[Mapping[str, Any]] = None, *, signed: bool = True,
                weight: Optional[int] = None, orders: int = 0) -> int:
        """Send any WebSocket API method (values formatted as for signing: decimals as str / Decimal, ints,
        bools). Weight defaults to the method's documented one (1 when unknown). Returns the request id."""
        items = _items(params or {})
        if weight is None:
            weight = self._weight(method, params or {})
        return self._send(method, items, signed=signed, weight=weight, orders=orders)

    def _weight(self, method: str, params: Mapping[str, Any]) -> int:
        ep = _ENDPOINT_OF.get(method)
        if ep is not None and ep in self._endpoints:
            return self._endpoints[ep].weight_for(params)
        return _FIXED_WEIGHT.get(method, 1)

    def _check_method(self, method: str) -> None:
        if self._api == SPOT and method in _USDM_ONLY:
            raise ValueError(f"{method} is a USD-M WebSocket API method; this client is for spot")
        if self._api == USDM and method in _SPOT_ONLY:
            raise ValueError(f"{method} is a spot WebSocket API method; this client is for USD-M")

    # --- orders (hot path) -----------------------------------------------------------------------------

    def place_order(self, symbol: str, side: str, order_type: str, *, client_order_id: str, quantity=None,
                    price=None, time_in_force: Optional[str] = None, post_only: bool = False,
                    reduce_only: Optional[bool] = None, quote_quantity=None, stop_price=None,
                    position_side: Optional[str] = None, response_type: Optional[str] = "RESULT",
                    extra: Optional[Mapping[str, Any]] = None) -> int:
        """`order.place`, written before this returns; returns the request id. Same arguments and rules as
        BinanceRest.new_order: side BUY / SELL, order_type LIMIT / MARKET / LIMIT_MAKER / ... (any case),
        prices and sizes as str (digits with an optional fraction) or Decimal, `post_only` = LIMIT_MAKER on
        spot, timeInForce GTX on USD-M; LIMIT defaults to GTC. The answer (or OrderStatusUnknown when the
        connection drops first) goes to on_response / response(rid)."""
        side = _SIDES.get(side) or _SIDES.get(side.upper() if isinstance(side, str) else None) or _bad_side(side)
        order_type = order_type.upper() if order_type.__class__ is str and not order_type.isupper() else order_type
        if order_type.__class__ is not str or not order_type:
            raise ValueError(f"order_type must be a non-empty string, got {order_type!r}")
        if time_in_force is not None:
            time_in_force = time_in_force.upper()
            if time_in_force not in _TIFS:
                raise ValueError(f"time_in_force must be one of {', '.join(_TIFS)}, got {time_in_force!r}")
        spot = self._api == SPOT
        if post_only:
            if order_type not in ("LIMIT", "LIMIT_MAKER"):
                raise ValueError("post_only applies to LIMIT orders")
            if spot:
                if time_in_force not in (None, "GTC"):
                    raise ValueError("a spot post-only order (LIMIT_MAKER) has no timeInForce")
                order_type, time_in_force = "LIMIT_MAKER", None
            else:
                if order_type != "LIMIT" or time_in_force not in (None, "GTX"):
                    raise ValueError("a USD-M post-only order is a LIMIT order with timeInForce GTX")
                time_in_force = "GTX"
        if order_type == "LIMIT" and time_in_force is None:
            time_in_force = "GTC"
        if price is None and (order_type == "LIMIT" or order_type == "LIMIT_MAKER"):
            raise ValueError(f"a {order_type} order needs a price")
        if quantity is None and quote_quantity is None:
            raise ValueError("give quantity (or quote_quantity for a spot MARKET order)")
        if spot:
            if reduce_only is not None or position_side is not None:
                raise ValueError("reduce_only / position_side are USD-M parameters, not spot ones")
        elif quote_quantity is not None:
            raise ValueError("quote_quantity (quoteOrderQty) is a spot parameter")
        if response_type is not None and response_type not in (_SPOT_RESP if spot else _USDM_RESP):
            raise ValueError(f"response_type must be one of {', '.join(_SPOT_RESP if spot else _USDM_RESP)}, "
                             f"got {response_type!r}")
        if client_order_id.__class__ is not str or not _CLIENT_ID.match(client_order_id):
            validate_client_order_id(client_order_id)
        _symbol_ok(symbol)
        ep = self._endpoints["new_order"]
        if extra:
            items = [("newClientOrderId", client_order_id, '"' + client_order_id + '"')]
            for name, value in (("newOrderRespType", response_type), ("positionSide", position_side),
                                ("price", price), ("quantity", quantity), ("quoteOrderQty", quote_quantity),
                                ("reduceOnly", reduce_only), ("side", side), ("stopPrice", stop_price),
                                ("symbol", symbol), ("timeInForce", time_in_force), ("type", order_type)):
                if value is None:
                    continue
                if name in ("price", "quantity", "quoteOrderQty", "stopPrice"):
                    value = _dec(value, name)
                elif name == "reduceOnly":
                    value = "true" if value else "false"
                else:
                    value = _text(value, name)
                items.append((name, value, json.dumps(value)))
            _merge_extra(items, extra)
            return self._send("order.place", items, signed=True, weight=ep.weight, orders=ep.orders,
                              client_order_id=client_order_id, operation="new", symbol=symbol)
        # The hot path: the params as text in name order, split around recvWindow / timestamp (_send_parts).
        pa = f"&newClientOrderId={client_order_id}"
        ja = f',"newClientOrderId":"{client_order_id}"'
        if response_type is not None:
            pa += f"&newOrderRespType={response_type}"
            ja += f',"newOrderRespType":"{response_type}"'
        if position_side is not None:
            ps = _text(position_side, "position_side")
            pa += f"&positionSide={ps}"
            ja += f',"positionSide":"{ps}"'
        if price is not None:
            p = _dec(price, "price")
            pa += f"&price={p}"
            ja += f',"price":"{p}"'
        if quantity is not None:
            q = _dec(quantity, "quantity")
            pa += f"&quantity={q}"
            ja += f',"quantity":"{q}"'
        if quote_quantity is not None:
            qq = _dec(quote_quantity, "quote_quantity")
            pa += f"&quoteOrderQty={qq}"
            ja += f',"quoteOrderQty":"{qq}"'
        pb = ""
        jb = ""
        if reduce_only is not None:
            pb = "&reduceOnly=true" if reduce_only else "&reduceOnly=false"
            jb = ',"reduceOnly":"true"' if reduce_only else ',"reduceOnly":"false"'
        pb += f"&side={side}"
        jb += f',"side":"{side}"'
        if stop_price is not None:
            sp = _dec(stop_price, "stop_price")
            pb += f"&stopPrice={sp}"
            jb += f',"stopPrice":"{sp}"'
        pb += f"&symbol={symbol}"
        jb += f',"symbol":"{symbol}"'
        if time_in_force is not None:
            pb += f"&timeInForce={time_in_force}"
            jb += f',"timeInForce":"{time_in_force}"'
        if not _TYPE_TEXT.match(order_type):
            raise ValueError(f"order_type must be a Binance order type like LIMIT or LIMIT_MAKER, got {order_type!r}")
        return self._send_parts("order.place", pa, ja, pb, jb, f"&type={order_type}", f',"type":"{order_type}"',
                                ep.weight, ep.orders, client_order_id, "new", symbol)

    @property
    def compiled_orders(self) -> bool:
        """place_order_raw is available: an HMAC key (the compiled writer signs each request). With an
        Ed25519 key the session is logged on and place_order sends unsigned requests instead."""
        return self._encoder is not None

    def set_client_id_prefix(self, prefix: str) -> None:
        """The engine's client order id prefix (ClientOrderIds.prefix): place_order_raw then takes int ids."""
        if self._encoder is not None:
            self._encoder.client_id_prefix = prefix

    def _client_id_text(self, client_order_id: int) -> str:
        return f"{self._encoder.client_id_prefix}{client_order_id}"

    def place_order_raw(self, symbol: str, client_order_id, side: int, order_type: int, time_in_force: int,
                        price_raw: int, price_precision: int, quantity_raw: int, size_precision: int) -> int:
        """`order.place` of a plain order from raw fixed-point numbers, written before this returns: the
        compiled writer (extrema._core.binance_orders) formats, signs and hands the frame to the socket.
        The same request place_order sends for LIMIT (order_type 2 = extrema.OrderType.LIMIT, price
        price_raw / 10**price_precision, time_in_force 1 GTC, 2 IOC, 3 FOK) or MARKET (order_type 1, price_raw 0,
        time_in_force 0) by quantity with
        newOrderRespType ACK; side 0 BUY, 1 SELL (extrema.Side). Same readiness and rate-limit rules as
        place_order; ValueError (unsent) for an order the writer does not take. Returns the request id.
        `client_order_id` is the wire text, or one of the engine's int ids when the encoder knows the engine's
        prefix (set_client_id_prefix): the text is then written in C and built in Python only for an answer.
        The engine's Context.submit reaches the same writer without this call (order_sink)."""
        if self.order_sink is None:
            raise ValueError("place_order_raw needs an HMAC key (compiled_orders is False): use place_order")
        return self.order_sink.place(symbol, client_order_id, side, order_type, time_in_force, price_raw,
                                     price_precision, quantity_raw, size_precision)

    def _not_connected(self, method: str):
        raise BinanceConnectionError(f"WS-API {method}: not sent - not connected", endpoint=f"WS-API {method}")

    def cancel_order(self, symbol: str, *, client_order_id: Optional[str] = None,
                     order_id: Optional[int] = None, new_client_order_id: Optional[str] = None) -> int:
        """`order.cancel` by origClientOrderId (or orderId), written before this returns; returns the
        request id. -2011 'Unknown order sent.' comes back as UnknownOrderError."""
        if client_order_id is None and order_id is None:
            raise ValueError("give client_order_id or order_id")
        _symbol_ok(symbol)
        items = []
        if new_client_order_id is not None:
            if self._api != SPOT:
                raise ValueError("new_client_order_id on cancel is a spot parameter")
            validate_client_order_id(new_client_order_id)
            items.append(("newClientOrderId", new_client_order_id, '"' + new_client_order_id + '"'))
        if order_id is not None:
            oid = _order_id(order_id)
            items.append(("orderId", oid, oid))
        if client_order_id is not None:
            if client_order_id.__class__ is not str or not _CLIENT_ID.match(client_order_id):
                validate_client_order_id(client_order_id)
            items.append(("origClientOrderId", client_order_id, '"' + client_order_id + '"'))
        items.append(("symbol", symbol, '"' + symbol + '"'))
        ep = self._endpoints["cancel_order"]
        ref = client_order_id if client_order_id is not None else str(order_id)
        return self._send("order.cancel", items, signed=True, weight=ep.weight, orders=ep.orders,
                          client_order_id=ref, operation="cancel", symbol=symbol)

    def replace_order(self, symbol: str, *, orig_client_order_id: str, side: str, quantity, price,
                      new_client_order_id: Optional[str] = None, order_type: str = "LIMIT",
                      time_in_force: Optional[str] = "GTC", mode: str = "STOP_ON_FAILURE",
                      response_type: Optional[str] = "RESULT", extra: Optional[Mapping[str, Any]] = None) -> int:
        """Replace an open order's price / quantity, written before this returns; returns the request id.
        spot  `order.cancelReplace`: cancels `orig_client_order_id` and places `new_client_order_id`
              (required), atomic per `mode` (STOP_ON_FAILURE / ALLOW_FAILURE); failures come back as
              CancelReplaceError with the per-leg results in `.data`.
        USD-M `order.modify`: the LIMIT order keeps its ids and gets the new price and quantity;
              `new_client_order_id` must be None."""
        side = _SIDES.get(side) or _SIDES.get(side.upper() if isinstance(side, str) else None) or _bad_side(side)
        validate_client_order_id(orig_client_order_id)
        _symbol_ok(symbol)
        if quantity is None or price is None:
            raise ValueError("replace_order needs the new quantity and price")
        p, q = _dec(price, "price"), _dec(quantity, "quantity")
        if self._api == USDM:
            if new_client_order_id is not None and new_client_order_id != orig_client_order_id:
                raise ValueError("USD-M modifies the order in place and keeps its client order id: "
                                 "new_client_order_id must be None")
            if order_type.upper() != "LIMIT":
                raise ValueError("USD-M can modify LIMIT orders only")
            items = [("origClientOrderId", orig_client_order_id, '"' + orig_client_order_id + '"'),
                     ("price", p, '"' + p + '"'), ("quantity", q, '"' + q + '"'), ("side", side, '"' + side + '"'),
                     ("symbol", symbol, '"' + symbol + '"')]
            if extra:
                _merge_extra(items, extra)
            ep = self._endpoints["modify_order"]
            return self._send("order.modify", items, signed=True, weight=ep.weight, orders=ep.orders,
                              client_order_id=orig_client_order_id, operation="replace", symbol=symbol)
        if new_client_order_id is None:
            raise ValueError("spot cancel-replace places a new order: give new_client_order_id")
        validate_client_order_id(new_client_order_id)
        order_type = order_type.upper()
        mode = mode.upper()
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise ValueError(f"mode must be STOP_ON_FAILURE or ALLOW_FAILURE, got {mode!r}")
        if order_type == "LIMIT_MAKER":
            time_in_force = None
        items = [("cancelOrigClientOrderId", orig_client_order_id, '"' + orig_client_order_id + '"'),
                 ("cancelReplaceMode", mode, '"' + mode + '"'),
                 ("newClientOrderId", new_client_order_id, '"' + new_client_order_id + '"')]
        if response_type is not None:
            if response_type not in _SPOT_RESP:
                raise ValueError(f"response_type must be one of {', '.join(_SPOT_RESP)}, got {response_type!r}")
            items.append(("newOrderRespType", response_type, '"' + response_type + '"'))
        items += [("price", p, '"' + p + '"'), ("quantity", q, '"' + q + '"'), ("side", side, '"' + side + '"'),
                  ("symbol", symbol, '"' + symbol + '"')]
        if time_in_force is not None:
            tif = time_in_force.upper()
            if tif not in _TIFS:
                raise ValueError(f"time_in_force must be one of {', '.join(_TIFS)}, got {time_in_force!r}")
            items.append(("timeInForce", tif, '"' + tif + '"'))
        items.append(("type", order_type, json.dumps(order_type)))
        if extra:
            _merge_extra(items, extra)
        ep = self._endpoints["cancel_replace"]
        return self._send("order.cancelReplace", items, signed=True, weight=ep.weight, orders=ep.orders,
                          client_order_id=new_client_order_id, operation="replace", symbol=symbol)

    # --- USD-M conditional (algo) orders ---------------------------------------------------------------

    def place_algo_order(self, symbol: str, side: str, order_type: str, *, client_algo_id: str, quantity=None,
                         price=None, trigger_price=None, time_in_force: Optional[str] = None,
                         reduce_only: Optional[bool] = None, working_type: Optional[str] = None,
                         activate_price=None, callback_rate=None, extra: Optional[Mapping[str, Any]] = None) -> int:
        """USD-M `algoOrder.place` (algoType CONDITIONAL), written before this returns; returns the request
        id. Same arguments and checks as BinanceRest.new_algo_order; a lost answer comes back as
        OrderStatusUnknown under `client_algo_id` (query it with GET /fapi/v1/algoOrder).
        https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/websocket-api/New-Algo-Order"""
        self._check_method("algoOrder.place")
        params = algo_order_params(symbol, side, order_type, client_algo_id=client_algo_id, quantity=quantity,
                                   price=price, trigger_price=trigger_price, time_in_force=time_in_force,
                                   reduce_only=reduce_only, working_type=working_type,
                                   activate_price=activate_price, callback_rate=callback_rate, extra=extra)
        ep = self._endpoints["new_algo_order"]
        return self._send("algoOrder.place", _items(params), signed=True, weight=ep.weight, orders=ep.orders,
                          client_order_id=client_algo_id, operation="new", symbol=params["symbol"])

    def cancel_algo_order(self, *, client_algo_id: Optional[str] = None, algo_id: Optional[int] = None) -> int:
        """USD-M `algoOrder.cancel` by clientAlgoId (or algoId); returns the request id. An algo order the
        venue does not know (or no longer has open) comes back as the venue's error (-2011).
        https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/websocket-api/Cancel-Algo-Order"""
        self._check_method("algoOrder.cancel")
        if client_algo_id is None and algo_id is None:
            raise ValueError("give client_algo_id or algo_id")
        if client_algo_id is not None:
            validate_client_order_id(client_algo_id)
        params = {"algoId": _order_id(algo_id) if algo_id is not None else None, "clientAlgoId": client_algo_id}
        ep = self._endpoints["cancel_algo_order"]
        return self._send("algoOrder.cancel", _items(params), signed=True, weight=ep.weight, orders=ep.orders,
                          client_order_id=client_algo_id if client_algo_id is not None else str(algo_id),
                          operation="cancel", symbol=None)

    # --- queries and session ---------------------------------------------------------------------------

    def order_status(self, symbol: str, *, client_order_id: Optional[str] = None,
                     order_id: Optional[int] = None) -> int:
        """`order.status` by origClientOrderId (or orderId); -2013 comes back as OrderNotFoundError."""
        if client_order_id is None and order_id is None:
            raise ValueError("give client_order_id or order_id")
        _symbol_ok(symbol)
        items = []
        if order_id is not None:
            oid = _order_id(order_id)
            items.append(("orderId", oid, oid))
        if client_order_id is not None:
            validate_client_order_id(client_order_id)
            items.append(("origClientOrderId", client_order_id, '"' + client_order_id + '"'))
        items.append(("symbol", symbol, '"' + symbol + '"'))
        return self._send("order.status", items, signed=True, weight=self._endpoints["query_order"].weight,
                          orders=0)

    def open_orders(self, symbol: Optional[str] = None) -> int:
        """Spot `openOrders.status` for one symbol (weight 6) or all (80)."""
        self._check_method("openOrders.status")
        items = []
        if symbol is not None:
            _symbol_ok(symbol)
            items.append(("symbol", symbol, '"' + symbol + '"'))
        weight = self._endpoints["open_orders"].weight_for({"symbol": symbol})
        return self._send("openOrders.status", items, signed=True, weight=weight, orders=0)

    def subscribe_user_data(self, *, require_ready: bool = True) -> int:
        """Spot `userDataStream.subscribe.signature`: the account's events on this connection (any key
        type; its subscription outlives session.logout). The answer's result carries `subscriptionId`."""
        self._check_method("userDataStream.subscribe.signature")
        return self._send("userDataStream.subscribe.signature", [], signed=True, weight=2, orders=0,
                          require_ready=require_ready)

    async def server_time(self, *, timeout: float = 5.0) -> int:
        """Spot `time`: sets the server clock's offset from the answer against the midpoint of the round trip.
        Returns serverTime (ms)."""
        self._check_method("time")
        t0 = time.time_ns()
        resp = await self.response(self._send("time", [], signed=False, weight=1, orders=0), timeout=timeout)
        t1 = time.time_ns()
        if resp.error is not None:
            raise resp.error
        server = resp.result.get("serverTime") if isinstance(resp.result, dict) else None
        if not isinstance(server, int):
            raise InvalidResponseError(f"WS-API time: no integer serverTime in {resp.result!r:.200}")
        self.server_clock.offset_ms = server - (t0 + t1) / 2e6
        self.server_clock.rtt_ms = (t1 - t0) / 1e6
        return server

    # --- waiting for answers (off the hot path) --------------------------------------------------------

    async def response(self, request_id: int, *, timeout: Optional[float] = None) -> WsApiResponse:
        """The answer to a request: awaited while pending, or taken from the last `RECENT_ANSWERS` answers
        when it already came. On timeout the request stays pending."""
        pend = self._pending.get(request_id)
        if pend.__class__ is tuple:
            pend = self._pending[request_id] = _pending_entry(pend)
        if pend is None:
            done = self._recent.get(request_id)
            if done is not None:
                return done
            raise KeyError(f"request {request_id} is not pending and not among the last {RECENT_ANSWERS} answers")
        if pend.future is None:
            pend.future = asyncio.get_running_loop().create_future()
        return await asyncio.wait_for(asyncio.shield(pend.future), timeout)

    async def result(self, request_id: int, *, timeout: Optional[float] = None):
        """The result of a request, or its error raised."""
        resp = await self.response(request_id, timeout=timeout)
        if resp.error is not None:
            raise resp.error
        return resp.result

    # --- the receive path ------------------------------------------------------------------------------

    def _on_message(self, payload: memoryview, ts_us: int) -> None:
        if (self.on_event_frame is not None and payload[:17] == b'{"subscriptionId"'
                and b"serverShutdown" not in payload and b"eventStreamTerminated" not in payload):
            # User data for a compiled decoder: the frame as received, no json round trip. The events
            # this client acts on itself still take the parsed path below.
            self.counters["events"] += 1
            try:
                self.on_event_frame(payload, ts_us)
            except Exception:
                log.exception("%s: on_event_frame failed", self.session.name)
            return
        try:
            msg = json.loads(bytes(payload))
        except (ValueError, UnicodeDecodeError):
            self.counters["malformed"] += 1
            log.warning("%s: dropped a frame that is not JSON: %r", self.session.name, bytes(payload[:120]))
            return
        if not isinstance(msg, dict):
            self.counters["malformed"] += 1
            log.warning("%s: dropped a frame that is not a JSON object: %.120r", self.session.name, msg)
            return
        if "event" in msg:
            self._on_user_event(msg, ts_us)
        elif "id" in msg:
            self._on_answer(msg, ts_us)
        else:
            self.counters["malformed"] += 1
            log.warning("%s: dropped a frame with neither id nor event: %.120r", self.session.name, msg)

    def _on_answer(self, msg: dict, ts_us: int) -> None:
        rid = msg.get("id")
        status = msg.get("status")
        rate_limits = msg.get("rateLimits")
        headers = self.rate_limiter.observe_rate_limits(rate_limits) if rate_limits else None
        pend = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if pend.__class__ is tuple:
            pend = _pending_entry(pend)
        if pend is None:
            if headers:
                self.rate_limiter.observe_headers(headers)
            if isinstance(rid, int) and rid in self._expired:
                # Settled as unknown when it timed out; whoever sent it has asked the venue since.
                self.counters["late"] += 1
                log.info("%s: answer to %s request %s came after its timeout (status %s); dropped",
                         self.session.name, self._expired.pop(rid), rid, status)
                return
            self._unsolicited(msg, status)
            return
        self.rate_limiter.settle(pend.reservation, headers, reached_server=True)
        if pend.client_order_id.__class__ is int:      # place_order_raw keeps the int id: its text now
            pend.client_order_id = self._client_id_text(pend.client_order_id)
        self.counters["answers"] += 1
        if status == 200:
            result = msg["result"] if "result" in msg else msg.get("response")
            error = None
        else:
            result = None
            error = self._error(pend, status, msg.get("error"))
            self.counters["errors"] += 1
        if pend.method == "userDataStream.subscribe.signature" and error is None and isinstance(result, dict):
            self.subscription_id = result.get("subscriptionId")
        self._deliver(pend, WsApiResponse(rid, pend.method, status, result, error, rate_limits,
                                          pend.client_order_id, pend.sent_ns, ts_us))

    def _deliver(self, pend: _Pending, resp: WsApiResponse) -> None:
        recent = self._recent
        recent[resp.request_id] = resp
        if len(recent) > RECENT_ANSWERS:
            recent.popitem(last=False)
        fut = pend.future
        if fut is not None and not fut.done():
            fut.set_result(resp)
        if self.on_response is not None:
            try:
                self.on_response(resp)
            except Exception:       # a bad handler must not lose the other answers
                log.exception("%s: on_response failed for request %s", self.session.name, resp.request_id)

    def _error(self, pend: _Pending, status, error) -> BinanceError:
        endpoint = f"WS-API {pend.method}"
        if not isinstance(status, int) or not isinstance(error, dict):
            err = InvalidResponseError(f"{endpoint}: answer without the documented status / error: "
                                       f"status={status!r} error={error!r:.200}", endpoint=endpoint)
            return self._unknown_for_order(pend, err) if pend.operation else err
        code = error.get("code") if isinstance(error.get("code"), int) else None
        msg = str(error.get("msg", "")) if error.get("msg") is not None else None
        data = error.get("data")
        retry_after = None
        if isinstance(data, dict) and isinstance(data.get("retryAfter"), int):
            # retryAfter is the epoch ms when the block ends; serverTime the server's clock at the answer.
            ref = data.get("serverTime") if isinstance(data.get("serverTime"), int) else self._now_ms()
            retry_after = max(0.0, (data["retryAfter"] - ref) / 1000.0)
        err = error_from_response(self._api, status, code, msg, endpoint, retry_after=retry_after, data=data)
        if isinstance(err, RateLimitError):
            if isinstance(err, IPBannedError) or status == 418:
                self.rate_limiter.on_418(retry_after)
            elif status == 429 or code in (-1003, -1015):
                self.rate_limiter.on_429(retry_after, order_request=pend.reservation.orders > 0)
        if isinstance(err, ExecutionStatusUnknown) and pend.operation is not None:
            return self._unknown_for_order(pend, err)
        return err

    @staticmethod
    def _unknown_for_order(pend: _Pending, err: BinanceError) -> OrderStatusUnknown:
        return OrderStatusUnknown(
            f"{err} - the {pend.operation} request for client order id {pend.client_order_id!r} may have "
            f"executed; query it, do not resend", client_order_id=pend.client_order_id,
            operation=pend.operation, symbol=pend.symbol, code=err.code, msg=err.msg, endpoint=err.endpoint,
            status=err.status)

    def _unsolicited(self, msg: dict, status) -> None:
        """An answer with id null (or an id we do not know): Binance sends `"id": null` when it revokes a
        logged-on session (-2015) or cannot read the request at all."""
        error = msg.get("error") if isinstance(msg.get("error"), dict) else {}
        code = error.get("code")
        if msg.get("id") is None and code in (-2015, -1002, -2014) and self._authenticated:
            self._authenticated = False
            self.counters["session_revoked"] += 1
            log.warning("%s: Binance revoked the logged-on session (%s %s); signing every request from now on",
                        self.session.name, code, error.get("msg"))
            return
        self.counters["unmatched"] += 1
        log.warning("%s: answer that matches no pending request (status %s): %.200r", self.session.name, status, msg)

    def _on_user_event(self, msg: dict, ts_us: int) -> None:
        event = msg.get("event")
        if not isinstance(event, dict):
            self.counters["malformed"] += 1
            log.warning("%s: dropped an event frame without an event object: %.120r", self.session.name, msg)
            return
        kind = event.get("e")
        if kind == "serverShutdown":
            # "A serverShutdown event will be sent when the server is about to shutdown ... establish a new
            # connection as soon as possible": stop taking requests, let the answers in flight arrive.
            log.warning("%s: server announced shutdown; reconnecting", self.session.name)
            self._set_ready(False)
            self._draining = True
            asyncio.get_running_loop().create_task(self._reconnect_when_drained())
        elif kind == "eventStreamTerminated":
            self.subscription_id = None
        self.counters["events"] += 1
        if self.on_event is not None:
            try:
                self.on_event(event, ts_us)
            except Exception:
                log.exception("%s: on_event failed", self.session.name)

    async def _reconnect_when_drained(self, limit_s: float = 2.0) -> None:
        deadline = asyncio.get_running_loop().time() + limit_s
        while self._pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if self._draining:
            self.session.reconnect("server announced shutdown")


_SIDES = {"BUY": "BUY", "SELL": "SELL"}
_TIFS = ("GTC", "IOC", "FOK", "GTX", "GTD")
_SPOT_RESP = ("ACK", "RESULT", "FULL")
_USDM_RESP = ("ACK", "RESULT")
_CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}\Z")
_TYPE_TEXT = re.compile(r"[A-Z_]{1,40}\Z")


def _bad_side(side):
    raise ValueError(f"side must be BUY or SELL, got {side!r}")


def _symbol_ok(symbol) -> None:
    if symbol.__class__ is not str or not _SYMBOL.match(symbol):
        raise ValueError(f"symbol must be a venue symbol like 'BTCUSDT' (no quotes, backslashes or control "
                         f"characters), got {symbol!r}")


def _dec(value, what: str) -> str:
    """A price / size as the decimal text sent and signed: str digits[.digits] as given, Decimal in plain
    notation. Floats are refused (not exact)."""
    if value.__class__ is str:
        if _DECIMAL_TEXT.match(value):
            return value
        raise ValueError(f"{what}={value!r} is not a plain decimal number (digits with an optional fraction)")
    if isinstance(value, Decimal):
        if not value.is_finite() or value <= 0:
            raise ValueError(f"{what} must be a positive decimal, got {value!r}")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError(f"{what}={value!r}: pass prices and sizes as str or Decimal (exact decimals), not float")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    raise ValueError(f"{what} must be a positive decimal as str or Decimal, got {value!r}")


def _order_id(order_id) -> str:
    if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id < 0:
        raise ValueError(f"order_id must be a non-negative int, got {order_id!r}")
    return str(order_id)


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value or not _SAFE_TEXT.match(value):
        raise ValueError(f"{what} must be a non-empty string without quotes or control characters, got {value!r}")
    return value


def _items(params: Mapping[str, Any]) -> List[Tuple[str, str, str]]:
    """Parameters as sorted (name, signed text, JSON text) items; None values left out."""
    items = []
    for k, v in params.items():
        if v is None:
            continue
        if k in ("signature", "timestamp", "recvWindow", "apiKey"):
            raise ValueError(f"{k} is set by the client")
        text = format_param(v)
        items.append((k, text, text if isinstance(v, int) and not isinstance(v, bool) else json.dumps(text)))
    items.sort()
    return items


def _merge_extra(items: List[Tuple[str, str, str]], extra: Mapping[str, Any]) -> None:
    """Venue parameters passed verbatim (e.g. selfTradePreventionMode), added in name order."""
    names = {k for k, _, _ in items}
    for k, v in extra.items():
        if v is None:
            continue
        if k in ("signature", "timestamp", "recvWindow", "apiKey"):
            raise ValueError(f"{k} is set by the client, not through extra")
        if k in names:
            raise ValueError(f"{k} is already set by a named argument")
        text = format_param(v)
        items.append((k, text, text if isinstance(v, int) and not isinstance(v, bool) else json.dumps(text)))
    items.sort()
