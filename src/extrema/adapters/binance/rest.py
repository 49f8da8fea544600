"""Binance REST client (spot `/api/v3`, USD-M futures `/fapi`) on aiohttp.

One ClientSession with keep-alive per client. Every call has a deadline (`timeout`, default
`request_timeout`) covering rate-limit waits, the HTTP exchange and retries.

* Signing: see signing.py. SIGNED requests carry `timestamp` = local clock + the offset measured by
  `server_time()` / `sync_clock()` (half the round trip taken off), and `recvWindow`. A -1021 answer
  (timestamp outside the window) re-syncs the clock and resends once: the venue did not execute it.
* Rate limits: see ratelimit.py. Each endpoint's documented weight is reserved before sending, the
  X-MBX-USED-WEIGHT-* / X-MBX-ORDER-COUNT-* headers of every answer correct the counts, 429 / 418 block
  all requests for Retry-After seconds.
* What is retried (the RetryPolicy of retry.py - exponential backoff with jitter - within the deadline):
  anything that certainly did not execute (connection never made, 429 / 418, -1003 / -1008 / -1015, USD-M
  503 "Service Unavailable.") and, for idempotent reads, also timeouts and 5xx. An order request whose outcome is unknown (timeout after
  sending, 5xx, -1006 / -1007) is never resent: it raises OrderStatusUnknown with the client order id, and
  the caller reconciles with `query_order(symbol, client_order_id=...)` or the user-data stream.

The client takes venue symbols ('BTCUSDT', 'BTCUSDT_231229'); map normalised names with symbols.py or the
instrument registry (`instrument.venue_symbol`).

User data: USD-M uses a listenKey (`create_listen_key` / `keepalive_listen_key` every < 60 min /
`close_listen_key`) for wss://fstream.binance.com. Binance spot retired its REST listenKey endpoints on
2026-02-20 (CHANGELOG 2026-01-21); spot user data is subscribed on the WebSocket API connection with
`userDataStream.subscribe.signature`, whose signed request `user_data_subscribe_request()` builds. The spot
listenKey methods still speak the old endpoints for servers that keep them (the simulator, older
deployments); against live Binance spot they fail with the venue's error.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import aiohttp
from yarl import URL

from extrema._core.clock import ServerClock
from extrema._core.instruments import Market

from . import endpoints as _ep
from .endpoints import Endpoint
from .errors import (
    USDM, SPOT, BinanceAPIError, BinanceConnectionError, BinanceError, DeadlineExceeded, ExecutionStatusUnknown,
    InvalidClientOrderId, InvalidResponseError, OrderStatusUnknown, RateLimitError, ServerBusyError,
    TimestampError, error_from_response)
from .retry import RetryPolicy
from .ratelimit import SPOT_DEFAULT_LIMITS, USDM_DEFAULT_LIMITS, RateLimit, RateLimiter, parse_retry_after
from .signing import BinanceCredentials, encode_params, sign_query, sign_ws_api_params

__all__ = ["BinanceRest", "ALGO_ORDER_TYPES", "algo_order_params", "Balance", "ReplaceResult", "ClockSample", "validate_client_order_id",
           "SPOT_BASE_URL", "USDM_BASE_URL"]

log = logging.getLogger("extrema.adapters.binance.rest")

# USD-M order types that only the algo-order API takes (New Algo Order, "type").
ALGO_ORDER_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET")

SPOT_BASE_URL = "https://api.binance.com"
USDM_BASE_URL = "https://fapi.binance.com"

# newClientOrderId: "Can only be string following the rule: ^[\.A-Z\:/a-z0-9_-]{1,36}$" (spot and USD-M).
_CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}\Z")
_MAX_BODY = 64 * 1024 * 1024


def validate_client_order_id(client_order_id: str) -> str:
    """The id itself when Binance accepts it as newClientOrderId; InvalidClientOrderId otherwise."""
    if not isinstance(client_order_id, str) or not _CLIENT_ORDER_ID.match(client_order_id):
        raise InvalidClientOrderId(
            f"client order id {client_order_id!r} is not valid for Binance: 1-36 characters from "
            f"A-Z a-z 0-9 . : / _ - (^[\\.A-Z\\:/a-z0-9_-]{{1,36}}$)")
    return client_order_id


@dataclasses.dataclass(frozen=True)
class Balance:
    """One asset's balance. Spot: `free` / `locked` as the venue reports them. USD-M: `free` is
    availableBalance and `locked` is marginBalance - availableBalance (margin in use), so `total` is the
    margin balance (wallet balance + unrealised PnL)."""
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclasses.dataclass(frozen=True)
class ReplaceResult:
    """The outcome of cancel_replace. Spot (cancelReplace): the cancel and the new order's responses, the
    new order under `client_order_id`. USD-M (modify order): the same order modified in place, so
    `client_order_id` is the original id and `cancel_response` is None."""
    client_order_id: str
    new_order_response: Optional[dict]
    cancel_response: Optional[dict]
    raw: Any


@dataclasses.dataclass(frozen=True)
class ClockSample:
    """One server-time measurement: offset = serverTime - local midpoint of the round trip (ms)."""
    server_time_ms: int
    offset_ms: float
    rtt_ms: float


class BinanceRest:
    """REST client for one Binance market (Market.BINANCE_SPOT or Market.BINANCE_USDM).

    `timeout` (per call, default `request_timeout`) is the call's whole budget: rate-limit waits, the
    exchange and retries. Idempotent reads give each attempt at most `attempt_timeout` so a stalled
    attempt leaves time to retry; order requests get the whole budget for their single send.

    Use as `async with BinanceRest(...) as rest:` or call `await rest.close()`, from one event loop (the
    engine's). A `session` passed in is used and left open; otherwise the client makes its own on first use
    (in the running loop)."""

    def __init__(self, market, base_url: str, credentials: Optional[BinanceCredentials] = None, *,
                 session: Optional[aiohttp.ClientSession] = None, recv_window_ms: int = 5000,
                 request_timeout: float = 10.0, attempt_timeout: float = 5.0, connect_timeout: float = 3.0,
                 max_retries: int = 3,
                 backoff_base: float = 0.05, backoff_max: float = 2.0, retry: Optional[RetryPolicy] = None,
                 rate_limits: Optional[Sequence[RateLimit]] = None, rate_limit_margin_ms: int = 100):
        self.market = Market(market)
        if self.market == Market.BINANCE_SPOT:
            self._api = SPOT
        elif self.market == Market.BINANCE_USDM:
            self._api = USDM
        else:
            raise ValueError(f"BinanceRest handles BINANCE_SPOT and BINANCE_USDM, not {self.market.name}")
        if credentials is not None and not isinstance(credentials, BinanceCredentials):
            raise TypeError("credentials must be a BinanceCredentials")
        if not 0 < recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be in (0, 60000] (Binance's maximum), got {recv_window_ms}")
        if request_timeout <= 0 or attempt_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.recv_window_ms = int(recv_window_ms)
        self.request_timeout = float(request_timeout)
        self.attempt_timeout = float(attempt_timeout)
        self.connect_timeout = float(connect_timeout)
        # One retry policy for this client's own resends and for the execution client's order requests
        # (retry.py); max_retries / backoff_base / backoff_max build it when none is given.
        self.retry = retry if retry is not None else RetryPolicy(
            attempts=int(max_retries) + 1, base_delay=float(backoff_base), max_delay=float(backoff_max), jitter=0.5)
        self._endpoints = _ep.endpoint_table(self._api)
        self._session = session
        self._own_session = session is None
        # The server clock estimate (local wall clock + measured offset), shared with the WebSocket API
        # client of the same venue; now_ms() reads it.
        self.clock = ServerClock()
        self.rate_limiter = RateLimiter(
            rate_limits if rate_limits is not None else
            (SPOT_DEFAULT_LIMITS if self._api == SPOT else USDM_DEFAULT_LIMITS), self.now_ms,
            window_margin_ms=rate_limit_margin_ms)
        self.listen_key: Optional[str] = None
        self.requests_sent = 0
        self.retries = 0

    def __repr__(self):
        return (f"<BinanceRest {self.market.name} {self.base_url} credentials={self.credentials!r} "
                f"offset={self.clock_offset_ms:.1f}ms>")

    # --- lifecycle -------------------------------------------------------------------------------------

    async def __aenter__(self):
        self._ensure_session()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self) -> None:
        """Close the client's own session (a session passed in is left to its owner)."""
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None if self._own_session else self._session

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._own_session:
                raise RuntimeError("the aiohttp session given to BinanceRest is closed")
            connector = aiohttp.TCPConnector(limit=32, keepalive_timeout=60.0, ttl_dns_cache=300,
                                             enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                                                  headers={"User-Agent": "extrema"})
            # aiohttp sends a request of an "idempotent" method (DELETE, PUT, GET) once more by itself when a
            # kept-alive connection drops before the answer (aiohttp/client.py, _retry_connection; no
            # public switch). DELETE /order is a cancel that may have executed: whether to send it again
            # is the retry policy's call, after asking the venue - never a blind resend.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    # --- clock -----------------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The server clock estimate in ms: local wall clock + measured offset (self.clock)."""
        return self.clock.now_ms()

    @property
    def clock_offset_ms(self) -> float:
        return self.clock.offset_ms

    @property
    def clock_rtt_ms(self) -> Optional[float]:
        return None if self.clock.rtt_ms < 0 else self.clock.rtt_ms

    async def server_time(self, *, timeout: Optional[float] = None) -> int:
        """GET time; measures the clock offset from this sample (serverTime against the midpoint of the
        round trip) and uses it from now on. Returns serverTime (ms)."""
        return (await self._clock_sample(timeout)).server_time_ms

    async def _clock_sample(self, timeout: Optional[float]) -> ClockSample:
        timing: List[int] = []
        data = await self._call("time", {}, timeout=timeout, timing=timing)
        server = data.get("serverTime") if isinstance(data, dict) else None
        if not isinstance(server, int):
            raise InvalidResponseError(f"{self._endpoints['time'].name}: no integer serverTime in {data!r:.200}")
        sent, received = timing
        rtt_ms = (received - sent) / 1e6
        offset = server - (sent + received) / 2e6
        self.clock.offset_ms, self.clock.rtt_ms = offset, rtt_ms
        return ClockSample(server, offset, rtt_ms)

    async def sync_clock(self, samples: int = 3, *, timeout: Optional[float] = None) -> ClockSample:
        """Take `samples` server-time measurements and keep the one with the shortest round trip (its
        offset has the smallest error bound, rtt/2)."""
        if samples < 1:
            raise ValueError("samples must be >= 1")
        best = None
        for _ in range(samples):
            s = await self._clock_sample(timeout)
            if best is None or s.rtt_ms < best.rtt_ms:
                best = s
        self.clock.offset_ms, self.clock.rtt_ms = best.offset_ms, best.rtt_ms
        return best

    # --- public market data ----------------------------------------------------------------------------

    async def ping(self, *, timeout: Optional[float] = None) -> None:
        await self._call("ping", {}, timeout=timeout)

    async def exchange_info(self, symbol: Optional[str] = None, *, timeout: Optional[float] = None) -> dict:
        """GET exchangeInfo (one symbol or all). Its rateLimits replace the client's limits."""
        params = {"symbol": symbol} if symbol else {}
        info = await self._call("exchange_info", params, timeout=timeout)
        if not isinstance(info, dict):
            raise InvalidResponseError(f"exchangeInfo is not a JSON object: {info!r:.200}")
        self.rate_limiter.set_limits_from_exchange_info(info)
        return info

    async def depth(self, symbol: str, limit: Optional[int] = None, *, timeout: Optional[float] = None) -> bytes:
        """GET depth: the raw JSON body (for the compiled snapshot decoder). Spot limit 1-5000 (default
        100); USD-M limit one of 5, 10, 20, 50, 100, 500, 1000 (default 500)."""
        if limit is not None:
            if self._api == SPOT and not (isinstance(limit, int) and 1 <= limit <= _ep.SPOT_DEPTH_LIMITS_MAX):
                raise ValueError(f"spot depth limit must be 1..{_ep.SPOT_DEPTH_LIMITS_MAX}, got {limit!r}")
            if self._api == USDM and limit not in _ep.USDM_DEPTH_LIMITS:
                raise ValueError(f"USD-M depth limit must be one of {_ep.USDM_DEPTH_LIMITS}, got {limit!r}")
        return await self._call("depth", {"symbol": _symbol(symbol), "limit": limit}, timeout=timeout, raw=True)

    async def klines(self, symbol: str, interval: str, *, start_time: Optional[int] = None,
                     end_time: Optional[int] = None, limit: Optional[int] = None,
                     timeout: Optional[float] = None) -> list:
        """GET klines: [[open time, open, high, low, close, volume, close time, quote volume, trades,
        taker base volume, taker quote volume, ignore], ...] with decimals as strings."""
        if interval not in _ep.KLINE_INTERVALS or (interval == "1s" and self._api == USDM):
            raise ValueError(f"kline interval {interval!r} is not one Binance {self._api} offers")
        max_limit = 1000 if self._api == SPOT else 1500
        if limit is not None and not (isinstance(limit, int) and 1 <= limit <= max_limit):
            raise ValueError(f"klines limit must be 1..{max_limit}, got {limit!r}")
        params = {"symbol": _symbol(symbol), "interval": interval, "startTime": start_time,
                  "endTime": end_time, "limit": limit}
        data = await self._call("klines", params, timeout=timeout)
        if not isinstance(data, list):
            raise InvalidResponseError(f"klines is not a JSON array: {data!r:.200}")
        return data

    # --- orders ----------------------------------------------------------------------------------------

    async def new_order(self, symbol: str, side: str, order_type: str, *, client_order_id: str,
                        quantity=None, price=None, time_in_force: Optional[str] = None, post_only: bool = False,
                        reduce_only: Optional[bool] = None, quote_quantity=None, stop_price=None,
                        position_side: Optional[str] = None, response_type: Optional[str] = "RESULT",
                        extra: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> dict:
        """POST order. `side` BUY / SELL, `order_type` LIMIT / MARKET / LIMIT_MAKER / STOP_LOSS_LIMIT /
        ... (any case). Prices and sizes as str or Decimal. `post_only` makes a LIMIT order LIMIT_MAKER on
        spot and timeInForce GTX on USD-M. `response_type` is newOrderRespType (spot ACK / RESULT / FULL,
        USD-M ACK / RESULT). `extra` adds venue parameters verbatim (e.g. selfTradePreventionMode).
        Raises OrderStatusUnknown when the outcome is unknown - query by client_order_id, do not resend."""
        validate_client_order_id(client_order_id)
        side = _upper(side, "side", ("BUY", "SELL"))
        order_type = _upper(order_type, "order_type")
        if time_in_force is not None:
            time_in_force = _upper(time_in_force, "time_in_force", ("GTC", "IOC", "FOK", "GTX", "GTD"))
        if post_only:
            if self._api == SPOT:
                if order_type not in ("LIMIT", "LIMIT_MAKER"):
                    raise ValueError("post_only applies to LIMIT orders")
                if time_in_force not in (None, "GTC"):
                    raise ValueError("a spot post-only order (LIMIT_MAKER) has no timeInForce")
                order_type, time_in_force = "LIMIT_MAKER", None
            else:
                if order_type != "LIMIT":
                    raise ValueError("post_only applies to LIMIT orders")
                if time_in_force not in (None, "GTX"):
                    raise ValueError("a USD-M post-only order is timeInForce GTX")
                time_in_force = "GTX"
        if order_type == "LIMIT" and time_in_force is None:
            time_in_force = "GTC"
        if order_type in ("LIMIT", "LIMIT_MAKER") and price is None:
            raise ValueError(f"a {order_type} order needs a price")
        if quantity is None and quote_quantity is None:
            raise ValueError("give quantity (or quote_quantity for a spot MARKET order)")
        if self._api == SPOT:
            if reduce_only is not None or position_side is not None:
                raise ValueError("reduce_only / position_side are USD-M parameters, not spot ones")
            if response_type is not None:
                _upper(response_type, "response_type", ("ACK", "RESULT", "FULL"))
        else:
            if quote_quantity is not None:
                raise ValueError("quote_quantity (quoteOrderQty) is a spot parameter")
            if response_type is not None:
                _upper(response_type, "response_type", ("ACK", "RESULT"))
        params: Dict[str, Any] = {
            "symbol": _symbol(symbol), "side": side, "type": order_type, "timeInForce": time_in_force,
            "quantity": _decimal(quantity, "quantity"), "quoteOrderQty": _decimal(quote_quantity, "quote_quantity"),
            "price": _decimal(price, "price"), "stopPrice": _decimal(stop_price, "stop_price"),
            "reduceOnly": reduce_only, "positionSide": position_side,
            "newClientOrderId": client_order_id,
            "newOrderRespType": response_type.upper() if response_type else None,
        }
        _merge_extra(params, extra)
        return await self._call("new_order", params, timeout=timeout,
                                order=(client_order_id, "new", params["symbol"]))

    async def cancel_order(self, symbol: str, *, client_order_id: Optional[str] = None,
                           order_id: Optional[int] = None, timeout: Optional[float] = None) -> dict:
        """DELETE order by origClientOrderId (or orderId). -2011 'Unknown order sent.' raises
        UnknownOrderError; an unknown outcome raises OrderStatusUnknown."""
        return await self._by_ref("cancel_order", symbol, "origClientOrderId", client_order_id, "orderId", order_id,
                                  timeout)

    async def cancel_replace(self, symbol: str, *, orig_client_order_id: str, side: str, quantity, price,
                             new_client_order_id: Optional[str] = None, order_type: str = "LIMIT",
                             time_in_force: Optional[str] = "GTC", mode: str = "STOP_ON_FAILURE",
                             extra: Optional[Mapping[str, Any]] = None,
                             timeout: Optional[float] = None) -> ReplaceResult:
        """Replace an open order's price / quantity, with what each market has:
        spot  POST /api/v3/order/cancelReplace: cancels `orig_client_order_id` and places a new order
              `new_client_order_id` (required) - atomic per `mode` (STOP_ON_FAILURE: no new order if
              the cancel fails). Failures raise CancelReplaceError with the per-leg results in `.data`.
        USD-M PUT /fapi/v1/order (modify): the LIMIT order keeps its ids, gets the new price and quantity
              (both required) and loses its queue place; `new_client_order_id` must be None.
        An unknown outcome raises OrderStatusUnknown."""
        validate_client_order_id(orig_client_order_id)
        side = _upper(side, "side", ("BUY", "SELL"))
        if quantity is None or price is None:
            raise ValueError("cancel_replace needs the new quantity and price")
        if self._api == USDM:
            if new_client_order_id is not None and new_client_order_id != orig_client_order_id:
                raise ValueError("USD-M modifies the order in place and keeps its client order id: "
                                 "new_client_order_id must be None")
            if _upper(order_type, "order_type") != "LIMIT":
                raise ValueError("USD-M can modify LIMIT orders only")
            params: Dict[str, Any] = {"symbol": _symbol(symbol), "origClientOrderId": orig_client_order_id,
                                      "side": side, "quantity": _decimal(quantity, "quantity"),
                                      "price": _decimal(price, "price")}
            _merge_extra(params, extra)
            data = await self._call("modify_order", params, timeout=timeout,
                                    order=(orig_client_order_id, "replace", params["symbol"]))
            return ReplaceResult(orig_client_order_id, data, None, data)
        if new_client_order_id is None:
            raise ValueError("spot cancel-replace places a new order: give new_client_order_id")
        validate_client_order_id(new_client_order_id)
        order_type = _upper(order_type, "order_type")
        if order_type == "LIMIT_MAKER":
            time_in_force = None
        params = {"symbol": _symbol(symbol), "side": side, "type": order_type,
                  "cancelReplaceMode": _upper(mode, "mode", ("STOP_ON_FAILURE", "ALLOW_FAILURE")),
                  "timeInForce": time_in_force.upper() if time_in_force else None,
                  "quantity": _decimal(quantity, "quantity"), "price": _decimal(price, "price"),
                  "cancelOrigClientOrderId": orig_client_order_id, "newClientOrderId": new_client_order_id,
                  "newOrderRespType": "RESULT"}
        _merge_extra(params, extra)
        data = await self._call("cancel_replace", params, timeout=timeout,
                                order=(new_client_order_id, "replace", params["symbol"]))
        return ReplaceResult(new_client_order_id, data.get("newOrderResponse"), data.get("cancelResponse"), data)

    async def query_order(self, symbol: str, *, client_order_id: Optional[str] = None,
                          order_id: Optional[int] = None, timeout: Optional[float] = None) -> dict:
        """GET order by origClientOrderId (or orderId); -2013 raises OrderNotFoundError."""
        return await self._by_ref("query_order", symbol, "origClientOrderId", client_order_id, "orderId", order_id,
                                  timeout)

    async def open_orders(self, symbol: Optional[str] = None, *, timeout: Optional[float] = None) -> list:
        """GET openOrders for one symbol, or all (much heavier: spot 80, USD-M 40 weight)."""
        params = {"symbol": _symbol(symbol)} if symbol else {}
        return await self._call("open_orders", params, timeout=timeout)

    async def my_trades(self, symbol: str, *, order_id: Optional[int] = None, from_id: Optional[int] = None,
                        start_time: Optional[int] = None, end_time: Optional[int] = None,
                        limit: Optional[int] = None, timeout: Optional[float] = None) -> list:
        """The account's trades in one symbol, oldest first: spot GET /api/v3/myTrades (weight 20, 5 with
        orderId), USD-M GET /fapi/v1/userTrades (weight 5). `from_id` returns trades with id >= it;
        otherwise `start_time` / `end_time` (ms) bound them (Binance allows at most 24 h between the two,
        USD-M 7 days) or the most recent ones come back. `limit` 1-1000 (default 500).
        https://developers.binance.com/docs/binance-spot-api-docs/rest-api/account-endpoints#account-trade-list-user_data
        https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Account-Trade-List"""
        if limit is not None and not (isinstance(limit, int) and 1 <= limit <= 1000):
            raise ValueError(f"trade list limit must be 1..1000, got {limit!r}")
        if from_id is not None and (start_time is not None or end_time is not None) and self._api == USDM:
            raise ValueError("USD-M userTrades takes fromId or a time range, not both")
        params = {"symbol": _symbol(symbol), "orderId": order_id, "fromId": from_id, "startTime": start_time,
                  "endTime": end_time, "limit": limit}
        data = await self._call("my_trades", params, timeout=timeout)
        if not isinstance(data, list):
            raise InvalidResponseError(f"trade list is not a JSON array: {data!r:.200}")
        return data

    # --- USD-M conditional (algo) orders -----------------------------------------------------------------

    async def new_algo_order(self, symbol: str, side: str, order_type: str, *, client_algo_id: str,
                             quantity=None, price=None, trigger_price=None, time_in_force: Optional[str] = None,
                             reduce_only: Optional[bool] = None, working_type: Optional[str] = None,
                             activate_price=None, callback_rate=None, extra: Optional[Mapping[str, Any]] = None,
                             timeout: Optional[float] = None) -> dict:
        """USD-M POST /fapi/v1/algoOrder (algoType CONDITIONAL): STOP_MARKET / TAKE_PROFIT_MARKET (quantity,
        trigger_price), STOP / TAKE_PROFIT (also price), TRAILING_STOP_MARKET (callback_rate, optional
        activate_price). Since 2025-12 Binance answers -4120 for these types on /fapi/v1/order.
        Raises OrderStatusUnknown when the outcome is unknown - query by client_algo_id, do not resend.
        https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Algo-Order"""
        self._usdm_only("new_algo_order")
        params = algo_order_params(symbol, side, order_type, client_algo_id=client_algo_id, quantity=quantity,
                                   price=price, trigger_price=trigger_price, time_in_force=time_in_force,
                                   reduce_only=reduce_only, working_type=working_type,
                                   activate_price=activate_price, callback_rate=callback_rate, extra=extra)
        return await self._call("new_algo_order", params, timeout=timeout,
                                order=(client_algo_id, "new", params["symbol"]))

    async def cancel_algo_order(self, *, client_algo_id: Optional[str] = None, algo_id: Optional[int] = None,
                                timeout: Optional[float] = None) -> dict:
        """USD-M DELETE /fapi/v1/algoOrder by clientAlgoId (or algoId). An unknown / finished algo order
        raises the venue's error (UnknownOrderError for -2011)."""
        self._usdm_only("cancel_algo_order")
        return await self._by_ref("cancel_algo_order", None, "clientAlgoId", client_algo_id, "algoId", algo_id, timeout)

    async def query_algo_order(self, *, client_algo_id: Optional[str] = None, algo_id: Optional[int] = None,
                               timeout: Optional[float] = None) -> dict:
        """USD-M GET /fapi/v1/algoOrder by clientAlgoId (or algoId); an unknown one raises the venue's error
        (OrderNotFoundError)."""
        self._usdm_only("query_algo_order")
        return await self._by_ref("query_algo_order", None, "clientAlgoId", client_algo_id, "algoId", algo_id, timeout)

    async def _by_ref(self, name: str, symbol: Optional[str], client_key: str, client_id: Optional[str],
                      id_key: str, venue_id: Optional[int], timeout: Optional[float]):
        """Cancel or look up one order (or algo order: no symbol, its own ids) by client id or venue id. A
        cancel whose outcome is unknown raises OrderStatusUnknown under the id it was sent with."""
        if client_id is None and venue_id is None:
            raise ValueError(f"give {'client_algo_id or algo_id' if symbol is None else 'client_order_id or order_id'}")
        if client_id is not None:
            validate_client_order_id(client_id)
        params = {"symbol": _symbol(symbol), id_key: venue_id, client_key: client_id}
        ref = client_id if client_id is not None else str(venue_id)
        cancel = name.startswith("cancel")
        return await self._call(name, params, timeout=timeout,
                                order=(ref, "cancel", symbol or "") if cancel else None)

    async def open_algo_orders(self, symbol: Optional[str] = None, *, timeout: Optional[float] = None) -> list:
        """USD-M GET /fapi/v1/openAlgoOrders: the algo orders not yet finished (one symbol, or all)."""
        self._usdm_only("open_algo_orders")
        params = {"symbol": _symbol(symbol)} if symbol else {}
        data = await self._call("open_algo_orders", params, timeout=timeout)
        if isinstance(data, dict) and isinstance(data.get("orders"), list):
            data = data["orders"]
        if not isinstance(data, list):
            raise InvalidResponseError(f"open algo orders is not a JSON array: {data!r:.200}")
        return data

    # --- account ---------------------------------------------------------------------------------------

    async def account(self, *, timeout: Optional[float] = None) -> dict:
        """GET account (spot /api/v3/account, USD-M /fapi/v2/account) as Binance returns it."""
        return await self._call("account", {}, timeout=timeout)

    async def balances(self, *, timeout: Optional[float] = None) -> Dict[str, Balance]:
        """{asset: Balance} from account(); assets with nothing in them are left out."""
        acct = await self.account(timeout=timeout)
        out = {}
        try:
            if self._api == SPOT:
                for b in acct["balances"]:
                    bal = Balance(b["asset"], Decimal(b["free"]), Decimal(b["locked"]))
                    if bal.total:
                        out[bal.asset] = bal
            else:
                for a in acct["assets"]:
                    free, margin = Decimal(a["availableBalance"]), Decimal(a["marginBalance"])
                    bal = Balance(a["asset"], free, margin - free)
                    if bal.total or free:
                        out[bal.asset] = bal
        except (KeyError, TypeError, ArithmeticError) as e:
            raise InvalidResponseError(f"account response without the documented balance fields: {e!r}") from None
        return out

    async def positions(self, symbol: Optional[str] = None, *, timeout: Optional[float] = None) -> list:
        """USD-M GET /fapi/v2/positionRisk: one entry per symbol and position side."""
        self._usdm_only("positions")
        params = {"symbol": _symbol(symbol)} if symbol else {}
        return await self._call("position_risk", params, timeout=timeout)

    async def set_leverage(self, symbol: str, leverage: int, *, timeout: Optional[float] = None) -> dict:
        """USD-M POST /fapi/v1/leverage: initial leverage 1-125 for a symbol."""
        self._usdm_only("set_leverage")
        if isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= 125:
            raise ValueError(f"leverage must be an int in 1..125, got {leverage!r}")
        return await self._call("set_leverage", {"symbol": _symbol(symbol), "leverage": leverage}, timeout=timeout)

    def _usdm_only(self, what: str) -> None:
        if self._api != USDM:
            raise ValueError(f"{what}() is a USD-M futures endpoint; this client is for {self.market.name}")

    # --- user data -------------------------------------------------------------------------------------

    async def create_listen_key(self, *, timeout: Optional[float] = None) -> str:
        """POST listenKey (USD-M /fapi/v1/listenKey; spot legacy /api/v3/userDataStream, see the module
        docstring). Valid 60 minutes; an existing key is returned and extended."""
        data = await self._call("create_listen_key", {}, timeout=timeout)
        key = data.get("listenKey") if isinstance(data, dict) else None
        if not isinstance(key, str) or not key:
            raise InvalidResponseError(f"no listenKey in {data!r:.200}")
        self.listen_key = key
        return key

    async def keepalive_listen_key(self, listen_key: Optional[str] = None, *,
                                   timeout: Optional[float] = None) -> None:
        """PUT listenKey: extend its validity by 60 minutes (send every ~30 minutes)."""
        await self._call("keepalive_listen_key", self._listen_key_params(listen_key), timeout=timeout)

    async def close_listen_key(self, listen_key: Optional[str] = None, *, timeout: Optional[float] = None) -> None:
        """DELETE listenKey: close the user data stream."""
        await self._call("close_listen_key", self._listen_key_params(listen_key), timeout=timeout)
        if listen_key is None or listen_key == self.listen_key:
            self.listen_key = None

    def _listen_key_params(self, listen_key: Optional[str]) -> dict:
        if self._api == USDM:
            return {}                            # USD-M identifies the stream by the API key
        key = listen_key or self.listen_key
        if not key:
            raise ValueError("no listen key: call create_listen_key() first or pass one")
        return {"listenKey": key}

    def ws_api_request(self, method: str, params: Optional[Mapping[str, Any]] = None, *,
                       request_id: str) -> dict:
        """A signed WebSocket API request `{"id", "method", "params"}`: params + apiKey + timestamp (server
        clock estimate) + recvWindow, signed over the sorted parameters."""
        creds = self._require_credentials()
        full = dict(params or {})
        full.setdefault("timestamp", self.now_ms())
        full.setdefault("recvWindow", self.recv_window_ms)
        return {"id": request_id, "method": method, "params": sign_ws_api_params(creds, full)}

    def user_data_subscribe_request(self, request_id: str) -> dict:
        """Spot: the WebSocket API request that subscribes this key's user data stream on a WS-API
        connection (`userDataStream.subscribe.signature`), replacing the retired REST listenKey."""
        if self._api != SPOT:
            raise ValueError("userDataStream.subscribe.signature is a spot WebSocket API method; "
                             "USD-M user data uses create_listen_key()")
        return self.ws_api_request("userDataStream.subscribe.signature", request_id=request_id)

    def _require_credentials(self) -> BinanceCredentials:
        if self.credentials is None:
            raise ValueError("this endpoint needs an API key: construct BinanceRest with credentials")
        return self.credentials

    # --- the request engine ----------------------------------------------------------------------------

    async def _call(self, name: str, params: Mapping[str, Any], *, timeout: Optional[float],
                    raw: bool = False, order: Optional[Tuple[str, str, str]] = None,
                    timing: Optional[List[int]] = None):
        ep = self._endpoints[name]
        try:
            return await self._request(ep, params, timeout=timeout, raw=raw, timing=timing)
        except ExecutionStatusUnknown as e:
            if order is None or isinstance(e, OrderStatusUnknown):
                raise
            client_order_id, operation, symbol = order
            raise OrderStatusUnknown(
                f"{e} - the {operation} request for client order id {client_order_id!r} may have executed; "
                f"query it, do not resend", client_order_id=client_order_id, operation=operation, symbol=symbol,
                code=e.code, msg=e.msg, endpoint=e.endpoint, status=e.status) from e

    async def _request(self, ep: Endpoint, params: Mapping[str, Any], *, timeout: Optional[float],
                       raw: bool, timing: Optional[List[int]]):
        loop = asyncio.get_running_loop()
        budget = self.request_timeout if timeout is None else float(timeout)
        if budget <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        deadline = loop.time() + budget
        items = [(k, v) for k, v in params.items() if v is not None]
        encode_params(items)                    # a bad parameter value fails here, before any budget is taken
        weight = ep.weight_for(dict(items))
        headers = {}
        if ep.security != _ep.NONE:
            headers["X-MBX-APIKEY"] = self._require_credentials().api_key
        session = self._ensure_session()
        attempt = 0
        resynced = False
        last_error: Optional[BaseException] = None
        while True:
            attempt += 1
            res = await self.rate_limiter.acquire(weight, ep.orders, deadline=deadline, endpoint=ep.name)
            remaining = deadline - loop.time()
            if ep.idempotent:
                # Reads get several attempts inside the deadline; an order gets the whole deadline once.
                remaining = min(remaining, self.attempt_timeout)
            if remaining <= 0:
                self.rate_limiter.settle(res, None, reached_server=False)
                raise DeadlineExceeded(f"{ep.name}: deadline passed before sending", endpoint=ep.name) \
                    from last_error
            sent_ns = time.time_ns()
            try:
                status, resp_headers, body = await self._exchange(session, ep, items, headers, remaining)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
                # The TCP / TLS connection was never made: nothing reached Binance.
                self.rate_limiter.settle(res, None, reached_server=False)
                last_error = BinanceConnectionError(f"{ep.name}: cannot connect to {self.base_url}: {e}",
                                                    endpoint=ep.name)
                if await self._backoff(attempt, deadline, ep, last_error):
                    continue
                raise last_error from e
            except (asyncio.TimeoutError, aiohttp.ClientError) as e:
                # Sent (at least partly) and no complete answer: the venue may have executed it.
                self.rate_limiter.settle(res, None, reached_server=True)
                kind = "timed out" if isinstance(e, asyncio.TimeoutError) else f"failed ({type(e).__name__}: {e})"
                last_error = ExecutionStatusUnknown(f"{ep.name}: {kind} after sending; execution status unknown",
                                                    endpoint=ep.name)
                if ep.idempotent and await self._backoff(attempt, deadline, ep, last_error):
                    continue
                raise last_error from e
            except _OversizedBody as e:
                self.rate_limiter.settle(res, None, reached_server=True)
                cls = InvalidResponseError if ep.idempotent else ExecutionStatusUnknown
                raise cls(f"{ep.name}: {e}", endpoint=ep.name) from None
            except BaseException:
                # Cancelled by the caller (or a bug): release the budget; the request may have gone out.
                self.rate_limiter.settle(res, None, reached_server=True)
                raise
            received_ns = time.time_ns()
            self.rate_limiter.settle(res, resp_headers, reached_server=True)
            if 200 <= status < 300:
                if timing is not None:
                    timing[:] = [sent_ns, received_ns]
                if raw:
                    return body
                try:
                    return json.loads(body, parse_float=Decimal) if body else None
                except (ValueError, UnicodeDecodeError):
                    raise _unreadable(ep, status, body) from None
            error = self._error(ep, status, body, resp_headers)
            last_error = error
            log.debug("%s -> HTTP %s code %s", ep.name, status, error.code)
            if isinstance(error, RateLimitError):
                # Not executed. The limiter now holds every request for Retry-After; acquire() waits or,
                # when that passes the deadline, raises at once.
                if status == 418:
                    self.rate_limiter.on_418(error.retry_after)
                elif status == 429 or error.code in (-1003, -1015):
                    self.rate_limiter.on_429(error.retry_after, order_request=ep.orders > 0)
                if attempt < self.retry.attempts:
                    self.retries += 1
                    continue
                raise error
            if isinstance(error, TimestampError) and not resynced:
                # -1021: our timestamp was outside recvWindow of the server clock; not executed.
                resynced = True
                await self.sync_clock(1, timeout=max(0.001, deadline - loop.time()))
                self.retries += 1
                continue
            if isinstance(error, ServerBusyError):
                if await self._backoff(attempt, deadline, ep, error):
                    continue
                raise error
            if isinstance(error, ExecutionStatusUnknown):
                if ep.idempotent and await self._backoff(attempt, deadline, ep, error):
                    continue
                raise error
            raise error

    async def _exchange(self, session: aiohttp.ClientSession, ep: Endpoint, items, headers, remaining: float):
        """One HTTP exchange: sign (fresh timestamp), send, read the whole body within `remaining` s."""
        if ep.security == _ep.SIGNED:
            query = sign_query(self.credentials, items, timestamp_ms=self.now_ms(), recv_window_ms=self.recv_window_ms)
        else:
            query = encode_params(items)
        # encoded=True: the URL goes out byte for byte as signed (no re-quoting by yarl).
        url = URL(f"{self.base_url}{ep.path}?{query}" if query else f"{self.base_url}{ep.path}", encoded=True)
        client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(self.connect_timeout, remaining),
                                               sock_read=remaining)
        self.requests_sent += 1
        async with asyncio.timeout(remaining):
            async with session.request(ep.method, url, headers=headers, timeout=client_timeout,
                                       allow_redirects=False) as resp:
                return resp.status, resp.headers, await _read_body(resp)

    async def _backoff(self, attempt: int, deadline: float, ep: Endpoint, error: BaseException) -> bool:
        """Sleep before send `attempt`+1 if the retry policy and the deadline allow."""
        delay = self.retry.allows(attempt, error)
        if delay is None:
            return False
        loop = asyncio.get_running_loop()
        if loop.time() + delay >= deadline:
            return False
        log.info("%s: retry %d in %.3f s after %s", ep.name, attempt, delay, error)
        self.retries += 1
        await asyncio.sleep(delay)
        return True

    def _error(self, ep: Endpoint, status: int, body: bytes, headers) -> BinanceAPIError:
        code, msg, data = None, None, None
        try:
            payload = json.loads(body, parse_float=Decimal) if body else None
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("code"), int):
            code, msg, data = payload["code"], str(payload.get("msg", "")), payload.get("data")
        else:
            text = body[:200].decode("utf-8", "replace").strip()
            msg = text or None
        return error_from_response(self._api, status, code, msg, ep.name,
                                   retry_after=parse_retry_after(headers.get("Retry-After")), data=data)


class _OversizedBody(Exception):
    pass


async def _read_body(resp: aiohttp.ClientResponse) -> bytes:
    length = resp.content_length
    if length is not None and length > _MAX_BODY:
        raise _OversizedBody(f"response of {length} bytes is over the {_MAX_BODY} byte limit")
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > _MAX_BODY:
            raise _OversizedBody(f"response over the {_MAX_BODY} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _unreadable(ep: Endpoint, status: int, body: bytes) -> BinanceError:
    preview = body[:120].decode("utf-8", "replace")
    return ExecutionStatusUnknown(f"{ep.name}: HTTP {status} with a body that is not JSON: {preview!r}",
                                  endpoint=ep.name, status=status) if not ep.idempotent else \
        InvalidResponseError(f"{ep.name}: HTTP {status} with a body that is not JSON: {preview!r}",
                             endpoint=ep.name, status=status)


def algo_order_params(symbol: str, side: str, order_type: str, *, client_algo_id: str, quantity=None, price=None,
                      trigger_price=None, time_in_force: Optional[str] = None, reduce_only: Optional[bool] = None,
                      working_type: Optional[str] = None, activate_price=None, callback_rate=None,
                      extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The checked parameters of a USD-M New Algo Order (algoType CONDITIONAL), the same for REST
    (POST /fapi/v1/algoOrder) and the WebSocket API (algoOrder.place); ValueError / TypeError before
    anything is sent."""
    validate_client_order_id(client_algo_id)
    side = _upper(side, "side", ("BUY", "SELL"))
    order_type = _upper(order_type, "order_type", ALGO_ORDER_TYPES)
    if order_type == "TRAILING_STOP_MARKET":
        if callback_rate is None:
            raise ValueError("a TRAILING_STOP_MARKET order needs callback_rate")
    elif trigger_price is None:
        raise ValueError(f"a {order_type} order needs trigger_price")
    if order_type in ("STOP", "TAKE_PROFIT"):
        if price is None:
            raise ValueError(f"a {order_type} order needs a price")
        time_in_force = _upper(time_in_force or "GTC", "time_in_force", ("GTC", "IOC", "FOK", "GTX", "GTD"))
    elif price is not None:
        raise ValueError(f"a {order_type} order has no price")
    if quantity is None:
        raise ValueError("give quantity")
    if working_type is not None:
        working_type = _upper(working_type, "working_type", ("MARK_PRICE", "CONTRACT_PRICE"))
    params: Dict[str, Any] = {
        "algoType": "CONDITIONAL", "symbol": _symbol(symbol), "side": side, "type": order_type,
        "timeInForce": time_in_force, "quantity": _decimal(quantity, "quantity"),
        "price": _decimal(price, "price"), "triggerPrice": _decimal(trigger_price, "trigger_price"),
        "workingType": working_type, "reduceOnly": reduce_only,
        "activatePrice": _decimal(activate_price, "activate_price"),
        "callbackRate": _decimal(callback_rate, "callback_rate"), "clientAlgoId": client_algo_id}
    _merge_extra(params, extra)
    return params


def _symbol(symbol: Optional[str]) -> Optional[str]:
    if symbol is None:
        return None
    if not isinstance(symbol, str) or not symbol or symbol != symbol.strip():
        raise ValueError(f"symbol must be a venue symbol like 'BTCUSDT', got {symbol!r}")
    return symbol


def _upper(value: str, what: str, allowed: Optional[Sequence[str]] = None) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    up = value.upper()
    if allowed is not None and up not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return up


def _decimal(value, what: str) -> Optional[Decimal]:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError(f"{what}={value!r}: pass prices and sizes as str or Decimal (exact decimals), not float")
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a decimal, got {value!r}")
    try:
        d = Decimal(value) if not isinstance(value, Decimal) else value
    except Exception:
        raise ValueError(f"{what}={value!r} is not a decimal number") from None
    if not d.is_finite() or d <= 0:
        raise ValueError(f"{what} must be a positive decimal, got {value!r}")
    return d


def _merge_extra(params: Dict[str, Any], extra: Optional[Mapping[str, Any]]) -> None:
    if not extra:
        return
    for k, v in extra.items():
        if k in ("signature", "timestamp", "recvWindow"):
            raise ValueError(f"{k} is set by the client, not through extra")
        if params.get(k) is not None:
            raise ValueError(f"{k} is already set by a named argument")
        params[k] = v
