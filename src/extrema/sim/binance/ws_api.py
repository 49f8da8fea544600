"""The WebSocket API of the simulated markets: spot `/ws-api/v3`, USD-M `/ws-fapi/v1` on `ws_url`.

spot   https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/general-api-information
USD-M  https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-api-general-info

One implementation of order handling, two transports: every trading / query method is routed into the
REST route (rest.ROUTES) that serves the same endpoint - same parameter checks, same matching engine, same
weights and rejection codes - and only the envelope differs:

    request   {"id", "method", "params": {...}}                         one per text frame
    answer    {"id", "status", "result" | "error": {"code", "msg"[, "data"]}, "rateLimits": [...]}
    event     {"subscriptionId", "event": {...}}                        spot user data on the same connection

* Authentication: SIGNED methods carry apiKey + timestamp (+ recvWindow) + signature over all other params
  sorted by name (auth.check_ws_api), or - after `session.logon` with an Ed25519 key - only timestamp.
  session.logon with an HMAC key is refused with -1022 as Binance does (Ed25519 only).
* Rate limits: the request's weight (and order count) is charged to the same per-IP / per-account
  counters as REST; every answer carries `rateLimits` (REQUEST_WEIGHT 1 MINUTE, and for order methods
  ORDERS 10 SECOND and 1 DAY on spot / 1 MINUTE on USD-M) unless `returnRateLimits` is false (request
  param or connection URL). Over a limit: status 429 (418 when banned) with error.data {serverTime,
  retryAfter}. Opening a connection costs 2 weight (spot docs, "IP limits").
* User data (spot): `userDataStream.subscribe.signature` (any key, signed) or `userDataStream.subscribe`
  (logged-on session) start a subscription; the account's executionReport / outboundAccountPosition
  events then arrive on the connection as `{"subscriptionId": n, "event": {...}}`;
  `userDataStream.unsubscribe` ends one or all (an `eventStreamTerminated` event is sent).
* The request faults (faults.py: http_429, http_418, http_5xx, drop_reply, slow_reply) apply to WebSocket
  API requests as they do to REST; a method is named by the REST endpoint it mirrors.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from ..matching import SPOT, USDM, Reject
from .auth import Limited, check_ws_api
from .formats import dumps
from .rest import NONE, ROUTES, SIGNED, UNKNOWN_5XX, RawBody

if TYPE_CHECKING:  # pragma: no cover
    from .server import BinanceSimulator, _Conn

PATHS = {SPOT: "/ws-api/v3", USDM: "/ws-fapi/v1"}

# method -> the REST route doing the work (the same handler serves both transports)
METHODS = {
    SPOT: {
        "ping": ("GET", "/api/v3/ping"), "time": ("GET", "/api/v3/time"),
        "exchangeInfo": ("GET", "/api/v3/exchangeInfo"), "depth": ("GET", "/api/v3/depth"),
        "klines": ("GET", "/api/v3/klines"),
        "order.place": ("POST", "/api/v3/order"), "order.cancel": ("DELETE", "/api/v3/order"),
        "order.status": ("GET", "/api/v3/order"), "order.cancelReplace": ("POST", "/api/v3/order/cancelReplace"),
        "openOrders.status": ("GET", "/api/v3/openOrders"), "openOrders.cancelAll": ("DELETE", "/api/v3/openOrders"),
        "account.status": ("GET", "/api/v3/account"),
    },
    USDM: {
        "ping": ("GET", "/fapi/v1/ping"), "time": ("GET", "/fapi/v1/time"), "depth": ("GET", "/fapi/v1/depth"),
        "order.place": ("POST", "/fapi/v1/order"), "order.modify": ("PUT", "/fapi/v1/order"),
        "order.cancel": ("DELETE", "/fapi/v1/order"), "order.status": ("GET", "/fapi/v1/order"),
        "algoOrder.place": ("POST", "/fapi/v1/algoOrder"), "algoOrder.cancel": ("DELETE", "/fapi/v1/algoOrder"),
        "account.status": ("GET", "/fapi/v2/account"), "account.balance": ("GET", "/fapi/v2/balance"),
        "account.position": ("GET", "/fapi/v2/positionRisk"),
        "userDataStream.start": ("POST", "/fapi/v1/listenKey"), "userDataStream.ping": ("PUT", "/fapi/v1/listenKey"),
        "userDataStream.stop": ("DELETE", "/fapi/v1/listenKey"),
    },
}
SESSION_WEIGHT = 2          # session.logon / status / logout, userDataStream.subscribe* / unsubscribe
CONNECT_WEIGHT = 2          # spot: "Connecting to WebSocket API costs 2 weight."
MAX_SUBSCRIPTIONS = 1000    # active user data subscriptions per connection (spot user-data-stream requests)
MAX_SUBSCRIPTION_IDS = 65535  # subscriptions over a connection's lifetime


class WsApiState:
    """What one WebSocket API connection remembers: its logged-on key and user data subscriptions."""

    def __init__(self, return_rate_limits: bool):
        self.connected_since = int(time.time() * 1000)
        self.api_key: str | None = None
        self.authorized_since: int | None = None
        self.return_rate_limits = return_rate_limits
        self.subscriptions: dict[int, str] = {}  # subscriptionId -> API key
        self.next_subscription = 0

    def status(self, sim: "BinanceSimulator") -> dict:
        return {"apiKey": self.api_key, "authorizedSince": self.authorized_since,
                "connectedSince": self.connected_since, "returnRateLimits": self.return_rate_limits,
                "serverTime": sim.now_ms(), "userDataStream": bool(self.subscriptions)}


def _text_params(raw: dict) -> dict[str, str]:
    """Parameter values as the text Binance signs and parses: strings as they are, numbers as their JSON
    text (floats arrive already as text, see json.loads(parse_float=str)), booleans 'true' / 'false',
    arrays as compact JSON."""
    out = {}
    for k, v in raw.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, (int, str)):
            out[k] = str(v)
        else:
            out[k] = json.dumps(v, separators=(",", ":"))
    return out


def _rate_limits(sim: "BinanceSimulator", ip: str, orders: bool) -> list[dict]:
    lim = sim.limiter
    out = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
            "limit": lim.limits.weight_per_minute, "count": lim.used_weight(ip)}]
    if orders:
        n10, nl = lim.order_counts()
        out.insert(0, {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                       "limit": lim.limits.orders_per_10s, "count": n10})
        out.insert(1, {"rateLimitType": "ORDERS", "interval": "DAY" if sim.market == SPOT else "MINUTE",
                       "intervalNum": 1, "limit": lim.limits.orders_per_long, "count": nl})
    return out


def _answer(rid, status: int, body, rate_limits: list | None) -> str:
    msg = {"id": rid, "status": status}
    if status == 200:
        msg["result"] = json.loads(body) if isinstance(body, RawBody) else body
    else:
        msg["error"] = body
    if rate_limits is not None:
        msg["rateLimits"] = rate_limits
    return dumps(msg)


def _error_body(code: int, msg: str, data=None) -> dict:
    body = {"code": code, "msg": msg}
    if data is not None:
        body["data"] = data
    return body


def handle(sim: "BinanceSimulator", conn: "_Conn", state: WsApiState, text: str, ip: str) -> None:
    """Serve one request frame: push its answer (and, through the engine, any user data it causes)."""
    try:
        req = json.loads(text, parse_float=str)
    except ValueError as e:
        conn.push(_answer(None, 400, _error_body(-1100, f"Malformed request: {e}"), None), market=False)
        return
    rid = req.get("id") if isinstance(req, dict) else None
    if not isinstance(req, dict) or isinstance(rid, bool) or not isinstance(rid, (int, str, type(None))):
        conn.push(_answer(None, 400, _error_body(-1100, "Malformed request: not a request object with an id"),
                          None), market=False)
        return
    method = req.get("method")
    raw = req.get("params", {})
    if not isinstance(method, str) or not isinstance(raw, dict):
        conn.push(_answer(rid, 400, _error_body(-1100, "Malformed request: 'method' must be a string and "
                                                "'params' an object"), None), market=False)
        return
    params = _text_params(raw)
    want_limits = state.return_rate_limits
    if "returnRateLimits" in params:
        want_limits = params["returnRateLimits"] == "true"
    sim.counters["ws_api_requests"] += 1
    if method.startswith("v3/") and sim.market == SPOT:       # "may be prefixed with explicit version"
        method = method[3:]
    target = METHODS[sim.market].get(method)
    route = ROUTES[sim.market][target] if target is not None else None
    session_method = method.startswith("session.") or method.startswith("userDataStream.subscribe") or \
        method == "userDataStream.unsubscribe"
    if route is None and not session_method:
        conn.push(_answer(rid, 400, _error_body(-1020, f"This operation is not supported: unknown method {method!r}."),
                          _rate_limits(sim, ip, False) if want_limits else None), market=False)
        return
    orders = route.orders if route is not None else 0
    fault = sim.faults.request_fault(f"{target[0]} {target[1]}" if target is not None else method)

    def reply(status: int, body) -> None:
        if fault == "drop_reply":
            return                                        # served; the answer is never sent
        text = _answer(rid, status, body, _rate_limits(sim, ip, bool(orders)) if want_limits else None)
        if fault == "slow_reply":
            conn.push_later(sim.faults.slow_reply_ms / 1000.0, text)
        else:
            conn.push(text, market=False)

    if fault == "http_5xx" and not sim.faults.http_5xx_executes:
        reply(500, UNKNOWN_5XX)
        return
    if fault in ("http_418", "http_429"):
        retry = sim.faults.retry_after_s
        now = sim.now_ms()
        data = {"serverTime": now, "retryAfter": now + int(retry * 1000)}
        if fault == "http_418":
            reply(418, _error_body(-1003, sim.limiter.ban_message(ip, time.time() + retry), data))
        else:
            reply(429, _error_body(-1003, f"Too much request weight used; current limit is "
                                   f"{sim.limiter.limits.weight_per_minute} request weight per 1 MINUTE. Please "
                                   "use WebSocket Streams for live updates to avoid polling the API.", data))
        return
    try:
        weight = route.weight(sim, params) if route is not None else SESSION_WEIGHT
    except Reject as r:
        reply(r.http_status, _error_body(r.code, r.msg))
        return
    try:
        sim.limiter.charge(ip, weight, orders)
    except Limited as lim:
        sim.counters[f"ws_api_{lim.status}"] += 1
        now = sim.now_ms()
        reply(lim.status, _error_body(lim.code, lim.msg, {"serverTime": now, "retryAfter": now + lim.retry_after * 1000}))
        return
    try:
        if route is None:
            status, body = 200, _session_method(sim, conn, state, method, params)
        else:
            if route.security != NONE:
                check_ws_api(sim.api_keys, params, sim.now_ms(), state.api_key, signed=route.security == SIGNED)
            result = route.fn(sim, params)
            status = 200
            if isinstance(result, tuple):
                result, status = result
            if status != 200 and isinstance(result, dict) and "code" in result:   # e.g. cancelReplace -2021/-2022
                body = _error_body(result["code"], result.get("msg", ""), result.get("data"))
            else:
                body = result
    except Reject as r:
        status, body = r.http_status, _error_body(r.code, r.msg)
        sim.counters["rejects"] += 1
    if fault == "http_5xx":                               # served, and the answer says the outcome is unknown
        status, body = 500, UNKNOWN_5XX
    reply(status, body)
    sim._pump()


def _session_method(sim: "BinanceSimulator", conn: "_Conn", state: WsApiState, method: str, params: dict):
    """session.* and the spot user data subscription methods; raises Reject like a route."""
    if method == "session.logon":
        key = check_ws_api(sim.api_keys, params, sim.now_ms(), None, signed=True)
        if sim.api_keys[key].kind != "ed25519":
            # Only Ed25519 keys can authenticate a session; an HMAC-signed logon fails signature checks.
            raise Reject(-1022, "Signature for this request is not valid.")
        state.api_key, state.authorized_since = key, sim.now_ms()
        return state.status(sim)
    if method == "session.status":
        return state.status(sim)
    if method == "session.logout":
        # Ends the session's userDataStream.subscribe subscription, not the .signature ones.
        for sid, key in list(state.subscriptions.items()):
            if key == ("session", state.api_key):
                _end_subscription(sim, conn, state, sid)
        state.api_key = state.authorized_since = None
        return state.status(sim)
    if sim.market != SPOT:
        raise Reject(-1020, f"This operation is not supported: unknown method {method!r}.")
    if method == "userDataStream.subscribe.signature":
        key = check_ws_api(sim.api_keys, params, sim.now_ms(), None, signed=True)
        return {"subscriptionId": _start_subscription(sim, conn, state, key)}
    if method == "userDataStream.subscribe":
        if state.api_key is None:
            raise Reject(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return {"subscriptionId": _start_subscription(sim, conn, state, ("session", state.api_key))}
    if method == "userDataStream.unsubscribe":
        sid_text = params.get("subscriptionId")
        if sid_text is None:
            for sid in list(state.subscriptions):
                _end_subscription(sim, conn, state, sid)
            return {}
        if not sid_text.isdigit() or int(sid_text) not in state.subscriptions:
            raise Reject(-2036, "User Data Stream subscription not active.")
        _end_subscription(sim, conn, state, int(sid_text))
        return {}
    raise Reject(-1020, f"This operation is not supported: unknown method {method!r}.")


def _start_subscription(sim: "BinanceSimulator", conn: "_Conn", state: WsApiState, key) -> int:
    account = key[1] if isinstance(key, tuple) else key
    for sid, existing in state.subscriptions.items():
        if (existing[1] if isinstance(existing, tuple) else existing) == account:
            raise Reject(-2035, "User Data Stream subscription already active.")
    if len(state.subscriptions) >= MAX_SUBSCRIPTIONS or state.next_subscription >= MAX_SUBSCRIPTION_IDS:
        raise Reject(-2042, "Maximum subscription ID reached for this connection.")
    sid = state.next_subscription
    state.next_subscription += 1
    state.subscriptions[sid] = key
    sim.ws_api_subscribers.add(conn)
    return sid


def _end_subscription(sim: "BinanceSimulator", conn: "_Conn", state: WsApiState, sid: int) -> None:
    del state.subscriptions[sid]
    conn.push(dumps({"subscriptionId": sid, "event": {"e": "eventStreamTerminated", "E": sim.now_ms()}}),
              market=False)
    if not state.subscriptions:
        sim.ws_api_subscribers.discard(conn)


def publish_user(sim: "BinanceSimulator", texts: list[str]) -> None:
    """The account's user data events to every WebSocket API subscription (one simulated account)."""
    for conn in list(sim.ws_api_subscribers):
        state = conn.ws_api
        if state is None:
            continue
        for sid in state.subscriptions:
            prefix = '{"subscriptionId":' + str(sid) + ',"event":'
            for text in texts:
                conn.push(prefix + text + "}", market=False)
